"""The README's "Your own model and data" example, run exactly as written, from a folder outside the project.

The model file shown in the README must be examples/my_model.py, its shell commands run
one by one with the ``evonas`` command, and its Python block runs as a script; the
image folder is made from Fashion-MNIST PNGs. The exported modules load in plain
PyTorch and count the FLOPs evonas reported.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import cli
from tests.imagefolder import make_image_folder

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Your own model and data"


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README's section on your own model."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end > 0 else None]
    return re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)


def run_evonas(line: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    assert argv[0] == "evonas", line
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "evonas", *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """A folder outside the project with the README's model file and an image folder of PNGs."""
    where = tmp_path_factory.mktemp("user")
    (where / "my_model.py").write_text((ROOT / "examples" / "my_model.py").read_text())
    make_image_folder(where / "images", classes=3, per_class=24, size=28)
    return where


def test_the_readme_shows_the_example_file_as_it_is():
    blocks = readme_blocks()
    assert blocks[0][0] == "python"
    assert blocks[0][1] == (ROOT / "examples" / "my_model.py").read_text()


@pytest.mark.slow
def test_the_readme_commands_run_train_search_correct_and_export(example, capsys, monkeypatch):
    commands = [b for lang, b in readme_blocks() if lang == "bash"][0]
    lines = [line for line in commands.splitlines() if line.strip()]
    assert [shlex.split(line)[1] for line in lines] == ["train-supernet", "search", "fit-predictor", "export"]
    for line in lines:
        done = run_evonas(line, example)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    run = example / "runs" / "mine"
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["space"] == f"{example / 'my_model.py'}:build"  # stored absolute: reopens from anywhere
    assert config["space_kwargs"] == {"in_channels": 1, "num_classes": 3, "image_size": 28}
    result = json.loads((run / "searches" / "evolution-s0" / "result.json").read_text())
    assert result["best"]["flops"] <= 1e6
    exports = sorted((run / "exports" / "top3").glob("rank*"))
    assert len(exports) == 3
    from torch.utils.flop_counter import FlopCounterMode

    for folder in exports:
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["flops"] <= 1e6
        module = torch.export.load(folder / "model.pt2").module()  # plain PyTorch: no evonas in the program
        assert module(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(1, 1, 28, 28))
        assert counter.get_total_flops() // 2 == metrics["flops"]  # multiply-accumulates, as evonas counts

    # a process that never imported my_model.py (this one: the commands above ran in their own), in another
    # folder, reopens the run with no flag but --run
    assert not [m for m in sys.modules.values() if str(getattr(m, "__file__", "")).startswith(str(example))]
    monkeypatch.chdir("/")
    code, out, err = cli(capsys, "eval", "--run", run, "--sample", "2")
    assert code == 0, err
    code, out, err = cli(capsys, "profile", "--run", run, "--archs", run / "exports" / "top3" / "report.md")
    assert code == 2 and len(err.strip().splitlines()) == 1  # a report is no architecture file
    arch = json.loads((exports[0] / "metrics.json").read_text())["arch"]
    code, out, err = cli(capsys, "profile", "--run", run, "--arch", arch, "--check", "--json")
    assert code == 0, err
    row = json.loads(out.strip().splitlines()[-1])
    assert row["measured_flops"] == row["flops"] and row["measured_params"] == row["params"]


@pytest.mark.slow
def test_the_readme_python_block_runs_the_same_workflow(example):
    code = [b for lang, b in readme_blocks() if lang == "python"][1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=example, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "predicted" in done.stdout
    assert len(list((example / "runs" / "py" / "exports" / "top3").glob("rank*"))) == 3
