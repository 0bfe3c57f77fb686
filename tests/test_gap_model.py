"""fit-predictor and predict on a tiny run: anchors as store records, the report, the saved model."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from evonas.gap.anchors import StandaloneScorer, stored_anchors
from evonas.cli.main import main
from evonas.gap.corrector import load_gap_model
from evonas.run.run import Run
from evonas.run.store import Store
from tests.test_cli_train import run_cli


FIT_ARGS = ["--anchors", "5", "--anchor-epochs", "1", "--pool", "8", "--predictors", "gap,linear", "--json", "--coverage", "0.8"]


@pytest.fixture(scope="module")
def fitted_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with a fitted predictor; ``fitted_run.report`` is fit-predictor's JSON."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    shutil.copytree(tiny_run, run)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["fit-predictor", "--run", str(run), *FIT_ARGS])
    (run / "fit_output.json").write_text(out.getvalue())
    return run


def test_fit_predictor_writes_report_model_and_anchor_records(capsys, fitted_run):
    args = ["fit-predictor", "--run", str(fitted_run), *FIT_ARGS]
    report = json.loads((fitted_run / "fit_output.json").read_text())
    names = {e["name"] for e in report["estimators"]}
    assert names == {"gap", "linear"} and report["best"] in names
    assert {b["name"] for b in report["baselines"]} == {"proxy", "flops"}
    assert report["n_anchors"] == 5 and report["scheme"] == "leave-one-out"
    for f in ("model.pkl", "report.md", "report.json", "anchors.png"):
        assert (fitted_run / "predictor" / f).is_file(), f
    # every anchor is a store record of the standalone scorer, with epochs and seed in its source
    scorer = StandaloneScorer(Run.open(fitted_run), epochs=1, seed=0, progress=False)
    anchors = stored_anchors(Store.open(fitted_run), scorer)
    assert len(anchors) == 5
    assert load_gap_model(fitted_run).anchors == anchors
    # a second fit reuses the trained anchors
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "trained in" not in err and err.count("(cached)") == 5


def test_predict_json_lines(capsys, fitted_run, tmp_path):
    archs = tmp_path / "a.txt"
    archs.write_text("12012200\n00000000\n")
    code, out, _ = run_cli(capsys, "predict", "--run", str(fitted_run), "--archs", str(archs), "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["arch"] for r in rows] == ["12012200", "00000000"]
    for r in rows:
        assert {"arch", "predicted", "lower", "upper", "supernet", "flops"} <= set(r)
        assert 0 <= r["lower"] <= r["predicted"] <= r["upper"] <= 100


def test_corrupt_predictor_is_a_clear_error(capsys, fitted_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(fitted_run, broken)
    (broken / "predictor" / "model.pkl").write_bytes(b"not a pickle")
    code, _, err = run_cli(capsys, "predict", "--run", str(broken), "--arch", "12012200")
    assert code == 2 and "refit" in err
    code, _, err = run_cli(capsys, "predict", "--run", str(tmp_path), "--arch", "12012200")
    assert code == 2


def test_fit_predictor_rejects_too_few_anchors(capsys, fitted_run):
    code, _, err = run_cli(capsys, "fit-predictor", "--run", str(fitted_run), "--anchors", "3")
    assert code == 2 and "at least 4" in err


def test_predictor_search_and_top_k_export_carry_the_corrected_estimate(capsys, fitted_run):
    code, out, err = run_cli(capsys, "search", "--run", str(fitted_run), "--scorer", "predictor", "--algo", "evolution",
                             "--budget", "300", "--max-flops", "3e6", "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)
    assert result["evaluations"] == 300 and result["best"]["flops"] <= 3e6
    code, out, err = run_cli(capsys, "export", "--run", str(fitted_run), "--top-k", "2", "--scorer", "predictor")
    assert code == 0, err
    folders = sorted((fitted_run / "exports" / "top2-predictor").glob("rank*"))
    assert len(folders) == 2
    metrics = json.loads((folders[0] / "metrics.json").read_text())
    lo, hi = metrics["predicted_interval"]
    assert lo <= metrics["predicted_accuracy"] <= hi
    assert 0 <= metrics["supernet_accuracy"] <= 100 and metrics["flops"] <= 3e6


@pytest.mark.parametrize("selection, extra", [
    ("uncertainty", ["--anchors", "5"]),
    ("explicit", ["--anchor", "12012200", "--anchor", "00000000", "--anchor", "22222222", "--anchor", "10120110"]),
])
def test_other_anchor_selections(capsys, tiny_run, tmp_path, selection, extra):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    code, out, err = run_cli(capsys, "fit-predictor", "--run", str(run), "--selection", selection, *extra, "--anchor-epochs", "1",
                             "--pool", "10", "--predictors", "gap,linear", "--json")
    assert code == 0, err
    anchors = load_gap_model(run).anchors
    if selection == "explicit":
        assert set(anchors) == {"12012200", "00000000", "22222222", "10120110"}
    else:
        assert len(anchors) == 5
