"""Prediction intervals from cross-validated residuals (CV+ / jackknife+) that hold their coverage.

CV+ (Barber, Candes, Ramdas & Tibshirani, "Predictive inference with the
jackknife+", Ann. Statist. 2021): split the n training rows into K folds, fit one
model per fold on the other rows, and keep each row's out-of-fold residual R_i.
For a new x the interval is

    [ q_lo{ mu_{-k(i)}(x) - R_i },  q_hi{ mu_{-k(i)}(x) + R_i } ]

with the floor(alpha (n+1))-th smallest and ceil((1-alpha)(n+1))-th smallest values.
It is guaranteed to cover at least 1 - 2 alpha (usually about 1 - alpha) for
exchangeable data; with K = n it is the jackknife+. The point prediction comes from
one model fitted on all rows. ``method="cv"`` is the cheaper symmetric variant:
the full model's prediction plus or minus the conformal quantile of |R_i|.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold, LeaveOneOut
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from .base import fit_shared
from .errors import PredictorError
from .metrics import interval_coverage

METHODS = ("cv+", "cv")


def auto_folds(n: int) -> int:
    """Leave-one-out up to 20 rows, else 10 folds."""
    return n if n <= 20 else 10


class ConformalRegressor(BaseEstimator):
    """Wraps any regressor with CV+ intervals at ``coverage`` (default 90%).

    ``cv`` is the number of folds (``None``: leave-one-out up to 20 rows, else 10).
    After ``fit``: ``predict(X)`` is the full model's prediction, and
    ``predict_interval(X)`` returns ``(lower, upper)``.
    """

    def __init__(self, estimator, *, coverage: float = 0.9, method: str = "cv+", cv: int | None = None,
                 random_state: int = 0) -> None:
        self.estimator = estimator
        self.coverage = coverage
        self.method = method
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y) -> "ConformalRegressor":
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        if not 0.0 < self.coverage < 1.0:
            raise PredictorError(f"The 'coverage' parameter of ConformalRegressor must be in (0, 1). Got {self.coverage!r} instead.")
        if self.method not in METHODS:
            raise PredictorError(f"The 'method' parameter of ConformalRegressor must be one of {METHODS}. Got {self.method!r} instead.")
        n = len(y)
        folds = auto_folds(n) if self.cv is None else int(self.cv)
        if not 2 <= folds <= n:
            raise PredictorError(f"The 'cv' parameter of ConformalRegressor must be in [2, n_samples={n}]. Got {self.cv!r} instead.")
        splitter = LeaveOneOut() if folds == n else KFold(folds, shuffle=True, random_state=self.random_state)
        self.fold_of_ = np.empty(n, dtype=int)
        self.fold_models_ = []
        self.residuals_ = np.empty(n)
        for k, (train, test) in enumerate(splitter.split(X)):
            model = fit_shared(clone(self.estimator), X[train], y[train])
            self.fold_models_.append(model)
            self.fold_of_[test] = k
            self.residuals_[test] = np.abs(y[test] - model.predict(X[test]))
        self.model_ = fit_shared(clone(self.estimator), X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X, return_std: bool = False):
        """The full model's prediction (and its own std, if the wrapped predictor offers one)."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        if return_std:
            return self.model_.predict(X, return_std=True)
        return self.model_.predict(X)

    def predict_interval(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds at the stated coverage, one pair per row of X."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        n = len(self.residuals_)
        alpha = 1.0 - self.coverage
        k_hi = math.ceil((1.0 - alpha) * (n + 1))  # 1-based order statistic
        k_lo = math.floor(alpha * (n + 1))
        if self.method == "cv":
            q = np.inf if k_hi > n else np.sort(self.residuals_)[k_hi - 1]
            mid = self.model_.predict(X)
            return mid - q, mid + q
        fold_preds = np.stack([m.predict(X) for m in self.fold_models_])  # (folds, m)
        per_row = fold_preds[self.fold_of_]  # (n, m): each training row's out-of-fold model at X
        lows = per_row - self.residuals_[:, None]
        highs = per_row + self.residuals_[:, None]
        upper = np.full(len(X), np.inf) if k_hi > n else np.sort(highs, axis=0)[k_hi - 1]
        lower = np.full(len(X), -np.inf) if k_lo < 1 else np.sort(lows, axis=0)[k_lo - 1]
        return lower, upper


def empirical_coverage(conformal: ConformalRegressor, X, y) -> float:
    """Fraction of held-out ``y`` inside the fitted conformal intervals at ``X``."""
    lower, upper = conformal.predict_interval(X)
    return interval_coverage(y, lower, upper)
