"""What every evonas predictor shares: scikit-learn conventions plus an optional std.

A predictor is a scikit-learn regressor: hyper-parameters only in ``__init__``,
``fit(X, y)`` returns ``self``, learned attributes end in ``_``, and ``predict``
raises ``NotFittedError`` before ``fit``. ``predict(X, return_std=True)`` returns
``(mean, std)`` when the class sets ``offers_std = True``; the others raise.
Gap-correcting predictors set ``needs_proxy = True``: one column of ``X`` is the
proxy (supernet) score, named by their ``proxy_index`` parameter.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from .errors import PredictorError


class Predictor(RegressorMixin, BaseEstimator):
    """Base class: input checks and the ``return_std`` protocol."""

    offers_std: bool = False
    needs_proxy: bool = False

    def _check_fit(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        if X.shape[0] < 2:
            raise PredictorError(f"{type(self).__name__}.fit needs at least 2 samples; got {X.shape[0]}")
        self.n_features_in_ = X.shape[1]
        return X, y.astype(np.float64)

    def _check_predict(self, X, return_std: bool) -> np.ndarray:
        check_is_fitted(self)
        if return_std and not self.offers_std:
            raise PredictorError(
                f"{type(self).__name__} offers no standard deviation (return_std=True); use a "
                "predictor with offers_std (gp, rf, linear, ensemble) or conformal intervals"
            )
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise PredictorError(
                f"X has {X.shape[1]} features but {type(self).__name__} was fitted with {self.n_features_in_}"
            )
        return X


def check_positive(owner: str, name: str, value: float, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise a message naming the parameter, the rule and the value if ``value`` is out of range."""
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        kind = "an int" if integer else "a float"
        rng = "[0, inf)" if allow_zero else "(0, inf)"
        raise PredictorError(f"The {name!r} parameter of {owner} must be {kind} in the range {rng}. Got {value!r} instead.")
