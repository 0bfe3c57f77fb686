"""Anchor selection: which architectures to train stand-alone so the predictor learns the most.

All strategies return row indices into a candidate pool and are deterministic given
``seed``:

* ``spread``: a Latin-hypercube design over the ranks of the proxy score and of
  FLOPs, so the anchors cover both ranges (the default; one axis if only one is given);
* ``random``: uniform without replacement;
* ``uncertainty``: the next anchors where a fitted predictor's std is largest,
  optionally pulled toward the top of the predicted ranking;
* ``explicit``: the user's own list, looked up in the pool.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import PredictorError

STRATEGIES = ("spread", "random", "uncertainty", "explicit")


def _check_k(k: int, n_pool: int) -> None:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_pool:
        raise PredictorError(f"The number of anchors must be an int in [1, pool size={n_pool}]. Got {k!r} instead.")


def _unit_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share the mean rank)."""
    from scipy.stats import rankdata

    if len(values) == 1:
        return np.zeros(1)
    return (rankdata(values) - 1.0) / (len(values) - 1.0)


def random_anchors(n_pool: int, k: int, *, seed: int = 0, exclude: Sequence[int] = ()) -> list[int]:
    """``k`` pool indices drawn uniformly without replacement (skipping ``exclude``)."""
    free = np.setdiff1d(np.arange(n_pool), np.asarray(exclude, dtype=int))
    _check_k(k, len(free))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(free, k, replace=False))


def spread_anchors(k: int, *, proxy: Sequence[float] | None = None, flops: Sequence[float] | None = None,
                   seed: int = 0, exclude: Sequence[int] = ()) -> list[int]:
    """``k`` pool indices spread over the proxy-score and FLOPs ranges (Latin hypercube on ranks).

    Stratum ``i`` of the proxy ranks is paired with a seeded random stratum of the
    FLOPs ranks; each target point takes the nearest unused pool member.
    """
    axes = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (proxy, flops) if a is not None]
    if not axes:
        raise PredictorError("spread anchor selection needs the proxy scores, the FLOPs, or both")
    n_pool = len(axes[0])
    if any(len(a) != n_pool for a in axes):
        raise PredictorError(f"proxy and flops must have one value per pool member; got lengths {[len(a) for a in axes]}")
    rng = np.random.default_rng(seed)
    points = np.column_stack([_unit_ranks(a) for a in axes])  # (n_pool, n_axes)
    used = np.zeros(n_pool, dtype=bool)
    used[np.asarray(exclude, dtype=int)] = True
    _check_k(k, int((~used).sum()))
    strata = [np.arange(k)] + [rng.permutation(k) for _ in axes[1:]]
    targets = np.column_stack([(s + rng.uniform(0.25, 0.75, k)) / k for s in strata])  # (k, n_axes)
    chosen: list[int] = []
    for target in targets[rng.permutation(k)]:
        dist = np.square(points - target).sum(axis=1)
        dist[used] = np.inf
        best = int(np.argmin(dist))
        used[best] = True
        chosen.append(best)
    return sorted(chosen)


def uncertainty_anchors(predictor, X_pool, k: int = 1, *, exclude: Sequence[int] = (), top_weight: float = 0.0) -> list[int]:
    """The ``k`` pool rows where the fitted ``predictor`` is least sure (largest std).

    ``top_weight`` > 0 adds that many standardised predicted means to the score
    (an upper-confidence-bound flavour), so uncertainty near the top of the ranking
    counts for more. The predictor must offer ``predict(X, return_std=True)``.
    """
    if not getattr(predictor, "offers_std", False):
        raise PredictorError(
            f"uncertainty anchor selection needs a predictor with a std (gp, rf, linear, ensemble); got {type(predictor).__name__}"
        )
    if top_weight < 0:
        raise PredictorError(f"The 'top_weight' parameter must be >= 0. Got {top_weight!r} instead.")
    mean, std = predictor.predict(X_pool, return_std=True)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    free = np.ones(len(mean), dtype=bool)
    free[np.asarray(exclude, dtype=int)] = False
    _check_k(k, int(free.sum()))
    scale = mean.std() if mean.std() > 0 else 1.0
    score = std / (std.mean() if std.mean() > 0 else 1.0) + top_weight * (mean - mean.mean()) / scale
    score[~free] = -np.inf
    order = np.argsort(-score, kind="stable")[:k]
    return [int(i) for i in order]


def explicit_anchors(pool: Sequence[object], wanted: Sequence[object]) -> list[int]:
    """Pool indices of the user's ``wanted`` architectures (any hashable values, e.g. Arch)."""
    where = {a: i for i, a in enumerate(pool)}
    missing = [str(a) for a in wanted if a not in where]
    if missing:
        raise PredictorError(f"explicit anchors must be in the candidate pool; not found: {', '.join(missing[:5])}")
    return [where[a] for a in wanted]


def select_anchors(strategy: str, k: int, *, proxy: Sequence[float] | None = None, flops: Sequence[float] | None = None,
                   seed: int = 0, n_pool: int | None = None, exclude: Sequence[int] = ()) -> list[int]:
    """Dispatch ``spread`` or ``random`` by name (the two that need no fitted model or list)."""
    if strategy == "spread":
        return spread_anchors(k, proxy=proxy, flops=flops, seed=seed, exclude=exclude)
    if strategy == "random":
        given = proxy if proxy is not None else flops
        size = n_pool if n_pool is not None else (len(given) if given is not None else 0)
        return random_anchors(size, k, seed=seed, exclude=exclude)
    if strategy in STRATEGIES:
        raise PredictorError(f"strategy {strategy!r} needs more than scores: call {strategy}_anchors(...) directly")
    raise PredictorError(f"unknown anchor selection strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
