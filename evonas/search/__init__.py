"""Searchers (evolution, nsga2, rea, random, Optuna samplers) and the driver that runs them.

>>> from evonas.search import list_searchers, make_searcher, make_problem, run_search
"""

from __future__ import annotations

from evonas.search.base import Evaluation, Objective, Problem, SearchContext, Searcher, parse_objectives
from evonas.search.driver import SearchResult, make_problem, run_search
from evonas.search.evolution import NSGA2, Evolution
from evonas.search.optuna_search import optuna_searchers
from evonas.search.random_search import RandomSearch
from evonas.search.rea import RegularizedEvolution
from evonas.search.registry import get_searcher, list_searchers, make_searcher, register_searcher

for _cls in (Evolution, NSGA2, RegularizedEvolution, RandomSearch, *optuna_searchers()):
    register_searcher(_cls)

__all__ = [
    "Evaluation", "Objective", "Problem", "SearchContext", "SearchResult", "Searcher", "get_searcher",
    "list_searchers", "make_problem", "make_searcher", "parse_objectives", "register_searcher", "run_search",
]
