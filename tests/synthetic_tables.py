"""Small synthetic tables for search tests: every canonical architecture of a space, with made-up scores.

The target is a deterministic, multimodal function of the choices, so searchers have
something to climb, and a ``latency_ms`` column gives the latency constraint a source.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from search_spaces import Space, get_space


def synthetic_score(choices: tuple[int, ...]) -> float:
    s = 0.0
    for i, c in enumerate(choices):
        s += math.sin(1.7 * (i + 1) * (c + 1)) + 0.3 * c
    return round(70.0 + 3.0 * s, 4)


def write_table(path: Path, space: Space | str = "macro-fmnist", *, latency: bool = True) -> Path:
    """Write one row per canonical architecture: arch, val_acc, test_acc (and latency_ms)."""
    space = get_space(space) if isinstance(space, str) else space
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "val_acc", "test_acc"] + (["latency_ms"] if latency else []))
        for arch in space.enumerate(canonical_only=True):
            val = synthetic_score(arch.choices)
            row = [space.format(arch), val, round(val - 0.5 + 0.1 * (sum(arch.choices) % 3), 4)]
            if latency:
                row.append(round(space.cost(arch).flops / 1e6 + 0.25 * arch.choices[0], 4))
            w.writerow(row)
    return path
