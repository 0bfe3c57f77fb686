"""Pareto fronts of points with mixed objective directions (accuracy up, FLOPs down)."""

from __future__ import annotations

from typing import Sequence

from evonas.errors import ConfigError


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """True when ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y, up in zip(a, b, maximize):
        if not up:
            x, y = -x, -y
        if x < y:
            return False
        if x > y:
            better = True
    return better


def pareto_front(points: Sequence[Sequence[float]], maximize: Sequence[bool] = (True, False)) -> list[int]:
    """Indices of the non-dominated points, sorted by the first objective (best first).

    ``maximize[i]`` says whether objective ``i`` is maximised; the default suits
    ``(accuracy, flops)`` pairs. Duplicated points are all kept.
    """
    pts = [tuple(float(v) for v in p) for p in points]
    if pts and any(len(p) != len(maximize) for p in pts):
        raise ConfigError(f"The 'points' parameter must hold {len(maximize)} objectives per point (one per entry of maximize); got {pts[0]}")
    # sort so that a point can only be dominated by points before it
    keys = [tuple(v if up else -v for v, up in zip(p, maximize)) for p in pts]
    order = sorted(range(len(pts)), key=lambda i: keys[i], reverse=True)
    front: list[int] = []
    for i in order:
        if not any(dominates(pts[j], pts[i], maximize) for j in front):
            front.append(i)
    return front
