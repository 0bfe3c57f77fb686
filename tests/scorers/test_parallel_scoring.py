"""Parallel scoring: a pool of worker processes finds what the serial search finds, and fails in one line."""

from __future__ import annotations

import functools

import pytest
from tests.synthetic_tables import write_table

from evonas.cli.main import main
from evonas.errors import ConfigError
from evonas.jobs.search import SearchOptions, search
from evonas.run.store import Store
from evonas.scorers.pool import PoolScoring, ScoringError, check_pool, default_threads_per_worker, make_scoring
from evonas.scorers.registry import make_scorer
from evonas.search import make_problem, make_searcher, run_search
from evonas.search.constraints import Constraints
from evonas.scorers.table import TableScorer
from evonas.scorers.tables import load_table
from search_spaces import get_space

SAME = ("best", "history", "evaluations", "rejected", "duplicates", "pareto")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return write_table(tmp_path_factory.mktemp("tables") / "macro.csv")


def table_search(table, run, algo, workers):
    options = SearchOptions(algo=algo, budget=24, seed=3, space="macro-fmnist", table=str(table), target="val_acc",
                            quiet=True, workers=workers,
                            searcher_options={"startup_trials": 12} if algo == "tpe" else {})
    return search(run, options).to_dict()


@pytest.mark.parametrize("algo, with_run", [("evolution", True), ("tpe", False)])
def test_two_workers_find_what_one_finds(table, tmp_path, algo, with_run):
    """DEAP generations and Optuna's start-up batch scored by 2 workers: same scores, same best, one record each.

    With a run directory the workers share its store file; without one they only
    compute the metrics and this process stores them.
    """
    serial = table_search(table, tmp_path / "serial" if with_run else None, algo, 1)
    pooled = table_search(table, tmp_path / "pooled" if with_run else None, algo, 2)
    for key in SAME:
        assert pooled[key] == serial[key], key
    if with_run:
        with Store.open(tmp_path / "pooled") as store:
            archs = [r.arch for r in store.records()]
        assert len(archs) == len(set(archs)) == pooled["evaluations"]


def test_supernet_workers_score_like_this_process(tiny_run, tmp_path):
    """Each worker loads the supernet once (pool initializer) and gives this process's scores.

    Bit for bit at equal thread counts (1 here): a float sum over other threads differs in its last digits.
    """
    import torch

    factory = functools.partial(make_scorer, "supernet", run_dir=str(tiny_run), recalib_images=64, batch_size=64)
    scorer = factory()
    results, stores = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for workers in (1, 2):
            store = stores[workers] = Store(tmp_path / f"store{workers}.sqlite")
            searcher = make_searcher("evolution", make_problem(scorer, Constraints()), seed=1, options={"population": 3})
            with make_scoring(scorer, store, workers=workers, factory=factory) as scoring:
                results[workers] = run_search(searcher, scorer, store, budget=6, scoring=scoring)
    finally:
        torch.set_num_threads(threads)
    serial, pooled = results[1], results[2]
    assert pooled.best == serial.best and pooled.history == serial.history
    assert pooled.evaluated == serial.evaluated and pooled.cached == 0
    archs = [r.arch for r in stores[2].records()]
    assert len(archs) == len(set(archs)) == 6


def failing_scorer():
    """A scorer whose scoring raises inside the worker (module level: workers import it by name)."""

    class Failing(TableScorer):
        def score(self, arch):
            raise RuntimeError("disk on fire\nsecond line")

    from tests.synthetic_tables import write_table as write
    import tempfile
    from pathlib import Path

    path = write(Path(tempfile.mkdtemp()) / "t.csv")
    return Failing(load_table(path, get_space("macro-fmnist")), target="val_acc")


def test_an_error_in_a_worker_is_one_line_in_the_parent(table):
    scorer = TableScorer(load_table(table, get_space("macro-fmnist")), target="val_acc")
    arch = get_space("macro-fmnist").canonical(get_space("macro-fmnist").sample(__import__("random").Random(0)))
    with PoolScoring(failing_scorer, scorer, Store.memory(), workers=1, threads_per_worker=1) as pool:
        with pytest.raises(ScoringError) as exc:
            list(pool.map([arch]))
    message = str(exc.value)
    assert "\n" not in message and "disk on fire" in message and str(arch) in message


def test_default_threads_divide_the_cores():
    assert default_threads_per_worker(2, cores=2) == 1
    assert default_threads_per_worker(3, cores=16) == 5
    assert default_threads_per_worker(4, cores=2) == 1
    assert check_pool(1, None, cores=8) == 8
    with pytest.raises(ConfigError, match="at most the 2 CPU cores"):
        check_pool(2, 2, cores=2)


@pytest.mark.parametrize("args, flag", [
    (["--workers", "0"], "--workers"),
    (["--workers", "-3"], "--workers"),
    (["--workers", "100000"], "--workers"),
    (["--workers", "two"], "--workers"),
    (["--workers", "1", "--threads-per-worker", "1"], "--threads-per-worker"),
    (["--workers", "2", "--threads-per-worker", "0"], "--threads-per-worker"),
    (["--workers", "2", "--threads-per-worker", "100000"], "--threads-per-worker"),
])
def test_bad_workers_values_exit_2_with_one_line(table, capsys, args, flag):
    with pytest.raises(SystemExit) as exc:
        main(["search", "--space", "macro-fmnist", "--table", str(table), "--target", "val_acc", "--budget", "3",
              *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
