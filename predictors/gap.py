"""The gap-correcting predictor: stand-alone accuracy from a proxy score plus architecture features.

A supernet score (or any cheap proxy) already ranks architectures roughly; the
stand-alone anchors tell how it is biased. The model is

    prediction = trend(proxy, cost) + shrink * residual(architecture)

* ``trend``: a linear *pairwise-ranking* model of the target on the standardised
  proxy and (optionally) log-FLOPs, mapped to the target's units. With few anchors
  this is the part that pays: on NAS-Bench-201 with the 12-epoch accuracy as proxy,
  20 random anchors lift held-out Kendall tau from 0.65 (proxy alone) to about 0.75,
  because short or weight-shared training favours small networks and two weights
  are all it takes to undo that. A least-squares trend is worse (the long tail of
  broken cells dominates it), so it is an option (``trend="huber"``), not the default.
* ``residual``: optionally a strongly regularised model of what the trend misses,
  fitted on the architecture columns (every column except the proxy) and shrunk
  toward the trend by ``n / (n + shrink_n0)`` with ``n`` anchors. On NAS-Bench-201
  it does not help (see benchmarks/results/predictor_nb201.md); the ranking report
  keeps it as a candidate (``gap_residual``) for tasks where it does.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import HuberRegressor, Ridge
from sklearn.preprocessing import StandardScaler

from .base import Predictor, check_positive
from .errors import PredictorError
from .pairwise import PairwiseLinearPredictor, positive_linear_map
from .registry import get_predictor, predictor_class, register_predictor

TRENDS = ("pairwise", "huber")


@register_predictor("gap")
@register_predictor("gap_residual", residual="ridge")
class GapPredictor(Predictor):
    """Proxy-trend plus shrunk residual; column ``proxy_index`` of X is the proxy score.

    ``cost_index`` names the log-FLOPs column (``ArchEncoder.index_of("log_flops")``)
    that enters the trend beside the proxy; ``None`` uses the proxy alone.
    ``residual`` is ``None``, ``"ridge"`` (ridge of strength ``residual_alpha`` on
    standardised features) or the name of any architecture-only registered predictor.
    """

    needs_proxy = True

    def __init__(self, *, proxy_index: int = -1, cost_index: int | None = None, trend: str = "pairwise",
                 C: float = 1.0, residual: str | None = None, residual_alpha: float = 30.0,
                 shrink_n0: float = 50.0, random_state: int = 0) -> None:
        self.proxy_index = proxy_index
        self.cost_index = cost_index
        self.trend = trend
        self.C = C
        self.residual = residual
        self.residual_alpha = residual_alpha
        self.shrink_n0 = shrink_n0
        self.random_state = random_state

    def _columns(self, n_features: int) -> tuple[list[int], list[int]]:
        """(trend columns, residual columns) as non-negative indices."""
        def norm(name: str, idx: int) -> int:
            if not -n_features <= idx < n_features:
                raise PredictorError(
                    f"The {name!r} parameter of GapPredictor must index one of the {n_features} columns of X. "
                    f"Got {idx!r} instead."
                )
            return idx % n_features

        proxy = norm("proxy_index", int(self.proxy_index))
        trend = [proxy]
        if self.cost_index is not None:
            cost = norm("cost_index", int(self.cost_index))
            if cost == proxy:
                raise PredictorError("The 'cost_index' and 'proxy_index' parameters of GapPredictor name the same column")
            trend.append(cost)
        return trend, [i for i in range(n_features) if i != proxy]

    def fit(self, X, y) -> "GapPredictor":
        X, y = self._check_fit(X, y)
        if self.trend not in TRENDS:
            raise PredictorError(f"The 'trend' parameter of GapPredictor must be one of {TRENDS}. Got {self.trend!r} instead.")
        check_positive("GapPredictor", "C", self.C)
        check_positive("GapPredictor", "residual_alpha", self.residual_alpha)
        check_positive("GapPredictor", "shrink_n0", self.shrink_n0, allow_zero=True)
        self.trend_columns_, self.residual_columns_ = self._columns(X.shape[1])
        T = X[:, self.trend_columns_]
        if self.trend == "pairwise":
            self.trend_model_ = PairwiseLinearPredictor(C=self.C, random_state=self.random_state).fit(T, y)
        else:
            self.trend_model_ = _HuberTrend().fit(T, y)
        base = self.trend_model_.predict(T)
        self.shrink_ = 0.0
        self.residual_model_ = None
        if self.residual is not None and self.residual_columns_:
            R = X[:, self.residual_columns_]
            if self.residual == "ridge":
                model = _ScaledRidge(self.residual_alpha)
            elif predictor_class(self.residual).needs_proxy:
                raise PredictorError(f"The 'residual' parameter of GapPredictor must be architecture-only. Got {self.residual!r}.")
            else:
                model = get_predictor(self.residual, random_state=self.random_state)
            self.residual_model_ = model.fit(R, y - base)
            self.shrink_ = len(y) / (len(y) + float(self.shrink_n0))
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        out = self.trend_model_.predict(X[:, self.trend_columns_])
        if self.residual_model_ is not None:
            out = out + self.shrink_ * self.residual_model_.predict(X[:, self.residual_columns_])
        return out


class _HuberTrend:
    """Robust least-squares trend (Huber loss) on standardised columns; slope of the proxy kept positive."""

    def fit(self, T: np.ndarray, y: np.ndarray) -> "_HuberTrend":
        self.scaler_ = StandardScaler().fit(T)
        Z = self.scaler_.transform(T)
        try:
            self.model_ = HuberRegressor(max_iter=1000).fit(Z, y)
            score = self.model_.predict(Z)
        except ValueError:  # too few distinct rows for Huber: fall back to the proxy alone
            self.model_ = None
            score = Z[:, 0]
        self.scale_ = positive_linear_map(score, y)
        return self

    def predict(self, T: np.ndarray) -> np.ndarray:
        Z = self.scaler_.transform(T)
        score = self.model_.predict(Z) if self.model_ is not None else Z[:, 0]
        a, b = self.scale_
        return a + b * score


class _ScaledRidge:
    """Ridge regression of strength ``alpha`` on standardised features (the default residual)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def fit(self, R: np.ndarray, r: np.ndarray) -> "_ScaledRidge":
        self.scaler_ = StandardScaler().fit(R)
        self.model_ = Ridge(self.alpha).fit(self.scaler_.transform(R), r)
        return self

    def predict(self, R: np.ndarray) -> np.ndarray:
        return self.model_.predict(self.scaler_.transform(R))
