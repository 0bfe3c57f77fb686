"""Gradient-boosted trees through XGBoost's scikit-learn interface, squared error or pairwise ranking.

``objective="pairwise"`` trains an ``XGBRanker`` (``rank:pairwise``) on all training
rows as one query group, then maps its scores to the target's units with a linear
fit of positive slope, so predictions stay comparable with the other predictors
while the order is the one the ranking objective learned.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from xgboost import XGBRanker, XGBRegressor

from .base import Predictor, check_positive
from .errors import PredictorError
from .registry import register_predictor

OBJECTIVES = ("regression", "pairwise")


@register_predictor("xgb")
@register_predictor("xgb_rank", objective="pairwise")
class XGBPredictor(Predictor):
    """XGBoost trees; ``monotone_constraints`` (one -1/0/1 per column) can force e.g. a rising proxy."""

    def __init__(self, *, objective: str = "regression", n_estimators: int = 300, max_depth: int = 3,
                 learning_rate: float = 0.05, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, min_child_weight: float = 1.0,
                 monotone_constraints: Sequence[int] | None = None, random_state: int = 0, n_jobs: int = 1) -> None:
        self.objective = objective
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.min_child_weight = min_child_weight
        self.monotone_constraints = monotone_constraints
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, sample_weight=None) -> "XGBPredictor":
        """Fit the trees; ``sample_weight`` (one per row) weights the squared error.

        XGBoost's ranking objective weights whole query groups, not rows, so the
        pairwise objective refuses non-uniform row weights instead of dropping them.
        """
        X, y = self._check_fit(X, y)
        weight = None
        if sample_weight is not None:
            weight = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if weight.shape[0] != len(y) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
                raise PredictorError(
                    f"The 'sample_weight' argument of XGBPredictor.fit must hold {len(y)} finite non-negative weights. "
                    f"Got {weight.shape[0]} values."
                )
            if self.objective == "pairwise" and np.ptp(weight) > 0:
                raise PredictorError(
                    "The 'sample_weight' argument of XGBPredictor.fit must be uniform with objective='pairwise' "
                    "(XGBoost weights ranking groups, not rows). Got non-uniform weights instead."
                )
        if self.objective not in OBJECTIVES:
            raise PredictorError(
                f"The 'objective' parameter of XGBPredictor must be one of {OBJECTIVES}. Got {self.objective!r} instead."
            )
        check_positive("XGBPredictor", "n_estimators", self.n_estimators, integer=True)
        check_positive("XGBPredictor", "learning_rate", self.learning_rate)
        mono = None
        if self.monotone_constraints is not None:
            mono = tuple(int(m) for m in self.monotone_constraints)
            if len(mono) != X.shape[1] or any(m not in (-1, 0, 1) for m in mono):
                raise PredictorError(
                    f"The 'monotone_constraints' parameter of XGBPredictor must hold one of -1, 0, 1 per feature "
                    f"({X.shape[1]}). Got {self.monotone_constraints!r} instead."
                )
        common = dict(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda,
            min_child_weight=self.min_child_weight, random_state=self.random_state, n_jobs=self.n_jobs,
            monotone_constraints=mono, tree_method="hist",
        )
        if self.objective == "regression":
            self.booster_ = XGBRegressor(objective="reg:squarederror", **common).fit(X, y, sample_weight=weight)
            self.scale_ = (0.0, 1.0)
        else:
            self.booster_ = XGBRanker(objective="rank:pairwise", **common).fit(X, y, qid=np.zeros(len(y), dtype=int))
            score = self.booster_.predict(X)
            spread = score.std()
            slope = np.cov(score, y, bias=True)[0, 1] / spread**2 if spread > 0 else 0.0
            slope = max(float(slope), 1e-6)
            self.scale_ = (float(y.mean() - slope * score.mean()), slope)
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        a, b = self.scale_
        return a + b * self.booster_.predict(X).astype(np.float64)
