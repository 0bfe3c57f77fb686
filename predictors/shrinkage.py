"""Estimators anchored on the supernet score: its calibration alone, and a shrunk correction of it.

With a handful of stand-alone anchors a free model of the gap ranks worse than the
supernet it corrects (on macro-fmnist the supernet ranks 40 held-out architectures
with Kendall tau 0.71, a fitted trend with 0.53-0.66). Both estimators here start
from the supernet's own ranking and leave it only as far as the anchors justify:

* ``supernet``: the baseline. ``a + b * score`` with ``b > 0`` (weighted least
  squares), so it ranks exactly as the supernet and only moves the scale to the
  stand-alone accuracy's units.
* ``supernet_residual``: ``a + b * score + w . z`` where ``z`` are the standardised
  architecture columns (one-hot, counts, costs: every column but the score). The
  intercept and the score's slope are free; ``w`` has a Gaussian prior centred on
  zero (a ridge of strength ``alpha``), i.e. the prior is "the supernet is right up
  to scale". ``alpha=None`` picks the strength from ``alphas`` by exact
  leave-one-out error of the ridge; the smallest allowed strength,
  ``min(alphas)``, keeps each coefficient shrunk by at least ``n / (n + alpha)`` so
  that with few anchors the correction stays small next to the score.

Both take ``sample_weight`` and set ``needs_proxy``: the score is column
``proxy_index``; ``cost_index`` is accepted (the ranking report passes it to every
gap-correcting predictor) and the cost column simply stays among the ``z``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Predictor, check_positive
from .errors import PredictorError
from .registry import register_predictor

DEFAULT_ALPHAS = (10.0, 30.0, 100.0, 300.0, 1000.0, 1e4)


def _weights(sample_weight, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise PredictorError(
            f"The 'sample_weight' argument of fit must hold {n} finite non-negative weights, not all zero. Got {w.shape[0]} values."
        )
    return w


def _proxy_column(owner: str, proxy_index: int, n_features: int) -> int:
    if not -n_features <= int(proxy_index) < n_features:
        raise PredictorError(
            f"The 'proxy_index' parameter of {owner} must index one of the {n_features} columns of X. Got {proxy_index!r} instead."
        )
    return int(proxy_index) % n_features


def _weighted_scale(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column means and stds; constant columns get std 1 (they standardise to 0)."""
    mean = (w[:, None] * X).sum(0) / w.sum()
    std = np.sqrt((w[:, None] * (X - mean) ** 2).sum(0) / w.sum())
    return mean, np.where(std > 1e-12, std, 1.0)


def calibration(score: np.ndarray, y: np.ndarray, w: np.ndarray, min_slope: float = 0.05) -> tuple[float, float]:
    """Weighted least squares ``y ~ a + b * score`` as ``(a, b)``, with a slope that keeps the ranking.

    When the anchors disagree with the supernet (a least-squares slope below
    ``min_slope``), a flat line would predict one value for every architecture and a
    search could no longer tell them apart. The slope then matches the spreads
    instead, ``b = std(y) / std(score)`` (the supernet's ordering, on the scale of the
    anchors), which is what the calibrated-supernet fallback promises.
    """
    sw = w.sum()
    ms, my = (w * score).sum() / sw, (w * y).sum() / sw
    var = (w * (score - ms) ** 2).sum() / sw
    slope = (w * (score - ms) * (y - my)).sum() / sw / var if var > 0 else 0.0
    if slope < min_slope:
        var_y = (w * (y - my) ** 2).sum() / sw
        slope = float(np.sqrt(var_y / var)) if var > 0 and var_y > 0 else 1.0
        slope = max(slope, min_slope)
    return float(my - slope * ms), float(slope)


@register_predictor("supernet")
class SupernetCalibration(Predictor):
    """The supernet score alone, mapped to the target's units by ``a + b * score`` (``b > 0``).

    Its ranking is the supernet's; it is the baseline every corrector must beat.
    """

    needs_proxy = True

    def __init__(self, *, proxy_index: int = -1, cost_index: int | None = None, random_state: int = 0) -> None:
        self.proxy_index = proxy_index
        self.cost_index = cost_index  # unused: the baseline reads the score only
        self.random_state = random_state  # deterministic; kept for a uniform interface

    def fit(self, X, y, sample_weight=None) -> "SupernetCalibration":
        X, y = self._check_fit(X, y)
        self.proxy_column_ = _proxy_column("SupernetCalibration", self.proxy_index, X.shape[1])
        self.coef_ = calibration(X[:, self.proxy_column_], y, _weights(sample_weight, len(y)))
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        a, b = self.coef_
        return a + b * X[:, self.proxy_column_]


@register_predictor("supernet_residual")
class ShrunkResidualPredictor(Predictor):
    """Supernet score (free intercept and slope) plus a ridge-shrunk residual on the architecture columns.

    ``alpha``: ridge strength on standardised columns; ``None`` chooses it among
    ``alphas`` by exact (weighted) leave-one-out squared error. A slope of the score
    that comes out non-positive is replaced by the calibration slope and the
    residual refitted, so the supernet's order is never reversed.
    """

    needs_proxy = True

    def __init__(self, *, proxy_index: int = -1, cost_index: int | None = None, alpha: float | None = None,
                 alphas: Sequence[float] = DEFAULT_ALPHAS, random_state: int = 0) -> None:
        self.proxy_index = proxy_index
        self.cost_index = cost_index  # the cost column stays among the shrunk architecture columns
        self.alpha = alpha
        self.alphas = alphas
        self.random_state = random_state  # deterministic; kept for a uniform interface

    def fit(self, X, y, sample_weight=None) -> "ShrunkResidualPredictor":
        X, y = self._check_fit(X, y)
        w = _weights(sample_weight, len(y))
        grid = [float(self.alpha)] if self.alpha is not None else [float(a) for a in self.alphas]
        if not grid:
            raise PredictorError("The 'alphas' parameter of ShrunkResidualPredictor must be a non-empty list of floats. Got [] instead.")
        for a in grid:
            check_positive("ShrunkResidualPredictor", "alpha", a)
        p = _proxy_column("ShrunkResidualPredictor", self.proxy_index, X.shape[1])
        self.proxy_column_ = p
        self.arch_columns_ = np.array([i for i in range(X.shape[1]) if i != p], dtype=int)
        self.mean_, self.std_ = _weighted_scale(X, w)
        D = self._design(X)
        errors = [self._loo_error(D, y, w, a) for a in grid] if len(grid) > 1 else [0.0]
        self.alpha_ = grid[int(np.argmin(errors))]
        self.coef_ = self._solve(D, y, w, self.alpha_)
        if self.coef_[1] <= 0:  # never reverse the supernet: fix its slope to the calibration's, refit the rest
            a, b = calibration(X[:, p], y, w)
            b_std = b * self.std_[p]
            offset = y - b_std * D[:, 1]
            rest = self._solve(np.delete(D, 1, axis=1), offset, w, self.alpha_, n_free=1)
            self.coef_ = np.insert(rest, 1, b_std)
        return self

    def _design(self, X: np.ndarray) -> np.ndarray:
        """[1, standardised score, standardised architecture columns] (n, 2 + d)."""
        Z = (X - self.mean_) / self.std_
        return np.hstack([np.ones((len(X), 1)), Z[:, [self.proxy_column_]], Z[:, self.arch_columns_]])

    @staticmethod
    def _penalty(d: int, alpha: float, n_free: int) -> np.ndarray:
        pen = np.full(d, alpha)
        pen[:n_free] = 0.0
        return np.diag(pen)

    def _solve(self, D: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float, n_free: int = 2) -> np.ndarray:
        A = D.T @ (w[:, None] * D) + self._penalty(D.shape[1], alpha, n_free)
        return np.linalg.lstsq(A, D.T @ (w * y), rcond=None)[0]

    def _loo_error(self, D: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> float:
        """Weighted mean squared leave-one-out residual of the penalised fit (hat-matrix identity)."""
        A = D.T @ (w[:, None] * D) + self._penalty(D.shape[1], alpha, 2)
        Ainv = np.linalg.pinv(A)
        resid = y - D @ (Ainv @ (D.T @ (w * y)))
        h = np.einsum("ij,jk,ik->i", D, Ainv, D) * w  # diagonal of the weighted hat matrix
        loo = resid / np.maximum(1.0 - h, 1e-6)
        return float((w * loo**2).sum() / w.sum())

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        return self._design(X) @ self.coef_

    def residual_share(self, X) -> float:
        """How much of the predictions' spread the residual carries (0: pure supernet ranking)."""
        D = self._design(self._check_predict(X, False))
        sup = D[:, 1] * self.coef_[1]
        res = D[:, 2:] @ self.coef_[2:]
        total = float(np.std(sup + res))
        return float(np.std(res)) / total if total > 0 else 0.0
