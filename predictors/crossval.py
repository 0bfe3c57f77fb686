"""The ranking report: compare every predictor with the supernet on held-out anchors and choose one.

``fit-predictor`` calls :func:`cross_validate_predictors` with the anchors' feature
matrix (supernet score as one column), their stand-alone accuracy, and the column
indices of the score and of log-FLOPs.

The selection criterion is an honest held-out estimate: ``n_splits`` random splits
of the anchors (fit on about 70%, Kendall tau and Spearman rho on the held-out
rest), the SAME splits for every predictor, so each predictor gets a mean tau, its
uncertainty, and a paired difference to the ``supernet`` baseline (the supernet
score calibrated to accuracy units; its ranking is the supernet's). Leave-one-out
tau, which is biased downward for models that regress toward the mean on a few
anchors (a held-out point's prediction moves against it), is still computed,
together with the conformal intervals' coverage, but only for reference.

Uncertainty: random splits overlap, so the plain standard error of their mean is
too small; the report uses the corrected resampled variance of Nadeau & Bengio
(Machine Learning 52, 2003), ``(1/J + n_test/n_train) * s^2`` over J splits.

Choice: with a proxy column the ``supernet`` baseline is always evaluated, and a
corrector replaces it only when its mean paired gain over the baseline exceeds
``margin`` corrected standard errors, adjusted for the number of correctors tried
(Sidak: with ten candidates a 0.5-SE margin becomes 1.8 SE, so that a useless
corrector wins by luck no more often than one alone would); the corrector with the
highest lower bound ``gain - z * se`` wins. The default margin is half a corrected
standard error because the corrected variance is itself conservative when only a
few anchors are held out: on pure-noise labels (10 anchors, 3 candidates) the
baseline is still chosen 18 times in 20, while a strong op effect the supernet
misses (30 anchors, gain +0.14 +- 0.15 tau) is picked up, which one full standard
error would refuse. Otherwise the report says that nothing beats the
supernet and chooses the calibrated supernet score.
:func:`fit_final` then fits the chosen predictor on all anchors, wrapped with intervals.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from sklearn.model_selection import KFold, LeaveOneOut

from .base import fit_shared, shared_fits
from .conformal import ConformalRegressor
from .errors import PredictorError
from .metrics import kendall_tau, spearman_rho
from .registry import get_predictor, list_predictors, predictor_class

BASELINE = "supernet"  # the registered calibration of the proxy score alone
SHARE_ALL = 20  # anchors up to which one report keeps all its fits for reuse (tiny models; leave-one-out regime)


@dataclass(frozen=True)
class BaselineScore:
    """Rank correlation of a single column (proxy or FLOPs) with the target, on all anchors."""

    name: str
    kendall_tau: float
    spearman_rho: float


@dataclass(frozen=True)
class EstimatorScore:
    """Held-out quality of one predictor on the anchors.

    ``kendall_tau`` / ``spearman_rho``: means over the random held-out splits (the
    selection criterion); ``kendall_tau_se``: their corrected standard error;
    ``tau_vs_proxy``: mean paired difference to the supernet baseline on the same
    splits, ``tau_vs_proxy_se`` its corrected standard error; ``loo_*``:
    leave-one-out (K-fold above 20 anchors) figures, for reference only.
    """

    name: str
    kendall_tau: float
    spearman_rho: float
    coverage: float | None  # fraction of held-out anchors inside their interval (leave-one-out pass)
    mean_interval_width: float | None
    seconds: float  # wall time of this predictor's fits (an ensemble's: beyond its members' shared fits)
    kendall_tau_se: float | None = None
    tau_vs_proxy: float | None = None
    tau_vs_proxy_se: float | None = None
    loo_kendall_tau: float | None = None
    loo_spearman_rho: float | None = None


@dataclass
class RankingReport:
    """What ``cross_validate_predictors`` found; ``to_dict()`` is JSON-ready."""

    n_anchors: int
    scheme: str  # e.g. "50 random 6/2 splits"
    target_coverage: float | None
    baselines: list[BaselineScore]
    estimators: list[EstimatorScore]
    best: str  # the chosen predictor (the baseline unless a corrector beats it by the margin)
    beats_proxy: bool | None  # None when there is no proxy column
    notes: list[str] = field(default_factory=list)
    baseline: str | None = None  # registered name of the supernet baseline, when there is a proxy
    reason: str = ""  # why ``best`` was chosen, in one sentence
    n_splits: int = 0
    margin: float = 0.5  # corrected standard errors a corrector must gain over the baseline (before adjustment)
    reference_scheme: str = ""  # the leave-one-out / K-fold pass (tau for reference, coverage)

    def to_dict(self) -> dict:
        return asdict(self)

    def best_score(self) -> EstimatorScore:
        return next(e for e in self.estimators if e.name == self.best)

    def format(self) -> str:
        """A readable text table of the report."""
        cov = f"{self.target_coverage:.0%}" if self.target_coverage is not None else "-"
        lines = [f"ranking report on {self.n_anchors} anchors (held-out tau over {self.scheme}; "
                 f"{self.reference_scheme or 'no'} tau for reference)",
                 f"{'':2}{'estimator':18}{'tau':>7}{'+-se':>7}{'vs supernet':>16}{'rho':>7}{'loo tau':>9}"
                 f"{'cover@' + cov:>12}{'width':>9}"]
        for b in self.baselines:
            lines.append(f"{'':2}{b.name + ' (all anchors)':18}{b.kendall_tau:7.3f}{'':>7}{'-':>16}{b.spearman_rho:7.3f}"
                         f"{'-':>9}{'-':>12}{'-':>9}")
        for e in self.estimators:
            c = f"{e.coverage:.2f}" if e.coverage is not None else "-"
            w = f"{e.mean_interval_width:.3g}" if e.mean_interval_width is not None else "-"
            se = f"{e.kendall_tau_se:.3f}" if e.kendall_tau_se is not None else "-"
            vs = f"{e.tau_vs_proxy:+.3f}+-{e.tau_vs_proxy_se:.3f}" if e.tau_vs_proxy is not None else "-"
            loo = f"{e.loo_kendall_tau:.3f}" if e.loo_kendall_tau is not None else "-"
            mark = "*" if e.name == self.best else " "
            lines.append(f"{mark:2}{e.name:18}{e.kendall_tau:7.3f}{se:>7}{vs:>16}{e.spearman_rho:7.3f}{loo:>9}{c:>12}{w:>9}")
        lines.append(f"best: {self.best} ({self.reason})")
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


def random_splits(n: int, n_splits: int, test_fraction: float, random_state: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random (train, test) index splits of ``n`` rows, at least 2 rows on each side."""
    if not 0.0 < test_fraction < 1.0:
        raise PredictorError(f"The 'test_fraction' parameter must be in (0, 1). Got {test_fraction!r} instead.")
    n_test = min(max(2, int(round(test_fraction * n))), n - 2)
    rng = np.random.default_rng(random_state)
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        out.append((np.sort(perm[n_test:]), np.sort(perm[:n_test])))
    return out


def corrected_se(values: np.ndarray, n_train: int, n_test: int) -> float:
    """Standard error of the mean of ``values`` over overlapping random splits (Nadeau & Bengio)."""
    j = len(values)
    if j < 2:
        return float("nan")
    return float(np.sqrt((1.0 / j + n_test / n_train) * np.var(values, ddof=1)))


def cross_validate_predictors(
    X, y, *, proxy_index: int | None = None, cost_index: int | None = None,
    flops: Sequence[float] | None = None, predictors: Sequence[str] | None = None,
    folds: int | None = None, coverage: float | None = 0.9, random_state: int = 0,
    n_splits: int = 50, test_fraction: float = 0.3, margin: float = 0.5, min_held_out: int = 3,
) -> RankingReport:
    """Compare predictors on anchors ``X`` (n, d) with stand-alone accuracy ``y``, and choose one.

    ``proxy_index``: the column of X with the supernet/proxy score (enables the gap
    predictors, the ``supernet`` baseline, which is always added, and the proxy
    row). ``cost_index``: the log-FLOPs column (used by the gap trend, and as the
    FLOPs row unless ``flops`` is given). ``n_splits`` random splits holding out
    ``test_fraction`` of the anchors (at least 2) give the selection criterion;
    ``margin``: how many corrected standard errors a corrector's gain over the
    baseline must exceed. ``min_held_out``: with fewer anchors held out per split
    (each split then scores one or two pairs), the baseline is kept whatever the
    estimate says. ``folds``: the reference pass, None = leave-one-out up to
    20 anchors, else 10-fold. ``coverage``: target of the CV+ intervals checked in
    the reference pass (nested CV); None skips intervals (faster).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = len(y)
    if X.ndim != 2 or X.shape[0] != n:
        raise PredictorError(f"X must be a 2-d array with one row per anchor ({n}); got shape {X.shape}")
    if n < 4:
        raise PredictorError(f"cross-validating predictors needs at least 4 anchors; got {n}")
    if int(n_splits) < 2:
        raise PredictorError(f"The 'n_splits' parameter must be an int >= 2. Got {n_splits!r} instead.")
    if not margin >= 0:
        raise PredictorError(f"The 'margin' parameter must be a float in [0, inf). Got {margin!r} instead.")
    names = list(predictors) if predictors is not None else default_predictors(proxy_index is not None)
    baseline = BASELINE if proxy_index is not None else None
    if baseline is not None:
        names = [baseline] + [m for m in names if m != baseline]
    if not names:
        raise PredictorError("no predictors to cross-validate")
    k = (n if n <= 20 else 10) if folds is None else int(folds)
    if not 2 <= k <= n:
        raise PredictorError(f"The 'folds' parameter must be in [2, n_anchors={n}]. Got {folds!r} instead.")
    splitter = LeaveOneOut() if k == n else KFold(k, shuffle=True, random_state=random_state)
    reference = list(splitter.split(X))
    splits = random_splits(n, int(n_splits), test_fraction, random_state)
    n_train, n_test = len(splits[0][0]), len(splits[0][1])

    baselines = []
    if proxy_index is not None:
        baselines.append(BaselineScore("proxy", kendall_tau(y, X[:, proxy_index]), spearman_rho(y, X[:, proxy_index])))
    flops_col = np.asarray(flops, dtype=np.float64) if flops is not None else (X[:, cost_index] if cost_index is not None else None)
    if flops_col is not None:
        baselines.append(BaselineScore("flops", kendall_tau(y, flops_col), spearman_rho(y, flops_col)))

    # Equal fits are made once: over the whole report up to SHARE_ALL anchors (the reference pass's inner fits then
    # reuse the splits'), else within each split or fold (memory stays that of one split's fits).
    share_all = n <= SHARE_ALL
    with shared_fits() if share_all else contextlib.nullcontext():
        taus, rows = _score_on_splits(X, y, names, splits, reference, proxy_index=proxy_index, cost_index=cost_index,
                                      coverage=coverage, random_state=random_state,
                                      scope=contextlib.nullcontext if share_all else shared_fits)
    for name in names:
        rows[name]["kendall_tau_se"] = corrected_se(taus[name], n_train, n_test)
    scheme = f"{len(splits)} random {n_train}/{n_test} splits"
    scores, best, reason, beats = decide(rows, taus, names, baseline, margin, scheme, n_train=n_train, n_test=n_test,
                                         min_held_out=min_held_out, anchors=f"{n} anchors")
    reference_scheme = "leave-one-out" if k == n else f"{k}-fold"
    return RankingReport(n, scheme, coverage, baselines, scores, best, beats, [], baseline=baseline, reason=reason,
                         n_splits=len(splits), margin=float(margin), reference_scheme=reference_scheme)


def _score_on_splits(X, y, names: Sequence[str], splits, reference, *, proxy_index, cost_index, coverage,
                     random_state, scope) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Each predictor's tau per random split, and its report fields from the splits and the reference pass.

    A split drawn twice is scored once (the fits are deterministic), and ``scope()`` is
    entered around each split and reference fold (:func:`shared_fits` there, or nothing
    when the caller shares fits over the whole report), so an equal fit is made once and
    an ensemble reuses its members' fits. Predictors that combine others run last, so
    ``seconds`` counts what each predictor adds.
    """
    n = len(y)
    order = sorted(names, key=lambda name: getattr(predictor_class(name), "combines_others", False))
    seconds = dict.fromkeys(names, 0.0)

    def build(name):
        return build_predictor(name, proxy_index=proxy_index, cost_index=cost_index, random_state=random_state)

    def timed(name, work):
        start = time.perf_counter()
        out = work()
        seconds[name] += time.perf_counter() - start
        return out

    unique: dict[bytes, tuple[dict, dict]] = {}
    for train, test in splits:
        if test.tobytes() in unique:
            continue
        tau_of, rho_of = {}, {}
        with scope():
            for name in order:
                pred = timed(name, lambda: fit_shared(build(name), X[train], y[train]).predict(X[test]))
                tau_of[name], rho_of[name] = kendall_tau(y[test], pred), spearman_rho(y[test], pred)
        unique[test.tobytes()] = tau_of, rho_of
    taus = {name: np.array([unique[test.tobytes()][0][name] for _, test in splits]) for name in names}
    rhos = {name: np.array([unique[test.tobytes()][1][name] for _, test in splits]) for name in names}

    pred = {name: np.empty(n) for name in names}
    lo = {name: np.full(n, np.nan) for name in names}
    hi = {name: np.full(n, np.nan) for name in names}
    for train, test in reference:
        with scope():
            for name in order:
                if coverage is not None and len(train) >= 3:
                    conf = ConformalRegressor(build(name), coverage=coverage, cv=min(5, len(train)),
                                              random_state=random_state)
                    timed(name, lambda: conf.fit(X[train], y[train]))
                    pred[name][test] = conf.predict(X[test])
                    lo[name][test], hi[name][test] = conf.predict_interval(X[test])
                else:
                    pred[name][test] = timed(name, lambda: fit_shared(build(name), X[train], y[train]).predict(X[test]))
    rows = {}
    for name in names:
        cov = width = None
        if coverage is not None:
            cov = float(np.mean((y >= lo[name]) & (y <= hi[name])))
            width = float(np.mean(hi[name] - lo[name]))
        rows[name] = dict(name=name, kendall_tau=float(taus[name].mean()), spearman_rho=float(rhos[name].mean()),
                          coverage=cov, mean_interval_width=width, seconds=round(seconds[name], 3),
                          loo_kendall_tau=kendall_tau(y, pred[name]), loo_spearman_rho=spearman_rho(y, pred[name]))
    return taus, rows


def adjusted_margin(margin: float, n_candidates: int) -> float:
    """The per-corrector margin (in standard errors) that keeps the chance of ANY of ``n_candidates``
    useless correctors passing at the chance of one passing ``margin`` (Sidak)."""
    from scipy.stats import norm

    if n_candidates <= 1:
        return float(margin)
    return float(norm.ppf(norm.cdf(margin) ** (1.0 / n_candidates)))


def decide(rows: dict[str, dict], taus: dict[str, np.ndarray], names: Sequence[str], baseline: str | None,
           margin: float, scheme: str, *, n_train: int, n_test: int, min_held_out: int,
           anchors: str) -> tuple[list[EstimatorScore], str, str, bool | None]:
    """Scores from per-split taus, and the choice: (scores, chosen name, reason, whether it beats the baseline).

    ``rows`` holds each estimator's fields but the paired gain over ``baseline``, which
    is added here. A gain measured on fewer than ``min_held_out`` held-out anchors per
    split is too weak evidence: then the baseline stays. ``anchors`` names what the
    splits hold out of, e.g. "16 anchors".
    """
    if baseline is not None:
        for name in names:
            diff = taus[name] - taus[baseline]
            rows[name].update(tau_vs_proxy=float(diff.mean()), tau_vs_proxy_se=corrected_se(diff, n_train, n_test))
    scores = [EstimatorScore(**rows[name]) for name in names]
    best, reason, beats = _choose(scores, baseline, margin, scheme)
    if beats and n_test < min_held_out:
        top = next(e for e in scores if e.name == best)
        best, beats = baseline, False
        reason = (f"nothing beats the supernet: the corrector is the calibrated supernet score ({anchors} leave "
                  f"{n_test} held out per split, fewer than {min_held_out}: {top.name}'s gain of {top.tau_vs_proxy:+.3f} "
                  f"+- {top.tau_vs_proxy_se:.3f} tau is too weak evidence; add {anchors.split(' ', 1)[1]})")
    return scores, best, reason, beats


def _choose(scores: list[EstimatorScore], baseline: str | None, margin: float, scheme: str) -> tuple[str, str, bool | None]:
    """(chosen name, reason, whether it beats the supernet baseline)."""
    if baseline is None:
        best = max(scores, key=lambda s: (s.kendall_tau, s.spearman_rho))
        return best.name, f"highest held-out Kendall tau over {scheme}", None
    base = next(s for s in scores if s.name == baseline)
    others = [s for s in scores if s.name != baseline]
    z = adjusted_margin(margin, len(others))

    def lower(s: EstimatorScore) -> float:
        se = s.tau_vs_proxy_se if np.isfinite(s.tau_vs_proxy_se) else 0.0
        return s.tau_vs_proxy - z * se

    need = f"needs more than {z:.2f} standard errors ({margin:g} adjusted for {len(others)} candidates)"
    if others:
        top = max(others, key=lambda s: (lower(s), s.tau_vs_proxy))
        gain = f"{top.tau_vs_proxy:+.3f} +- {top.tau_vs_proxy_se:.3f}"
        if top.tau_vs_proxy > 0 and lower(top) > 0:
            return top.name, f"beats the supernet by {gain} held-out Kendall tau over {scheme}; {need}", True
        detail = f"; best alternative {top.name}: {gain} tau vs the supernet, {need}"
    else:
        detail = ""
    return baseline, (f"nothing beats the supernet: the corrector is the calibrated supernet score "
                      f"(held-out tau {base.kendall_tau:.3f} over {scheme}{detail})"), False


def fit_final(name: str, X, y, *, proxy_index: int | None = None, cost_index: int | None = None,
              coverage: float = 0.9, random_state: int = 0) -> ConformalRegressor:
    """Fit predictor ``name`` on all anchors, wrapped with CV+ intervals (picklable)."""
    est = build_predictor(name, proxy_index=proxy_index, cost_index=cost_index, random_state=random_state)
    return ConformalRegressor(est, coverage=coverage, random_state=random_state).fit(X, y)
