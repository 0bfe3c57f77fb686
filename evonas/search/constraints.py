"""The limits a search must respect (FLOPs, params, latency), and a bounded feasible sampler.

What an architecture costs comes from :class:`evonas.evaluation.costs.CostModel`;
a limit tighter than the cheapest architecture is an immediate error that states the
smallest feasible value, and nothing loops forever looking for a feasible network.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Callable, Mapping

from search_spaces import Arch, InfeasibleConstraintError, Space

from evonas.errors import ConfigError


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
                raise ConfigError(f"The '{f.name}' parameter must be a finite number > 0; got {value!r}.", param=f.name)

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
