"""The ranking report: cross-validate every predictor on the anchors and pick the best.

``fit-predictor`` calls :func:`cross_validate_predictors` with the anchors' feature
matrix (supernet score as one column), their stand-alone accuracy, and the column
indices of the score and of log-FLOPs. It returns, by leave-one-out (up to 20
anchors) or K-fold cross-validation, the Kendall tau and Spearman rho against
stand-alone accuracy of (a) the proxy score alone, (b) FLOPs alone and (c) every
predictor's out-of-fold predictions, plus the empirical coverage of each
predictor's conformal intervals on the held-out anchors, and the name of the best
predictor by cross-validated Kendall tau (ties: Spearman rho).
:func:`fit_final` then fits that predictor on all anchors, wrapped with intervals.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from sklearn.model_selection import KFold, LeaveOneOut

from .conformal import ConformalRegressor
from .errors import PredictorError
from .metrics import kendall_tau, spearman_rho
from .registry import get_predictor, list_predictors, predictor_class


@dataclass(frozen=True)
class BaselineScore:
    """Rank correlation of a single column (proxy or FLOPs) with the target."""

    name: str
    kendall_tau: float
    spearman_rho: float


@dataclass(frozen=True)
class EstimatorScore:
    """Cross-validated quality of one predictor on the anchors."""

    name: str
    kendall_tau: float
    spearman_rho: float
    coverage: float | None  # fraction of held-out anchors inside their interval
    mean_interval_width: float | None
    seconds: float  # wall time of the whole cross-validation of this predictor


@dataclass
class RankingReport:
    """What ``cross_validate_predictors`` found; ``to_dict()`` is JSON-ready."""

    n_anchors: int
    scheme: str  # "leave-one-out" or "K-fold"
    target_coverage: float | None
    baselines: list[BaselineScore]
    estimators: list[EstimatorScore]
    best: str
    beats_proxy: bool | None  # None when there is no proxy column
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def best_score(self) -> EstimatorScore:
        return next(e for e in self.estimators if e.name == self.best)

    def format(self) -> str:
        """A readable text table of the report."""
        cov = f"{self.target_coverage:.0%}" if self.target_coverage is not None else "-"
        lines = [f"ranking report on {self.n_anchors} anchors ({self.scheme} cross-validation)",
                 f"{'':2}{'estimator':18}{'tau':>7}{'rho':>7}{'cover@' + cov:>12}{'width':>9}"]
        for b in self.baselines:
            lines.append(f"{'':2}{b.name + ' alone':18}{b.kendall_tau:7.3f}{b.spearman_rho:7.3f}{'-':>12}{'-':>9}")
        for e in self.estimators:
            c = f"{e.coverage:.2f}" if e.coverage is not None else "-"
            w = f"{e.mean_interval_width:.3g}" if e.mean_interval_width is not None else "-"
            mark = "*" if e.name == self.best else " "
            lines.append(f"{mark:2}{e.name:18}{e.kendall_tau:7.3f}{e.spearman_rho:7.3f}{c:>12}{w:>9}")
        lines.append(f"best: {self.best} (highest cross-validated Kendall tau)")
        lines += self.notes
        return "\n".join(lines)


def build_predictor(name: str, *, proxy_index: int | None = None, cost_index: int | None = None,
                    random_state: int = 0, **params):
    """A registered predictor, with the proxy/cost columns set if it is gap-correcting."""
    if predictor_class(name).needs_proxy:
        if proxy_index is None:
            raise PredictorError(f"predictor {name!r} corrects a proxy score: pass proxy_index (the score's column)")
        params.update(proxy_index=proxy_index, cost_index=cost_index)
    return get_predictor(name, random_state=random_state, **params)


def default_predictors(with_proxy: bool) -> list[str]:
    """Every registered predictor that can run on the given columns."""
    return [n for n in list_predictors() if with_proxy or not predictor_class(n).needs_proxy]


def cross_validate_predictors(
    X, y, *, proxy_index: int | None = None, cost_index: int | None = None,
    flops: Sequence[float] | None = None, predictors: Sequence[str] | None = None,
    folds: int | None = None, coverage: float | None = 0.9, random_state: int = 0,
) -> RankingReport:
    """Cross-validate predictors on anchors ``X`` (n, d) with stand-alone accuracy ``y``.

    ``proxy_index``: the column of X with the supernet/proxy score (enables the gap
    predictors and the proxy baseline). ``cost_index``: the log-FLOPs column (used by
    the gap trend, and as the FLOPs baseline unless ``flops`` is given).
    ``folds``: None = leave-one-out up to 20 anchors, else 10-fold. ``coverage``:
    target of the CV+ intervals, checked on the held-out anchors (nested CV); None
    skips intervals (faster).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = len(y)
    if X.ndim != 2 or X.shape[0] != n:
        raise PredictorError(f"X must be a 2-d array with one row per anchor ({n}); got shape {X.shape}")
    if n < 4:
        raise PredictorError(f"cross-validating predictors needs at least 4 anchors; got {n}")
    names = list(predictors) if predictors is not None else default_predictors(proxy_index is not None)
    if not names:
        raise PredictorError("no predictors to cross-validate")
    k = (n if n <= 20 else 10) if folds is None else int(folds)
    if not 2 <= k <= n:
        raise PredictorError(f"The 'folds' parameter must be in [2, n_anchors={n}]. Got {folds!r} instead.")
    splitter = LeaveOneOut() if k == n else KFold(k, shuffle=True, random_state=random_state)
    splits = list(splitter.split(X))

    baselines = []
    proxy_score = None
    if proxy_index is not None:
        proxy_score = BaselineScore("proxy", kendall_tau(y, X[:, proxy_index]), spearman_rho(y, X[:, proxy_index]))
        baselines.append(proxy_score)
    flops_col = np.asarray(flops, dtype=np.float64) if flops is not None else (X[:, cost_index] if cost_index is not None else None)
    if flops_col is not None:
        baselines.append(BaselineScore("flops", kendall_tau(y, flops_col), spearman_rho(y, flops_col)))

    scores = []
    for name in names:
        start = time.perf_counter()
        pred = np.empty(n)
        lo, hi = np.full(n, np.nan), np.full(n, np.nan)
        for train, test in splits:
            est = build_predictor(name, proxy_index=proxy_index, cost_index=cost_index, random_state=random_state)
            if coverage is not None and len(train) >= 3:
                conf = ConformalRegressor(est, coverage=coverage, cv=min(5, len(train)), random_state=random_state)
                conf.fit(X[train], y[train])
                pred[test] = conf.predict(X[test])
                lo[test], hi[test] = conf.predict_interval(X[test])
            else:
                pred[test] = est.fit(X[train], y[train]).predict(X[test])
        cov = width = None
        if coverage is not None:
            cov = float(np.mean((y >= lo) & (y <= hi)))
            width = float(np.mean(hi - lo))
        scores.append(EstimatorScore(name, kendall_tau(y, pred), spearman_rho(y, pred), cov, width,
                                     round(time.perf_counter() - start, 3)))
    best = max(scores, key=lambda s: (s.kendall_tau, s.spearman_rho)).name
    notes = []
    beats = None
    if proxy_score is not None:
        best_tau = next(s.kendall_tau for s in scores if s.name == best)
        beats = best_tau > proxy_score.kendall_tau
        if not beats:
            notes.append(f"no predictor beats the proxy score alone (tau {proxy_score.kendall_tau:.3f}); "
                         "rank by the supernet score, or add anchors")
    scheme = "leave-one-out" if k == n else f"{k}-fold"
    return RankingReport(n, scheme, coverage, baselines, scores, best, beats, notes)


def fit_final(name: str, X, y, *, proxy_index: int | None = None, cost_index: int | None = None,
              coverage: float = 0.9, random_state: int = 0) -> ConformalRegressor:
    """Fit predictor ``name`` on all anchors, wrapped with CV+ intervals (picklable)."""
    est = build_predictor(name, proxy_index=proxy_index, cost_index=cost_index, random_state=random_state)
    return ConformalRegressor(est, coverage=coverage, random_state=random_state).fit(X, y)
