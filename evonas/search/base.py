"""The searcher lifecycle: a searcher is asked for candidates and told their results.

Like Optuna's ``BaseSampler``, the lifecycle is documented before the methods:

1. The driver (:func:`evonas.search.driver.run_search`) builds a searcher from a
   :class:`Problem` (space, objectives, feasibility) and a seed.
2. It calls :meth:`Searcher.ask` for one candidate architecture, canonicalises it and
   checks its constraints.
3. It calls :meth:`Searcher.tell` with an :class:`Evaluation` for *every* ask: a
   fresh score, a cached one (a duplicate proposal, which costs no budget), or an
   infeasible verdict (not scored).
4. It stops when ``budget`` distinct architectures were scored, or when the searcher
   keeps proposing nothing new (bounded), then calls :meth:`Searcher.close`.

The driver asks through :meth:`Searcher.ask_batch`, which returns the next asks that
do not depend on the results still to be told: the rest of a DEAP generation, the
random start-up trials of TPE, any number of random samples; one ask otherwise. It
scores that batch at once (in parallel with ``--workers``) and tells the results in
ask order, so a batched search asks exactly what the one-by-one search asks.

Searchers never see the budget, never score, and never touch the store; given the
same seed and the same told values they ask the same sequence, which is what makes
``--resume`` a replay served from the store.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Mapping

from search_spaces import Arch, InfeasibleConstraintError, Space

from evonas.evaluation.costs import METRICS
from evonas.search.constraints import Constraints, feasible_sampler
from evonas.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    """One thing to optimise: a metric name and its direction."""

    metric: str  # the scorer's target metric, or flops / params / latency_ms
    maximize: bool


def parse_objectives(text: str | None, target: str) -> tuple[Objective, ...]:
    """``"accuracy,flops"`` -> objectives; ``accuracy`` (or the target's own name) means the target."""
    names = [n.strip() for n in (text or "accuracy").split(",") if n.strip()]
    out = []
    for name in names:
        name = {"latency": "latency_ms"}.get(name, name)  # the name users write for the measured latency
        if name in ("accuracy", target):
            out.append(Objective(target, True))
        elif name in METRICS:
            out.append(Objective(name, False))
        else:
            raise ConfigError(
                f"The 'objectives' parameter must list 'accuracy' (the scorer's target, {target!r}) or "
                f"{', '.join(METRICS)}; got {name!r} in {text!r}", param="objectives"
            )
    if not out or not out[0].maximize:
        raise ConfigError(f"The 'objectives' parameter must start with accuracy (the target); got {text!r}",
                          param="objectives")
    if len({o.metric for o in out}) != len(out):
        raise ConfigError(f"The 'objectives' parameter must name each objective once; got {text!r}",
                          param="objectives")
    return tuple(out)


@dataclass(frozen=True)
class Evaluation:
    """What the driver tells a searcher about one asked architecture."""

    arch: Arch  # canonical
    feasible: bool  # False: a constraint is violated and the architecture was not scored
    value: float  # the target (first objective); NaN when infeasible
    objectives: tuple[float, ...]  # raw values in Problem.objectives order (costs known even when infeasible)
    violations: tuple[float, ...] = ()  # cost - limit per active constraint (<= 0 is satisfied)
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """What a searcher works on: a space, what to optimise, and what is feasible."""

    space: Space
    objectives: tuple[Objective, ...]
    constraints: Constraints
    costs: Callable[[Arch], Mapping[str, float]]  # free cost look-up (flops, params, latency_ms)
    known: Callable[[Arch], bool] = lambda arch: True  # e.g. "has a row in the table"

    def feasible(self, arch: Arch) -> bool:
        return self.known(arch) and self.constraints.satisfied(self.costs(arch))

    def sampler(self) -> Callable[[random.Random], Arch]:
        """A bounded sampler of feasible architectures (rejection, then greedy repair)."""
        return feasible_sampler(self.space, self.feasible, self.costs, self.constraints)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


@dataclass(frozen=True, kw_only=True)
class SearcherConfig:
    """Searchers without options use this empty config."""


class Searcher(ABC):
    """Base class of registered searchers (see the module docstring for the lifecycle)."""

    name: ClassVar[str]
    Config: ClassVar[type] = SearcherConfig
    multi_objective: ClassVar[bool] = False  # can it optimise more than one objective?
    summary: ClassVar[str] = ""

    @classmethod
    def check_problem(cls, problem: Problem) -> None:
        """Raise the ConfigError this searcher would raise for ``problem``, without building it (nothing written)."""
        if problem.multi_objective and not cls.multi_objective:
            raise ConfigError(
                f"The 'objectives' parameter names several objectives, but searcher {cls.name!r} optimises "
                f"one objective; got {','.join(o.metric for o in problem.objectives)!r} (multi-objective searchers: "
                "nsga2, optuna-nsga2, tpe, random)", param="objectives"
            )

    def __init__(self, problem: Problem, *, seed: int, config: Any = None, context: "SearchContext | None" = None) -> None:
        self.check_problem(problem)
        self.problem = problem
        self.space = problem.space
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config if config is not None else self.Config()
        self.context = context or SearchContext()

    @abstractmethod
    def ask(self) -> Arch:
        """Propose one architecture (the driver canonicalises and checks it)."""

    @abstractmethod
    def tell(self, evaluation: Evaluation) -> None:
        """Receive the result of the last asked architecture."""

    def ask_batch(self, limit: int) -> list[Arch]:
        """Between 1 and ``limit`` asks that :meth:`ask` would give one by one, each told before the next.

        Override it where the next asks do not depend on the pending tells; the driver
        tells every returned architecture, in order, before it asks again. This
        default asks once.
        """
        return [self.ask()]

    def _ask_independent(self, n: int) -> list[Arch]:
        """``n`` plain asks; an error after the first is kept and raised by the next call, as serially."""
        error = self.__dict__.pop("_deferred_error", None)
        if error is not None:
            raise error
        out = [self.ask()]
        for _ in range(n - 1):
            try:
                out.append(self.ask())
            except InfeasibleConstraintError as exc:
                self._deferred_error = exc
                break
        return out

    def close(self) -> None:
        """Release resources (an Optuna storage connection, for example)."""

    def sample_new(self, seen: set[Arch], tries: int = 200) -> Arch:
        """A feasible architecture not in ``seen`` (canonical), with bounded retries.

        Raises InfeasibleConstraintError when no new feasible architecture turns up.
        """
        sample = self.__dict__.get("_sampler") or self.__dict__.setdefault("_sampler", self.problem.sampler())
        for _ in range(tries):
            arch = self.space.canonical(sample(self.rng))
            if arch not in seen:
                return arch
        raise InfeasibleConstraintError(
            f"{self.name}: {tries} feasible draws in a row were all already evaluated; the feasible part of "
            f"space {self.space.name!r} looks exhausted"
        )


@dataclass(frozen=True, kw_only=True)
class SearchContext:
    """Where a searcher may keep its own state (only the Optuna searchers use it)."""

    run_dir: str | None = None  # run directory, if any
    storage: str | None = None  # SQLAlchemy URL for Optuna; None -> RUN/optuna.db or memory
    study_name: str = "evonas"  # the search run's name, or the shared study's (--study-name)
    resume: bool = False
    shared: bool = False  # join the study if it exists (workers sharing one study), never delete it


def build_config(cls: type[Searcher], options: Mapping[str, Any]) -> Any:
    """The searcher's config from CLI options; an option the searcher lacks is an error."""
    known = {f.name for f in fields(cls.Config)}
    extra = sorted(k for k in options if k not in known)
    if extra:
        named = " and ".join(f"the {k!r} parameter" for k in extra)
        verb = "does" if len(extra) == 1 else "do"
        accepted = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"{named[0].upper()}{named[1:]} {verb} not apply to searcher {cls.name!r}; "
                          f"its parameters: {accepted}", param=extra[0])
    return cls.Config(**options)


def check_prob(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ConfigError(f"The {name!r} parameter must be a probability in [0, 1]; got {value!r}.", param=name)


def check_min(name: str, value: int, low: int) -> None:
    if not isinstance(value, int) or value < low:
        raise ConfigError(f"The {name!r} parameter must be an integer >= {low}; got {value!r}.", param=name)
