"""Latency entries fitted to whole networks: the ridge fit, the fitted table, ONNX chaining, interleaved timing."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest

from evonas.export.onnx import _compose_onnx
from evonas.latency.build import build_latency_table
from evonas.latency.networks import sample_archs
from evonas.latency.table import LatencyTable
from evonas.latency.timing import time_interleaved
from evonas.latency.validate import validate_latency
import evonas.latency.networks as L
from evonas.errors import ConfigError
from evonas.latency.fit import AdditiveLatencyFit
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
    import evonas.latency.networks as L

    with pytest.MonkeyPatch.context() as mp:  # always keep the fit, to test the fitted table itself:
        mp.setattr(L, "CONFIRM_MARGIN", -1e9)  # on fresh networks too
        return build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=2, fit_seconds=0,
                                   min_gain=-1e9)


def test_fitted_table_records_how_it_was_built(fitted, tmp_path):
    space = get_space("macro-fmnist")
    assert fitted.method == "fitted" and fitted.settings["method"] == "fitted"
    fit = fitted.fit
    assert fit["used"] and fit["samples"] == len(fit["archs"]) == 20 and len(set(fit["archs"])) == 20
    assert {"cv_mape", "isolated_mape", "lambda", "intercept_ms", "verdict", "median_spread", "retest_kendall_tau"} <= set(fit)
    assert -1 <= fit["retest_kendall_tau"] <= 1  # two rounds: the even one against the odd one (one round: None)
    assert fitted.overhead_ms == fit["intercept_ms"]
    assert all(e.median_ms >= 0 for e in fitted.entries)
    arch = space.parse("12012200")
    iso = fitted.isolated()
    assert iso.method == "isolated" and iso.overhead_ms == fit["isolated_overhead_ms"]
    assert iso.predict(arch) == pytest.approx(sum(fitted.entry(i, c).isolated_ms for i, c in enumerate(arch.choices))
                                              + fit["isolated_overhead_ms"])
    loaded = LatencyTable.load(fitted.save(tmp_path / "t.json"))
    assert loaded == fitted and loaded.predict(arch) == fitted.predict(arch)


def test_isolated_method_and_a_fit_that_does_not_win_keep_the_isolated_entries(monkeypatch):
    import evonas.latency.fit as LF

    monkeypatch.setattr(LF, "TAU_GAIN", 1e9)  # nor by its ranking, whatever the timings say
    iso = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, method="isolated")
    assert iso.method == "isolated" and iso.fit is None and iso.settings["method"] == "isolated"
    kept = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1, fit_seconds=0,
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
    from evonas.latency.validate import networks_used

    confirm = fitted.fit["confirm"]
    assert confirm["samples"] == len(confirm["archs"]) > 0
    assert not set(confirm["archs"]) & set(fitted.fit["archs"])
    assert set(networks_used(fitted.fit)) == set(confirm["archs"]) | set(fitted.fit["archs"])
    assert "fresh networks" in fitted.fit["verdict"]


def test_a_fit_that_wins_on_its_own_networks_but_not_on_fresh_ones_is_not_used(monkeypatch):
    import math

    import evonas.latency.networks as L

    def losing(*args, **kwargs):  # min_gain -1e9: a candidate loses only when it is over 1e9 points worse
        return {"samples": 3, "isolated_mape": 5.0, "scaled_mape": 2e9, "fitted_mape": math.inf, "archs": []}

    monkeypatch.setattr(L, "_confirm_fit", losing)
    kept = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1, fit_seconds=0,
                               min_gain=-1e9)  # wins on its own networks whatever they say
    assert kept.method == "isolated" and not kept.fit["used"]
    assert "did worse on 3 fresh networks" in kept.fit["verdict"]
    assert "the scaled table did worse too" in kept.fit["verdict"]
    assert all(e.median_ms == e.isolated_ms for e in kept.entries) and kept.fit["kind"] is None


# --- the scaled candidate: isolated times a, plus b ----------------------------------------------
def test_affine_fit_recovers_a_and_b_from_relative_residuals():
    from evonas.latency.fit import AffineLatencyFit, affine_fit

    rng = np.random.default_rng(2)
    p = rng.uniform(0.5, 3.0, 40)
    y = 0.8 * p + 0.25
    assert affine_fit(p, y) == pytest.approx((0.8, 0.25), rel=1e-9)
    noisy = y * (1 + rng.normal(0, 0.003, 40))
    model = AffineLatencyFit(seed=1).fit(p, noisy)
    assert model.a_ == pytest.approx(0.8, rel=0.02) and model.b_ == pytest.approx(0.25, abs=0.02)
    assert model.cv_mape_ < 0.6 and model.train_mape_ <= model.cv_mape_
    np.testing.assert_allclose(model.predict(p), model.a_ * p + model.b_)
    # relative, not absolute residuals: the fit minimises sum(((a p + b - y) / y) ** 2), which an absolute line does not
    p = np.r_[rng.uniform(0.2, 0.5, 30), rng.uniform(5.0, 8.0, 5)]
    y = (0.8 * p + 0.25) * np.r_[np.ones(30), np.full(5, 1.3)]  # the slow networks 30% slower than the line

    def objective(ab):
        return float(np.sum(((ab[0] * p + ab[1] - y) / y) ** 2))

    best = affine_fit(p, y)
    assert objective(best) < 0.9 * objective(np.polyfit(p, y, 1))
    assert all(objective(best) <= objective((best[0] + da, best[1] + db)) for da in (-1e-3, 0, 1e-3) for db in (-1e-3, 0, 1e-3))
    with pytest.raises(ValueError, match="at least 10 positive times"):
        AffineLatencyFit().fit(p[:4], y[:4])


def _isolated_problem(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    prior = rng.uniform(0.05, 0.3, 18)
    return rng, prior, _one_hot(rng, n)


def test_choice_is_scaled_when_the_truth_is_an_affine_map_of_the_isolated_table():
    from evonas.latency.fit import choose_table

    rng, prior, X = _isolated_problem(3)
    iso = X @ prior + 0.1
    y = (0.7 * iso + 0.3) * (1 + rng.normal(0, 0.005, len(iso)))
    choice = choose_table(X, y, prior, 0.1, min_gain=1.0, seed=0)
    assert choice.kind == "scaled" and choice.base == "scaled" and choice.below("fitted") == "scaled"
    assert choice.cv_mape["scaled"] < 1.0 < choice.cv_mape["isolated"] - 1.0
    assert choice.cv_mape["fitted"] > choice.cv_mape["scaled"] - 1.0  # the fit does not beat it by min_gain
    assert choice.scaled.a_ == pytest.approx(0.7, rel=0.03) and choice.scaled.b_ == pytest.approx(0.3, abs=0.03)


def test_choice_is_fitted_when_entries_differ_from_the_isolated_ones_beyond_a_scale():
    from evonas.latency.fit import choose_table

    rng, prior, X = _isolated_problem(4)
    true = prior * rng.uniform(0.4, 1.6, prior.size)  # each entry off by its own factor
    y = (X @ true + 0.4) * (1 + rng.normal(0, 0.005, len(X)))
    choice = choose_table(X, y, prior, 0.1, min_gain=1.0, seed=0)
    assert choice.kind == "fitted"
    assert choice.cv_mape["fitted"] <= choice.cv_mape[choice.base] - 1.0
    # a negative scale reverses the isolated ranking: not a candidate
    reversed_y = 3.0 - 0.5 * (X @ prior)
    choice = choose_table(X, reversed_y, prior, 0.1, min_gain=1.0, seed=0)
    assert choice.scaled.a_ <= 0 and "scaled" not in choice.cv_mape and choice.kind != "scaled"


def test_the_fit_wins_by_ranking_better_at_no_higher_mape():
    """A fit no better by MAPE margin but ranking the held-out networks better wins for its ranking ("tau")."""
    from evonas.latency.fit import TAU_GAIN, choose_table

    rng, prior, X = _isolated_problem(5, n=200)
    true = prior * rng.uniform(0.7, 1.3, prior.size)  # the entries reorder a little; the level stays
    y = (X @ true + 0.1) * (1 + rng.normal(0, 0.01, len(X)))
    big = 50.0  # no candidate can win by MAPE margin
    choice = choose_table(X, y, prior, 0.1, min_gain=big, seed=0)
    assert choice.kind == "fitted" and choice.reason == "tau" and choice.base == "isolated"
    assert choice.cv_tau["fitted"] >= choice.cv_tau["isolated"] + TAU_GAIN
    assert choice.cv_mape["fitted"] <= choice.cv_mape["isolated"]
    assert choice.cv_tau["scaled"] == pytest.approx(choice.cv_tau["isolated"], abs=0.02)  # a scale keeps the ranking
    assert choose_table(X, y, prior, 0.1, min_gain=big, tau_gain=1.5, seed=0).kind == "isolated"  # asks too much

    class Ranker:  # held out, ranks perfectly but prices everything 20% too high
        def __init__(self, *args, **kwargs):
            pass

        def fit(self, X, y):
            self.cv_pred_, self.cv_mape_ = 1.2 * y, 20.0
            return self

    worse = choose_table(X, y, prior, 0.1, min_gain=big, seed=0, model=Ranker)
    assert worse.cv_tau["fitted"] == pytest.approx(1.0) and worse.cv_mape["isolated"] < 20.0
    assert worse.kind == "isolated" and worse.reason == ""  # ranking better is not enough at a higher MAPE
    scaled_y = 0.7 * (X @ prior + 0.1) + 0.3  # the isolated table, scaled: the fit has nothing to rank better
    plain = choose_table(X, scaled_y, prior, 0.1, min_gain=big, seed=0)
    assert plain.kind == "isolated" and plain.reason == ""


def test_fresh_networks_walk_the_choice_down_the_nesting():
    from evonas.latency.fit import choose_table, confirm_choice

    rng, prior, X = _isolated_problem(3)
    iso = X @ prior + 0.1
    choice = choose_table(X, 0.7 * iso + 0.3, prior, 0.1, min_gain=-1e9, seed=0)  # every candidate wins here
    assert choice.kind == "fitted" and choice.base == "scaled"
    assert confirm_choice(choice, {"isolated": 9.0, "scaled": 3.0, "fitted": 2.5}, 0.0) == ["fitted"]
    assert confirm_choice(choice, {"isolated": 9.0, "scaled": 3.0, "fitted": 2.5}, 1.0) == ["fitted", "scaled"]
    assert confirm_choice(choice, {"isolated": 3.5, "scaled": 3.0, "fitted": 2.5}, 1.0) == ["fitted", "scaled", "isolated"]
    assert confirm_choice(choice, {"isolated": 3.5, "fitted": 2.5}, -5.0) == ["fitted", "scaled", "isolated"]  # no number: loses
    # a fit chosen for its ranking prices about as the table below it: up to TAU_CONFIRM_SLACK worse is kept
    from dataclasses import replace

    from evonas.latency.fit import TAU_CONFIRM_SLACK

    by_tau = replace(choice, reason="tau")
    assert confirm_choice(by_tau, {"isolated": 9.0, "scaled": 3.0, "fitted": 3.0 + TAU_CONFIRM_SLACK}, 0.0) == ["fitted"]
    assert confirm_choice(by_tau, {"isolated": 9.0, "scaled": 3.0, "fitted": 3.1 + TAU_CONFIRM_SLACK}, 0.0) == [
        "fitted", "scaled"]
    assert confirm_choice(choice, {"isolated": 9.0, "scaled": 3.0, "fitted": 3.5}, 0.0) == ["fitted", "scaled"]  # by MAPE


@pytest.fixture(scope="module")
def scaled(fitted):
    """A scaled table built like the others: the choice forced to the scaled candidate, the rest real."""
    from dataclasses import replace

    import evonas.latency.networks as L
    import evonas.latency.fit as F

    real = F.choose_table
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(F, "choose_table", lambda *a, **k: replace(real(*a, **k), kind="scaled", base="scaled"))
        mp.setattr(L, "CONFIRM_MARGIN", -1e9)  # the confirmation keeps it whatever the fresh networks time
        return build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1,
                                   fit_seconds=0, min_gain=-1e9)


def test_a_scaled_table_scales_the_isolated_one_and_round_trips(scaled, tmp_path):
    fit = scaled.fit
    a, b = fit["scaled_a"], fit["scaled_b"]
    assert scaled.method == "scaled" and fit["kind"] == "scaled" and fit["used"] and a > 0
    assert fit["scaled_cv_mape"] >= 0 and fit["verdict"].startswith("scaled: isolated times")
    assert fit["confirm"]["scaled_mape"] >= 0 and "fresh networks" in fit["verdict"]  # confirmed against isolated
    assert all(e.median_ms == pytest.approx(a * e.isolated_ms) for e in scaled.entries)
    assert scaled.overhead_ms == pytest.approx(a * fit["isolated_overhead_ms"] + b)
    iso = scaled.isolated()
    assert iso.method == "isolated" and iso.overhead_ms == fit["isolated_overhead_ms"]
    assert all(e.median_ms == e.isolated_ms for e in iso.entries)
    for arch in ("12012200", "00000000", "22222222"):
        assert scaled.predict(arch) == pytest.approx(a * iso.predict(arch) + b)
    loaded = LatencyTable.load(scaled.save(tmp_path / "scaled.json"))
    assert loaded == scaled and loaded.method == "scaled" and loaded.predict("12012200") == scaled.predict("12012200")
    assert loaded.isolated() == iso
    assert fit["retest_kendall_tau"] is None  # one fitting round has no halves: None, never NaN (which breaks equality)
    assert fit["rounds"] == fit["rounds_max"] == 1 and scaled.settings["fit_seconds"] == 0  # no budget: exactly 1


def test_cheap_networks_get_more_fitting_rounds_within_the_budget():
    """At batch 1 seven rounds ranked the fitting networks against themselves with 0.81-0.86: cheap rounds are added."""
    table = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=2,
                                fit_seconds=5.0, min_gain=-1e9)
    assert table.fit["rounds"] > 2
    assert table.settings["fit_seconds"] == 5.0


def test_interleaved_rounds_grow_with_the_budget_between_the_least_and_the_most():
    fast = [lambda: None, lambda: sum(range(10))]
    assert {t["repeats"] for t in time_interleaved(fast, warmup=0, rounds=2)} == {2}  # no budget: as asked
    assert {t["repeats"] for t in time_interleaved(fast, warmup=0, rounds=2, budget_s=1.0, max_rounds=9)} == {9}
    slow = [lambda: time.sleep(0.01)]  # a round takes 10 ms: 5 ms of budget adds none
    assert {t["repeats"] for t in time_interleaved(slow, warmup=0, rounds=3, budget_s=0.005, max_rounds=50)} == {3}
    with pytest.raises(ConfigError, match="budget_s"):
        time_interleaved(fast, budget_s=-1.0)


def test_a_fitted_table_from_before_the_scaled_candidate_still_loads_as_fitted(fitted, tmp_path):
    assert fitted.fit["kind"] == "fitted"
    data = fitted.to_dict()
    for key in ("kind", "scaled_a", "scaled_b", "scaled_cv_mape", "scaled_train_mape"):
        del data["fit"][key]
    del data["fit"]["confirm"]["scaled_mape"]
    path = tmp_path / "old-fitted.json"
    path.write_text(json.dumps(data))
    old = LatencyTable.load(path)
    assert old.method == "fitted" and old.predict("12012200") == fitted.predict("12012200")
    assert old.isolated().method == "isolated" and old.isolated().predict("12012200") == fitted.isolated().predict("12012200")


def test_the_fresh_networks_are_timed_in_the_fitting_networks_rounds(monkeypatch):
    """Timed apart, a few networks run faster than among many (warm caches): the check shares the fit's rounds."""
    import evonas.latency.networks as L

    calls = []
    real = L.time_interleaved

    def counting(fns, **kwargs):
        calls.append(len(fns))
        return real(fns, **kwargs)

    monkeypatch.setattr(L, "time_interleaved", counting)
    monkeypatch.setattr(L, "CONFIRM_MARGIN", -1e9)  # whatever the timings, the choice is confirmed and reported
    table = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1, fit_seconds=0,
                                min_gain=-1e9)
    assert calls == [30]  # the 20 fitting networks and the 10 fresh ones, in one interleaved timing
    confirm = table.fit["confirm"]
    assert confirm["samples"] == 10 and not set(confirm["archs"]) & set(table.fit["archs"])
    assert "timed in the same rounds" in table.fit["verdict"]


def test_the_build_times_its_networks_in_groups_as_large_as_validate_times_together(monkeypatch):
    """Among hundreds of networks at once they ran slower: the fit learned that setting, not the networks."""
    calls = []
    real = L.time_interleaved

    def recording(fns, **kwargs):
        calls.append((len(fns), kwargs["seed"], kwargs["budget_s"]))
        return real(fns, **kwargs)

    monkeypatch.setattr(L, "time_interleaved", recording)
    monkeypatch.setattr(L, "FIT_GROUP", 12)
    table = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1,
                                fit_seconds=0.3, min_gain=-1e9)
    assert [n for n, _, _ in calls] == [10, 10, 10]  # 20 fitting + 10 fresh networks in three groups of at most 12
    assert len({seed for _, seed, _ in calls}) == 3  # each group in its own order
    assert [b for _, _, b in calls] == pytest.approx([0.1] * 3)  # the budget shared among the groups
    assert table.fit["group"] == 12 and table.fit["groups"] == 3 and len(table.fit["fresh"]["times_ms"]) == 10


def test_groups_deal_the_networks_out_in_turn_and_keep_their_order(monkeypatch):
    from evonas.latency.networks import _time_in_groups

    made = []

    def make(k):
        made.append(k)
        fn = lambda: None  # noqa: E731
        fn.k = k
        return fn

    def fake(fns, **kwargs):  # "times" each callable as its own index: where a timing lands is checked exactly
        return [{"median_ms": float(fn.k), "repeats": kwargs["rounds"]} for fn in fns]

    monkeypatch.setattr(L, "time_interleaved", fake)
    out = _time_in_groups(make, 10, group=4, warmup=0, rounds=2, seed=0)
    # three groups of at most 4, dealt in turn: 7 fitting networks (0-6) and 3 fresh ones (7-9) spread over them
    assert made == [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]
    assert [t["median_ms"] for t in out] == list(range(10))
    with pytest.raises(ConfigError, match="group"):
        _time_in_groups(make, 10, group=0, rounds=1)


def test_the_cli_repeats_the_librarys_fitting_defaults():
    import evonas.jobs.latency as J

    assert (J.FIT_SECONDS, J.MAX_FIT_ROUNDS) == (L.FIT_SECONDS, L.MAX_FIT_ROUNDS)
    for bad in (-1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(ConfigError, match="fit_seconds"):
            J.LatencyBuildOptions(fit_seconds=bad)


def test_the_build_keeps_a_candidate_that_does_no_worse_on_fresh_networks(monkeypatch):
    """The margin is asked of cross-validation only: on the few fresh networks, not doing worse is enough."""
    import evonas.latency.networks as L
    import evonas.latency.fit as LF

    original = LF.choose_table
    monkeypatch.setattr(LF, "choose_table", lambda *a, **k: original(*a, **{**k, "min_gain": -1e9}))  # both win CV

    def fresh(*args, **kwargs):  # the fit is far worse here; the scaled table a little better than isolated
        return {"samples": 10, "isolated_mape": 14.1, "scaled_mape": 13.7, "fitted_mape": 40.0, "archs": []}

    monkeypatch.setattr(L, "_confirm_fit", fresh)
    table = build_latency_table("macro-fmnist", warmup=1, repeats=3, progress=False, fit_samples=20, fit_rounds=1, fit_seconds=0,
                                min_gain=1.0)
    assert table.method == "scaled", table.fit["verdict"]  # 13.7 <= 14.1, though not by min_gain = 1
    assert "did worse on 10 fresh networks" in table.fit["verdict"] and "the scaled table held" in table.fit["verdict"]
