"""An ensemble of registered predictors: the mean of their predictions, with a combined std.

The std combines each member's own std (where it offers one) with the spread of the
members' means: ``sqrt(mean(member_var) + var(member_means))``, the variance of an
equal-weight mixture.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Predictor, fit_shared
from .errors import PredictorError
from .registry import get_predictor, predictor_class, register_predictor


@register_predictor("ensemble")
class EnsemblePredictor(Predictor):
    """Mean of ``members`` (registered names, each built with this ``random_state``)."""

    offers_std = True
    combines_others = True

    def __init__(self, *, members: Sequence[str] = ("linear", "gp", "rf"), random_state: int = 0) -> None:
        self.members = members
        self.random_state = random_state

    def fit(self, X, y) -> "EnsemblePredictor":
        X, y = self._check_fit(X, y)
        names = list(self.members)
        if not names or "ensemble" in names:
            raise PredictorError(
                f"The 'members' parameter of EnsemblePredictor must be a non-empty list of registered "
                f"predictor names other than 'ensemble'. Got {self.members!r} instead."
            )
        for name in names:
            if predictor_class(name).needs_proxy:
                raise PredictorError(f"ensemble member {name!r} needs a proxy column; ensemble members must be architecture-only")
        self.estimators_ = [fit_shared(get_predictor(n, random_state=self.random_state), X, y) for n in names]
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        means, variances = [], []
        for est in self.estimators_:
            if return_std and est.offers_std:
                m, s = est.predict(X, return_std=True)
                variances.append(np.square(s))
            else:
                m = est.predict(X)
                variances.append(np.zeros(len(X)))
            means.append(m)
        means_arr = np.stack(means)  # (members, n)
        mean = means_arr.mean(axis=0)
        if not return_std:
            return mean
        return mean, np.sqrt(np.stack(variances).mean(axis=0) + means_arr.var(axis=0))
