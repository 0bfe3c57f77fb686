"""Conformance suite over every registered predictor, plus metrics, selection and the ranking report."""

from __future__ import annotations

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
    report = cross_validate_predictors(X, y, proxy_index=5, cost_index=0, predictors=names)
    assert report.scheme == "leave-one-out" and report.n_anchors == 12
    assert [e.name for e in report.estimators] == names
    assert {b.name for b in report.baselines} == {"proxy", "flops"}
    assert report.best in names
    assert report.best_score().kendall_tau == max(e.kendall_tau for e in report.estimators)
    assert all(0.0 <= e.coverage <= 1.0 for e in report.estimators)
    json.dumps(report.to_dict())
    text = report.format()
    assert "best:" in text and "proxy alone" in text
    model = fit_final(report.best, X, y, proxy_index=5, cost_index=0)
    lo, hi = model.predict_interval(X[:3])
    assert np.all(lo <= model.predict(X[:3])) and np.all(model.predict(X[:3]) <= hi)
    pickle.loads(pickle.dumps(model)).predict_interval(X[:3])
