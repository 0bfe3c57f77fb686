"""A killed search is 'interrupted' until resumed or replaced, never forever."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from evonas.export.topk import search_state_text
from evonas.run.store import Store


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:deadbeef"


def _kill(store: Store, run_id: int) -> None:
    """What SIGKILL leaves: an unfinished run whose owner process is gone."""
    store._db.execute("UPDATE search_owners SET owner = ?, since = ? WHERE run_id = ?", (_dead_owner(), time.time(), run_id))


def test_running_then_interrupted_then_abandoned_when_rerun_without_resume(tmp_path):
    cfg = {"budget": 10}
    with Store(tmp_path / "store.sqlite") as store:
        run, resumed = store.begin_search(algo="evolution", seed=0, config=cfg)
        assert not resumed and store.search_state(run) == "running"
        _kill(store, run.id)
        assert store.search_state(store.search_run(run.name)) == "interrupted"
        other, _ = store.begin_search(algo="evolution", seed=0, config={"budget": 99})  # other options: not a rerun
        assert store.search_state(store.search_run(run.name)) == "interrupted"
        again, _ = store.begin_search(algo="evolution", seed=0, config=cfg)
        old = store.search_run(run.name)
        assert store.search_state(old) == "abandoned" and old.summary["superseded_by"] == again.name
        assert again.name in search_state_text(old, "abandoned", Path("runs/x"))
        assert store.search_state(store.search_run(other.name)) == "running"  # alive (this process): untouched


def test_a_live_search_is_not_superseded_and_resume_takes_ownership(tmp_path):
    cfg = {"budget": 10}
    with Store(tmp_path / "store.sqlite") as store:
        run, _ = store.begin_search(algo="random", seed=1, config=cfg)
        store.begin_search(algo="random", seed=1, config=cfg)  # a second worker at the same time
        assert store.search_state(store.search_run(run.name)) == "running"
        _kill(store, run.id)
        assert "--resume --name random-s1" in search_state_text(store.search_run(run.name), "interrupted", Path("runs/x"))
        resumed, was_resumed = store.begin_search(algo="random", seed=1, config=cfg, resume=True, name=run.name)
        assert was_resumed and store.search_state(resumed) == "running"
        store.finish_search(resumed.id, {"best": 1.0})
        assert store.search_state(store.search_run(run.name)) == "finished"


def test_a_store_from_before_owners_were_recorded_reads_as_interrupted(tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        run, _ = store.begin_search(algo="evolution", seed=0, config={})
        store._db.execute("DELETE FROM search_owners")
        assert store.search_state(store.search_run(run.name)) == "interrupted"
