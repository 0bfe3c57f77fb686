"""SIGKILL tests for the long jobs beyond training and search: anchor training, export and latency build.

Each job runs as its own process (the ``evonas`` command, forked from a server that
imported evonas once: tests/procs.py) on a copy of the tiny run, is killed with
SIGKILL at a seeded random point, and is run again with the same command; the end
state must equal that of an uninterrupted run in another copy (run alongside to save
time).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.procs import EvonasProcess

from evonas.cli.main import main
from evonas.run.run import Run
from evonas.run.store import Store

OUTPUT: Path  # where the jobs' printed output goes (set per test)
PARTIAL_NAMES = ("partial-",)
PARTIAL_SUFFIXES = (".tmp", ".partial")


def _cli(*args: str) -> list[str]:
    return list(args)


def _start(args: list[str]) -> EvonasProcess:
    return EvonasProcess(args, OUTPUT)


def _run(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    proc = _start(args)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _finish(proc: EvonasProcess, timeout: float = 180) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def _kill(proc: EvonasProcess) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the job ended before it could be killed"


def _wait_for(cond, proc: EvonasProcess, timeout: float = 120, every: float = 0.02) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, f"the job ended before the kill point: {proc.errors()}"
        assert time.time() < deadline, "the kill point never came"
        time.sleep(every)


@pytest.fixture(autouse=True)
def _output(tmp_path):
    global OUTPUT
    OUTPUT = tmp_path / "output"  # each test's own: pytest-xdist runs one test at a time per process


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(PARTIAL_NAMES) or p.name.endswith(PARTIAL_SUFFIXES)]


def _copy(tiny_run: Path, dest: Path) -> Path:
    shutil.copytree(tiny_run, dest)
    return dest


def _standalone(run: Path) -> dict[str, tuple[int, float, float]]:
    """Stand-alone records of ``run``: arch -> (record id, created, accuracy)."""
    if not (run / "store.sqlite").is_file():
        return {}
    with Store.open(run) as store:
        recs = store.records(scorer="standalone")
    assert len(recs) == len({r.arch for r in recs}), "an anchor stored twice"
    return {r.arch: (r.id, r.created, r.metric("accuracy")) for r in recs}


def _anchor_lines(stdout: str) -> dict[str, str]:
    """arch -> 'cached' or 'trained' from the 'anchor i/k ARCH: ACC% (how)' lines."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("anchor ") and ":" in line:
            arch = line.split()[2].rstrip(":")
            out[arch] = "cached" if "(cached)" in line else "trained"
    return out


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _report(run: Path) -> str:
    rep = json.loads((run / "predictor" / "report.json").read_text())
    return json.dumps(_without_timings(rep), sort_keys=True)  # a string, so NaN compares equal to NaN


def test_fit_predictor_killed_during_anchor_training_resumes_without_retraining(tmp_path, small_run):
    rng = random.Random(11)  # small_run: anchors train on 256 images, each still far longer than the 0.05 s poll
    killed, reference = _copy(small_run, tmp_path / "killed"), _copy(small_run, tmp_path / "reference")
    # two predictors: the kill lands in anchor training; comparing every predictor afterwards only costs time
    cmd = ["fit-predictor", "--anchors", "4", "--anchor-epochs", "1", "--pool", "8", "--predictors", "gap,linear", "--quiet"]
    ref = _start(_cli(*cmd[:1], "--run", str(reference), *cmd[1:]))
    args = _cli(cmd[0], "--run", str(killed), *cmd[1:])
    proc = _start(args)
    kill_after = rng.randint(1, 3)  # stand-alone records stored before the kill
    _wait_for(lambda: len(_standalone(killed)) >= kill_after, proc, timeout=150, every=0.05)
    _kill(proc)
    before = _standalone(killed)
    assert 1 <= len(before) < 4, before
    assert not (killed / "predictor" / "report.json").exists()

    again = _run(args)
    after = _standalone(killed)
    assert len(after) == 4  # every anchor a record exactly once
    for arch, (rid, created, acc) in before.items():  # the same rows, not retrained ones
        assert after[arch] == (rid, created, acc), arch
    lines = _anchor_lines(again.stdout)
    assert set(lines) == set(after)
    assert {a for a, how in lines.items() if how == "cached"} == set(before)
    assert {a for a, how in lines.items() if how == "trained"} == set(after) - set(before)

    ref_out = _finish(ref)
    expected = _standalone(reference)
    assert set(_anchor_lines(ref_out)) == set(expected) == set(after)
    assert {a: v[2] for a, v in after.items()} == {a: v[2] for a, v in expected.items()}
    assert _report(killed) == _report(reference)
    assert json.loads((killed / "predictor" / "report.json").read_text())["n_anchors"] == 4
    assert (killed / "predictor" / "model.pkl").is_file()


def _exported(run: Path) -> dict[str, dict]:
    top = run / "exports" / "top3"
    out = {}
    for folder in sorted(top.glob("rank*")):
        m = json.loads((folder / "metrics.json").read_text())
        out[folder.name] = {"arch": m["arch"], "rank": m["rank"], "supernet_accuracy": m["supernet_accuracy"],
                            "files": sorted(p.name for p in folder.iterdir())}
    return out


def test_export_killed_after_first_rank_folder_is_redone_cleanly(tmp_path, tiny_run):
    rng = random.Random(5)
    killed = _copy(tiny_run, tmp_path / "killed")
    # the scores to export are stored in this process; only the export runs as a process to kill
    main(["search", "--run", str(killed), "--algo", "random", "--budget", "6", "--quiet"])
    reference = tmp_path / "reference"
    shutil.copytree(killed, reference)  # the same stored scores in both
    ref = _start(_cli("export", "--run", str(reference), "--top-k", "3", "--quiet"))
    args = _cli("export", "--run", str(killed), "--top-k", "3", "--quiet")
    proc = _start(args)
    top = killed / "exports" / "top3"
    rank = rng.randint(1, 2)  # kill once this rank's folder exists, a little (seeded) later
    _wait_for(lambda: any(top.glob(f"rank{rank:02d}_*")), proc, timeout=150, every=0.01)
    time.sleep(rng.uniform(0.0, 0.3))
    _kill(proc)
    assert not (top / "report.md").exists()

    _run(args)
    _finish(ref)
    got, want = _exported(killed), _exported(reference)
    assert [v["rank"] for v in want.values()] == [1, 2, 3]
    assert got == want
    assert all({"metrics.json", "model.pt2", "state_dict.pt"} <= set(v["files"]) for v in got.values())
    assert sorted(p.name for p in top.iterdir()) == sorted(p.name for p in (reference / "exports" / "top3").iterdir())
    assert _partials(killed / "exports") == []


def test_latency_build_killed_midway_leaves_no_temporary_file(tmp_path, tiny_run):
    rng = random.Random(3)
    killed, reference = _copy(tiny_run, tmp_path / "killed"), _copy(tiny_run, tmp_path / "reference")
    args = ["latency", "build", "--repeats", "3", "--warmup", "1", "--fit-seconds", "0", "--quiet"]
    t0 = time.perf_counter()
    _run(_cli(*args[:2], "--run", str(reference), *args[2:]))
    whole = time.perf_counter() - t0  # the kill lands anywhere in opening the run, timing or saving
    cmd = _cli(*args[:2], "--run", str(killed), *args[2:])
    proc = _start(cmd)
    time.sleep(rng.uniform(0.2, 0.7) * whole)
    _kill(proc)

    done = _run(cmd)
    assert "latency table:" in done.stdout
    from evonas.latency.table import LatencyTable

    space = Run.open(killed).space
    (path,) = (killed / "latency").iterdir()  # the table alone: no temporary file beside it
    (ref_path,) = (reference / "latency").iterdir()
    assert path.name == ref_path.name and path.suffix == ".json"
    table = LatencyTable.load(path)
    keys = [(e.layer, e.code) for e in table.entries]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(i, code) for i in range(len(space.slots)) for code in space.dims[i].options}
    assert set(keys) == {(e.layer, e.code) for e in LatencyTable.load(ref_path).entries}
    assert _partials(killed / "latency") == []
