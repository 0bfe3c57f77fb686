"""Claims in the store: two processes scoring the same architectures score each one once."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from search_spaces import get_space
from tests.procs import worker_context

from evonas.run.owners import owner_alive
from evonas.run.store import Store
from evonas.scorers.base import Scorer
from evonas.scorers.cached import score_cached

SPACE = "macro-fmnist"
N_ARCHS = 6


class SlowCountingScorer(Scorer):
    """Sleeps per score and appends each scored architecture to ``calls_file``."""

    name = "slow-fake"
    target = "accuracy"

    def __init__(self, calls_file: str | Path, *, delay_s: float = 0.2) -> None:
        self.space = get_space(SPACE)
        self.calls_file = str(calls_file)
        self.delay_s = delay_s

    def score(self, arch):
        with open(self.calls_file, "a") as fh:  # one short append per call: safe across processes
            fh.write(f"{arch} {os.getpid()}\n")
        time.sleep(self.delay_s)
        return {"accuracy": float(sum(arch.choices)) + (os.getpid() % 1000) / 1e4, "flops": 1.0, "params": 1.0}

    def provenance(self):
        return {"fake": "slow"}


def archs():
    return list(itertools.islice(get_space(SPACE).enumerate(canonical_only=True), N_ARCHS))


def calls(calls_file: Path) -> list[str]:
    return [line.split()[0] for line in calls_file.read_text().splitlines()] if calls_file.exists() else []


def _worker(run_dir: str, calls_file: str, out_file: str, barrier) -> None:
    scorer = SlowCountingScorer(calls_file)
    with Store.open(run_dir) as store:
        barrier.wait(timeout=120)  # both processes start scoring at the same moment
        out = []
        for arch in archs():
            ev = score_cached(scorer, store, arch)
            out.append({"arch": ev.record.arch, "id": ev.record.id, "metrics": dict(ev.record.metrics), "cached": ev.cached})
    Path(out_file).write_text(json.dumps(out))


def test_two_processes_score_each_architecture_once(tmp_path):
    run = tmp_path / "run"
    Store.open(run).close()  # the store exists before the two processes race for its records
    calls_file = tmp_path / "calls.txt"
    ctx = worker_context()
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(str(run), str(calls_file), str(tmp_path / f"out{i}.json"), barrier))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    scored = calls(calls_file)
    assert sorted(scored) == sorted(str(a) for a in archs())  # every architecture scored exactly once in total
    first, second = (json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2))
    strip = [{k: r[k] for k in ("arch", "id", "metrics")} for r in first]
    assert strip == [{k: r[k] for k in ("arch", "id", "metrics")} for r in second]  # identical records
    assert sum(not r["cached"] for r in first + second) == N_ARCHS  # the rest came from the store
    with Store.open(run) as store:
        assert store.count() == N_ARCHS and store.claims() == []  # every claim released


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # exited and reaped: its pid is not alive
    return proc.pid


def test_claim_of_a_dead_process_is_taken_over(tmp_path):
    calls_file = tmp_path / "calls.txt"
    scorer = SlowCountingScorer(calls_file, delay_s=0.0)
    arch = archs()[0]
    key = (SPACE, str(arch), scorer.name, scorer.source_key)
    with Store.open(tmp_path) as store, Store.open(tmp_path) as dead:
        dead.owner = f"{socket.gethostname()}:{_dead_pid()}:deadbeef"
        assert dead.claim(*key)
        assert store.claim_holder(*key)[0] == dead.owner
        t0 = time.monotonic()
        ev = score_cached(scorer, store, arch)  # default claim timeout is an hour: only the dead pid frees it
        assert time.monotonic() - t0 < 10
        assert not ev.cached and calls(calls_file) == [str(arch)]
        assert store.claim_holder(*key) is None  # released after the record was stored


def test_live_claim_waits_and_an_old_one_is_taken_over(tmp_path):
    calls_file = tmp_path / "calls.txt"
    scorer = SlowCountingScorer(calls_file, delay_s=0.0)
    arch = archs()[1]
    key = (SPACE, str(arch), scorer.name, scorer.source_key)
    with Store.open(tmp_path) as store, Store.open(tmp_path) as other:  # other: a live owner (this process)
        assert other.claim(*key)
        assert not store.claim(*key)  # held by a live owner
        t0 = time.monotonic()
        ev = score_cached(scorer, store, arch, claim_timeout_s=0.5)
        assert time.monotonic() - t0 >= 0.5  # waited for the claim to grow old
        assert not ev.cached and calls(calls_file) == [str(arch)]
        other.release(*key)  # no longer its claim: releasing it leaves the store as it is
        assert store.get(*key) is not None and store.claims() == []


def test_claim_is_released_when_scoring_fails(tmp_path):
    class Failing(SlowCountingScorer):
        def score(self, arch):
            raise RuntimeError("boom")

    scorer = Failing(tmp_path / "calls.txt")
    with Store.open(tmp_path) as store:
        try:
            score_cached(scorer, store, archs()[0])
        except RuntimeError:
            pass
        else:
            raise AssertionError("the scorer's error was swallowed")
        assert store.claims() == [] and store.count() == 0


def test_owner_alive_checks_pid_and_reuse():
    host = socket.gethostname()
    assert not owner_alive(f"{host}:{_dead_pid()}:x", time.time())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert owner_alive(f"{host}:{child.pid}:x", time.time() + 5)
        assert not owner_alive(f"{host}:{child.pid}:x", time.time() - 3600)  # started after the claim: pid reused
    finally:
        child.kill()
        child.wait()
    assert owner_alive(f"{host}-elsewhere:1:x", time.time())  # another host: only the timeout frees it
