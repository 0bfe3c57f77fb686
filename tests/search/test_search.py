"""Conformance suite over every registered searcher, plus driver, resume-after-SIGKILL and DEAP hygiene."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from tests.procs import worker_context
from tests.synthetic_tables import write_table

from evonas.search.constraints import Constraints
from evonas.errors import ConfigError, cli_message
from evonas.scorers.table import TableScorer
from evonas.search import SearchContext, list_searchers, make_problem, make_searcher, run_search
from evonas.run.store import Store
from evonas.scorers.tables import load_table
from search_spaces import InfeasibleConstraintError, UnknownNameError, get_space

def budget_for(algo: str) -> int:
    return 24


@pytest.fixture(scope="module")
def scorer(tmp_path_factory) -> TableScorer:
    path = write_table(tmp_path_factory.mktemp("tables") / "macro.csv")
    return TableScorer(load_table(path, get_space("macro-fmnist")), target="val_acc", report="test_acc")


def search(scorer, algo, *, seed=0, budget=None, constraints=Constraints(), objectives=None, store=None, run=None,
           context=None):
    problem = make_problem(scorer, constraints, objectives)
    searcher = make_searcher(algo, problem, seed=seed, context=context)
    return run_search(searcher, scorer, store or Store.memory(), budget=budget or budget_for(algo), search_run=run)


def test_registry_lists_the_issue_searchers_and_rejects_unknown_names():
    assert {"evolution", "nsga2", "rea", "random", "tpe", "optuna-nsga2", "optuna-random"} <= set(list_searchers())
    with pytest.raises(UnknownNameError, match="choose one of: evolution"):
        make_searcher("bogus", None, seed=0)


def test_option_errors_name_the_parameter_and_map_to_flags(scorer):
    problem = make_problem(scorer, Constraints())
    with pytest.raises(ConfigError, match="The 'population' parameter does not apply to searcher 'tpe'; its parameters: ") as info:
        make_searcher("tpe", problem, seed=0, options={"population": 10})
    assert info.value.param == "population"
    assert cli_message(info.value).startswith("--population does not apply to --algo tpe")
    with pytest.raises(ConfigError, match="The 'parents' parameter and the 'population' parameter do not apply"):
        make_searcher("random", problem, seed=0, options={"population": 10, "parents": 2})
    with pytest.raises(ConfigError, match=r"The 'mutation_prob' parameter must be a probability in \[0, 1\]; got 2") as info:
        make_searcher("evolution", problem, seed=0, options={"mutation_prob": 2.0})
    assert cli_message(info.value) == "--mutation-prob must be a probability in [0, 1]; got 2.0."
    with pytest.raises(ConfigError, match="The 'population' parameter must be an integer >= 1; got 0"):
        make_searcher("evolution", problem, seed=0, options={"population": 0})
    with pytest.raises(ConfigError, match="The 'objectives' parameter must start with accuracy"):
        make_problem(scorer, Constraints(), "flops,accuracy")
    with pytest.raises(ConfigError, match="The 'objectives' parameter must name each objective once"):
        make_problem(scorer, Constraints(), "accuracy,flops,flops")
    with pytest.raises(ConfigError, match="The 'objectives' parameter must list 'accuracy'") as info:
        make_problem(scorer, Constraints(), "accuracy,speed")
    assert cli_message(info.value).startswith("--objectives must list 'accuracy'")
    with pytest.raises(ConfigError, match="The 'budget' parameter must be an integer >= 1") as info:
        run_search(make_searcher("random", problem, seed=0), scorer, Store.memory(), budget=0)
    assert cli_message(info.value).startswith("--budget must be an integer >= 1")


@pytest.mark.parametrize("algo", list_searchers())
def test_budget_counts_distinct_scored_architectures(scorer, algo):
    store = Store.memory()
    res = search(scorer, algo, store=store)
    assert res.evaluations == budget_for(algo) == len(res.history) == len(set(res.evaluated))
    assert store.count() == res.evaluations  # nothing scored twice
    assert res.history == sorted(res.history)  # best-so-far never decreases
    assert res.best["value"] == max(store.records()[i].metric("val_acc") for i in range(store.count()))
    assert res.best["report"] is not None


@pytest.mark.parametrize("metric", ["flops", "params", "latency_ms"])
@pytest.mark.parametrize("algo", list_searchers())
def test_every_scored_architecture_respects_each_constraint_type(scorer, algo, metric):
    space = scorer.space
    costs = [scorer.costs(a)[metric] for a in scorer.table.archs]
    limit = sorted(costs)[len(costs) // 5]  # about a fifth of the space is feasible
    c = Constraints(**{f"max_{metric}": limit})
    res = search(scorer, algo, constraints=c)
    assert res.evaluations == budget_for(algo)
    for text in res.evaluated:
        assert scorer.costs(space.parse(text))[metric] <= limit


@pytest.mark.parametrize("algo", list_searchers())
def test_same_seed_same_search_other_seed_other_search(scorer, algo):
    a = search(scorer, algo, seed=3)
    b = search(scorer, algo, seed=3)
    c = search(scorer, algo, seed=4)
    assert a.evaluated == b.evaluated and a.history == b.history
    assert a.evaluated != c.evaluated


@pytest.mark.parametrize("algo", list_searchers())
def test_infeasible_constraint_is_an_immediate_clear_error(scorer, algo):
    smallest = scorer.space.min_cost("params")
    t0 = time.perf_counter()
    with pytest.raises(InfeasibleConstraintError, match=f"smallest network has params = {smallest:,}"):
        search(scorer, algo, constraints=Constraints(max_params=smallest - 1))
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("algo", list_searchers())
def test_multi_objective_support_is_explicit(scorer, algo):
    from evonas.search import get_searcher

    if get_searcher(algo).multi_objective:
        res = search(scorer, algo, objectives="accuracy,flops")
        assert res.pareto and all({"arch", "val_acc", "flops"} <= set(p) for p in res.pareto)
        accs = [p["val_acc"] for p in res.pareto]
        assert accs == sorted(accs, reverse=True)
    else:
        with pytest.raises(ConfigError, match=f"The 'objectives' parameter names several objectives, but searcher '{algo}' optimises one objective"):
            search(scorer, algo, objectives="accuracy,flops")


@pytest.mark.parametrize("algo", list_searchers())
def test_resume_replays_from_the_store_without_rescoring(scorer, algo, tmp_path):
    budget = budget_for(algo)
    whole = search(scorer, algo, seed=1, budget=budget)
    store = Store.open(tmp_path / "run")
    run, _ = store.begin_search(algo=algo, seed=1, config={"c": 1})
    ctx = SearchContext(run_dir=str(tmp_path / "run"), study_name=run.name)
    first = search(scorer, algo, seed=1, budget=budget // 2, store=store, run=run, context=ctx)
    run2, resumed = store.begin_search(algo=algo, seed=1, config={"c": 1}, resume=True)
    assert resumed and run2.id == run.id
    ctx = SearchContext(run_dir=str(tmp_path / "run"), study_name=run.name, resume=True)
    second = search(scorer, algo, seed=1, budget=budget, store=store, run=run2, context=ctx)
    assert second.evaluated == whole.evaluated and second.history == whole.history
    assert second.cached == first.evaluations  # the replayed part came from the store
    assert store.count() == budget
    assert [s.arch for s in store.steps(run.id)][: len(second.evaluated)] == second.evaluated[: len(store.steps(run.id))]


def test_scores_are_reused_across_searchers(scorer):
    store = Store.memory()
    a = search(scorer, "random", seed=0, budget=30, store=store)
    b = search(scorer, "random", seed=0, budget=30, store=store)
    assert a.cached == 0 and b.cached == 30 and store.count() == 30


def test_driver_stops_when_the_feasible_space_is_exhausted(scorer):
    space = scorer.space
    flops = sorted(scorer.costs(a)["flops"] for a in scorer.table.archs)
    c = Constraints(max_flops=flops[4])  # five feasible networks (ties aside)
    n_feasible = sum(f <= flops[4] for f in flops)
    res = search(scorer, "evolution", budget=50, constraints=c)
    assert res.exhausted and res.evaluations == n_feasible
    assert all(scorer.costs(space.parse(a))["flops"] <= flops[4] for a in res.evaluated)


def test_deap_is_imported_only_by_the_evolution_module():
    root = Path(__file__).resolve().parents[2]
    users = [p.relative_to(root).as_posix() for p in (root / "evonas").rglob("*.py")
             if "import deap" in p.read_text() or "from deap" in p.read_text()]
    assert users == ["evonas/search/evolution.py"]


def test_deap_classes_are_created_once(recwarn):
    import importlib

    import evonas.search.evolution as evo

    importlib.reload(evo)  # a second import must not re-create (and warn about) creator classes
    assert not [w for w in recwarn if "creator" in str(w.message).lower()]


def _killable(table: str, run_dir: str, log: str, algo: str, budget: int, resume: bool, die_after: int,
              out: str) -> None:
    """A search of 40 in its own process whose table scorer logs each scoring to ``log``; with ``die_after`` > 0 it
    SIGKILLs itself right after scoring that many (scored, not yet stored: the worst moment to die). It writes the
    architectures it evaluated to ``out``."""

    class SlowScorer(TableScorer):
        def score(self, arch):
            time.sleep(0.03)
            metrics = super().score(arch)
            with open(log, "a") as fh:
                fh.write(str(arch) + "\n")
            if die_after and len(open(log).read().split()) == die_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return metrics

    scorer = SlowScorer(load_table(table, get_space("macro-fmnist")), target="val_acc")
    store = Store.open(run_dir)
    run, resumed = store.begin_search(algo=algo, seed=7, config={"max_flops": 4e6}, resume=resume)
    problem = make_problem(scorer, Constraints(max_flops=4e6))
    searcher = make_searcher(algo, problem, seed=7,
                             context=SearchContext(run_dir=Path(run_dir), study_name=run.name, resume=resumed))
    res = run_search(searcher, scorer, store, budget=budget, search_run=run, resumed=resumed)
    Path(out).write_text(",".join(res.evaluated))


def _start_killable(tmp_path: Path, scorer, algo: str, *, resume: bool = False, die_after: int = 0):
    """(the started process, its run directory, its scoring log, the file it writes its evaluations to)."""
    run_dir, log, out = tmp_path / "run", tmp_path / "scored.log", tmp_path / ("resumed.txt" if resume else "out.txt")
    proc = worker_context().Process(target=_killable, args=(str(scorer.table.path), str(run_dir), str(log), algo, 40,
                                                             resume, die_after, str(out)))
    proc.start()
    return proc, run_dir, log, out


def _stored_archs(run_dir):
    with Store.open(run_dir) as store:
        return {r.arch for r in store.records()}


def _check_resumed_run(scorer, algo, run_dir, resume, scored):
    assert resume.exitcode == 0  # (joined)
    resumed = (run_dir.parent / "resumed.txt").read_text().split(",")
    assert set(scored) == set(resumed) and len(set(scored)) == 40
    with Store.open(run_dir) as store:
        assert store.count() == 40
        (run,) = store.search_runs()
        assert run.finished and [s.arch for s in store.steps(run.id) if s.feasible] == resumed
    whole = search(scorer, algo, seed=7, budget=40, constraints=Constraints(max_flops=4e6))
    assert resumed == whole.evaluated  # same result as an uninterrupted run


@pytest.mark.parametrize("algo", ["evolution", "tpe"])
def test_search_killed_with_sigkill_resumes_without_repeats(scorer, tmp_path, algo):
    """A kill at a random moment: nothing stored is scored again; only the one architecture in flight may be."""
    proc, run_dir, log, _ = _start_killable(tmp_path, scorer, algo)
    # Wait for the kill point, saying so if it never comes. Before, the loop gave up silently after 60 s: on a loaded
    # machine the search had not scored 12 architectures yet (or not started: no log), was killed anyway, and the test
    # failed reading a missing log or with an unrelated count.
    deadline = time.time() + 300
    while not (log.exists() and len(log.read_text().split()) >= 12):
        assert proc.exitcode is None, "the search ended before the kill point"
        assert time.time() < deadline, "the search scored fewer than 12 architectures in 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    before = log.read_text().split()
    assert 12 <= len(before) < 40
    stored = _stored_archs(run_dir)
    in_flight = set(before) - stored  # scored when the kill came, its record not yet written
    assert len(in_flight) <= 1 and set(before[:-1]) <= stored
    resume, *_ = _start_killable(tmp_path, scorer, algo, resume=True)
    resume.join(timeout=300)
    scored = log.read_text().split()
    again = [a for a in set(scored) if scored.count(a) > 1]
    assert set(again) == in_flight and all(scored.count(a) == 2 for a in again)
    _check_resumed_run(scorer, algo, run_dir, resume, scored)


@pytest.mark.parametrize("algo", ["evolution", "tpe"])
def test_search_killed_between_scoring_and_storing_rescores_only_that_architecture(scorer, tmp_path, algo):
    """The worst moment, made deterministic: the 12th architecture is scored and the process dies
    before its record is written. The resume scores that one again and nothing else."""
    killed, run_dir, log, _ = _start_killable(tmp_path, scorer, algo, die_after=12)
    killed.join(timeout=120)
    assert killed.exitcode == -signal.SIGKILL
    before = log.read_text().split()
    assert len(before) == 12 and _stored_archs(run_dir) == set(before[:11])
    resume, *_ = _start_killable(tmp_path, scorer, algo, resume=True)
    resume.join(timeout=120)
    scored = log.read_text().split()
    assert [a for a in set(scored) if scored.count(a) > 1] == [before[11]] and len(scored) == 41
    _check_resumed_run(scorer, algo, run_dir, resume, scored)
