"""The registry of scorers: a name and a factory each.

``supernet`` and ``table`` are built in; ``predictor`` is registered by the predictor
package when it is imported (``register_scorer("predictor", factory)``).
"""

from __future__ import annotations

from typing import Any, Callable

from search_spaces import UnknownNameError

from evonas.scorers.base import Scorer

ScorerFactory = Callable[..., Scorer]

_SCORERS: dict[str, ScorerFactory] = {}


def register_scorer(name: str, factory: ScorerFactory, *, replace: bool = False) -> ScorerFactory:
    """Register ``factory(**options) -> Scorer`` under ``name``."""
    if name in _SCORERS and _SCORERS[name] is not factory and not replace:
        raise ValueError(f"a scorer named {name!r} is already registered; pass replace=True to override it")
    _SCORERS[name] = factory
    return factory


def get_scorer(name: str) -> ScorerFactory:
    """The factory registered as ``name``; an unknown name lists the valid ones."""
    _load_builtins()
    try:
        return _SCORERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown scorer {name!r}; choose one of: {', '.join(list_scorers())}") from None


def make_scorer(name: str, **options: Any) -> Scorer:
    return get_scorer(name)(**options)


def list_scorers() -> list[str]:
    _load_builtins()
    return sorted(_SCORERS)


def _load_builtins() -> None:
    if "table" not in _SCORERS:
        from evonas.scorers.supernet import SupernetScorer
        from evonas.scorers.table import TableScorer

        register_scorer("table", TableScorer.from_options)
        register_scorer("supernet", SupernetScorer.from_options)
        from evonas.scorers.predictor import PredictorScorer

        register_scorer("predictor", PredictorScorer.from_options)
        from evonas.scorers.standalone import StandaloneScorer

        register_scorer("standalone", StandaloneScorer.from_options)
