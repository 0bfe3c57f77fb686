"""Supernet training on two CPU processes (gloo): it completes, resumes on another number of ranks, matches one process.

Each launch starts two fresh interpreters, so the file keeps to three: the job with
``nproc_per_node=2``, ``torchrun`` running the command the README prints, and one
launch that trains every strategy.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evonas.jobs.train import TrainOptions, train
from evonas.run.checkpoint import load_checkpoint
from evonas.run.config import TrainConfig
from evonas.training import distributed
from evonas.training.strategies import list_strategies
from evonas.training.supernet import train_supernet
from tests.conftest import cli as run_cli, tiny_config

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"dataset": "synthetic", "val_size": 200, "epochs": 2, "batch_size": 64, "lr": 0.05, "seed": 0}  # tiny_config()
PATHS_PER_STEP = {"uniform": 1, "few-shot": 1, "fair": 3, "sandwich": 4, "landmark": 3}  # macro-fmnist: 3 options a layer
LANDMARKS = [["12012200", 80.0], ["00000000", 70.0], ["22222222", 75.0]]  # landmark: one pair a step


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def _assert_matches_one_process(run: Path, reference: Path) -> None:
    """Same images and schedule as one process; losses and weights within the noise of per-rank BN batches."""
    got, want = _log(run), _log(reference)
    assert [r["images_seen_total"] for r in got] == [r["images_seen_total"] for r in want]
    assert [r["lr"] for r in got] == pytest.approx([r["lr"] for r in want])
    for g, w in zip(got, want):
        assert abs(g["train_loss"] - w["train_loss"]) < 0.05, (g, w)
    wa = torch.load(run / "supernet.pt", weights_only=False)["model"]
    wb = torch.load(reference / "supernet.pt", weights_only=False)["model"]
    assert wa.keys() == wb.keys()
    a = torch.cat([v.flatten().float() for k, v in wa.items() if "running" not in k and v.is_floating_point()])
    b = torch.cat([v.flatten().float() for k, v in wb.items() if "running" not in k and v.is_floating_point()])
    assert (a - b).norm() < 0.05 * b.norm()  # one process moved the weights by far more than this


def test_two_ranks_stop_after_an_epoch_and_one_rank_resumes(tmp_path, tiny_run):
    run = tmp_path / "two-then-one"
    stopped = train(run, TrainOptions(settings=SETTINGS, nproc_per_node=2, stop_after=1, threads=1, quiet=True))
    assert stopped.world_size == 2 and not stopped.finished and not (run / "supernet.pt").exists()
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", kind="supernet")
    assert ckpt["epoch"] == 1 and ckpt["world_size"] == 2
    done = train(run, TrainOptions(resume=True, threads=1, quiet=True))
    assert done.finished and done.resumed
    assert [r["world_size"] for r in _log(run)] == [2, 1]
    info = json.loads((run / "config.json").read_text())
    assert info["images_seen"] == json.loads((tiny_run / "config.json").read_text())["images_seen"]
    _assert_matches_one_process(run, tiny_run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_torchrun_runs_the_readme_command_and_resumes_on_two_ranks(tmp_path, tiny_run):
    run = tmp_path / "one-then-two"
    train_supernet(run, tiny_config(), progress=False, stop_after=1)
    # the README's command, on one machine: torchrun takes --run for its --run-path, so it is --run-dir
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{_free_port()}",
               "-m", "evonas", "train-supernet", "--run-dir", str(run), "--resume", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOGLEVEL": "WARNING"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("supernet weights:") == 1  # rank 0 alone prints
    assert [r["world_size"] for r in _log(run)] == [1, 2]
    _assert_matches_one_process(run, tiny_run)


def _strategy_config(name: str) -> TrainConfig:
    # few-shot: 2 epochs, split after the first, so the split model trains on two ranks too
    extra = {"landmark_archs": LANDMARKS} if name == "landmark" else {}
    return tiny_config(train_limit=32, batch_size=16, strategy=name, epochs=2 if name == "few-shot" else 1, **extra)


def _train_every_strategy(root: str) -> None:
    """One rank of the strategies launch: each strategy's run in ROOT/NAME."""
    torch.set_num_threads(1)
    world, device = distributed.init(torch.device("cpu"))
    try:
        for name in list_strategies():
            train_supernet(Path(root) / name, _strategy_config(name), progress=False, device=device, world=world)
    finally:
        distributed.shutdown()


def test_every_strategy_trains_on_two_ranks_like_one(tmp_path):
    distributed.launch(2, _train_every_strategy, str(tmp_path / "two"))
    for name in list_strategies():
        cfg = _strategy_config(name)
        one = tmp_path / "one" / name
        train_supernet(one, cfg, progress=False)
        two = tmp_path / "two" / name
        log = _log(two)
        assert [r["images_seen"] for r in log] == [2 * cfg.batch_size * PATHS_PER_STEP[name]] * cfg.epochs
        assert all(r["world_size"] == 2 and math.isfinite(r["train_loss"]) for r in log)
        _assert_matches_one_process(two, one)
    assert [r["phase"] for r in _log(tmp_path / "two" / "few-shot")] == ["few-shot", "few-shot"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "cuda"], "--device is 'cuda' but torch sees no CUDA GPU here"),
        (["--nproc-per-node", "0"], "--nproc-per-node must be an integer >= 1; got 0"),
        (["--nproc-per-node", "2", "--batch-size", "1"], "--batch-size must be at least the number of training processes (2)"),
    ],
)
def test_bad_distributed_options_are_one_line_and_exit_2(capsys, tmp_path, flags, message):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    code, _, err = run_cli(capsys, "train-supernet", "--run", str(tmp_path / "r"), "--dataset", "synthetic",
                             "--val-size", "200", *flags)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_every_train_supernet_option_reaches_evonas_through_torchrun():
    """torchrun's parser takes abbreviations of its own options: none of ours may be one (hence --run-dir)."""
    from torch.distributed.run import get_args_parser

    from evonas.cli.train import train_supernet as command

    ours = ["train-supernet"]
    for param in command.params:
        flag = next(o for o in param.opts if o != "--run") if "--run" in param.opts else param.opts[0]
        ours += [flag] if param.is_flag else [flag, "1"]
    args = get_args_parser().parse_args(["--nnodes", "2", "--nproc-per-node", "4", "--rdzv-backend", "c10d",
                                         "--rdzv-endpoint", "HOST:29500", "-m", "evonas", *ours])
    assert args.module and args.training_script == "evonas" and args.training_script_args == ours
