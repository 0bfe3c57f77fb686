"""Searches shared by several workers: ``evonas search --study-name NAME [--storage URL]``.

Two ``evonas search`` processes join one Optuna study, on the run's SQLite database,
on an SQLite file named by ``--storage``, and on a real PostgreSQL server started on
loopback (tests/pg.py). Together they score exactly ``--budget`` distinct
architectures, none twice (each scoring is logged by the patched table scorer), and
each worker's store ends with the union. The table scorer sleeps a little per score
so that the two workers overlap.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import socket
import time
from pathlib import Path

import pytest
from synthetic_tables import write_table

from evonas.cli.main import main

BUDGET = 16
SCORE_S = 0.03  # each table lookup sleeps this long, so the workers overlap


def _worker(argv: list[str], calls_file: str, out_file: str, barrier) -> None:
    import os

    from evonas.scorers.table import TableScorer
    from evonas.search import optuna_search

    score, sampler = TableScorer.score, optuna_search.TPESearch.sampler

    def logged_score(self, arch):
        with open(calls_file, "a") as fh:  # one short append per call: safe across processes
            fh.write(f"{arch} {os.getpid()}\n")
        time.sleep(SCORE_S)
        return score(self, arch)

    def sampler_after_barrier(self):
        barrier.wait(timeout=120)  # both workers join the study at the same moment
        return sampler(self)

    TableScorer.score = logged_score
    optuna_search.TPESearch.sampler = sampler_after_barrier
    with open(out_file, "w") as fh, contextlib.redirect_stdout(fh):
        main(argv + ["--json", "--quiet"])  # an error exits 2


def run_workers(tmp_path: Path, argvs: list[list[str]]) -> tuple[list[str], list[dict]]:
    """Run one worker process per argv at once; (architectures scored, in any order; each worker's JSON)."""
    calls_file = tmp_path / "calls.txt"
    ctx = multiprocessing.get_context("spawn")
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
