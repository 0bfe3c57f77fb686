"""Resource constraints (FLOPs, params, latency) and where their numbers come from.

:class:`Constraints` is the frozen set of limits a search must respect.
:class:`CostModel` tells what an architecture costs without scoring it: FLOPs and
params from the space's description (or from table columns when a table has them),
latency from a table column (for example ``pixel3_ms`` of ``nb201_latency.csv``).
A limit tighter than the cheapest architecture is an immediate error that states the
smallest feasible value; nothing loops forever looking for a feasible network.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Callable, Mapping

import numpy as np

from search_spaces import Arch, InfeasibleConstraintError, Space

from .errors import ConfigError

METRICS = ("flops", "params", "latency_ms")  # the cost metrics a constraint or objective may name
OPTION = {"flops": "--max-flops", "params": "--max-params", "latency_ms": "--max-latency-ms"}


def fmt(value: float) -> str:
    """Large counts with thousands separators, small values (latency) with 6 significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"


@dataclass(frozen=True, kw_only=True)
class Constraints:
    """Upper limits on an architecture's costs; ``None`` means unconstrained."""

    max_flops: float | None = None  # multiply-accumulates per image, as counted by the space
    max_params: float | None = None  # trainable parameters
    max_latency_ms: float | None = None  # milliseconds per image from a latency table column

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be a finite number > 0; got {value!r}")

    @property
    def limits(self) -> dict[str, float]:
        """The active limits keyed by cost metric (flops, params, latency_ms)."""
        out = {"flops": self.max_flops, "params": self.max_params, "latency_ms": self.max_latency_ms}
        return {k: float(v) for k, v in out.items() if v is not None}

    def __bool__(self) -> bool:
        return bool(self.limits)

    def violations(self, costs: Mapping[str, float]) -> dict[str, float]:
        """For each active limit, ``cost - limit`` (<= 0 means satisfied; NaN cost counts as violated)."""
        out = {}
        for metric, limit in self.limits.items():
            value = float(costs.get(metric, math.nan))
            out[metric] = math.inf if math.isnan(value) else value - limit
        return out

    def satisfied(self, costs: Mapping[str, float]) -> bool:
        return all(v <= 0 for v in self.violations(costs).values())

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class CostModel:
    """What an architecture costs (flops, params, latency_ms), known before it is scored.

    ``columns`` maps a cost metric to a numeric array aligned with ``index`` (canonical
    string -> row) of a table; metrics without a column are computed from the space.
    Latency has no computed fallback: it needs a column.
    """

    def __init__(self, space: Space, *, columns: Mapping[str, np.ndarray] | None = None,
                 index: Mapping[str, int] | None = None, origin: str = "") -> None:
        self.space = space
        self.columns = dict(columns or {})
        unknown = set(self.columns) - set(METRICS)
        if unknown:
            raise ConfigError(f"cost columns must be named after {', '.join(METRICS)}; got {sorted(unknown)}")
        if self.columns and index is None:
            raise ConfigError("a CostModel with table columns needs the table's index")
        self.index = dict(index or {})
        self.origin = origin  # where the columns come from, for messages

    def has(self, metric: str) -> bool:
        return metric in ("flops", "params") or metric in self.columns

    def costs(self, arch: Arch) -> dict[str, float]:
        """Every cost metric this model knows for ``arch`` (NaN when a table lacks the row)."""
        cost = self.space.cost(arch)
        out: dict[str, float] = {"flops": float(cost.flops), "params": float(cost.params)}
        if self.columns:
            row = self.index.get(str(self.space.canonical(arch)))
            for metric, col in self.columns.items():
                out[metric] = math.nan if row is None else float(col[row])
        return out

    def smallest(self, metric: str) -> float:
        """The smallest value of ``metric`` over the space (or over the table rows)."""
        if metric in self.columns:
            col = self.columns[metric]
            finite = col[~np.isnan(col)]
            return float(finite.min()) if len(finite) else math.nan
        return float(self.space.min_cost(metric))

    def check(self, constraints: Constraints) -> None:
        """Raise at once when a limit is tighter than the cheapest architecture allows."""
        for metric, limit in constraints.limits.items():
            if not self.has(metric):
                raise ConfigError(
                    f"{OPTION[metric]} needs a latency source: give --latency-table CSV and "
                    f"--latency-column NAME (e.g. nb201_latency.csv with pixel3_ms), or a --table with a "
                    f"latency_ms column; space {self.space.name!r} has no computed latency"
                )
            smallest = self.smallest(metric)
            if math.isnan(smallest):
                raise ConfigError(f"the {metric} column{self.origin and ' of ' + self.origin} has no values")
            if limit < smallest:
                raise InfeasibleConstraintError(
                    f"{OPTION[metric]} {fmt(limit)} is infeasible for space {self.space.name!r}: the smallest "
                    f"network has {metric} = {fmt(smallest)}. Raise the limit to at least {fmt(smallest)}."
                )
        if len(constraints.limits) > 1 and self.columns:
            self._check_jointly(constraints)

    def _check_jointly(self, constraints: Constraints) -> None:
        """With table columns every row is known: check that one row meets all limits at once."""
        space = self.space
        for text in self.index:
            if constraints.satisfied(self.costs(space.parse(text))):
                return
        raise InfeasibleConstraintError(
            f"no architecture of the table meets all limits at once ({constraints.limits}); each limit alone "
            f"is feasible (smallest: " + ", ".join(f"{m} = {fmt(self.smallest(m))}" for m in constraints.limits)
            + "). Loosen one of them."
        )


def feasible_sampler(space: Space, accept: Callable[[Arch], bool], costs: Callable[[Arch], Mapping[str, float]],
                     constraints: Constraints, *, tries: int = 500) -> Callable[[random.Random], Arch]:
    """A bounded feasible sampler: rejection sampling, then a greedy repair of the last draw.

    Uniform draws are tried ``tries`` times. If none is feasible (a tight limit), the
    last draw is repaired: dimensions are visited in random order and each is set to
    the option that most reduces the total relative violation, for at most three
    passes. If that fails too, InfeasibleConstraintError says what to loosen.
    """
    limits = constraints.limits

    def badness(arch: Arch) -> float:
        v = constraints.violations(costs(arch))
        return sum(max(x, 0.0) / limits[m] for m, x in v.items())

    def sample(rng: random.Random) -> Arch:
        arch = space.sample(rng)
        for _ in range(tries):
            if accept(arch):
                return arch
            arch = space.sample(rng)
        choices = list(arch.choices)
        for _ in range(3):
            order = list(range(len(space.dims)))
            rng.shuffle(order)
            for i in order:
                options = list(space.dims[i].options)
                rng.shuffle(options)  # ties broken at random, not always towards the first option
                scored = []
                for code in options:
                    trial = list(choices)
                    trial[i] = code
                    scored.append((badness(Arch(space.name, tuple(trial))), code))
                choices[i] = min(scored, key=lambda t: t[0])[1]
                candidate = Arch(space.name, tuple(choices))
                if accept(candidate):
                    return candidate
        raise InfeasibleConstraintError(
            f"no architecture of space {space.name!r} met {constraints.limits} in {tries:,} random draws "
            f"and a greedy repair; loosen the limits (smallest flops {space.min_cost('flops'):,}, "
            f"smallest params {space.min_cost('params'):,})"
        )

    return sample
