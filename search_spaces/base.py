"""The architecture value and the search-space description.

A :class:`Space` lists labelled dimensions and the options each may take. It
samples, mutates, crosses over, validates, canonicalises, counts and enumerates
architectures, and it knows what each architecture costs (FLOPs, params) from the
description alone. It imports no torch: the supernet, FLOPs counter, predictors and
searchers all read this one description.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

from .errors import ArchStringError, InfeasibleConstraintError, SpaceError, UnknownNameError

# The registered spaces by name. ``search_spaces.registry`` fills and reads it; it lives
# here so that ``str(arch)`` finds its space's format without importing the registry.
SPACES: dict[str, "Space"] = {}


@dataclass(frozen=True)
class Dim:
    """One searchable decision: a stable label and the option codes it allows.

    ``options`` are integer codes into the space's op table; ``names`` are the
    human-readable names of those codes, in the same order.
    """

    label: str
    options: tuple[int, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Arch:
    """An architecture: the space it belongs to and one option code per dimension.

    It is a small immutable value; ``str(arch)`` gives the space's stable string and
    ``Space.parse`` reads it back. Two strings that describe the same network map to
    the same value under ``Space.canonical``; use that as the key of caches and stores.
    """

    space: str
    choices: tuple[int, ...]

    def __str__(self) -> str:
        space = SPACES.get(self.space)
        if space is None:
            raise UnknownNameError(f"an architecture of space {self.space!r} cannot be printed: the space is not "
                                   f"registered (registered: {', '.join(sorted(SPACES))})")
        return space.format(self)


@dataclass(frozen=True)
class Cost:
    """What an architecture costs, counted from the description.

    ``flops`` are multiply-accumulates of convolutions and linear layers (the
    convention of NAS-Bench-Macro and NAS-Bench-201); ``params`` counts every
    trainable parameter (BN affine included, running statistics excluded).
    """

    flops: int
    params: int

    def get(self, metric: str) -> int:
        if metric not in ("flops", "params"):
            raise UnknownNameError(f"The 'metric' parameter must be 'flops' or 'params'; got {metric!r}.")
        return getattr(self, metric)


class Space:
    """Base class of search-space descriptions.

    Subclasses set ``name``, ``dims`` and ``summary`` and implement ``format``,
    ``parse``, ``canonical`` and ``_layer_costs``. Costs are additive: a fixed part
    plus one term per dimension, which makes the cheapest network exact to compute
    and constraint checks cheap.
    """

    name: str
    dims: tuple[Dim, ...]
    summary: str = ""

    # --- encoding -----------------------------------------------------------------
    def format(self, arch: Arch) -> str:
        raise NotImplementedError

    def parse(self, text: str) -> Arch:
        raise NotImplementedError

    def canonical(self, arch: Arch) -> Arch:
        """The representative of all strings that describe the same network."""
        return arch

    # --- validation ---------------------------------------------------------------
    def make(self, choices: Sequence[int]) -> Arch:
        """Build and validate an architecture from option codes."""
        choices = tuple(int(c) for c in choices)
        if len(choices) != len(self.dims):
            raise ArchStringError(
                f"space {self.name!r} has {len(self.dims)} dimensions, got {len(choices)} "
                f"choices {choices}"
            )
        for i, (dim, code) in enumerate(zip(self.dims, choices)):
            if code not in dim.options:
                raise ArchStringError(
                    f"position {i} ({dim.label}) of a {self.name!r} architecture must be one "
                    f"of {list(dim.options)} ({', '.join(dim.names)}); got {code}"
                )
        return Arch(self.name, choices)

    def validate(self, arch: Arch) -> Arch:
        if arch.space != self.name:
            raise ArchStringError(
                f"architecture belongs to space {arch.space!r}, not {self.name!r}"
            )
        return self.make(arch.choices)

    def coerce(self, value: "Arch | str | Sequence[int]") -> Arch:
        """Accept an ``Arch``, its string, or a sequence of option codes."""
        if isinstance(value, Arch):
            return self.validate(value)
        if isinstance(value, str):
            return self.parse(value)
        return self.make(value)

    # --- counting and enumeration -------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(d.label for d in self.dims)

    @property
    def num_strings(self) -> int:
        """How many distinct strings (choice tuples) the space has."""
        return math.prod(len(d.options) for d in self.dims)

    def enumerate(self, canonical_only: bool = True, limit: int = 10_000_000) -> Iterator[Arch]:
        """Yield every architecture (once per network when ``canonical_only``)."""
        if self.num_strings > limit:
            raise InfeasibleConstraintError(
                f"space {self.name!r} has {self.num_strings:.3g} architectures, more than "
                f"the enumeration limit {limit:,}; sample from it instead"
            )
        for choices in itertools.product(*(d.options for d in self.dims)):
            arch = Arch(self.name, tuple(choices))
            if not canonical_only or self.canonical(arch) == arch:
                yield arch

    # --- random operators -----------------------------------------------------------
    def sample(self, rng: random.Random) -> Arch:
        """One architecture, every dimension drawn uniformly."""
        return Arch(self.name, tuple(rng.choice(d.options) for d in self.dims))

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.1) -> Arch:
        """Resample each dimension with probability ``prob`` (to a different option).

        At least one dimension changes, so the child is a different string.
        """
        if not 0.0 <= prob <= 1.0:  # NaN fails too
            raise SpaceError(f"The 'prob' parameter of Space.mutate must be a probability in [0, 1]; got {prob!r}.")
        choices = list(arch.choices)
        mutable = [i for i, d in enumerate(self.dims) if len(d.options) > 1]
        changed = False
        for i in mutable:
            if rng.random() < prob:
                choices[i] = rng.choice([o for o in self.dims[i].options if o != choices[i]])
                changed = True
        if not changed and mutable:
            i = rng.choice(mutable)
            choices[i] = rng.choice([o for o in self.dims[i].options if o != choices[i]])
        return Arch(self.name, tuple(choices))

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Uniform crossover: each dimension from either parent with equal chance."""
        return Arch(self.name, tuple(x if rng.random() < 0.5 else y for x, y in zip(a.choices, b.choices)))

    # --- cost -----------------------------------------------------------------------
    def _layer_costs(self) -> tuple[Cost, list[dict[int, Cost]]]:
        """(fixed cost, per-dimension cost of each option code)."""
        raise NotImplementedError

    def _cost_table(self) -> tuple[Cost, list[dict[int, Cost]]]:
        table = self.__dict__.get("_cost_cache")
        if table is None:
            table = self._layer_costs()
            self.__dict__["_cost_cache"] = table
        return table

    def cost(self, arch: Arch) -> Cost:
        fixed, per_dim = self._cost_table()
        flops, params = fixed.flops, fixed.params
        for table, code in zip(per_dim, arch.choices):
            flops += table[code].flops
            params += table[code].params
        return Cost(flops, params)

    def min_cost(self, metric: str) -> int:
        """The smallest value of ``metric`` over the whole space (exact)."""
        fixed, per_dim = self._cost_table()
        return fixed.get(metric) + sum(min(c.get(metric) for c in t.values()) for t in per_dim)

    def max_cost(self, metric: str) -> int:
        fixed, per_dim = self._cost_table()
        return fixed.get(metric) + sum(max(c.get(metric) for c in t.values()) for t in per_dim)

    def describe(self) -> str:
        return f"{self.name}: {self.summary} ({len(self.dims)} dimensions, {self.num_strings:,} strings)"
