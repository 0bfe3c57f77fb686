"""What every evonas predictor shares: scikit-learn conventions plus an optional std.

A predictor is a scikit-learn regressor: hyper-parameters only in ``__init__``,
``fit(X, y)`` returns ``self``, learned attributes end in ``_``, and ``predict``
raises ``NotFittedError`` before ``fit``. ``predict(X, return_std=True)`` returns
``(mean, std)`` when the class sets ``offers_std = True``; the others raise.
Gap-correcting predictors set ``needs_proxy = True``: one column of ``X`` is the
proxy (supernet) score, named by their ``proxy_index`` parameter.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from .errors import PredictorError


class Predictor(RegressorMixin, BaseEstimator):
    """Base class: input checks and the ``return_std`` protocol."""

    offers_std: bool = False
    needs_proxy: bool = False
    combines_others: bool = False  # fits other registered predictors (e.g. the ensemble)

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


_FITS: ContextVar[dict | None] = ContextVar("predictors_shared_fits", default=None)


@contextmanager
def shared_fits() -> Iterator[None]:
    """Within this block, :func:`fit_shared` fits each (class, parameters, rows) once and reuses that fit.

    Predictors are deterministic given their ``random_state``, so a reused fit predicts
    exactly what a new one would. The fits are dropped when the block ends.
    """
    token = _FITS.set({})
    try:
        yield
    finally:
        _FITS.reset(token)


def fit_shared(estimator, X, y):
    """``estimator.fit(X, y)``, or the fitted equal estimator from the enclosing :func:`shared_fits` block."""
    cache = _FITS.get()
    if cache is None:
        return estimator.fit(X, y)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    digest = hashlib.blake2b(X.tobytes() + y.tobytes(), digest_size=16).hexdigest()
    params = sorted(estimator.get_params(deep=False).items())
    key = (type(estimator).__module__, type(estimator).__qualname__, repr(params), X.shape, y.shape, digest)
    if key not in cache:
        cache[key] = estimator.fit(X, y)
    return cache[key]
