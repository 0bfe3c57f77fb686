"""Multi-fidelity anchors: many short stand-alone trainings, a few long ones, and one target.

``fit-predictor --long-anchors M --long-epochs E`` trains all K anchors with the
short schedule and M of them (spread over the short labels and the supernet
scores) again for E epochs. The long schedule is the target: it is what the
corrector predicts and, where it can be measured, what the corrector is judged on.

How the corrector is told which label is which: a fitted short->long mapping,
not a fidelity feature. Anchors trained long keep their long label; the short
labels of the others are put on the long scale by ``long = a + b * short``. A
fidelity indicator column was rejected: at prediction time it would be a constant
("long") that every caller of the model must supply, tree models can split on it
and learn nothing shared, and with 2-8 long anchors its coefficient is noise.

The mapping is made sound for small M by shrinking its slope toward 1 (a point
more after the short schedule is a point more after the long one), as a ridge
prior worth ``PRIOR_POINTS`` typical pairs: ``b = (Sxy + lam) / (Sxx + lam)`` with
``lam = PRIOR_POINTS * var(short labels)``, so one pair fits only the offset, two
pairs half-trust their own slope, eight pairs mostly. The intercept is always
fitted (the long schedule shifts every accuracy), and the slope is never negative,
so the short-only anchors keep their short ranking (b = 0, no information, at worst).

Honest selection: the held-out Kendall tau that chooses the predictor is measured
against long labels only (each split holds out long anchors, refits the mapping on
the long anchors left, trains on everything else). With fewer than
``MIN_LONG_FOR_CV`` long anchors that estimate rests on too few points, and the
choice falls back to today's cross-validation on the short labels of all anchors.
In both cases a corrector replaces the calibrated supernet score only when it beats
it on the same splits by the margin (``predictors.crossval``), so the corrector never
ranks worse than the supernet score it corrects.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PRIOR_POINTS = 2.0  # the slope-toward-1 prior counts as this many typical (short, long) pairs
MIN_LONG_FOR_CV = 4  # fewer long anchors: selection falls back to cross-validation on the short labels
TEST_FRACTION = 0.3  # of the long anchors held out per split
MIN_HELD_OUT = 3  # long anchors held out per split below which the supernet baseline is kept


@dataclass(frozen=True)
class ShortToLong:
    """``long = intercept + slope * short``, fitted on paired anchors with the slope shrunk toward 1."""

    slope: float
    intercept: float
    ols_slope: float | None  # the unshrunk least-squares slope (None with fewer than 2 distinct pairs)
    pairs: int
    prior_points: float

    def __call__(self, short):
        return self.intercept + self.slope * np.asarray(short, dtype=float)

    def to_dict(self) -> dict:
        return {"slope": round(self.slope, 4), "intercept": round(self.intercept, 4),
                "ols_slope": None if self.ols_slope is None else round(self.ols_slope, 4), "pairs": self.pairs,
                "prior_points": self.prior_points}


def fit_short_to_long(short: Sequence[float], long: Sequence[float], *, scale: Sequence[float] | None = None,
                      prior_points: float = PRIOR_POINTS) -> ShortToLong:
    """The short->long label mapping on paired anchors, slope shrunk toward 1 (see the module docstring).

    ``scale``: short labels whose variance sets the prior's strength (default: the
    paired ones); pass every anchor's short label so that the prior is the same
    whatever few pairs were trained long.
    """
    s = np.asarray(short, dtype=float)
    ll = np.asarray(long, dtype=float)
    if len(s) != len(ll) or len(s) < 1:
        raise ValueError(f"need at least one (short, long) pair of equal lengths; got {len(s)} and {len(ll)}")
    ref = np.asarray(scale if scale is not None else s, dtype=float)
    lam = prior_points * float(np.var(ref))
    ds, dl = s - s.mean(), ll - ll.mean()
    sxx, sxy = float(ds @ ds), float(ds @ dl)
    ols = sxy / sxx if sxx > 0 else None
    slope = (sxy + lam) / (sxx + lam) if sxx + lam > 0 else 1.0
    slope = max(slope, 0.0)
    return ShortToLong(slope=float(slope), intercept=float(ll.mean() - slope * s.mean()), ols_slope=ols, pairs=len(s),
                       prior_points=prior_points)


def choose_long_anchors(short: dict[str, float], scores: dict[str, float], m: int, *, seed: int = 0) -> list[str]:
    """The ``m`` anchors (canonical strings, sorted) to train long: a Latin hypercube over the ranks of
    their short labels and supernet scores, so the pairs cover both ranges; deterministic given ``seed``."""
    from predictors import spread_anchors

    keys = sorted(short)
    if m >= len(keys):
        return keys
    idx = spread_anchors(m, proxy=[short[a] for a in keys], flops=[scores[a] for a in keys], seed=seed)
    return sorted(keys[i] for i in idx)


@dataclass(frozen=True)
class Fidelities:
    """Every anchor's short label, the long labels of the few trained long, and the schedules."""

    short: dict[str, float]  # canonical arch -> accuracy after ``short_epochs`` (every anchor)
    long: dict[str, float]  # canonical arch -> accuracy after ``long_epochs`` (the long anchors)
    short_epochs: int
    long_epochs: int

    @property
    def enough_long(self) -> bool:
        """Whether the long anchors are enough to choose the predictor on them."""
        return len(self.long) >= MIN_LONG_FOR_CV

    def mapping(self) -> ShortToLong:
        pairs = sorted(self.long)
        return fit_short_to_long([self.short[a] for a in pairs], [self.long[a] for a in pairs],
                                 scale=list(self.short.values()))

    def labels(self) -> dict[str, float]:
        """The fit's target, on the long scale: the long label where trained, else the mapped short label."""
        f = self.mapping()
        return {a: self.long[a] if a in self.long else float(f(s)) for a, s in self.short.items()}

    def short_long_tau(self) -> float | None:
        """Kendall tau of the short against the long labels on the paired anchors (None below 3 pairs)."""
        from predictors import kendall_tau

        pairs = sorted(self.long)
        if len(pairs) < 3:
            return None
        return round(float(kendall_tau([self.long[a] for a in pairs], [self.short[a] for a in pairs])), 4)

    def selection_text(self) -> str:
        """One sentence: which labels the held-out tau that chooses the predictor is measured against."""
        k, m = len(self.short), len(self.long)
        if self.enough_long:
            return (f"held-out tau (the selection) is measured against the {self.long_epochs}-epoch labels only, on the "
                    f"{m} long anchors; the other {k - m} anchors train every fold with their {self.short_epochs}-epoch "
                    "labels mapped to the long scale, and are never scored")
        return (f"only {m} long anchor{'s' if m != 1 else ''} (fewer than {MIN_LONG_FOR_CV}): a long-fidelity estimate "
                f"would rest on too few points, so the selection falls back to cross-validation on the "
                f"{self.short_epochs}-epoch labels of all {k} anchors; the chosen predictor is still fitted on "
                f"{self.long_epochs}-epoch labels (long where trained, mapped short elsewhere)")

    def describe(self) -> dict:
        """JSON-ready: counts, schedules, the mapping, the short-vs-long tau and the selection's labels."""
        return {"short_epochs": self.short_epochs, "long_epochs": self.long_epochs, "anchors": len(self.short),
                "long_anchors": len(self.long), "long": sorted(self.long), "mapping": self.mapping().to_dict(),
                "short_long_tau": self.short_long_tau(), "selection_labels": "long" if self.enough_long else "short",
                "selection": self.selection_text()}


def long_splits(long_idx: Sequence[int], n_total: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index splits that hold out long anchors only.

    ``n_test`` = 30% of the long anchors, at least ``MIN_HELD_OUT``, but leaving one
    long anchor (for the mapping) and two anchors in all (to fit) in training. Every
    subset when there are at most ``n_splits`` of them, else ``n_splits`` seeded draws.
    """
    long_idx = np.asarray(sorted(long_idx), dtype=int)
    m = len(long_idx)
    n_test = min(max(MIN_HELD_OUT, round(TEST_FRACTION * m)), m - 1, n_total - 2)
    if math.comb(m, n_test) <= n_splits:
        tests = [np.array(c, dtype=int) for c in itertools.combinations(long_idx, n_test)]
    else:
        rng = np.random.default_rng(seed)
        tests = [np.sort(rng.choice(long_idx, n_test, replace=False)) for _ in range(n_splits)]
    everything = np.arange(n_total)
    return [(np.setdiff1d(everything, t), t) for t in tests]


def _fold_labels(short: np.ndarray, long: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Training labels of one fold: long where known, else short mapped by a fit on this fold's pairs only."""
    s, ll = short[train], long[train]
    paired = ~np.isnan(ll)
    f = fit_short_to_long(s[paired], ll[paired], scale=s)
    return np.where(paired, ll, f(s))


def cross_validate_long(X, short, long, *, proxy_index: int, cost_index: int | None, flops: Sequence[float] | None = None,
                        predictors: Sequence[str] | None = None, random_state: int = 0, n_splits: int = 50,
                        margin: float = 0.5):
    """A ``predictors.RankingReport`` whose held-out tau is measured against long labels only.

    ``X``: (K, d) features of every anchor, the supernet score in column
    ``proxy_index``; ``short``: (K,) short labels; ``long``: (K,) long labels, NaN
    where an anchor was not trained long (at least ``MIN_LONG_FOR_CV`` known). Each
    split holds out long anchors (``long_splits``), fits on all the rest with
    ``_fold_labels``, and scores Kendall tau / Spearman rho on the held-out long
    labels. The supernet baseline is scored on the same splits and the choice is
    ``predictors.crossval``'s (a corrector must beat the baseline by the margin).
    The reference pass is leave-one-long-anchor-out; no intervals are checked here.
    """
    from predictors import (
        BaselineScore,
        RankingReport,
        build_predictor,
        default_predictors,
        kendall_tau,
        spearman_rho,
    )
    from predictors.crossval import (  # the same baseline rule as every report
        BASELINE,
        decide,
        corrected_se,
    )

    X = np.asarray(X, dtype=float)
    short = np.asarray(short, dtype=float)
    long = np.asarray(long, dtype=float)
    long_idx = np.flatnonzero(~np.isnan(long))
    k, m = len(short), len(long_idx)
    if m < MIN_LONG_FOR_CV:
        raise ValueError(f"cross-validating against long labels needs at least {MIN_LONG_FOR_CV} long anchors; got {m}")
    names = [BASELINE] + [n for n in (predictors if predictors is not None else default_predictors(True)) if n != BASELINE]
    splits = long_splits(long_idx, k, n_splits, random_state)
    reference = [(np.setdiff1d(np.arange(k), [i]), np.array([i])) for i in long_idx]
    n_train, n_test = len(splits[0][0]), len(splits[0][1])
    fold_y = [_fold_labels(short, long, train) for train, _ in splits]
    ref_y = [_fold_labels(short, long, train) for train, _ in reference]
    yl = long[long_idx]
    baselines = [BaselineScore("proxy", kendall_tau(yl, X[long_idx, proxy_index]), spearman_rho(yl, X[long_idx, proxy_index]))]
    flops_col = np.asarray(flops, dtype=float) if flops is not None else (X[:, cost_index] if cost_index is not None else None)
    if flops_col is not None:
        baselines.append(BaselineScore("flops", kendall_tau(yl, flops_col[long_idx]), spearman_rho(yl, flops_col[long_idx])))

    taus: dict[str, np.ndarray] = {}
    rows: dict[str, dict] = {}
    for name in names:
        start = time.perf_counter()
        tau, rho = np.empty(len(splits)), np.empty(len(splits))
        for j, ((train, test), y) in enumerate(zip(splits, fold_y)):
            est = build_predictor(name, proxy_index=proxy_index, cost_index=cost_index, random_state=random_state)
            pred = est.fit(X[train], y).predict(X[test])
            tau[j], rho[j] = kendall_tau(long[test], pred), spearman_rho(long[test], pred)
        loo = np.empty(m)
        for i, ((train, test), y) in enumerate(zip(reference, ref_y)):
            est = build_predictor(name, proxy_index=proxy_index, cost_index=cost_index, random_state=random_state)
            loo[i] = est.fit(X[train], y).predict(X[test])[0]
        taus[name] = tau
        rows[name] = {"name": name, "kendall_tau": float(tau.mean()), "spearman_rho": float(rho.mean()), "coverage": None,
                      "mean_interval_width": None, "seconds": round(time.perf_counter() - start, 3),
                      "kendall_tau_se": corrected_se(tau, n_train, n_test),
                      "loo_kendall_tau": kendall_tau(yl, loo), "loo_spearman_rho": spearman_rho(yl, loo)}
    scheme = f"{len(splits)} splits holding out {n_test} of the {m} long anchors, {n_train} anchors training"
    scores, best, reason, beats = decide(rows, taus, names, BASELINE, margin, scheme, n_train=n_train, n_test=n_test,
                                         min_held_out=MIN_HELD_OUT, anchors=f"{m} long anchors")
    return RankingReport(m, scheme, None, baselines, scores, best, beats, [], baseline=BASELINE, reason=reason,
                         n_splits=len(splits), margin=float(margin), reference_scheme="leave-one-long-anchor-out")


def select_on_fidelities(X, names: Sequence[str], fidelities: Fidelities, *, proxy_index: int, cost_index: int | None,
                         flops, predictors: Sequence[str] | None, coverage: float, random_state: int, n_splits: int,
                         margin: float):
    """(the report that chooses the predictor, the short-label report shown for reference or None).

    ``names``: the anchors in the rows of ``X``. With enough long anchors the choice
    is ``cross_validate_long``'s and today's short-label report is kept for
    reference; otherwise the short-label report chooses, with a note saying why.
    """
    from predictors import cross_validate_predictors

    short = np.array([fidelities.short[a] for a in names])
    short_report = cross_validate_predictors(
        X, short, proxy_index=proxy_index, cost_index=cost_index, flops=flops, predictors=predictors, coverage=coverage,
        random_state=random_state, n_splits=n_splits, margin=margin,
    )
    if not fidelities.enough_long:
        short_report.notes.append(f"note: {fidelities.selection_text()}")
        return short_report, None
    long = np.array([fidelities.long.get(a, np.nan) for a in names])
    report = cross_validate_long(X, short, long, proxy_index=proxy_index, cost_index=cost_index, flops=flops,
                                 predictors=predictors, random_state=random_state, n_splits=n_splits, margin=margin)
    report.notes.append(f"note: {fidelities.selection_text()}")
    return report, short_report
