"""The registry of predictors: one short name per estimator class.

>>> from predictors import get_predictor, list_predictors
>>> est = get_predictor("gp", random_state=0)       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from .errors import PredictorError, UnknownPredictorError

_PREDICTORS: dict[str, tuple[type, dict[str, Any]]] = {}
# the modules whose classes register themselves; imported on the first lookup, so that importing the
# package (e.g. for its errors) does not import scikit-learn and xgboost
BUILTIN = ("boosting", "ensemble", "estimators", "gap", "pairwise", "shrinkage")


def _registered() -> dict[str, tuple[type, dict[str, Any]]]:
    """The registry, with every built-in predictor module imported (they register on import)."""
    import importlib

    for module in BUILTIN:
        importlib.import_module(f"{__package__}.{module}")
    return _PREDICTORS

T = TypeVar("T", bound=type)


def register_predictor(name: str, **defaults: Any) -> Callable[[T], T]:
    """Class decorator: register ``cls`` under ``name``, built with ``defaults``.

    The same class may be registered under several names with different defaults
    (``xgb`` and ``xgb_rank`` differ only in their objective).
    """

    def decorate(cls: T) -> T:
        if name in _PREDICTORS and _PREDICTORS[name][0] is not cls:
            raise PredictorError(f"a predictor named {name!r} is already registered")
        _PREDICTORS[name] = (cls, dict(defaults))
        return cls

    return decorate


def get_predictor(name: str, **params: Any):
    """A new, unfitted estimator registered as ``name``; ``params`` override its defaults.

    An unknown name, or a parameter the estimator does not have, is an error that
    lists the valid ones. Every registered predictor takes ``random_state``.
    """
    registry = _registered()
    try:
        cls, defaults = registry[name]
    except KeyError:
        raise UnknownPredictorError(
            f"unknown predictor {name!r}; choose one of: {', '.join(sorted(registry))}"
        ) from None
    est = cls(**defaults)
    valid = est.get_params(deep=False)
    bad = sorted(k for k in params if k not in valid)
    if bad:
        raise PredictorError(
            f"predictor {name!r} has no parameter(s) {bad}; its parameters are: {', '.join(sorted(valid))}"
        )
    return est.set_params(**params)


def predictor_class(name: str) -> type:
    """The class registered as ``name`` (to read class-level tags without building one)."""
    get_predictor(name)  # raises the listing error for unknown names
    return _PREDICTORS[name][0]


def list_predictors() -> list[str]:
    """Names of every registered predictor, sorted."""
    return sorted(_registered())
