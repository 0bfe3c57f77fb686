"""Conformal intervals hold their stated coverage on held-out data."""

from __future__ import annotations

import numpy as np
import pytest

from predictors import ConformalRegressor, PredictorError, build_predictor, empirical_coverage, get_predictor

from tests.conftest import NB201_CSV, needs_nb201


def test_cv_plus_covers_on_synthetic_data():
    rng = np.random.default_rng(0)
    covs, covs_cv = [], []
    for seed in range(8):
        X = rng.normal(size=(1030, 4))
        y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + np.sin(2 * X[:, 0]) + rng.standard_t(4, size=1030) * 0.5
        conf = ConformalRegressor(get_predictor("linear"), coverage=0.9, cv=10, random_state=seed).fit(X[:30], y[:30])
        covs.append(empirical_coverage(conf, X[30:], y[30:]))
        conf_cv = ConformalRegressor(get_predictor("linear"), coverage=0.9, method="cv", random_state=seed).fit(X[:30], y[:30])
        covs_cv.append(empirical_coverage(conf_cv, X[30:], y[30:]))
    assert 0.85 <= np.mean(covs) <= 0.99, covs
    assert 0.85 <= np.mean(covs_cv) <= 0.99, covs_cv


def test_interval_contains_prediction_and_widens_with_coverage():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = X[:, 0] + rng.normal(scale=0.5, size=40)
    narrow = ConformalRegressor(get_predictor("linear"), coverage=0.5).fit(X, y)
    wide = ConformalRegressor(get_predictor("linear"), coverage=0.95).fit(X, y)
    lo_n, hi_n = narrow.predict_interval(X[:5])
    lo_w, hi_w = wide.predict_interval(X[:5])
    assert np.all(hi_w - lo_w >= hi_n - lo_n)
    assert np.all(lo_w <= wide.predict(X[:5])) and np.all(wide.predict(X[:5]) <= hi_w)


def test_bad_parameters():
    X, y = np.zeros((5, 2)), np.arange(5.0)
    with pytest.raises(PredictorError, match=r"'coverage'.*Got 1.5"):
        ConformalRegressor(get_predictor("linear"), coverage=1.5).fit(X, y)
    with pytest.raises(PredictorError, match=r"'cv'.*Got 9"):
        ConformalRegressor(get_predictor("linear"), cv=9).fit(X, y)


@needs_nb201
def test_jackknife_plus_covers_on_nb201_with_20_anchors():
    from evonas.scorers.tables import load_table
    from predictors import ArchEncoder
    from search_spaces import get_space

    space = get_space("nb201")
    table = load_table(NB201_CSV, space)
    enc = ArchEncoder(space, extra_names=("proxy",))
    X = enc.transform(table.archs, extra={"proxy": table.column("cifar10_valid_acc_12ep")})
    y = table.column("cifar10_valid_acc")
    covs = []
    for seed in range(4):
        idx = np.random.default_rng(seed).permutation(len(y))
        train, test = idx[:20], idx[20:3020]
        est = build_predictor("gap", proxy_index=enc.index_of("proxy"), cost_index=enc.index_of("log_flops"))
        conf = ConformalRegressor(est, coverage=0.9).fit(X[train], y[train])  # leave-one-out: jackknife+
        covs.append(empirical_coverage(conf, X[test], y[test]))
    assert 0.8 <= np.mean(covs) <= 1.0, covs
