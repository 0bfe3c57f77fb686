"""The train/eval/profile/export commands, driven as a user would."""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli as run_cli


def test_eval_json_lines(capsys, tiny_run, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("# two architectures\n12012200\n\n21002120\n")
    code, out, _ = run_cli(capsys, "eval", "--run", str(tiny_run), "--archs", str(archs), "--json", "--recalib-images", "200")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["arch"] for r in rows] == ["12012200", "21002120"]
    assert rows[1]["canonical"] == "21020120"
    for r in rows:
        assert {"arch", "canonical", "flops", "params", "accuracy"} <= set(r) and 0 <= r["accuracy"] <= 100


def test_profile_matches_reference_and_torch(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "profile", "--space", "macro-cifar10", "--arch", "02012100", "--json", "--check")
    row = json.loads(out)
    assert code == 0 and row["params"] == row["measured_params"] == 890_666
    assert row["flops"] == row["measured_flops"] == 47_327_744


@pytest.mark.parametrize(
    "args, message",
    [
        (["profile", "--arch", "0201210x"], "position 7"),
        (["profile"], "nothing to profile"),
        (["eval", "--run", "."], "not an evonas run directory"),
        (["train-supernet", "--run", "X", "--epochs", "0", "--dataset", "synthetic"], "--epochs must be an integer >= 1; got 0"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, args, message):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_export_command_writes_a_loadable_module(capsys, tiny_run, tmp_path):
    code, out, _ = run_cli(capsys, "export", "--run", str(tiny_run), "--arch", "12012200", "--out", str(tmp_path / "e"))
    assert code == 0, out
    from evonas.export.module import load_exported

    module, metrics = load_exported(tmp_path / "e")
    assert metrics["arch"] == "12012200" and "supernet_accuracy" in metrics


def test_resume_refuses_changed_options(capsys, tmp_path):
    run = tmp_path / "r"
    base = ["train-supernet", "--run", str(run), "--dataset", "synthetic", "--val-size", "200", "--epochs", "1", "--quiet"]
    assert run_cli(capsys, *base)[0] == 0
    code, _, err = run_cli(capsys, *base, "--resume", "--lr", "0.5")
    assert code == 2 and "'lr': (0.1, 0.5)" in err


def test_eval_with_finetune_steps(capsys, tiny_run):
    args = ["eval", "--run", str(tiny_run), "--arch", "12012200", "--json", "--recalib-images", "64"]
    code, out, _ = run_cli(capsys, *args, "--finetune-steps", "2")
    assert code == 0
    tuned = json.loads(out)
    assert tuned["finetune_steps"] == 2
    _, out, _ = run_cli(capsys, *args)
    assert "finetune_steps" not in json.loads(out) and json.loads(out)["accuracy"] != tuned["accuracy"]
    code, _, err = run_cli(capsys, *args, "--finetune-steps", "-1")
    assert code == 2 and "finetune-steps" in err and "got -1" in err and "Traceback" not in err
