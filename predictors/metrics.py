"""Rank and interval metrics: how well predicted scores order architectures, and whether intervals hold.

Higher is better for every score here (accuracies, not errors). Ties are handled
as scipy does (Kendall's tau-b).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import kendalltau, spearmanr

from .errors import PredictorError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise PredictorError(f"y_true and y_pred must have the same length; got {t.shape[0]} and {p.shape[0]}")
    return t, p


def _nan_to_zero(v: float) -> float:
    """A constant input has no defined correlation; count it as no information (0)."""
    return 0.0 if v is None or math.isnan(v) else float(v)


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's tau-b between true and predicted values (0 when either is constant)."""
    t, p = _pair(y_true, y_pred)
    if len(t) < 2:
        return 0.0
    with warnings.catch_warnings():  # a constant input is scored 0 below, on purpose
        warnings.simplefilter("ignore")
        return _nan_to_zero(kendalltau(t, p).statistic)


def spearman_rho(y_true, y_pred) -> float:
    """Spearman's rank correlation (0 when either is constant)."""
    t, p = _pair(y_true, y_pred)
    if len(t) < 2:
        return 0.0
    with warnings.catch_warnings():  # a constant input is scored 0 below, on purpose
        warnings.simplefilter("ignore")
        return _nan_to_zero(spearmanr(t, p).statistic)


def top_fraction_tau(y_true, y_pred, fraction: float = 0.1) -> float:
    """Kendall tau among the architectures whose *true* value is in the top ``fraction``.

    What matters for search: does the predictor order the good architectures?
    """
    if not 0.0 < fraction <= 1.0:
        raise PredictorError(f"The 'fraction' parameter must be in (0, 1]. Got {fraction!r} instead.")
    t, p = _pair(y_true, y_pred)
    k = max(2, int(math.ceil(fraction * len(t))))
    top = np.argsort(-t, kind="stable")[:k]
    return kendall_tau(t[top], p[top])


def true_rank_of_best(y_true, y_pred) -> int:
    """The true rank (1 = truly best) of the architecture the predictor puts first.

    Among predicted ties the first in input order is taken; the rank counts how many
    architectures are truly strictly better, plus one.
    """
    t, p = _pair(y_true, y_pred)
    if len(t) == 0:
        raise PredictorError("true_rank_of_best needs at least one architecture")
    best = int(np.argmax(p))
    return int((t > t[best]).sum()) + 1


def interval_coverage(y_true, lower, upper) -> float:
    """Fraction of ``y_true`` inside ``[lower, upper]``."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    if not (t.shape == lo.shape == hi.shape):
        raise PredictorError(f"y_true, lower and upper must have the same length; got {t.shape[0]}, {lo.shape[0]}, {hi.shape[0]}")
    if len(t) == 0:
        return math.nan
    return float(np.mean((t >= lo) & (t <= hi)))
