"""Evolutionary searchers built on DEAP: SPOS evolution and NSGA-II. The only module that imports deap.

DEAP's ``creator.create`` writes global classes and warns when run twice, so the
fitness and individual classes are created once, here, at import (guarded), for one
to four objectives. Every objective is maximised inside DEAP: minimised objectives
(FLOPs, params, latency) are negated before they become fitness values. Each search
builds a fresh ``Toolbox`` whose operators are the named functions below, bound to
the search's own ``random.Random``; DEAP's built-in variation operators are not used
because they draw from the global ``random`` module.

Generation happens in batches (one generation at a time) but is handed out through
the ask/tell lifecycle: ``ask`` pops the next child, breeding a new generation when
the previous one has been told. Children are feasible and never seen before, with
bounded retries; a child that cannot be made new is replaced by a random new one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from deap import base, creator, tools

from search_spaces import Arch, InfeasibleConstraintError, Space

from evonas.search.base import Evaluation, Searcher, check_min, check_prob

MAX_OBJECTIVES = 4


def _create_classes() -> None:
    for n in range(1, MAX_OBJECTIVES + 1):
        fitness = f"EvonasFitness{n}"
        if not hasattr(creator, fitness):
            creator.create(fitness, base.Fitness, weights=(1.0,) * n)
        individual = f"EvonasIndividual{n}"
        if not hasattr(creator, individual):
            creator.create(individual, list, fitness=getattr(creator, fitness))


_create_classes()


def individual_class(n_objectives: int) -> type:
    """The DEAP individual class (a list of option codes) for ``n_objectives`` maximised values."""
    return getattr(creator, f"EvonasIndividual{n_objectives}")


# --- named variation operators (bound to a search's rng in its Toolbox) ------------------------
def mutate_per_dim(parent: Arch, *, space: Space, rng: random.Random, prob: float) -> Arch:
    """Resample each dimension with probability ``prob``; at least one dimension changes."""
    return space.mutate(parent, rng, prob)


def crossover_uniform(a: Arch, b: Arch, *, space: Space, rng: random.Random) -> Arch:
    """Each dimension from either parent with equal chance."""
    return space.crossover(a, b, rng)


def _as_arch(space: Space, ind: list) -> Arch:
    return Arch(space.name, tuple(ind))


class _DeapSearcher(Searcher):
    """Shared machinery: a queue of bred children, the evaluated individuals, a Toolbox."""

    def __init__(self, problem, *, seed, config=None, context=None) -> None:
        super().__init__(problem, seed=seed, config=config, context=context)
        self.n_obj = len(problem.objectives)
        self.Individual = individual_class(self.n_obj)
        self.signs = tuple(1.0 if o.maximize else -1.0 for o in problem.objectives)
        self.toolbox = base.Toolbox()
        self.toolbox.register("mutate", mutate_per_dim, space=self.space, rng=self.rng, prob=self.config.mutation_prob)
        self.toolbox.register("mate", crossover_uniform, space=self.space, rng=self.rng)
        self.seen: set[Arch] = set()  # everything asked or told
        self.queue: list[Arch] = []  # bred, not yet asked
        self.told: dict[Arch, list] = {}  # feasible evaluated individuals by arch
        self.generation = 0

    def _individual(self, ev: Evaluation) -> list:
        ind = self.Individual(ev.arch.choices)
        ind.fitness.values = tuple(s * v for s, v in zip(self.signs, ev.objectives))
        return ind

    def _generation(self, n: int, child: Callable[[int, set[Arch]], Arch]) -> list[Arch]:
        """Up to ``n`` new children; fewer when the feasible space runs out (none: the error propagates)."""
        fresh: set[Arch] = set()
        out: list[Arch] = []
        for i in range(n):
            try:
                arch = child(i, fresh)
            except InfeasibleConstraintError:
                if out:
                    break
                raise
            fresh.add(arch)
            out.append(arch)
        return out

    def _new_child(self, make: Callable[[], Arch], fresh: set[Arch], tries: int = 50) -> Arch:
        """A feasible, never-seen child from ``make`` (bounded), else a random new architecture."""
        for _ in range(tries):
            child = self.space.canonical(make())
            if child not in self.seen and child not in fresh and self.problem.feasible(child):
                return child
        return self.sample_new(self.seen | fresh)

    def _breed(self) -> list[Arch]:
        raise NotImplementedError

    def ask(self) -> Arch:
        if not self.queue:
            self.queue = self._breed()[::-1]  # pop() from the end keeps breeding order
            self.generation += 1
        arch = self.queue.pop()
        self.seen.add(arch)
        return arch

    def ask_batch(self, limit: int) -> list[Arch]:
        """The rest of the current generation (breeding one first when it is used up), at most ``limit``."""
        first = self.ask()
        return [first] + [self.ask() for _ in range(min(limit - 1, len(self.queue)))]

    def tell(self, evaluation: Evaluation) -> None:
        self.seen.add(evaluation.arch)
        if evaluation.feasible and evaluation.arch not in self.told:
            ind = self._individual(evaluation)
            self.told[evaluation.arch] = ind
            self._accept(ind)

    def _accept(self, ind: list) -> None:
        """Hook: a newly evaluated feasible individual."""

    def _random_generation(self, n: int) -> list[Arch]:
        return self._generation(n, lambda i, fresh: self.sample_new(self.seen | fresh))


@dataclass(frozen=True, kw_only=True)
class EvolutionConfig:
    """Options of the SPOS evolutionary search (Guo et al., ECCV 2020), tuned for small budgets."""

    # defaults tuned on NB201 CIFAR-10 (seeds 1000-1149, budgets 50-200; see benchmarks/search_nb201.py);
    # SPOS itself used population 50, top-10, mutation 0.1, half crossover for budgets of ~1000
    population: int = 10  # children bred per generation (and the size of the random first generation)
    parents: int = 3  # top-k of everything evaluated so far that breeds the next generation
    mutation_prob: float = 0.2  # per-dimension resampling probability of a mutation (>= 1 dimension always changes)
    crossover_fraction: float = 0.2  # share of each generation bred by uniform crossover of two parents

    def __post_init__(self) -> None:
        check_min("population", self.population, 1)
        check_min("parents", self.parents, 1)
        check_prob("mutation_prob", self.mutation_prob)
        check_prob("crossover_fraction", self.crossover_fraction)


class Evolution(_DeapSearcher):
    """SPOS evolution: the top-k of all evaluated architectures breed each generation."""

    name = "evolution"
    Config = EvolutionConfig
    summary = "SPOS evolution (DEAP): top-k parents, per-layer mutation, uniform crossover, no repeats"

    def __init__(self, problem, *, seed, config=None, context=None) -> None:
        super().__init__(problem, seed=seed, config=config, context=context)
        self.toolbox.register("select", tools.selBest)

    def _breed(self) -> list[Arch]:
        cfg = self.config
        if not self.told:
            return self._random_generation(cfg.population)
        parents = [_as_arch(self.space, p) for p in self.toolbox.select(list(self.told.values()), cfg.parents)]
        n_cross = round(cfg.population * cfg.crossover_fraction) if len(parents) > 1 else 0

        def child(i: int, fresh: set[Arch]) -> Arch:
            if i < n_cross:
                a, b = self.rng.sample(parents, 2)
                return self._new_child(lambda: self.toolbox.mate(a, b), fresh)
            p = self.rng.choice(parents)
            return self._new_child(lambda: self.toolbox.mutate(p), fresh)

        return self._generation(cfg.population, child)


@dataclass(frozen=True, kw_only=True)
class NSGA2Config:
    """Options of NSGA-II (Deb et al., 2002)."""

    population: int = 20  # survivors per generation (and children bred per generation)
    mutation_prob: float = 0.2  # per-dimension resampling probability (>= 1 dimension always changes)
    crossover_prob: float = 0.9  # chance that a child is a uniform crossover of two parents before mutation

    def __post_init__(self) -> None:
        check_min("population", self.population, 2)
        check_prob("mutation_prob", self.mutation_prob)
        check_prob("crossover_prob", self.crossover_prob)


class NSGA2(_DeapSearcher):
    """NSGA-II over accuracy and costs: non-dominated sorting and crowding distance (DEAP's selNSGA2)."""

    name = "nsga2"
    Config = NSGA2Config
    multi_objective = True
    summary = "NSGA-II (DEAP): non-dominated sorting + crowding over accuracy and FLOPs/params/latency"

    def __init__(self, problem, *, seed, config=None, context=None) -> None:
        super().__init__(problem, seed=seed, config=config, context=context)
        self.toolbox.register("select", tools.selNSGA2)
        self.population: list[list] = []
        self.offspring: list[list] = []

    def _accept(self, ind: list) -> None:
        self.offspring.append(ind)

    def _rank(self, pop: list[list]) -> dict[int, tuple[int, float]]:
        """(front index, crowding distance) of each member, keyed by id()."""
        out = {}
        for r, front in enumerate(tools.sortNondominated(pop, len(pop))):
            tools.emo.assignCrowdingDist(front)
            for ind in front:
                out[id(ind)] = (r, ind.fitness.crowding_dist)
        return out

    def _tournament(self, pop: list[list], rank: dict[int, tuple[int, float]]) -> Arch:
        a, b = self.rng.sample(pop, 2) if len(pop) > 1 else (pop[0], pop[0])
        ra, rb = rank[id(a)], rank[id(b)]
        win = a if (ra[0], -ra[1]) <= (rb[0], -rb[1]) else b
        return _as_arch(self.space, win)

    def _breed(self) -> list[Arch]:
        cfg = self.config
        pool = self.population + self.offspring
        self.offspring = []
        if not pool:
            return self._random_generation(cfg.population)
        self.population = self.toolbox.select(pool, min(cfg.population, len(pool)))
        rank = self._rank(self.population)

        def child(i: int, fresh: set[Arch]) -> Arch:
            a = self._tournament(self.population, rank)
            b = self._tournament(self.population, rank)

            def make() -> Arch:
                mixed = self.toolbox.mate(a, b) if self.rng.random() < cfg.crossover_prob else a
                return self.toolbox.mutate(mixed)

            return self._new_child(make, fresh)

        return self._generation(cfg.population, child)
