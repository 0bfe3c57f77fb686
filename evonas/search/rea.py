"""Regularized (aging) evolution, REA (Real et al., AAAI 2019), the standard NB201 reference.

A population of the ``population`` most recent architectures; each child mutates
the best of ``tournament`` members drawn at random; the oldest member dies when a
child joins. Children are feasible and new (bounded retries, then a random new one).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from search_spaces import Arch

from evonas.search.base import Evaluation, Searcher, check_min, check_prob


@dataclass(frozen=True, kw_only=True)
class REAConfig:
    """Options of regularized evolution."""

    population: int = 20  # members alive at once (also the random initial sample)
    tournament: int = 5  # members drawn per parent choice; the best of them is the parent
    mutation_prob: float = 0.0  # per-dimension resampling probability; at least one dimension always changes

    def __post_init__(self) -> None:
        check_min("population", self.population, 2)
        check_min("tournament", self.tournament, 1)
        check_prob("mutation_prob", self.mutation_prob)


class RegularizedEvolution(Searcher):
    """Aging evolution with tournament selection and single-edit mutations."""

    name = "rea"
    Config = REAConfig
    summary = "regularized (aging) evolution: tournament parent, one mutation, oldest dies"

    def __init__(self, problem, *, seed, config=None, context=None) -> None:
        super().__init__(problem, seed=seed, config=config, context=context)
        self.population: deque[tuple[Arch, float]] = deque()
        self.seen: set[Arch] = set()
        self.initial = 0  # random members proposed so far

    def ask(self) -> Arch:
        cfg = self.config
        if self.initial < cfg.population or not self.population:
            self.initial += 1
            arch = self.sample_new(self.seen)
        else:
            arch = self._child(cfg)
        self.seen.add(arch)
        return arch

    def ask_batch(self, limit: int) -> list[Arch]:
        """The random initial members still to come (at most ``limit``), else one child."""
        return self._ask_independent(max(1, min(limit, self.config.population - self.initial)))

    def _child(self, cfg: REAConfig) -> Arch:
        for _ in range(100):
            members = self.rng.sample(list(self.population), min(cfg.tournament, len(self.population)))
            parent = max(members, key=lambda m: m[1])[0]
            child = self.space.canonical(self.space.mutate(parent, self.rng, cfg.mutation_prob))
            if child not in self.seen and self.problem.feasible(child):
                return child
        return self.sample_new(self.seen)

    def tell(self, evaluation: Evaluation) -> None:
        if not evaluation.feasible or any(a == evaluation.arch for a, _ in self.population):
            return
        self.population.append((evaluation.arch, evaluation.value))
        if len(self.population) > self.config.population:
            self.population.popleft()
