"""Conformance suite over every registered predictor, plus metrics, selection and the ranking report."""

from __future__ import annotations

import inspect
import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from predictors import (
    PredictorError,
    UnknownPredictorError,
    build_predictor,
    cross_validate_predictors,
    explicit_anchors,
    fit_final,
    get_predictor,
    interval_coverage,
    kendall_tau,
    list_predictors,
    random_anchors,
    spearman_rho,
    spread_anchors,
    top_fraction_tau,
    true_rank_of_best,
    uncertainty_anchors,
)
from predictors.crossval import adjusted_margin, corrected_se, random_splits


def synthetic(n: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Six features; the last is a noisy 'proxy' of the target, the first a 'cost'."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = 2.0 * X[:, 0] + X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=0.3, size=n)
    X[:, 5] = y - 2.0 * X[:, 0] + rng.normal(scale=0.3, size=n)  # proxy misses the cost effect
    return X, y


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.mark.parametrize("name", list_predictors())
def test_fit_returns_self_and_learned_attributes_end_in_underscore(name, data):
    X, y = data
    est = get_predictor(name)
    params = set(est.get_params(deep=False))
    before = set(vars(est))
    assert before == params, "only hyper-parameters may be set in __init__"
    assert est.fit(X, y) is est
    learned = set(vars(est)) - before
    assert learned and all(a.endswith("_") for a in learned), learned
    pred = est.predict(X)
    assert pred.shape == (len(y),) and np.all(np.isfinite(pred))


@pytest.mark.parametrize("name", list_predictors())
def test_predict_before_fit_raises_not_fitted(name, data):
    with pytest.raises(NotFittedError):
        get_predictor(name).predict(data[0])


@pytest.mark.parametrize("name", list_predictors())
def test_clone_and_pickle(name, data):
    X, y = data
    est = get_predictor(name, random_state=3).fit(X, y)
    fresh = clone(est)
    assert fresh.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict(X), est.predict(X))


@pytest.mark.parametrize("name", list_predictors())
def test_std_when_offered(name, data):
    X, y = data
    est = get_predictor(name).fit(X, y)
    if est.offers_std:
        mean, std = est.predict(X[:7], return_std=True)
        assert mean.shape == std.shape == (7,)
        assert np.all(std >= 0) and np.all(np.isfinite(std))
        np.testing.assert_allclose(mean, est.predict(X[:7]), rtol=1e-6, atol=1e-8)
    else:
        with pytest.raises(PredictorError, match="standard deviation"):
            est.predict(X, return_std=True)


@pytest.mark.parametrize("name", list_predictors())
def test_deterministic_with_seed(name, data):
    X, y = data
    a = get_predictor(name, random_state=7).fit(X, y).predict(X)
    b = get_predictor(name, random_state=7).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list_predictors())
def test_wrong_feature_count_is_an_error(name, data):
    X, y = data
    est = get_predictor(name).fit(X, y)
    with pytest.raises(PredictorError, match="features"):
        est.predict(X[:, :4])


def test_registry_errors_list_valid_names():
    with pytest.raises(UnknownPredictorError, match="gp") as err:
        get_predictor("gaussian")
    assert "choose one of" in str(err.value)
    with pytest.raises(PredictorError, match="n_estimators"):
        get_predictor("gp", n_estimators=3)


def test_bad_hyper_parameter_names_parameter_rule_and_value(data):
    X, y = data
    with pytest.raises(PredictorError, match=r"'objective'.*Got 'listwise'"):
        get_predictor("xgb", objective="listwise").fit(X, y)
    with pytest.raises(PredictorError, match=r"'C'.*\(0, inf\).*-1"):
        get_predictor("gap", C=-1.0).fit(X, y)


def test_gap_learns_the_cost_bias_the_proxy_misses():
    X, y = synthetic(n=400, seed=1)
    Xtr, ytr, Xte, yte = X[:20], y[:20], X[20:], y[20:]
    gap = build_predictor("gap", proxy_index=5, cost_index=0).fit(Xtr, ytr)
    assert kendall_tau(yte, gap.predict(Xte)) > kendall_tau(yte, Xte[:, 5]) + 0.1


def test_xgb_monotone_constraint_is_respected(data):
    X, y = data
    mono = [0, 0, 0, 0, 0, 1]
    est = get_predictor("xgb", monotone_constraints=mono).fit(X, y)
    grid = np.repeat(X[:1], 50, axis=0)
    grid[:, 5] = np.linspace(-3, 3, 50)
    assert np.all(np.diff(est.predict(grid)) >= -1e-9)


def test_metrics():
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert kendall_tau(t, t) == pytest.approx(1.0)
    assert spearman_rho(t, -t) == pytest.approx(-1.0)
    assert kendall_tau(t, np.ones(5)) == 0.0
    assert true_rank_of_best(t, t) == 1
    assert true_rank_of_best(t, -t) == 5
    y = np.arange(100.0)
    pred = y.copy()
    pred[90:] = pred[90:][::-1]  # the top 10% reversed, the rest right
    assert top_fraction_tau(y, pred, 0.1) == pytest.approx(-1.0)
    assert kendall_tau(y, pred) > 0.9
    assert interval_coverage([1, 2, 3, 4], [0, 0, 0, 5], [2, 2, 2, 6]) == 0.5


def test_anchor_selection():
    rng = np.random.default_rng(0)
    proxy, flops = rng.normal(size=500), rng.lognormal(size=500)
    a = spread_anchors(16, proxy=proxy, flops=flops, seed=3)
    assert a == spread_anchors(16, proxy=proxy, flops=flops, seed=3) and len(set(a)) == 16
    # spread covers the proxy range far better than chance: one anchor per proxy sixteenth
    strata = np.floor((np.argsort(np.argsort(proxy))[a]) / 500 * 16)
    assert len(set(strata)) >= 14
    assert len(set(random_anchors(500, 16, seed=1))) == 16
    assert set(spread_anchors(5, flops=flops, seed=0, exclude=a)).isdisjoint(a)
    X, y = synthetic(n=40)
    gp = get_predictor("gp").fit(X[:20], y[:20])
    nxt = uncertainty_anchors(gp, X, 3, exclude=range(20))
    std = gp.predict(X, return_std=True)[1]
    assert nxt[0] == 20 + int(np.argmax(std[20:])) and all(i >= 20 for i in nxt)
    with pytest.raises(PredictorError, match="std"):
        uncertainty_anchors(get_predictor("xgb").fit(X, y), X)
    assert explicit_anchors(["a", "b", "c"], ["c", "a"]) == [2, 0]
    with pytest.raises(PredictorError, match="not found: z"):
        explicit_anchors(["a", "b"], ["z"])


def test_ranking_report_and_final_fit():
    X, y = synthetic(n=12, seed=2)
    names = ["gap", "linear"]
    report = cross_validate_predictors(X, y, proxy_index=5, cost_index=0, predictors=names, n_splits=20)
    assert report.n_anchors == 12 and report.n_splits == 20
    assert report.scheme == "20 random 8/4 splits" and report.reference_scheme == "leave-one-out"
    assert [e.name for e in report.estimators] == ["supernet", *names]  # the baseline is always compared
    assert report.baseline == "supernet"
    assert {b.name for b in report.baselines} == {"proxy", "flops"}
    assert report.best in ["supernet", *names] and report.reason
    base = next(e for e in report.estimators if e.name == "supernet")
    assert base.tau_vs_proxy == 0.0 and base.tau_vs_proxy_se == 0.0
    for e in report.estimators:
        assert e.kendall_tau_se >= 0 and -1.0 <= e.kendall_tau <= 1.0
        assert -1.0 <= e.loo_kendall_tau <= 1.0 and 0.0 <= e.coverage <= 1.0
    if report.best != "supernet":  # a corrector must beat the baseline by more than its uncertainty
        b = report.best_score()
        assert b.tau_vs_proxy - report.margin * b.tau_vs_proxy_se > 0 and report.beats_proxy
    json.dumps(report.to_dict())
    text = report.format()
    assert "best:" in text and "proxy (all anchors)" in text and "vs supernet" in text
    model = fit_final(report.best, X, y, proxy_index=5, cost_index=0)
    lo, hi = model.predict_interval(X[:3])
    assert np.all(lo <= model.predict(X[:3])) and np.all(model.predict(X[:3]) <= hi)
    pickle.loads(pickle.dumps(model)).predict_interval(X[:3])


def test_pure_noise_labels_choose_the_supernet_baseline():
    chosen = []
    for seed in range(10):
        X = np.random.default_rng(seed).normal(size=(10, 6))
        y = np.random.default_rng(100 + seed).normal(size=10)  # stand-alone accuracy unrelated to anything
        report = cross_validate_predictors(X, y, proxy_index=5, cost_index=0, coverage=None, n_splits=30,
                                           predictors=["supernet_residual", "gap", "linear"])
        chosen.append(report.best)
        if report.best == "supernet":
            assert report.beats_proxy is False
            assert report.reason.startswith("nothing beats the supernet: the corrector is the calibrated supernet score")
            assert "nothing beats the supernet" in report.format()
    assert chosen.count("supernet") >= 8, chosen  # a corrector wins by luck rarely (about 16% each)


def test_margin_grows_with_the_number_of_candidates():
    assert adjusted_margin(1.0, 1) == 1.0
    assert 2.0 < adjusted_margin(1.0, 10) < 2.3
    assert adjusted_margin(0.5, 1) < adjusted_margin(0.5, 3) < adjusted_margin(0.5, 10)


def test_a_clear_effect_the_supernet_misses_chooses_a_corrector():
    rng = np.random.default_rng(3)
    n = 24
    X = np.zeros((n, 6))
    X[:, 0] = rng.integers(0, 2, n)  # a one-hot column: one op on one layer
    X[:, 1:5] = rng.integers(0, 2, (n, 4))
    X[:, 5] = rng.normal(size=n)  # supernet score
    y = X[:, 5] + 4.0 * X[:, 0]  # stand-alone accuracy: the supernet misses a strong op effect
    report = cross_validate_predictors(X, y, proxy_index=5, cost_index=None, coverage=None,
                                       predictors=["supernet_residual", "linear"])
    assert report.best != "supernet" and report.beats_proxy is True
    assert report.best_score().tau_vs_proxy > 0.2
    assert "beats the supernet by" in report.reason


def test_held_out_splits_are_shared_and_se_accounts_for_overlap():
    splits = random_splits(10, 30, 0.3, random_state=1)
    again = random_splits(10, 30, 0.3, random_state=1)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    assert all(len(test) == 3 and len(np.intersect1d(train, test)) == 0 for train, test in splits)
    assert all(len(test) == 2 for _, test in random_splits(4, 5, 0.3, random_state=0))  # at least two held out
    values = np.random.default_rng(0).normal(size=30)
    naive = values.std(ddof=1) / np.sqrt(30)
    assert corrected_se(values, 7, 3) > naive


def test_supernet_baseline_keeps_the_supernet_ranking():
    X, y = synthetic(n=30, seed=5)
    est = build_predictor("supernet", proxy_index=5, cost_index=0).fit(X, y)
    assert kendall_tau(X[:, 5], est.predict(X)) == pytest.approx(1.0)
    est = build_predictor("supernet", proxy_index=5).fit(X, -X[:, 5])  # even when the anchors disagree
    assert kendall_tau(X[:, 5], est.predict(X)) == pytest.approx(1.0)


def test_shrunk_residual_stays_close_to_the_supernet_with_few_anchors():
    X, y = synthetic(n=200, seed=6)
    strong = build_predictor("supernet_residual", proxy_index=5, cost_index=0, alpha=1e6).fit(X[:6], y[:6])
    assert kendall_tau(X[6:, 5], strong.predict(X[6:])) > 0.99  # a strong prior: the supernet's order
    many = build_predictor("supernet_residual", proxy_index=5, cost_index=0).fit(X[:150], y[:150])
    assert many.alpha_ in many.alphas
    assert kendall_tau(y[150:], many.predict(X[150:])) > kendall_tau(y[150:], X[150:, 5]) + 0.1
    assert 0.0 <= many.residual_share(X[150:]) <= 1.0
    flipped = build_predictor("supernet_residual", proxy_index=5, alpha=1e6).fit(X[:20], -X[:20, 5])
    assert flipped.coef_[1] > 0  # the slope of the supernet score is never negative


def _accepts_weights(name: str) -> bool:
    return "sample_weight" in inspect.signature(get_predictor(name).fit).parameters


@pytest.mark.parametrize("name", [n for n in list_predictors() if _accepts_weights(n)])
def test_sample_weight_changes_the_fit(name, data):
    X, y = data
    est = get_predictor(name, random_state=0)
    if name == "supernet_residual":  # fixed strength: weights would also move the chosen one
        est.set_params(alpha=30.0)
    plain = clone(est).fit(X, y).predict(X)
    if name != "rf":  # a forest draws its bootstrap differently once weights are given
        np.testing.assert_allclose(clone(est).fit(X, y, sample_weight=np.ones(len(y))).predict(X), plain, rtol=1e-6, atol=1e-6)
    w = np.where(np.arange(len(y)) < len(y) // 3, 20.0, 0.05)
    if name == "xgb_rank":
        with pytest.raises(PredictorError, match="sample_weight"):
            clone(est).fit(X, y, sample_weight=w)
        return
    weighted = clone(est).fit(X, y, sample_weight=w).predict(X)
    assert np.max(np.abs(weighted - plain)) > 1e-3
    # heavy rows are fitted better when they weigh more
    heavy = slice(0, len(y) // 3)
    assert np.mean((weighted[heavy] - y[heavy]) ** 2) <= np.mean((plain[heavy] - y[heavy]) ** 2) + 1e-9


def test_search_model_learner_takes_weights():
    assert _accepts_weights("xgb") and _accepts_weights("supernet") and _accepts_weights("supernet_residual")


def test_too_few_held_out_anchors_keep_the_baseline():
    X = np.random.default_rng(0).normal(size=(8, 6))
    y = X[:, 5] + 4.0 * X[:, 0]  # a clear effect, but 8 anchors leave 2 held out per split: one pair each
    report = cross_validate_predictors(X, y, proxy_index=5, cost_index=0, coverage=None, predictors=["supernet_residual"])
    assert report.best == "supernet" and "too weak evidence" in report.reason
    relaxed = cross_validate_predictors(X, y, proxy_index=5, cost_index=0, coverage=None,
                                        predictors=["supernet_residual"], min_held_out=2)
    assert relaxed.best == "supernet_residual"
