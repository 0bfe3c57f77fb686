"""Benchmark predictors on a table: held-out rank quality versus the number of training anchors.

For each training size and seed, anchors are drawn from the table (``random`` or
``spread``), every predictor is fitted on them, and the rest of the table is the
test set. With a proxy column, each architecture-only predictor runs twice: on the
architecture features (``name``) and with the proxy appended as one more feature
(``name+proxy``, the naive correction), and the gap predictors run with the proxy
as their designated column; the proxy alone is reported as ``proxy-alone``.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence

import numpy as np

from .crossval import build_predictor, default_predictors
from .errors import PredictorError
from .metrics import kendall_tau, spearman_rho, top_fraction_tau
from .registry import predictor_class
from .selection import select_anchors

PROXY_ALONE = "proxy-alone"


def _runs(names: Sequence[str], with_proxy: bool) -> list[tuple[str, str, str]]:
    """(label, registered name, feature set) of every model to fit per anchor draw."""
    runs = []
    for name in names:
        if predictor_class(name).needs_proxy:
            if with_proxy:
                runs.append((name, name, "arch+proxy"))
            continue
        runs.append((name, name, "arch"))
        if with_proxy:
            runs.append((f"{name}+proxy", name, "arch+proxy"))
    return runs


def benchmark_predictors(
    X, y, *, flops: Sequence[float], proxy: Sequence[float] | None = None, cost_index: int | None = None,
    train_sizes: Sequence[int] = (10, 20, 50, 100), seeds: int = 10, predictors: Sequence[str] | None = None,
    selection: str = "random", top_fraction: float = 0.1, progress: bool = False,
) -> list[dict]:
    """One result row per (model, training size): held-out Kendall tau (mean and std over seeds) and more.

    ``X``: architecture features of every table row; ``y``: the target column;
    ``flops``: FLOPs (anchor spreading); ``proxy``: the cheap score, or None for
    architecture-only predictors; ``cost_index``: the log-FLOPs column of X (the gap
    trend uses it). Row keys: ``predictor``, ``features``, ``train_size``,
    ``kendall_tau``, ``kendall_tau_std``, ``spearman_rho``, ``top_tau`` (tau among the
    true top ``top_fraction`` of the held-out rows), ``best_true_rank_median`` and
    ``best_true_rank_mean`` (true rank in the whole table, 1 = best, of the held-out
    architecture the model puts first), ``fit_seconds`` (mean per fit).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = len(y)
    with_proxy = proxy is not None
    names = list(predictors) if predictors is not None else default_predictors(with_proxy)
    if with_proxy:
        proxy = np.asarray(proxy, dtype=np.float64).reshape(-1)
        Xp = np.column_stack([X, proxy])
    if seeds < 1:
        raise PredictorError(f"The 'seeds' parameter must be an int >= 1. Got {seeds!r} instead.")
    bad = [s for s in train_sizes if not 3 <= s < n]
    if bad:
        raise PredictorError(f"training sizes must be in [3, {n - 1}] (the table has {n} rows); got {bad}")
    runs = _runs(names, with_proxy)
    if not runs:
        raise PredictorError(f"predictors {names} need a proxy column; give one or pick architecture-only predictors")
    rank_of = _true_ranks(y)
    records: dict[tuple[str, int], list[dict]] = {}
    jobs = [(size, seed) for size in train_sizes for seed in range(seeds)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs) * (len(runs) + int(with_proxy)), desc="predictor-bench", unit="fit", file=sys.stderr)
    for size, seed in jobs:
        train = np.asarray(select_anchors(selection, size, proxy=proxy if with_proxy else None, flops=flops,
                                          seed=seed, n_pool=n), dtype=int)
        test = np.setdiff1d(np.arange(n), train)
        outputs: list[tuple[str, str, np.ndarray, float]] = []
        if with_proxy:
            outputs.append((PROXY_ALONE, "proxy", proxy[test], 0.0))
        for label, name, features in runs:
            start = time.perf_counter()
            if features == "arch":
                est = build_predictor(name, random_state=seed).fit(X[train], y[train])
                pred = est.predict(X[test])
            else:
                est = build_predictor(name, proxy_index=Xp.shape[1] - 1, cost_index=cost_index, random_state=seed)
                pred = est.fit(Xp[train], y[train]).predict(Xp[test])
            outputs.append((label, features, pred, time.perf_counter() - start))
        for label, features, pred, seconds in outputs:
            records.setdefault((label, size), []).append(dict(
                features=features,
                tau=kendall_tau(y[test], pred),
                rho=spearman_rho(y[test], pred),
                top=top_fraction_tau(y[test], pred, top_fraction),
                rank=int(rank_of[test[int(np.argmax(pred))]]),
                seconds=seconds,
            ))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [_summary(label, size, recs) for (label, size), recs in records.items()]


def _true_ranks(y: np.ndarray) -> np.ndarray:
    """Each row's true rank in the whole table, 1 = best (ties share the best rank)."""
    n = len(y)
    order = np.argsort(-y, kind="stable")
    rank_of = np.empty(n, dtype=int)
    rank_of[order] = np.arange(1, n + 1)
    for i in range(1, n):
        if y[order[i]] == y[order[i - 1]]:
            rank_of[order[i]] = rank_of[order[i - 1]]
    return rank_of


def _summary(label: str, size: int, recs: list[dict]) -> dict:
    """One result row: a model at one training size, over its seeds' records."""
    taus = np.array([r["tau"] for r in recs])
    ranks = np.array([r["rank"] for r in recs])
    return dict(
        predictor=label,
        features=recs[0]["features"],
        train_size=int(size),
        kendall_tau=round(float(taus.mean()), 4),
        kendall_tau_std=round(float(taus.std()), 4),
        spearman_rho=round(float(np.mean([r["rho"] for r in recs])), 4),
        top_tau=round(float(np.mean([r["top"] for r in recs])), 4),
        best_true_rank_median=float(np.median(ranks)),
        best_true_rank_mean=round(float(ranks.mean()), 1),
        fit_seconds=round(float(np.mean([r["seconds"] for r in recs])), 4),
        seeds=len(recs),
    )
