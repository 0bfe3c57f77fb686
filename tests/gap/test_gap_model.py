"""fit-predictor and predict on a tiny run: anchors as store records, the report, the saved model."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import math
import random

import numpy as np
import pytest

from evonas.gap.anchors import StandaloneScorer, stored_anchors
from evonas.cli.main import main
from evonas.gap.corrector import fit_gap_model, load_gap_model
from predictors import kendall_tau
from search_spaces import get_space
from evonas.run.run import Run, RunLayout
from evonas.run.store import Store
from tests.cli.test_cli_train import run_cli


FIT_ARGS = ["--anchors", "5", "--anchor-epochs", "1", "--pool", "8", "--predictors", "gap,linear", "--json", "--coverage", "0.8"]


@pytest.fixture(scope="module")
def fitted_run(small_run, tmp_path_factory):
    """A copy of the small run (tests/conftest.py: 256 train images, so the anchors train fast) with a fitted predictor; ``fitted_run.report`` is fit-predictor's JSON."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    shutil.copytree(small_run, run)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main(["fit-predictor", "--run", str(run), *FIT_ARGS])
    (run / "fit_output.json").write_text(out.getvalue())
    return run


def test_fit_predictor_writes_report_model_and_anchor_records(capsys, fitted_run):
    args = ["fit-predictor", "--run", str(fitted_run), *FIT_ARGS]
    report = json.loads((fitted_run / "fit_output.json").read_text())
    names = {e["name"] for e in report["estimators"]}
    assert names == {"supernet", "gap", "linear"} and report["best"] in names  # the baseline is always compared
    assert report["chosen"]["name"] == report["best"] and report["chosen"]["reason"]
    assert {b["name"] for b in report["baselines"]} == {"proxy", "flops"}
    assert report["n_anchors"] == 5 and report["reference_scheme"] == "leave-one-out"
    assert report["scheme"].startswith("50 random")
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


def test_fit_predictor_on_finetuned_scores_is_read_back_the_same_way(capsys, fitted_run, tmp_path):
    """With --finetune-steps the pool is scored after fine-tuning; predict and export read those scores, not plain ones."""
    run = tmp_path / "run"
    shutil.copytree(fitted_run, run)
    code, out, _ = run_cli(capsys, "predict", "--run", str(run), "--arch", "12012200", "--json")
    plain = json.loads(out)["supernet"]
    code, _, err = run_cli(capsys, "fit-predictor", "--run", str(run), *FIT_ARGS, "--finetune-steps", "-1")
    assert code == 2 and "--finetune-steps" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(capsys, "fit-predictor", "--run", str(run), *FIT_ARGS, "--finetune-steps", "5")
    assert code == 0, err
    gap = load_gap_model(run)
    assert gap.supernet_options == {"finetune_steps": 5, "finetune_lr": 0.03}
    assert "after 5 fine-tuning steps" in json.loads(out)["basis"]["text"]

    def tuned() -> dict[str, float]:
        with Store.open(run) as store:
            return {r.arch: r.metric("accuracy") for r in store.records(scorer="supernet")
                    if r.source.get("finetune_steps") == 5}

    assert set(gap.anchors) <= set(tuned()) and len(tuned()) >= 8
    code, out, err = run_cli(capsys, "predict", "--run", str(run), "--arch", "12012200", "--json")
    row = json.loads(out)
    assert code == 0 and "warning" not in err
    tuned = tuned()  # predict scored (and stored) the architecture the way the pool was scored
    assert row["supernet"] == round(tuned["12012200"], 3) != plain
    code, _, err = run_cli(capsys, "export", "--run", str(run), "--arch", "12012200", "--out", str(tmp_path / "x"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "x" / "metrics.json").read_text())
    assert metrics["predictor_input"] == {"supernet_accuracy": round(tuned["12012200"], 4), "finetune_steps": 5,
                                          "finetune_lr": 0.03}
    assert metrics["predicted_accuracy"] == pytest.approx(row["predicted"], abs=1e-3)
    # the fine-tuned pool scores stay out of the ranking of a top-k export by the searches' plain supernet scores
    code, out, err = run_cli(capsys, "search", "--run", str(run), "--algo", "random", "--budget", "4", "--json", "--quiet")
    assert code == 0, err
    code, _, err = run_cli(capsys, "export", "--run", str(run), "--top-k", "3")
    assert code == 0, err
    exported = [json.loads((f / "metrics.json").read_text()) for f in sorted(RunLayout(run).top_k_dir(3).glob("rank*"))]
    assert len(exported) == 3 and not any(m["record"]["source"].get("finetune_steps") for m in exported)
    assert all(m["predictor_input"]["finetune_steps"] == 5 for m in exported)  # ranked by plain scores, corrected from fine-tuned ones


@pytest.mark.parametrize("selection, extra", [
    ("uncertainty", ["--anchors", "5"]),
    ("explicit", ["--anchor", "12012200", "--anchor", "00000000", "--anchor", "22222222", "--anchor", "10120110"]),
])
def test_other_anchor_selections(capsys, small_run, tmp_path, selection, extra):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    code, out, err = run_cli(capsys, "fit-predictor", "--run", str(run), "--selection", selection, *extra, "--anchor-epochs", "1",
                             "--pool", "10", "--predictors", "gap,linear", "--json")
    assert code == 0, err
    anchors = load_gap_model(run).anchors
    if selection == "explicit":
        assert set(anchors) == {"12012200", "00000000", "22222222", "10120110"}
    else:
        assert len(anchors) == 5


# --- fit_gap_model without a run: the choice, the distilled search model, extra features ---------------------

def synthetic_pool(n: int = 90, seed: int = 0):
    """Distinct canonical macro-fmnist archs with a supernet score that is an additive function of the ops."""
    space = get_space("macro-fmnist")
    rng = random.Random(seed)
    keys: dict[str, object] = {}
    while len(keys) < n:
        arch = space.canonical(space.sample(rng))
        keys.setdefault(str(arch), arch)
    names = sorted(keys)
    effect = np.random.default_rng(seed).normal(scale=0.6, size=(len(space.dims), 3))  # per layer and op
    supernet = np.array([80.0 + sum(effect[i, c] for i, c in enumerate(keys[a].choices)) for a in names])
    first_op = np.array([keys[a].choices[0] for a in names])
    return space, names, supernet, first_op


def test_noise_anchors_choose_the_baseline_and_searches_follow_the_supernet():
    space, names, supernet, _ = synthetic_pool()
    noise = np.random.default_rng(1).normal(scale=3.0, size=len(names))
    truth = supernet + noise  # the supernet is right; anchors only add noise
    anchors = {names[i]: float(truth[i]) for i in range(0, 80, 10)}  # 8 anchors
    pool = dict(zip(names, supernet.tolist()))
    gap, plot = fit_gap_model(space, anchors, pool, supernet_source="test", predictors=["supernet_residual", "gap", "xgb"])
    assert gap.best == "supernet" and gap.report["beats_proxy"] is False
    assert gap.report["chosen"]["reason"].startswith("nothing beats the supernet")
    assert "nothing beats the supernet: the corrector is the calibrated supernet score" in plot["text"]
    # predict uses the chosen model: the calibrated supernet, same order as the supernet
    archs = [space.parse(a) for a in names]
    assert kendall_tau(supernet, gap.predict(archs, supernet)["predicted"]) == pytest.approx(1.0)
    # the search model learnt the supernet scores, so the predictor scorer ranks like the supernet
    sm = gap.report["search_model"]
    assert sm["labels"] == "calibrated supernet scores" and sm["anchors"] == 0
    assert math.isfinite(sm["heldout_tau"])
    arch_only = gap.predict_arch_only(archs)
    assert kendall_tau(truth, arch_only) >= kendall_tau(truth, supernet) - 0.05
    assert kendall_tau(supernet, arch_only) > 0.7


def test_a_strong_op_effect_the_supernet_misses_chooses_a_corrector():
    space, names, supernet, first_op = synthetic_pool(seed=2)
    truth = supernet + 4.0 * (first_op == 2)  # one op on the first layer is much better stand-alone
    anchors = {names[i]: float(truth[i]) for i in range(0, 90, 3)}  # 30 anchors
    pool = dict(zip(names, supernet.tolist()))
    gap, _ = fit_gap_model(space, anchors, pool, supernet_source="test", predictors=["supernet_residual"], coverage=0.8)
    assert gap.best == "supernet_residual" and gap.report["beats_proxy"] is True
    assert "beats the supernet by" in gap.report["chosen"]["reason"]
    rest = [i for i in range(len(names)) if names[i] not in anchors]
    archs = [space.parse(names[i]) for i in rest]
    pred = gap.predict(archs, supernet[rest])["predicted"]
    assert kendall_tau(truth[rest], pred) > kendall_tau(truth[rest], supernet[rest]) + 0.1
    assert gap.report["search_model"]["anchors"] == 30  # anchors keep their true accuracy


def test_poor_search_model_agreement_is_reported():
    space, names, _, _ = synthetic_pool(n=40, seed=3)
    supernet = np.random.default_rng(4).normal(80.0, 2.0, size=len(names))  # not a function of the ops
    anchors = {names[i]: float(supernet[i]) for i in range(0, 40, 5)}
    gap, plot = fit_gap_model(space, anchors, dict(zip(names, supernet.tolist())), supernet_source="test",
                              predictors=["supernet_residual"], coverage=0.8)
    sm = gap.report["search_model"]
    assert sm["heldout_tau"] < 0.5 and "agrees poorly" in sm["warning"]
    assert any("agrees poorly" in n for n in gap.report["notes"]) and "agrees poorly" in plot["text"]


def test_extra_features_enter_the_corrector_by_name():
    space, names, supernet, first_op = synthetic_pool(n=60, seed=5)
    snip = {a: float(v) for a, v in zip(names, first_op * 1.5 + 0.1)}
    truth = supernet + 3.0 * first_op
    anchors = {names[i]: float(truth[i]) for i in range(0, 60, 3)}
    gap, _ = fit_gap_model(space, anchors, dict(zip(names, supernet.tolist())), supernet_source="test",
                           predictors=["supernet_residual"], coverage=0.8, extra_features={"snip": snip})
    assert gap.encoder.extra_names == ("snip", "supernet_score")
    archs = [space.parse(a) for a in names[:4]]
    out = gap.predict(archs, supernet[:4], extra={"snip": [snip[a] for a in names[:4]]})
    assert out["predicted"].shape == (4,)
    with pytest.raises(ValueError, match="snip"):
        gap.predict(archs, supernet[:4])
    with pytest.raises(Exception, match="snip"):
        fit_gap_model(space, anchors, dict(zip(names, supernet.tolist())), supernet_source="test",
                      predictors=["supernet_residual"], extra_features={"snip": {}})


def test_anchors_that_disagree_with_the_supernet_still_leave_a_ranking_to_search_with():
    """Anchors anti-correlated with the supernet: the fallback keeps the supernet's order and spread."""
    import random

    import numpy as np

    from evonas.gap.corrector import fit_gap_model
    from predictors import kendall_tau
    from search_spaces import get_space

    space = get_space("macro-fmnist")
    rng = random.Random(3)
    pool = {}
    while len(pool) < 60:
        arch = space.canonical(space.sample(rng))
        pool[str(arch)] = 70.0 + 2.0 * sum(arch.choices) + rng.random()  # the supernet likes big networks
    names = sorted(pool)
    anchors = {a: 95.0 - 0.2 * pool[a] for a in names[:8]}  # the anchors say the opposite
    # every predictor competes; ten held-out splits instead of 50 choose the same fallback at a fifth of the cost
    gap, _ = fit_gap_model(space, anchors, pool, supernet_source="test", seed=0, n_splits=10)
    assert gap.best == "supernet"
    archs = [space.parse(a) for a in names]
    sup = np.array([pool[a] for a in names])
    pred = gap.predict(archs, sup)["predicted"]
    assert kendall_tau(pred, sup) == pytest.approx(1.0) and np.ptp(pred) > 1.0
    assert kendall_tau(gap.predict_arch_only(archs), sup) > 0.5
