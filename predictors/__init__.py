"""Predictors for evonas: architecture encodings, estimators, gap correction, intervals, rank metrics.

Everything follows scikit-learn (``fit(X, y)`` returns self, ``predict`` checks it
was fitted, ``clone`` works) and imports no torch.

>>> from search_spaces import get_space
>>> from predictors import ArchEncoder, cross_validate_predictors, fit_final
>>> enc = ArchEncoder(get_space("macro-fmnist"), extra_names=("supernet_score",))
>>> X = enc.transform(anchors, extra={"supernet_score": scores})          # doctest: +SKIP
>>> report = cross_validate_predictors(X, acc, proxy_index=enc.index_of("supernet_score"),
...                                    cost_index=enc.index_of("log_flops"))  # doctest: +SKIP
>>> model = fit_final(report.best, X, acc, proxy_index=..., cost_index=...)  # doctest: +SKIP
>>> lower, upper = model.predict_interval(X_new)                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names for type checkers and the API reference; at run time __getattr__ loads them
    from .base import Predictor
    from .boosting import XGBPredictor
    from .conformal import ConformalRegressor, empirical_coverage
    from .crossval import (
        BaselineScore,
        EstimatorScore,
        RankingReport,
        build_predictor,
        cross_validate_predictors,
        default_predictors,
        fit_final,
    )
    from .encoders import ArchEncoder
    from .ensemble import EnsemblePredictor
    from .errors import PredictorError, UnknownPredictorError
    from .estimators import ForestPredictor, GPPredictor, LinearPredictor
    from .gap import GapPredictor
    from .metrics import interval_coverage, kendall_tau, spearman_rho, top_fraction_tau, true_rank_of_best
    from .pairwise import PairwiseLinearPredictor
    from .registry import get_predictor, list_predictors, predictor_class, register_predictor
    from .selection import explicit_anchors, random_anchors, select_anchors, spread_anchors, uncertainty_anchors
    from .shrinkage import ShrunkResidualPredictor, SupernetCalibration

# each public name and the module that defines it: a module is imported when one of its names is first used,
# so ``import predictors.errors`` (as the command line does) costs no scikit-learn or xgboost import
_HOMES = {
    "Predictor": "base", "XGBPredictor": "boosting", "ConformalRegressor": "conformal",
    "empirical_coverage": "conformal", "BaselineScore": "crossval", "EstimatorScore": "crossval",
    "RankingReport": "crossval", "build_predictor": "crossval", "cross_validate_predictors": "crossval",
    "default_predictors": "crossval", "fit_final": "crossval", "ArchEncoder": "encoders",
    "EnsemblePredictor": "ensemble", "PredictorError": "errors", "UnknownPredictorError": "errors",
    "ForestPredictor": "estimators", "GPPredictor": "estimators", "LinearPredictor": "estimators",
    "GapPredictor": "gap", "interval_coverage": "metrics", "kendall_tau": "metrics", "spearman_rho": "metrics",
    "top_fraction_tau": "metrics", "true_rank_of_best": "metrics", "PairwiseLinearPredictor": "pairwise",
    "get_predictor": "registry", "list_predictors": "registry", "predictor_class": "registry",
    "register_predictor": "registry", "ShrunkResidualPredictor": "shrinkage", "SupernetCalibration": "shrinkage",
    "explicit_anchors": "selection", "random_anchors": "selection", "select_anchors": "selection",
    "spread_anchors": "selection", "uncertainty_anchors": "selection",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "ArchEncoder", "BaselineScore", "ConformalRegressor", "EnsemblePredictor", "EstimatorScore",
    "ForestPredictor", "GPPredictor", "GapPredictor", "LinearPredictor", "PairwiseLinearPredictor",
    "Predictor", "PredictorError", "RankingReport", "ShrunkResidualPredictor", "SupernetCalibration",
    "UnknownPredictorError", "XGBPredictor",
    "build_predictor", "cross_validate_predictors", "default_predictors", "empirical_coverage",
    "explicit_anchors", "fit_final", "get_predictor", "interval_coverage", "kendall_tau",
    "list_predictors", "predictor_class", "random_anchors", "register_predictor", "select_anchors",
    "spearman_rho", "spread_anchors", "top_fraction_tau", "true_rank_of_best", "uncertainty_anchors",
]
