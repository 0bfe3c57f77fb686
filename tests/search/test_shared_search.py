"""Searches shared by several workers: ``evonas search --study-name NAME [--storage URL]``.

Two ``evonas search`` processes join one Optuna study, on the run's SQLite database,
on an SQLite file named by ``--storage``, and on a real PostgreSQL server started on
loopback (tests/pg.py). Together they score exactly ``--budget`` distinct
architectures, none twice (each scoring is logged by the patched table scorer), and
each worker's store ends with the union. The table scorer sleeps a little per score
so that the two workers overlap. The kill tests SIGKILL one worker while it scores
(mid-study, and holding the study's last claim), start it again as a user would, and
check the same end state.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import pytest

from tests.procs import worker_context
from tests.synthetic_tables import write_table

from evonas.cli.main import main

pytestmark = pytest.mark.xdist_group("postgresql")  # under xdist one worker runs these: one PostgreSQL server, not one each

BUDGET = 16
SCORE_S = 0.03  # each table lookup sleeps this long, so the workers overlap


def _worker(argv: list[str], calls_file: str, out_file: str, barrier, pause_after: int | None = None,
            pause=None) -> None:
    """One ``evonas search`` worker whose table scorer logs each call; with ``pause_after``, its next call
    after that many waits for the event ``pause`` (a kill point: it holds the claim while it waits)."""
    import os

    from evonas.scorers.table import TableScorer
    from evonas.search import optuna_search

    score, sampler = TableScorer.score, optuna_search.TPESearch.sampler
    calls = 0

    def logged_score(self, arch):
        nonlocal calls
        with open(calls_file, "a") as fh:  # one short append per call: safe across processes
            fh.write(f"{arch} {os.getpid()}\n")
        calls += 1
        if pause_after is not None and calls == pause_after + 1:
            pause.wait(timeout=120)
        time.sleep(SCORE_S)
        return score(self, arch)

    def sampler_after_barrier(self):
        if barrier is not None:
            barrier.wait(timeout=120)  # both workers join the study at the same moment
        return sampler(self)

    TableScorer.score = logged_score
    optuna_search.TPESearch.sampler = sampler_after_barrier
    with open(out_file, "w") as fh, contextlib.redirect_stdout(fh):
        main(argv + ["--json", "--quiet"])  # an error exits 2


def run_workers(tmp_path: Path, argvs: list[list[str]]) -> tuple[list[str], list[dict]]:
    """Run one worker process per argv at once; (architectures scored, in any order; each worker's JSON)."""
    calls_file = tmp_path / "calls.txt"
    ctx = worker_context()
    barrier = ctx.Barrier(len(argvs))
    outs = [tmp_path / f"out{i}.json" for i in range(len(argvs))]
    procs = [ctx.Process(target=_worker, args=(argv, str(calls_file), str(out), barrier)) for argv, out in zip(argvs, outs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    calls = [line.split() for line in calls_file.read_text().splitlines()]
    assert len({c[1] for c in calls}) == len(argvs)  # every worker scored some of the study
    return [c[0] for c in calls], [json.loads(out.read_text()) for out in outs]


def table_args(table: Path) -> list[str]:
    return ["search", "--space", "macro-fmnist", "--table", str(table), "--target", "val_acc", "--algo", "tpe",
            "--budget", str(BUDGET), "--seed", "0", "--study-name", "shared"]


def check_shared(calls: list[str], outs: list[dict], stores: list[Path], url: str) -> None:
    from sqlalchemy import create_engine, text

    assert len(calls) == BUDGET and len(set(calls)) == BUDGET  # exactly the budget, none scored twice
    assert sorted(o["study"]["worker"] for o in outs) == [0, 1] and {o["seed"] for o in outs} == {0, 1}
    for out in outs:
        assert out["study"]["scored"] == BUDGET and out["study"]["workers"] == 2 and out["study"]["budget"] == BUDGET
        assert not out["exhausted"] and out["evaluations"] <= BUDGET
        assert out["study"]["best"] == outs[0]["study"]["best"] and out["study"]["best"]["value"] >= out["best"]["value"]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT arch, metrics FROM evonas_evaluations WHERE study = 'shared'")).all()
            trials = conn.execute(text("SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                                       "WHERE s.study_name = 'shared' AND t.state = 'COMPLETE'")).scalar_one()
    finally:
        engine.dispose()
    assert sorted(r.arch for r in rows) == sorted(calls) and all(r.metrics for r in rows)
    assert trials >= BUDGET  # one Optuna study: every scored architecture is a trial of it
    from evonas.run.store import Store

    for run in stores:
        with Store.open(run) as store:
            assert {r.arch for r in store.records(scorer="table")} == set(calls)  # the union in every store
            assert store.claims() == []


def test_two_workers_share_the_run_database(tmp_path):
    """One machine, one run directory: ``--study-name`` alone shares the run's optuna.db."""
    table = write_table(tmp_path / "t.csv")
    run = tmp_path / "run"
    argv = table_args(table) + ["--run", str(run)]
    calls, outs = run_workers(tmp_path, [argv, argv])
    check_shared(calls, outs, [run], f"sqlite:///{run / 'optuna.db'}")
    assert sorted(o["search_run"] for o in outs) == ["tpe-s0", "tpe-s0-2"]  # one search run per worker


def test_two_workers_share_an_sqlite_storage(tmp_path):
    """Two run directories (as on two machines) and one SQLite file named by --storage."""
    table = write_table(tmp_path / "t.csv")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    runs = [tmp_path / "a", tmp_path / "b"]
    calls, outs = run_workers(tmp_path, [table_args(table) + ["--run", str(r), "--storage", url] for r in runs])
    check_shared(calls, outs, runs, url)


def test_two_workers_share_a_postgresql_storage(tmp_path, pg_url):
    """Two run directories and one PostgreSQL database on a real server on loopback."""
    table = write_table(tmp_path / "t.csv")
    runs = [tmp_path / "a", tmp_path / "b"]
    calls, outs = run_workers(tmp_path, [table_args(table) + ["--run", str(r), "--storage", pg_url] for r in runs])
    check_shared(calls, outs, runs, pg_url)
    assert all(o["study"]["storage"] == pg_url for o in outs)  # no password in this URL to mask


def test_a_later_worker_continues_the_study_and_a_full_one_scores_nothing(tmp_path, capsys, pg_url):
    table = write_table(tmp_path / "t.csv")
    args = ["search", "--space", "macro-fmnist", "--table", str(table), "--target", "val_acc", "--algo", "tpe",
            "--storage", pg_url, "--study-name", "s", "--json", "--quiet"]
    main(args + ["--run", str(tmp_path / "a"), "--budget", "10"])
    first = json.loads(capsys.readouterr().out)
    assert first["evaluations"] == 10 and first["study"]["scored"] == 10
    main(args + ["--run", str(tmp_path / "b"), "--budget", "10"])  # the study is full: a new worker only syncs
    second = json.loads(capsys.readouterr().out)
    assert second["evaluations"] == 0 and second["study"] == {**first["study"], "worker": 1, "workers": 2}
    from evonas.run.store import Store

    with Store.open(tmp_path / "b") as store:
        assert store.count() == 10  # the study's records, copied into the new worker's store


def test_joining_with_another_budget_or_scorer_is_one_line_and_changes_nothing(tmp_path, capsys):
    table = write_table(tmp_path / "t.csv")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    base = ["search", "--space", "macro-fmnist", "--table", str(table), "--target", "val_acc", "--algo", "tpe",
            "--storage", url, "--study-name", "s", "--quiet"]
    main(base + ["--run", str(tmp_path / "a"), "--budget", "6"])
    capsys.readouterr()
    before = (tmp_path / "study.db").read_bytes()
    other_target = ["test_acc" if a == "val_acc" else a for a in base]
    for argv, fragment in ((base + ["--budget", "7"], "--budget is the whole study's"),
                           (base + ["--budget", "6", "--max-flops", "3e6"], "which scores with constraints"),
                           (other_target + ["--budget", "6"], "which scores with target")):
        argv = argv + ["--run", str(tmp_path / "new")]
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and fragment in err and "Traceback" not in err
        assert not (tmp_path / "new").exists()  # refused before the run directory was made
    assert (tmp_path / "study.db").read_bytes() == before


def test_dead_workers_claims_free_their_budget_slots(tmp_path):
    """A worker killed mid-scoring leaves a claim; once the budget looks spent, it is dropped and taken."""
    import subprocess
    import sys

    from evonas.run.shared_store import SharedStore
    from evonas.run.store import BudgetSpent, Store

    url = f"sqlite:///{tmp_path / 'study.db'}"
    key = ("macro-fmnist", "scorer", "key")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store.open(tmp_path / "a") as a_local, Store.open(tmp_path / "b") as b_local:
        a_local.owner = f"{socket.gethostname()}:{dead.pid}:dead"  # a worker whose process is gone
        a = SharedStore.join(a_local, url, "s", budget=2, config={"x": 1})
        b = SharedStore.join(b_local, url, "s", budget=2, config={"x": 1})
        assert (a.worker, b.worker) == (0, 1)
        assert a.claim(key[0], "00000000", *key[1:])
        a.put(space=key[0], arch="00000000", scorer=key[1], source_key=key[2], metrics={"acc": 1.0}, source={})
        assert a.claim(key[0], "11111111", *key[1:])  # then it dies while scoring
        assert b.claim(key[0], "22222222", *key[1:])  # the dead claim is dropped: its slot is free again
        with pytest.raises(BudgetSpent):
            b.claim(key[0], "33333333", *key[1:])
        assert b.claim(key[0], "00000000", *key[1:])  # an architecture of the study is never refused
        assert b.get(*[key[0], "00000000", *key[1:]]).metrics == {"acc": 1.0}



def _calls(calls_file: Path) -> list[tuple[str, str]]:
    """(arch, pid) of every table scoring begun so far, in order."""
    return [tuple(line.split()) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []


def _pids(calls_file: Path) -> list[str]:
    return [pid for _, pid in _calls(calls_file)]


def _wait_for(cond, procs, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert all(p.exitcode is None for p in procs), "a worker ended before the kill point"
        assert time.time() < deadline, "the kill point never came"
        time.sleep(0.02)


class _Ledger:
    """The test's reading of the study's ledger while the workers run."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url)

    def rows(self):
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text("SELECT arch, owner, metrics FROM evonas_evaluations WHERE study = 'shared'")).all()

    def held_by(self, pid: int) -> list[tuple[str, str]]:
        """(arch, owner) of the unscored claims of the worker process ``pid``."""
        return [(r.arch, r.owner) for r in self.rows() if r.metrics is None and r.owner.split(":")[1] == str(pid)]


def _check_after_kill(tmp_path: Path, ledger: _Ledger, killed_pid: int, killed_arch: str, dead_owner: str,
                      scorers: set[int], outs: list[dict]) -> None:
    """The end state of a study one of whose workers was killed while scoring ``killed_arch`` and started again.

    Which architectures the study scores is not deterministic (TPE reads every
    worker's trials, and the workers race), so rather than comparing with an
    uninterrupted study this checks what one guarantees: exactly the budget of
    distinct architectures, none scored twice, no claim left open, the study's union
    in every worker's store, and the dead worker's claim taken over (its slot used;
    the architecture itself scored once if a worker proposed it again).
    """
    from evonas.run.store import Store

    calls = _calls(tmp_path / "calls.txt")
    assert calls.count((killed_arch, str(killed_pid))) == 1
    done = [c for c in calls if c != (killed_arch, str(killed_pid))]  # every scoring but the killed one finished
    archs = [arch for arch, _ in done]
    assert len(archs) == BUDGET and len(set(archs)) == BUDGET  # exactly the budget, none scored twice
    assert {pid for _, pid in done} == {str(p) for p in scorers}
    rows = ledger.rows()
    assert sorted(r.arch for r in rows) == sorted(archs) and all(r.metrics for r in rows)  # no claim left open
    assert all(r.owner != dead_owner for r in rows if r.arch == killed_arch)  # the dead claim was taken over
    for out in outs:
        assert out["study"]["scored"] == BUDGET and out["study"]["budget"] == BUDGET and not out["exhausted"]
        assert out["study"]["best"] == outs[0]["study"]["best"]
    for run in (tmp_path / "a", tmp_path / "b"):
        with Store.open(run) as store:
            assert {r.arch for r in store.records(scorer="table")} == set(archs)  # the union in every store
            assert {(c[1], c[4]) for c in store.claims()} <= {(killed_arch, dead_owner)}  # at most the dead one


def _kill_setup(tmp_path: Path, url: str, a_after: int, b_after: int | None):
    """Workers A and B on run directories a and b sharing ``url``, and how to start A again. A waits for ever in
    its scoring number ``a_after`` + 1, B (with ``b_after``) in its number ``b_after`` + 1 until ``sync[2]`` is
    set. Keep ``sync`` referenced until the workers run: a started Process drops its arguments, and a semaphore
    collected in this process is gone before the child opens it."""
    table = write_table(tmp_path / "t.csv")
    argv_a, argv_b = (table_args(table) + ["--run", str(tmp_path / r), "--storage", url] for r in "ab")
    ctx = worker_context()
    barrier, never, b_go = ctx.Barrier(2), ctx.Event(), ctx.Event()
    calls = str(tmp_path / "calls.txt")
    a = ctx.Process(target=_worker, args=(argv_a, calls, str(tmp_path / "a.json"), barrier, a_after, never))
    b = ctx.Process(target=_worker, args=(argv_b, calls, str(tmp_path / "b.json"), barrier, b_after, b_go))

    def again(*extra: str):
        return ctx.Process(target=_worker, args=(argv_a + list(extra), calls, str(tmp_path / "a2.json"), None))

    return a, b, again, (barrier, never, b_go)


@pytest.mark.parametrize("storage,restart", [("sqlite", "same command"), ("postgresql", "--resume")])
def test_a_worker_killed_mid_study_and_started_again_completes_the_study(tmp_path, request, storage, restart):
    """Kill test of a shared study: worker A is killed with SIGKILL in the middle of a scoring, then started again.

    Two workers share a budget of 16 (run directories a and b, one --storage). At a
    seeded random point, after a few scorings each, A is killed while it scores (it
    holds a claim in the ledger) and B waits inside a scoring of its own. A is started
    again as the README says (the same command, or with --resume) and, once it scores,
    B goes on; A, B and A again all score part of the study (end state:
    ``_check_after_kill``).
    """
    import os
    import random
    import signal

    url = request.getfixturevalue("pg_url") if storage == "postgresql" else f"sqlite:///{tmp_path / 'study.db'}"
    rng = random.Random(f"{storage} {restart}")
    a_after, b_after = rng.randint(1, 3), rng.randint(1, 3)  # scorings A and B finish before the kill point
    a, b, again, sync = _kill_setup(tmp_path, url, a_after, b_after)
    ledger, procs = _Ledger(url), [a, b]
    try:
        a.start()
        b.start()
        _wait_for(lambda: _pids(tmp_path / "calls.txt").count(str(a.pid)) == a_after + 1
                  and _pids(tmp_path / "calls.txt").count(str(b.pid)) == b_after + 1, procs)
        [(killed_arch, dead_owner)] = ledger.held_by(a.pid)  # A scores killed_arch, holding its claim
        assert (killed_arch, str(a.pid)) in _calls(tmp_path / "calls.txt")
        assert sum(r.metrics is not None for r in ledger.rows()) == a_after + b_after < BUDGET  # mid-study
        os.kill(a.pid, signal.SIGKILL)
        a.join(timeout=60)
        assert a.exitcode == -signal.SIGKILL
        a2 = again(*(["--resume"] if restart == "--resume" else []))
        procs.append(a2)
        a2.start()
        _wait_for(lambda: str(a2.pid) in _pids(tmp_path / "calls.txt"), [a2, b])  # A, started again, scores
        sync[2].set()  # B goes on
        for p in (a2, b):
            p.join(timeout=300)
        assert [a2.exitcode, b.exitcode] == [0, 0]
        outs = [json.loads((tmp_path / f).read_text()) for f in ("a2.json", "b.json")]
        _check_after_kill(tmp_path, ledger, a.pid, killed_arch, dead_owner, {a.pid, b.pid, a2.pid}, outs)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        ledger.engine.dispose()
    # started again, A joins the study as a new worker (index 2, sampling with --seed + 2)
    assert outs[0]["study"]["worker"] == 2 and outs[1]["study"]["worker"] in (0, 1) and outs[0]["study"]["workers"] == 3
    assert outs[0]["resumed"] == (restart == "--resume")
    from evonas.run.store import Store

    with Store.open(tmp_path / "a") as store:
        states = {r.name: store.search_state(r) for r in store.search_runs()}
    assert states == ({"tpe-s0": "finished"} if restart == "--resume" else {"tpe-s0": "abandoned", "tpe-s0-2": "finished"})


def test_a_worker_killed_holding_the_last_claim_leaves_no_slot_of_the_study_unscored(tmp_path):
    """Kill test of a shared study: A is killed with SIGKILL while it scores the study's last architecture.

    B has claimed the rest of the budget and waits for A's scoring; once A is dead,
    B takes the freed slot and completes the study itself (before, it dropped A's claim
    and stopped one short, its store missing the last record). A, started again,
    finds the study complete, scores nothing and copies the study into its store.
    """
    import os
    import random
    import signal

    url = f"sqlite:///{tmp_path / 'study.db'}"
    a_after = random.Random("last claim").randint(1, 3)  # scorings A finishes before the kill point
    a, b, again, _sync = _kill_setup(tmp_path, url, a_after, None)  # _sync: kept until the workers run
    ledger, procs = _Ledger(url), [a, b]
    try:
        a.start()
        b.start()
        _wait_for(lambda: _pids(tmp_path / "calls.txt").count(str(a.pid)) == a_after + 1, procs)
        [(killed_arch, dead_owner)] = ledger.held_by(a.pid)
        _wait_for(lambda: sum(r.metrics is not None for r in ledger.rows()) == BUDGET - 1, procs)  # B did the rest
        time.sleep(0.5)  # B finds the study full, waiting for A's scoring
        assert b.exitcode is None and len(ledger.rows()) == BUDGET
        os.kill(a.pid, signal.SIGKILL)
        a.join(timeout=60)
        assert a.exitcode == -signal.SIGKILL
        b.join(timeout=300)
        assert b.exitcode == 0
        study = json.loads((tmp_path / "b.json").read_text())["study"]
        assert study["scored"] == BUDGET, "B stopped with the study short of its budget"
        a2 = again()
        procs.append(a2)
        a2.start()
        a2.join(timeout=300)
        assert a2.exitcode == 0
        outs = [json.loads((tmp_path / f).read_text()) for f in ("a2.json", "b.json")]
        _check_after_kill(tmp_path, ledger, a.pid, killed_arch, dead_owner, {a.pid, b.pid}, outs)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        ledger.engine.dispose()
