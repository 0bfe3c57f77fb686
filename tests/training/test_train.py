"""Supernet training: checkpoints, resume (also after SIGKILL), and bad checkpoints."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from evonas.run.checkpoint import load_checkpoint
from evonas.errors import CheckpointError, RunDirError
from evonas.run.run import Run
from evonas.training.train import train_supernet
from tests.conftest import assert_same_weights, tiny_config
from tests.procs import EvonasProcess


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_run):
    cfg = tiny_config()
    stopped = tmp_path / "stopped"
    train_supernet(stopped, cfg, progress=False, stop_after=1)
    assert not (stopped / "supernet.pt").exists()
    assert load_checkpoint(stopped / "checkpoints" / "last.pt", kind="supernet")["epoch"] == 1
    train_supernet(stopped, cfg, progress=False, resume=True)
    assert_same_weights(stopped, tiny_run)
    log = [json.loads(line) for line in (stopped / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_sigkill_during_training_then_resume(tmp_path, tiny_run):
    run = tmp_path / "killed"
    args = ["train-supernet", "--run", str(run), "--dataset", "synthetic", "--val-size", "200", "--train-limit", "256",
            "--epochs", "6", "--batch-size", "64", "--lr", "0.05", "--quiet", "--threads", str(torch.get_num_threads())]
    proc = EvonasProcess(args, tmp_path / "output")  # its own process, forked from one that imported evonas
    ckpt = run / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert ckpt.exists() and not (run / "supernet.pt").exists()
    killed_at = load_checkpoint(ckpt, kind="supernet")["epoch"]
    assert killed_at in range(1, 6)  # killed after a checkpoint, before the end
    done = EvonasProcess(args + ["--resume"], tmp_path / "output")
    _, err = done.communicate()
    assert done.returncode == 0, err
    reference = tmp_path / "reference"
    train_supernet(reference, tiny_config(epochs=6, train_limit=256), progress=False)
    assert_same_weights(run, reference)


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path, tiny_run):
    cfg = tiny_config()
    run = tmp_path / "corrupt"
    train_supernet(run, cfg, progress=False, stop_after=1)
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train_supernet(run, cfg, progress=False, resume=True)
    foreign = tmp_path / "foreign"
    train_supernet(foreign, cfg, progress=False, stop_after=1)
    with pytest.raises(CheckpointError, match="another config"):
        train_supernet(foreign, cfg.replace(lr=0.2), progress=False, resume=True)
    (tmp_path / "not_ckpt.pt").write_bytes(b"hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "not_ckpt.pt", kind="supernet")
    with pytest.raises(RunDirError, match="set the 'resume' parameter"):
        train_supernet(foreign, cfg, progress=False)


def test_run_directory_errors(tmp_path):
    with pytest.raises(RunDirError, match="train-supernet"):
        Run.open(tmp_path)
    train_supernet(tmp_path / "half", tiny_config(), progress=False, stop_after=1)
    with pytest.raises(RunDirError, match="--resume"):
        Run.open(tmp_path / "half").weights_path


def test_config_records_versions(tiny_run):
    data = json.loads((tiny_run / "config.json").read_text())
    assert data["config"]["seed"] == 0 and data["config"]["dataset"] == "synthetic"
    assert data["environment"]["torch"] == torch.__version__
