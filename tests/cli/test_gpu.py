"""Every command that runs a network, on a GPU (``pytest -m gpu``; skipped where torch sees no CUDA device).

Run them on a GPU machine with ``.venv/bin/python -m pytest -m gpu tests/cli/test_gpu.py``.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import tiny_config
from evonas.cli.main import main

pytestmark = pytest.mark.gpu


def cli(*argv: str) -> None:
    try:
        main(list(argv))
    except SystemExit as exc:  # click's standalone mode ends with SystemExit(0) on success
        assert exc.code in (0, None), f"evonas {' '.join(argv)} exited {exc.code}"


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    from evonas.training.supernet import train_supernet

    run = tmp_path_factory.mktemp("gpu_run")
    train_supernet(run, tiny_config(epochs=2), progress=False, device="cuda")
    return run


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_train_supernet_on_the_gpu_in_every_precision(tmp_path, precision):
    run = tmp_path / precision
    cli("train-supernet", "--run", str(run), "--dataset", "synthetic", "--val-size", "200", "--epochs", "2",
        "--batch-size", "64", "--device", "cuda", "--precision", precision, "--quiet")
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["precision"] == precision and config["device"] == "cuda"
    state = torch.load(run / "supernet.pt", weights_only=False)["model"]
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_the_same_seed_trains_the_same_weights_on_the_gpu_twice(tmp_path):
    from evonas.training.supernet import train_supernet

    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        train_supernet(run, tiny_config(epochs=1), progress=False, device="cuda")
    wa = torch.load(a / "supernet.pt", weights_only=False)["model"]
    wb = torch.load(b / "supernet.pt", weights_only=False)["model"]
    close = [torch.allclose(wa[k].float(), wb[k].float(), atol=1e-4) for k in wa if wa[k].is_floating_point()]
    assert all(close)


def test_scoring_on_the_gpu_agrees_with_the_cpu(gpu_run):
    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.run.run import Run

    run = Run.open(gpu_run)
    arch = run.space.parse("01201201")
    cpu = SupernetEvaluator(run, val_images=200).evaluate(arch)
    gpu = SupernetEvaluator(run, val_images=200, device="cuda").evaluate(arch)
    assert abs(cpu["accuracy"] - gpu["accuracy"]) <= 1.0


def test_eval_search_fit_predictor_predict_export_on_the_gpu(gpu_run, tmp_path):
    run = str(gpu_run)
    cli("eval", "--run", run, "--sample", "3", "--device", "cuda", "--precision", "bf16", "--quiet")
    cli("search", "--run", run, "--budget", "6", "--device", "cuda", "--precision", "bf16", "--quiet", "--name", "gpu")
    cli("search", "--run", run, "--budget", "8", "--device", "cuda", "--workers", "2", "--quiet", "--name", "gpu-workers")
    cli("fit-predictor", "--run", run, "--anchors", "5", "--anchor-epochs", "1", "--pool", "12", "--device", "cuda",
        "--quiet")
    cli("predict", "--run", run, "--arch", "01201201", "--device", "cuda")
    cli("export", "--run", run, "--arch", "01201201", "--device", "cuda", "--out", str(tmp_path / "export"))
    module = torch.export.load(tmp_path / "export" / "model.pt2").module()
    assert module(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # saved for the CPU


def test_latency_table_on_the_gpu_names_it(gpu_run):
    cli("latency", "build", "--run", str(gpu_run), "--device", "cuda", "--method", "isolated", "--repeats", "5",
        "--warmup", "2", "--quiet")
    table = json.loads(next((gpu_run / "latency").glob("*-eager-cuda-b1-t1.json")).read_text())
    assert table["device"]["gpu_model"] == torch.cuda.get_device_name(0)
    cli("latency", "validate", "--run", str(gpu_run), "--device", "cuda", "--samples", "5", "--calibrate", "0",
        "--repeats", "5", "--warmup", "2", "--quiet")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_processes_train_like_one(tmp_path):
    cli("train-supernet", "--run", str(tmp_path / "ddp"), "--dataset", "synthetic", "--val-size", "200", "--epochs", "1",
        "--batch-size", "64", "--device", "cuda", "--nproc-per-node", "2", "--quiet")
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2
