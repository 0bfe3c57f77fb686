"""Random search: the baseline every searcher must beat."""

from __future__ import annotations

from search_spaces import Arch

from evonas.search.base import Evaluation, Searcher


class RandomSearch(Searcher):
    """Uniformly random feasible architectures, never the same one twice."""

    name = "random"
    multi_objective = True  # it ignores objectives, so any number is fine
    summary = "uniform feasible samples without repeats (the baseline)"

    def __init__(self, problem, *, seed, config=None, context=None) -> None:
        super().__init__(problem, seed=seed, config=config, context=context)
        self.seen: set[Arch] = set()

    def ask(self) -> Arch:
        arch = self.sample_new(self.seen)
        self.seen.add(arch)
        return arch

    def ask_batch(self, limit: int) -> list[Arch]:
        """Up to ``limit`` samples: they do not depend on the scores."""
        return self._ask_independent(limit)

    def tell(self, evaluation: Evaluation) -> None:
        self.seen.add(evaluation.arch)
