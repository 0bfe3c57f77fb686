"""A linear model fitted with a pairwise ranking objective (RankNet-style logistic loss).

For every pair of training rows with different targets it learns ``w`` so that
``sigmoid(w . (x_i - x_j))`` is the probability that row ``i`` beats row ``j``
(L2-regularised logistic regression on standardised feature differences). Only the
order of the targets matters, so a long tail of very poor architectures does not
dominate the fit as it does a least-squares fit. Scores are then mapped to the
target's units by a linear fit of positive slope (order unchanged).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .base import Predictor, check_positive
from .registry import register_predictor


def pair_differences(X: np.ndarray, y: np.ndarray, max_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrised pair differences ``x_i - x_j`` and labels ``y_i > y_j`` (ties dropped)."""
    i, j = np.triu_indices(len(y), 1)
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    if len(i) > max_pairs:
        pick = rng.choice(len(i), max_pairs, replace=False)
        i, j = i[pick], j[pick]
    diff = X[i] - X[j]
    label = (y[i] > y[j]).astype(int)
    return np.vstack([diff, -diff]), np.concatenate([label, 1 - label])


def positive_linear_map(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y ~ a + b * score`` with ``b`` kept positive, as ``(a, b)``."""
    spread = float(score.std())
    slope = float(np.cov(score, y, bias=True)[0, 1]) / spread**2 if spread > 0 else 0.0
    slope = max(slope, 1e-6)
    return float(y.mean() - slope * score.mean()), slope


@register_predictor("pairwise_linear")
class PairwiseLinearPredictor(Predictor):
    """Linear ranking model; ``C`` is the inverse L2 strength (smaller = stronger pull to zero)."""

    def __init__(self, *, C: float = 0.1, max_pairs: int = 50_000, random_state: int = 0) -> None:
        self.C = C
        self.max_pairs = max_pairs
        self.random_state = random_state

    def fit(self, X, y) -> "PairwiseLinearPredictor":
        X, y = self._check_fit(X, y)
        check_positive("PairwiseLinearPredictor", "C", self.C)
        check_positive("PairwiseLinearPredictor", "max_pairs", self.max_pairs, integer=True)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        diff, label = pair_differences(Z, y, self.max_pairs, np.random.default_rng(self.random_state))
        if len(label) == 0:  # every target equal: nothing to rank
            self.coef_ = np.zeros(X.shape[1])
        else:
            model = LogisticRegression(C=self.C, fit_intercept=False, max_iter=1000).fit(diff, label)
            self.coef_ = model.coef_.ravel().copy()
        self.scale_ = positive_linear_map(Z @ self.coef_, y)
        return self

    def decision_function(self, X) -> np.ndarray:
        """The raw ranking score ``w . standardised(x)`` (higher ranks first)."""
        X = self._check_predict(X, False)
        return self.scaler_.transform(X) @ self.coef_

    def predict(self, X, return_std: bool = False):
        score = self.decision_function(self._check_predict(X, return_std))
        a, b = self.scale_
        return a + b * score
