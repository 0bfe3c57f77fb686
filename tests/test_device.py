"""--device and --precision: refusals on a machine without a GPU, mixed precision on the CPU, scores keyed by it."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import tiny_config
from evonas.cli.main import main
from evonas.device import autocast, check_precision, resolve_device
from evonas.errors import ConfigError
from evonas.evaluation.scoring import SupernetEvaluator
from evonas.run.run import Run

NO_GPU = not torch.cuda.is_available()


@pytest.mark.skipif(not NO_GPU, reason="checks the refusals of a machine without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_a_gpu_that_is_not_there_is_one_line(name):
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "", None, 3])
def test_a_malformed_device_names_the_forms(name):
    with pytest.raises(ConfigError, match=r"cpu, cuda, cuda:N .* or auto"):
        resolve_device(name)


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_precisions():
    assert check_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="'fp16' needs a GPU"):
        check_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="must be one of fp32, bf16, fp16"):
        check_precision("fp64", "cpu")
    with autocast("cpu", "bf16"):
        assert torch.nn.Linear(4, 4)(torch.zeros(2, 4)).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert torch.nn.Linear(4, 4)(torch.zeros(2, 4)).dtype == torch.float32


@pytest.mark.parametrize("argv, fragment", [
    (["eval", "--sample", "1", "--device", "cuda:9"], "--device"),
    (["eval", "--sample", "1", "--precision", "fp16"], "--precision 'fp16' needs a GPU"),
    (["fit-predictor", "--device", "tpu"], "--device must be cpu, cuda"),
    (["predict", "--arch", "01201201", "--device", "cuda:x"], "--device must be cpu, cuda"),
    (["export", "--arch", "01201201", "--device", "nope"], "--device must be cpu, cuda"),
    (["latency", "build", "--device", "cuda", "--backend", "onnxruntime"], "--device"),
])
def test_commands_refuse_a_bad_device_in_one_line(tiny_run, capsys, argv, fragment):
    before = sorted(p.name for p in tiny_run.rglob("*"))
    with pytest.raises(SystemExit) as exc:
        main([*argv[:1], *(argv[1:2] if argv[0] == "latency" else []), "--run", str(tiny_run),
              *(argv[2:] if argv[0] == "latency" else argv[1:])])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert sorted(p.name for p in tiny_run.rglob("*")) == before


def test_scores_in_bf16_are_close_to_fp32_and_keyed_apart(tiny_run):
    run = Run.open(tiny_run)
    arch = run.space.parse("01201201")
    fp32 = SupernetEvaluator(run, val_images=200)
    bf16 = SupernetEvaluator(run, val_images=200, precision="bf16")
    a, b = fp32.evaluate(arch), bf16.evaluate(arch)
    assert abs(a["accuracy"] - b["accuracy"]) <= 5.0  # the same network, rounded differently
    assert "precision" not in fp32.provenance()  # fp32 scores keep the keys they always had
    assert bf16.provenance()["precision"] == "bf16"


def test_a_run_trained_in_bf16_records_it_and_scores(tmp_path):
    from evonas.training.supernet import train_supernet

    run = tmp_path / "bf16"
    train_supernet(run, tiny_config(epochs=1, precision="bf16"), progress=False)
    assert json.loads((run / "config.json").read_text())["config"]["precision"] == "bf16"
    opened = Run.open(run)
    weights = opened.load_supernet().state_dict()
    assert all(t.dtype in (torch.float32, torch.int64) for t in weights.values())  # master weights stay fp32
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    assert SupernetEvaluator(opened, val_images=100).evaluate(opened.space.parse("01201201"))["accuracy"] > 0


def test_a_latency_table_timed_in_bf16_is_a_setting_of_its_own(tiny_run, tmp_path):
    import shutil

    from evonas.jobs.latency import LatencyBuildOptions, LatencySetting, build, device_table
    from evonas.errors import RunDirError

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    built = build(run, LatencyBuildOptions(setting=LatencySetting(precision="bf16"), method="isolated", warmup=1,
                                           repeats=3, quiet=True))
    assert "-bf16-" in built.table_file.name and built.device["precision"] == "bf16"
    table = device_table(Run.open(run), LatencySetting(precision="bf16"))
    assert table.settings["precision"] == "bf16" and table.min_latency() > 0
    with pytest.raises(RunDirError, match="no latency table"):  # the fp32 setting is another table
        device_table(Run.open(run), LatencySetting())


def test_search_in_bf16_keeps_its_scores_apart_from_fp32(tiny_run, tmp_path):
    import shutil

    from evonas.jobs.search import SearchOptions, search
    from evonas.run.store import Store

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    search(run, SearchOptions(algo="random", budget=3, quiet=True, name="fp32"))
    search(run, SearchOptions(algo="random", budget=3, quiet=True, name="bf16", precision="bf16"))
    with Store(run / "store.sqlite") as store:
        keys = {r.source_key for r in store.records(scorer="supernet")}
    assert len(keys) == 2  # the same architectures, scored twice: once per precision
