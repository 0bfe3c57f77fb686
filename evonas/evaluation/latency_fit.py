"""Per-(layer, option) latencies fitted to whole networks, shrunk toward the isolated timings.

Timing each layer alone misses what a network does to it: at batch 1 the layers of the
small fmnist spaces take 20-200 microseconds, most of it per-operator dispatch, and a
layer inside a chain does not cost what it costs alone (caches, memory formats,
allocator reuse). Whole small networks time in about a millisecond, so a few hundred of
them cost seconds, and their times say directly what each option costs in a network.

:class:`AdditiveLatencyFit` fits ``y = b + sum_i w[i, arch[i]]`` to measured
end-to-end times ``y`` by ridge regression toward a prior (the isolated table ``w0``,
``b0``) in relative terms::

    minimise  sum_n ((x_n . w + b - y_n) / y_n) ** 2 + lam * (N / ybar ** 2) * |w - w0| ** 2

(the intercept is barely shrunk), so a few networks move the entries only where the data
say so, and many networks override the prior. ``lam`` is chosen by K-fold
cross-validation on the fitting networks, the same folds give the fit's held-out MAPE,
and entries that come out negative are fixed at 0 and the rest refitted. It follows
scikit-learn's estimator conventions: hyper-parameters in ``__init__``, ``fit(X, y)``
returns ``self``, learned attributes end in ``_``. numpy only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["AdditiveLatencyFit", "LAMBDAS"]

LAMBDAS = (0.003, 0.03, 0.3, 3.0, 30.0)  # prior strengths tried by cross-validation


def _mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(pred - y) / y))


def _solve(X: np.ndarray, y: np.ndarray, prior: np.ndarray, b0: float, lam: float, free: np.ndarray) -> np.ndarray:
    """Weights (columns, then the intercept) of the relative ridge; columns not ``free`` stay 0."""
    n, p = X.shape
    cols = np.flatnonzero(free)
    A = np.c_[X[:, cols], np.ones(n)] / y[:, None]  # relative residuals
    t = np.ones(n)
    scale = lam * n / float(np.mean(y)) ** 2
    P = np.diag(np.r_[np.full(len(cols), scale), 1e-9 * n / float(np.mean(y)) ** 2])
    target = np.r_[prior[cols], b0]
    sol = np.linalg.solve(A.T @ A + P, A.T @ t + P @ target)
    out = np.zeros(p + 1)
    out[cols] = sol[:-1]
    out[-1] = sol[-1]
    return out


class AdditiveLatencyFit:
    """Ridge fit of per-option costs and an intercept to end-to-end times, shrunk toward a prior."""

    def __init__(self, prior: Sequence[float], prior_intercept: float, *, lambdas: Sequence[float] = LAMBDAS,
                 folds: int = 5, seed: int = 0) -> None:
        self.prior = prior
        self.prior_intercept = prior_intercept
        self.lambdas = lambdas
        self.folds = folds
        self.seed = seed

    def _fit_one(self, X: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
        prior = np.asarray(self.prior, dtype=float)
        free = np.ones(X.shape[1], dtype=bool)
        for _ in range(X.shape[1] + 1):  # fix negative costs at 0, refit the rest
            sol = _solve(X, y, prior, float(self.prior_intercept), lam, free)
            negative = free & (sol[:-1] < 0)
            if not negative.any():
                break
            free &= ~negative
        return sol[:-1], float(sol[-1])

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AdditiveLatencyFit":
        """Choose ``lam`` by K-fold CV (held-out MAPE), then fit on all rows; returns self."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or len(X) != len(y) or X.shape[1] != len(self.prior):
            raise ValueError(f"X must be (n, {len(self.prior)}) with one time per row; got {X.shape} and {y.shape}")
        if len(y) < 2 * self.folds or not np.all(y > 0):
            raise ValueError(f"need at least {2 * self.folds} positive times to fit; got {len(y)}")
        order = np.random.default_rng(self.seed).permutation(len(y))
        fold_of = np.empty(len(y), dtype=int)
        fold_of[order] = np.arange(len(y)) % self.folds
        cv = {}
        for lam in self.lambdas:
            pred = np.empty(len(y))
            for k in range(self.folds):
                test = fold_of == k
                w, b = self._fit_one(X[~test], y[~test], lam)
                pred[test] = X[test] @ w + b
            cv[float(lam)] = _mape(pred, y)
        self.lambda_ = min(cv, key=cv.get)
        self.cv_mape_ = cv[self.lambda_]
        self.cv_mape_by_lambda_ = cv
        self.coef_, self.intercept_ = self._fit_one(X, y, self.lambda_)
        self.train_mape_ = _mape(X @ self.coef_ + self.intercept_, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise RuntimeError("This AdditiveLatencyFit is not fitted yet; call fit(X, y) first.")
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_
