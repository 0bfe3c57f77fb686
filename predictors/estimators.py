"""Architecture-only regressors with a standard deviation: Gaussian process, random forest, linear.

Each standardises its inputs, so one-hot columns, counts and log-costs mix freely.
All run single-threaded (other jobs share the cores).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.ensemble import RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import BayesianRidge
from sklearn.preprocessing import StandardScaler

from .base import Predictor, check_positive
from .registry import register_predictor


@register_predictor("gp")
class GPPredictor(Predictor):
    """Gaussian-process regression: constant * Matern(nu) + white noise on standardised inputs.

    The kernel hyper-parameters are fitted by marginal likelihood with
    ``n_restarts_optimizer`` random restarts; ``predict(X, return_std=True)`` gives
    the posterior std of the noisy target.
    """

    offers_std = True

    def __init__(self, *, nu: float = 2.5, length_scale: float = 3.0, noise: float = 0.1,
                 n_restarts_optimizer: int = 0, random_state: int = 0) -> None:
        self.nu = nu
        self.length_scale = length_scale
        self.noise = noise
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state

    def fit(self, X, y) -> "GPPredictor":
        X, y = self._check_fit(X, y)
        check_positive("GPPredictor", "length_scale", self.length_scale)
        check_positive("GPPredictor", "noise", self.noise)
        self.scaler_ = StandardScaler().fit(X)
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(self.length_scale, (1e-2, 1e3), nu=self.nu) + WhiteKernel(
            self.noise, (1e-5, 1e1)
        )
        gp = GaussianProcessRegressor(
            kernel, normalize_y=True, n_restarts_optimizer=self.n_restarts_optimizer, random_state=self.random_state
        )
        with warnings.catch_warnings():  # hyper-parameters at a bound are expected with a handful of anchors
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp_ = gp.fit(self.scaler_.transform(X), y)
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        out = self.gp_.predict(self.scaler_.transform(X), return_std=return_std)
        if return_std:
            mean, std = out
            return mean, np.maximum(std, 0.0)
        return out


@register_predictor("rf")
class ForestPredictor(Predictor):
    """Random forest; its std is the spread of the individual trees' predictions."""

    offers_std = True

    def __init__(self, *, n_estimators: int = 100, min_samples_leaf: int = 2, max_features: float = 0.5,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, sample_weight=None) -> "ForestPredictor":
        X, y = self._check_fit(X, y)
        check_positive("ForestPredictor", "n_estimators", self.n_estimators, integer=True)
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            random_state=self.random_state, n_jobs=self.n_jobs,
        ).fit(X, y, sample_weight=sample_weight)
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        if not return_std:
            return self.forest_.predict(X)
        per_tree = np.stack([t.predict(X) for t in self.forest_.estimators_])  # (trees, n)
        return per_tree.mean(axis=0), per_tree.std(axis=0)


@register_predictor("linear")
class LinearPredictor(Predictor):
    """Bayesian ridge regression on standardised inputs; std from the weight posterior and noise."""

    offers_std = True

    def __init__(self, *, max_iter: int = 300, random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.random_state = random_state  # deterministic already; kept for a uniform interface

    def fit(self, X, y, sample_weight=None) -> "LinearPredictor":
        X, y = self._check_fit(X, y)
        check_positive("LinearPredictor", "max_iter", self.max_iter, integer=True)
        self.scaler_ = StandardScaler().fit(X)
        self.model_ = BayesianRidge(max_iter=self.max_iter).fit(self.scaler_.transform(X), y, sample_weight=sample_weight)
        return self

    def predict(self, X, return_std: bool = False):
        X = self._check_predict(X, return_std)
        return self.model_.predict(self.scaler_.transform(X), return_std=return_std)
