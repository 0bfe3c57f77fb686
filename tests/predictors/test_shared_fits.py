"""Reusing fits inside the ranking report changes no figure of it, only its cost."""

from __future__ import annotations

import numpy as np
import pytest

from predictors import build_predictor, cross_validate_predictors, kendall_tau, spearman_rho
from predictors.base import fit_shared, shared_fits
from predictors.crossval import random_splits
from tests.predictors.test_predictors import synthetic

FIGURES = ("kendall_tau", "spearman_rho", "kendall_tau_se", "coverage", "mean_interval_width", "loo_kendall_tau",
           "loo_spearman_rho")


def test_an_equal_fit_is_reused_only_inside_the_block_and_only_for_equal_class_parameters_and_rows():
    X, y = synthetic(n=12, seed=1)
    rf = lambda **kw: build_predictor("rf", n_estimators=5, **kw)  # noqa: E731
    assert fit_shared(rf(), X, y) is not fit_shared(rf(), X, y)  # no block: every call fits
    with shared_fits():
        first = fit_shared(rf(), X, y)
        assert fit_shared(rf(), X.copy(), y.copy()) is first  # equal rows, another array
        assert fit_shared(rf(random_state=1), X, y) is not first  # another parameter
        assert fit_shared(rf(), X[:-1], y[:-1]) is not first  # other rows
        assert fit_shared(rf(), X, y + 1.0) is not first  # other targets
        assert fit_shared(build_predictor("linear"), X, y) is not first  # another class
        with shared_fits():
            assert fit_shared(rf(), X, y) is not first  # an inner block starts empty
        assert fit_shared(rf(), X, y) is first
    assert fit_shared(rf(), X, y) is not first  # the block's fits are dropped with it


@pytest.mark.parametrize("n", [7])
def test_the_report_of_an_ensemble_beside_its_members_equals_each_one_alone(n, monkeypatch):
    from predictors.estimators import ForestPredictor

    monkeypatch.setitem(ForestPredictor.__init__.__kwdefaults__, "n_estimators", 10)  # a cheaper forest, same code
    X, y = synthetic(n=n, seed=4)
    names = ["ensemble", "gp", "linear", "rf"]
    together = cross_validate_predictors(X, y, predictors=names, n_splits=12)
    for name in names:  # no proxy column, so no baseline: alone, nothing can be shared
        alone = cross_validate_predictors(X, y, predictors=[name], n_splits=12)
        t = next(e for e in together.estimators if e.name == name)
        s = next(e for e in alone.estimators if e.name == name)
        for figure in FIGURES:
            assert getattr(t, figure) == getattr(s, figure), (name, figure)


def test_a_split_drawn_twice_counts_twice_with_the_same_figures():
    X, y = synthetic(n=5, seed=7)  # 10 distinct 3/2 splits: 40 draws repeat many
    splits = random_splits(5, 40, 0.3, random_state=0)
    assert len({test.tobytes() for _, test in splits}) < len(splits)
    report = cross_validate_predictors(X, y, proxy_index=5, cost_index=0, predictors=["linear"], n_splits=40,
                                       coverage=None)
    taus, rhos = [], []
    for train, test in splits:  # every draw fitted afresh, as the report's definition says
        pred = build_predictor("linear").fit(X[train], y[train]).predict(X[test])
        taus.append(kendall_tau(y[test], pred))
        rhos.append(spearman_rho(y[test], pred))
    linear = next(e for e in report.estimators if e.name == "linear")
    assert linear.kendall_tau == pytest.approx(float(np.mean(taus)), abs=1e-12)
    assert linear.spearman_rho == pytest.approx(float(np.mean(rhos)), abs=1e-12)
