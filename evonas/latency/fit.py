"""Per-(layer, option) latencies fitted to whole networks, shrunk toward the isolated timings.

Timing each layer alone misses what a network does to it: at batch 1 the layers of the
small fmnist spaces take 20-200 microseconds, most of it per-operator dispatch, and a
layer inside a chain does not cost what it costs alone (caches, memory formats,
allocator reuse). Whole small networks time in about a millisecond, so a few hundred of
them cost seconds, and their times say directly what each option costs in a network.

:class:`AdditiveLatencyFit` fits ``y = b + sum_i w[i, arch[i]]`` to measured
end-to-end times ``y`` by ridge regression toward a prior (the isolated table ``w0``,
``b0``) in relative terms::

    minimise  sum_n ((x_n . w + b - y_n) / y_n) ** 2 + lam * (N / ybar ** 2) * |w - w0| ** 2

(the intercept is barely shrunk), so a few networks move the entries only where the data
say so, and many networks override the prior. ``lam`` is chosen by K-fold
cross-validation on the fitting networks, the same folds give the fit's held-out MAPE,
and entries that come out negative are fixed at 0 and the rest refitted. It follows
scikit-learn's estimator conventions: hyper-parameters in ``__init__``, ``fit(X, y)``
returns ``self``, learned attributes end in ``_``. numpy, and scipy for Kendall tau.

:class:`AffineLatencyFit` is the simpler candidate between the isolated table and the
per-entry fit: ``y = a * p + b`` on the isolated prediction ``p``, by least squares on
relative residuals (``a > 0`` keeps the isolated table's ranking and fixes only its
scale). :func:`choose_table` decides among the three, nested by complexity: the scaled
table replaces the isolated one only when its cross-validated MAPE is ``min_gain``
points lower, and the per-entry fit replaces whichever of those was chosen only when it
beats that one by ``min_gain`` points. Both fits use the same folds
(:func:`fold_ids`), so their held-out errors compare like for like.

A table ranks networks as well as it prices them (a latency objective, a limit between
two networks), and only the per-entry fit can change the isolated table's ranking: a
positive scale keeps it. So the fit also replaces the simpler choice when its
cross-validated predictions rank the fitting networks (Kendall tau) at least
``tau_gain`` better at no higher MAPE. On 30 held-out mobilenet-fmnist networks (eager
PyTorch, batch 1, ``benchmarks/latency.py``) one run's fit had a MAPE of 4.0% against
the scaled table's 3.7% and ranked them with tau 0.90 where the scaled table reached
0.78; an earlier run's fit ranked worse (0.89 against 0.93). The held-out tau on the
fitting networks tells the two cases apart within a build.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

__all__ = ["AdditiveLatencyFit", "AffineLatencyFit", "KINDS", "LAMBDAS", "TAU_CONFIRM_SLACK", "TAU_GAIN", "TableChoice",
           "affine_fit", "choose_table", "confirm_choice", "fold_ids"]

LAMBDAS = (0.003, 0.03, 0.3, 3.0, 30.0)  # prior strengths tried by cross-validation
KINDS = ("isolated", "scaled", "fitted")  # the candidate tables, simplest first
TAU_GAIN = 0.03  # how much better the fit must rank the fitting networks, held out, to win at no higher MAPE
# on the fresh networks, a fit chosen for its ranking may price this many points worse than the table below it (its
# MAPE was about that table's on the fitting networks; ten networks would otherwise undo it on a coin flip)
TAU_CONFIRM_SLACK = 1.0


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """The cross-validation fold (0 .. folds-1) of each of ``n`` rows: a seeded permutation, dealt round robin."""
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % folds
    return fold_of


def _mape(pred: np.ndarray, y: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(pred - y) / y))


def _tau(pred: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau (tau-b) of ``pred`` against ``y``; NaN when either has no spread."""
    if len(y) < 2 or np.ptp(pred) == 0 or np.ptp(y) == 0:
        return float("nan")
    from scipy.stats import kendalltau

    return float(kendalltau(pred, y).statistic)


def _solve(X: np.ndarray, y: np.ndarray, prior: np.ndarray, b0: float, lam: float, free: np.ndarray) -> np.ndarray:
    """Weights (columns, then the intercept) of the relative ridge; columns not ``free`` stay 0."""
    n, p = X.shape
    cols = np.flatnonzero(free)
    A = np.c_[X[:, cols], np.ones(n)] / y[:, None]  # relative residuals
    t = np.ones(n)
    scale = lam * n / float(np.mean(y)) ** 2
    P = np.diag(np.r_[np.full(len(cols), scale), 1e-9 * n / float(np.mean(y)) ** 2])
    target = np.r_[prior[cols], b0]
    sol = np.linalg.solve(A.T @ A + P, A.T @ t + P @ target)
    out = np.zeros(p + 1)
    out[cols] = sol[:-1]
    out[-1] = sol[-1]
    return out


class AdditiveLatencyFit:
    """Ridge fit of per-option costs and an intercept to end-to-end times, shrunk toward a prior."""

    def __init__(self, prior: Sequence[float], prior_intercept: float, *, lambdas: Sequence[float] = LAMBDAS,
                 folds: int = 5, seed: int = 0) -> None:
        self.prior = prior
        self.prior_intercept = prior_intercept
        self.lambdas = lambdas
        self.folds = folds
        self.seed = seed

    def _fit_one(self, X: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
        prior = np.asarray(self.prior, dtype=float)
        free = np.ones(X.shape[1], dtype=bool)
        for _ in range(X.shape[1] + 1):  # fix negative costs at 0, refit the rest
            sol = _solve(X, y, prior, float(self.prior_intercept), lam, free)
            negative = free & (sol[:-1] < 0)
            if not negative.any():
                break
            free &= ~negative
        return sol[:-1], float(sol[-1])

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AdditiveLatencyFit":
        """Choose ``lam`` by K-fold CV (held-out MAPE), then fit on all rows; returns self."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or len(X) != len(y) or X.shape[1] != len(self.prior):
            raise ValueError(f"X must be (n, {len(self.prior)}) with one time per row; got {X.shape} and {y.shape}")
        if len(y) < 2 * self.folds or not np.all(y > 0):
            raise ValueError(f"need at least {2 * self.folds} positive times to fit; got {len(y)}")
        fold_of = fold_ids(len(y), self.folds, self.seed)
        cv, held_out = {}, {}
        for lam in self.lambdas:
            pred = np.empty(len(y))
            for k in range(self.folds):
                test = fold_of == k
                w, b = self._fit_one(X[~test], y[~test], lam)
                pred[test] = X[test] @ w + b
            cv[float(lam)] = _mape(pred, y)
            held_out[float(lam)] = pred
        self.lambda_ = min(cv, key=cv.get)
        self.cv_mape_ = cv[self.lambda_]
        self.cv_pred_ = held_out[self.lambda_]  # each network predicted by the fit to the folds without it
        self.cv_mape_by_lambda_ = cv
        self.coef_, self.intercept_ = self._fit_one(X, y, self.lambda_)
        self.train_mape_ = _mape(X @ self.coef_ + self.intercept_, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise RuntimeError("This AdditiveLatencyFit is not fitted yet; call fit(X, y) first.")
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_


def affine_fit(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising ``sum(((a * p + b) - y) / y) ** 2)``: a line through relative errors, not absolute ones.

    Relative residuals weigh a fast network's error as much as a slow one's, as MAPE does.
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    A = np.c_[p, np.ones(len(p))] / y[:, None]
    (a, b), *_ = np.linalg.lstsq(A, np.ones(len(y)), rcond=None)
    return float(a), float(b)


class AffineLatencyFit:
    """``y = a * p + b`` on the isolated table's predictions ``p``, by relative least squares, with its K-fold MAPE.

    A scale keeps the isolated table's ranking (Kendall tau) and fixes its level: at
    batch 1 the per-entry fit can fix the level as well, but adds noise to the ranking.
    ``a_ <= 0`` would reverse the ranking; :func:`choose_table` then leaves this
    candidate out.
    """

    def __init__(self, *, folds: int = 5, seed: int = 0) -> None:
        self.folds = folds
        self.seed = seed

    def fit(self, p: np.ndarray, y: np.ndarray) -> "AffineLatencyFit":
        """Fit on all rows; ``cv_mape_`` is the held-out MAPE over the folds of :func:`fold_ids`. Returns self."""
        p = np.asarray(p, dtype=float)
        y = np.asarray(y, dtype=float)
        if p.ndim != 1 or p.shape != y.shape:
            raise ValueError(f"p and y must be two vectors of the same length; got {p.shape} and {y.shape}")
        if len(y) < 2 * self.folds or not np.all(y > 0):
            raise ValueError(f"need at least {2 * self.folds} positive times to fit; got {len(y)}")
        fold_of = fold_ids(len(y), self.folds, self.seed)
        pred = np.empty(len(y))
        for k in range(self.folds):
            test = fold_of == k
            a, b = affine_fit(p[~test], y[~test])
            pred[test] = a * p[test] + b
        self.cv_mape_ = _mape(pred, y)
        self.cv_pred_ = pred
        self.a_, self.b_ = affine_fit(p, y)
        self.train_mape_ = _mape(self.predict(p), y)
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        if not hasattr(self, "a_"):
            raise RuntimeError("This AffineLatencyFit is not fitted yet; call fit(p, y) first.")
        return self.a_ * np.asarray(p, dtype=float) + self.b_


@dataclass(frozen=True)
class TableChoice:
    """Which table predicts the fitting networks best, the simplest first; see :func:`choose_table`."""

    kind: str  # "isolated", "scaled" or "fitted": the candidate chosen on the fitting networks
    base: str  # what the per-entry fit had to beat: "scaled" when that beat the isolated table, else "isolated"
    cv_mape: dict[str, float]  # held-out MAPE per candidate (isolated: its plain MAPE); no "scaled" when a <= 0
    cv_tau: dict[str, float]  # Kendall tau of the same held-out predictions against the times, same keys
    reason: str  # why the per-entry fit won: "mape", "tau" (ranks better at no higher MAPE), or "" (it did not)
    isolated_within_10pct: float  # share of fitting networks the isolated table predicts within 10%
    scaled: AffineLatencyFit = field(repr=False)  # the affine fit (a candidate only when its a_ > 0)
    fitted: Any = field(repr=False)  # the per-entry fit (an AdditiveLatencyFit)

    @property
    def ranking_baseline(self) -> float:
        """The held-out tau the fit must beat to win for its ranking: the base's, or the isolated ranking it keeps."""
        return max(self.cv_tau.get(self.base, float("nan")), self.cv_tau["isolated"])

    def below(self, kind: str) -> str:
        """The candidate ``kind`` had to beat: "fitted" its base, "scaled" the isolated table."""
        return {"fitted": self.base, "scaled": "isolated"}[kind]


def choose_table(X: np.ndarray, y: np.ndarray, prior: Sequence[float], prior_intercept: float, *, min_gain: float,
                 tau_gain: float | None = None, folds: int = 5, seed: int = 0, model: Any = None) -> TableChoice:
    """Fit the scaled and the per-entry table to ``(X, y)`` and choose among them and the isolated one.

    ``X`` holds one-hot rows (a network's options), ``y`` their measured times, ``prior``
    and ``prior_intercept`` the isolated entries and fixed part. The isolated table's
    error is its plain MAPE on these networks (nothing of it is fitted to them); the
    scaled one replaces it when its cross-validated MAPE is at least ``min_gain`` points
    lower; the per-entry fit (``model``, default :class:`AdditiveLatencyFit`) replaces
    the current choice when it beats that choice by ``min_gain`` points too, or when its
    held-out predictions rank the networks ``tau_gain`` better (Kendall tau) at no higher
    MAPE (``reason`` says which; ``tau_gain`` None: ``TAU_GAIN``).
    """
    tau_gain = TAU_GAIN if tau_gain is None else tau_gain
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    prior = np.asarray(prior, dtype=float)
    iso_pred = X @ prior + float(prior_intercept)
    iso_err = np.abs(iso_pred - y) / y
    cv = {"isolated": float(100 * iso_err.mean())}
    tau = {"isolated": _tau(iso_pred, y)}
    scaled = AffineLatencyFit(folds=folds, seed=seed).fit(iso_pred, y)
    kind = "isolated"
    if scaled.a_ > 0:
        cv["scaled"] = scaled.cv_mape_
        tau["scaled"] = _tau(scaled.cv_pred_, y)
        if cv["scaled"] <= cv["isolated"] - min_gain:
            kind = "scaled"
    base = kind
    fitted = (model or AdditiveLatencyFit)(prior, float(prior_intercept), folds=folds, seed=seed).fit(X, y)
    cv["fitted"] = float(fitted.cv_mape_)
    tau["fitted"] = _tau(np.asarray(fitted.cv_pred_), y) if hasattr(fitted, "cv_pred_") else float("nan")
    reason = ""
    if cv["fitted"] <= cv[base] - min_gain:
        kind, reason = "fitted", "mape"
    choice = TableChoice(kind=kind, base=base, cv_mape=cv, cv_tau=tau, reason=reason,
                         isolated_within_10pct=float((iso_err <= 0.10).mean()), scaled=scaled, fitted=fitted)
    # a positive scale keeps the isolated ranking: the scaled table's held-out tau is that ranking plus fold noise
    if kind != "fitted" and cv["fitted"] <= cv[base] and tau["fitted"] >= choice.ranking_baseline + tau_gain:
        choice = replace(choice, kind="fitted", reason="tau")  # NaN never wins
    return choice


def confirm_choice(choice: TableChoice, mape: dict[str, float | None], min_gain: float) -> list[str]:
    """Walk down from ``choice.kind`` while a candidate does not beat the one below it by ``min_gain`` on ``mape``.

    ``mape`` holds each candidate's MAPE on fresh networks (a missing or None value never
    wins). Returns the candidates looked at, the chosen one first and the one kept last.
    """
    def err(kind: str) -> float:
        value = mape.get(kind)
        return float("nan") if value is None else float(value)

    def slack(kind: str) -> float:  # a fit chosen for its ranking prices about as well as the table below it
        return TAU_CONFIRM_SLACK if kind == "fitted" and choice.reason == "tau" else 0.0

    path = [choice.kind]
    while path[-1] != "isolated" and not err(path[-1]) <= err(choice.below(path[-1])) - min_gain + slack(path[-1]):
        path.append(choice.below(path[-1]))
    return path
