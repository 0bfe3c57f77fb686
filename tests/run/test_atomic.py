"""Atomic writes: a killed writer's temporary file is removed by the next write, a live one's is kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evonas.run.atomic import atomic_target, stale_temporaries, write_text_atomic
from evonas.run.checkpoint import load_checkpoint, save_checkpoint
from evonas.run.config import write_json_atomic

from tests.conftest import tiny_config


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover(target: Path, pid: int) -> Path:
    tmp = target.with_name(f".{target.name}.{pid}.0badc0de.tmp")
    tmp.write_bytes(b"half a file")
    return tmp


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "config.json"
    write_text_atomic(target, "one")
    write_json_atomic(target, {"two": 2})
    assert target.read_text().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "table.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_target(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"]


def test_a_dead_writers_temporary_is_swept_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "supernet.pt"
    dead = _leftover(target, _dead_pid())
    live = _leftover(target, 1)  # pid 1 always runs
    other = _leftover(tmp_path / "other.pt", _dead_pid())  # another target's: not this write's business
    assert stale_temporaries(target) == [dead]
    save_checkpoint(target, {"kind": "weights", "config": tiny_config().to_dict(), "model": {}})
    assert not dead.exists() and live.exists() and other.exists()
    assert load_checkpoint(target, kind="weights")["kind"] == "weights"


def test_resumed_training_removes_what_a_killed_checkpoint_write_left(tmp_path):
    """SIGKILL during torch.save leaves the hidden temporary behind; the resumed run's next save deletes it."""
    from evonas.run.run import RunLayout
    from evonas.training.train import train_supernet

    cfg = tiny_config(epochs=2)
    layout = RunLayout(tmp_path / "run")
    train_supernet(layout, cfg, progress=False, stop_after=1)
    leftover = _leftover(layout.checkpoint, _dead_pid())
    train_supernet(layout, cfg, resume=True, progress=False)
    assert not leftover.exists()
    assert not [p for p in layout.path.rglob("*") if p.name.endswith(".tmp")]
