"""Latency entries fitted to whole networks: the ridge fit, the fitted table, ONNX chaining, interleaved timing."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from evonas.evaluation.latency import (LatencyTable, _compose_onnx, build_latency_table, sample_archs, time_interleaved,
                                       validate_latency)
from evonas.evaluation.latency_fit import AdditiveLatencyFit
from search_spaces import get_space


def _one_hot(rng: np.random.Generator, n: int, layers: int = 6, options: int = 3) -> np.ndarray:
    X = np.zeros((n, layers * options))
    for r in range(n):
        for i in range(layers):
            X[r, i * options + rng.integers(options)] = 1
    return X


def test_fit_recovers_additive_costs_and_overrides_a_wrong_prior():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.05, 0.3, 18)
    X = _one_hot(rng, 200)
    y = X @ true + 0.4 + rng.normal(0, 0.002, 200)
    prior = true * 1.5  # isolated timings that are a third too slow
    model = AdditiveLatencyFit(prior, 0.1).fit(X, y)
    assert model.cv_mape_ < 1.0 and model.lambda_ in model.cv_mape_by_lambda_
    pred = model.predict(X)
    assert np.max(np.abs(pred - y) / y) < 0.02
    assert np.mean(np.abs(X @ prior + 0.1 - y) / y) > 0.1  # the prior alone is far off


def test_fit_keeps_costs_non_negative_and_checks_its_input():
    rng = np.random.default_rng(1)
    X = _one_hot(rng, 60)
    true = np.r_[0.0, 0.1, 0.2] * np.ones((6, 1))
    y = X @ true.ravel() + 0.3
    model = AdditiveLatencyFit(np.full(18, 0.1), 0.3, lambdas=(1e-4,)).fit(X, y)
    assert np.all(model.coef_ >= 0)
    with pytest.raises(RuntimeError, match="not fitted"):
        AdditiveLatencyFit(np.zeros(18), 0.0).predict(X)
    with pytest.raises(ValueError, match="X must be"):
        AdditiveLatencyFit(np.zeros(5), 0.0).fit(X, y)
    with pytest.raises(ValueError, match="at least 10 positive times"):
        AdditiveLatencyFit(np.zeros(18), 0.0).fit(X[:4], y[:4])


def test_time_interleaved_times_every_callable_in_rounds():
    calls = {"a": 0, "b": 0}

    def bump(name):
        def fn():
            calls[name] += 1
        return fn

    stats = time_interleaved([bump("a"), bump("b")], warmup=1, rounds=4, min_repeat_ms=0.0)
    assert len(stats) == 2 and all(s["repeats"] == 4 and s["number"] == 1 for s in stats)
    assert calls == {"a": 1 + 1 + 4, "b": 1 + 1 + 4}  # warm-up, the sizing call, one per round
    assert all(s["p10_ms"] <= s["median_ms"] <= s["p90_ms"] for s in stats)


@pytest.fixture(scope="module")
def fitted():
    return build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=2,
                               min_gain=-1e9)  # always keep the fit, to test the fitted table itself


def test_fitted_table_records_how_it_was_built(fitted, tmp_path):
    space = get_space("macro-fmnist")
    assert fitted.method == "fitted" and fitted.settings["method"] == "fitted"
    fit = fitted.fit
    assert fit["used"] and fit["samples"] == len(fit["archs"]) == 20 and len(set(fit["archs"])) == 20
    assert {"cv_mape", "isolated_mape", "lambda", "intercept_ms", "verdict", "median_spread"} <= set(fit)
    assert fitted.overhead_ms == fit["intercept_ms"]
    assert all(e.median_ms >= 0 for e in fitted.entries)
    arch = space.parse("12012200")
    iso = fitted.isolated()
    assert iso.method == "isolated" and iso.overhead_ms == fit["isolated_overhead_ms"]
    assert iso.predict(arch) == pytest.approx(sum(fitted.entry(i, c).isolated_ms for i, c in enumerate(arch.choices))
                                              + fit["isolated_overhead_ms"])
    loaded = LatencyTable.load(fitted.save(tmp_path / "t.json"))
    assert loaded == fitted and loaded.predict(arch) == fitted.predict(arch)


def test_isolated_method_and_a_fit_that_does_not_win_keep_the_isolated_entries():
    iso = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, method="isolated")
    assert iso.method == "isolated" and iso.fit is None and iso.settings["method"] == "isolated"
    kept = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1,
                               min_gain=1e9)  # no fit can win by that much
    assert kept.method == "isolated" and not kept.fit["used"] and "isolated kept" in kept.fit["verdict"]
    assert all(e.median_ms == e.isolated_ms for e in kept.entries)
    assert kept.overhead_ms == kept.fit["isolated_overhead_ms"]


def test_a_table_from_before_fitting_still_loads(fitted, tmp_path):
    data = fitted.isolated().to_dict()
    del data["fit"]
    for e in data["entries"]:
        del e["isolated_ms"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    old = LatencyTable.load(path)
    assert old.fit is None and old.method == "isolated" and old.isolated() is old
    assert old.predict("12012200") == pytest.approx(fitted.isolated().predict("12012200"))


def test_validation_samples_fresh_networks_and_flags_fitted_ones(fitted):
    space = get_space("macro-fmnist")
    fresh = sample_archs(space, 5, random.Random(0), exclude=fitted.fit["archs"])
    assert len(fresh) == 5 and not set(map(space.format, fresh)) & set(fitted.fit["archs"])
    used = [space.parse(a) for a in fitted.fit["archs"][:2]]
    res = validate_latency(space, fitted, fresh + used, warmup=1, repeats=3)
    assert res["fit_overlap"] == 2 and [r["in_fit_set"] for r in res["archs"]] == [False] * 5 + [True] * 2
    assert res["method"] == "fitted" and res["median_spread"] >= 0


def test_compose_onnx_chains_pieces(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from evonas.export.onnx import INPUT_NAME, OUTPUT_NAME, onnx_session

    def piece(path, op, value):
        dims = ["batch", 3]
        c = helper.make_tensor("c", TensorProto.FLOAT, [3], [value] * 3)
        graph = helper.make_graph([helper.make_node(op, [INPUT_NAME, "c"], ["t"], name="n"),
                                   helper.make_node("Relu", ["t"], [OUTPUT_NAME], name="r")], "p",
                                  [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, dims)],
                                  [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims)], initializer=[c])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), str(path))
        return path

    pieces = [piece(tmp_path / "a.onnx", "Add", 1.0), piece(tmp_path / "b.onnx", "Mul", -2.0),
              piece(tmp_path / "c.onnx", "Add", 5.0)]
    _compose_onnx(pieces, tmp_path / "net.onnx")
    x = np.array([[-3.0, 0.0, 2.0]], dtype=np.float32)
    (out,) = onnx_session(tmp_path / "net.onnx").run(None, {INPUT_NAME: x})
    expected = np.maximum(np.maximum(np.maximum(x + 1, 0) * -2, 0) + 5, 0)
    np.testing.assert_allclose(out, expected)


def test_a_fit_is_confirmed_on_fresh_networks_that_validation_then_avoids(fitted):
    from evonas.evaluation.latency import networks_used

    confirm = fitted.fit["confirm"]
    assert confirm["samples"] == len(confirm["archs"]) > 0
    assert not set(confirm["archs"]) & set(fitted.fit["archs"])
    assert set(networks_used(fitted.fit)) == set(confirm["archs"]) | set(fitted.fit["archs"])
    assert "fresh networks" in fitted.fit["verdict"]


def test_a_fit_that_wins_on_its_own_networks_but_not_on_fresh_ones_is_not_used(monkeypatch):
    import math

    import evonas.evaluation.latency as L

    def losing(*args, **kwargs):
        return {"samples": 3, "isolated_mape": 5.0, "fitted_mape": math.inf, "archs": []}

    monkeypatch.setattr(L, "_confirm_fit", losing)
    kept = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1,
                               min_gain=-1e9)  # wins on its own networks whatever they say
    assert kept.method == "isolated" and not kept.fit["used"]
    assert "not on 3 fresh networks" in kept.fit["verdict"]
    assert all(e.median_ms == e.isolated_ms for e in kept.entries)
