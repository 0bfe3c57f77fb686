"""The registry of searchers: one name per class; an unknown name lists the valid ones."""

from __future__ import annotations

from typing import Any, Mapping

from search_spaces import UnknownNameError

from evonas.errors import ConfigError
from evonas.search.base import Problem, SearchContext, Searcher, build_config

_SEARCHERS: dict[str, type[Searcher]] = {}


def register_searcher(cls: type[Searcher]) -> type[Searcher]:
    """Register a Searcher subclass under ``cls.name`` (usable as a class decorator)."""
    name = cls.name
    if name in _SEARCHERS and _SEARCHERS[name] is not cls:
        raise ConfigError(f"The 'name' of searcher class {cls.__qualname__} must be new; {name!r} is already registered")
    _SEARCHERS[name] = cls
    return cls


def get_searcher(name: str) -> type[Searcher]:
    try:
        return _SEARCHERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown searcher {name!r}; choose one of: {', '.join(list_searchers())}") from None


def list_searchers() -> list[str]:
    return sorted(_SEARCHERS)


def make_searcher(name: str, problem: Problem, *, seed: int, options: Mapping[str, Any] | None = None,
                  context: SearchContext | None = None) -> Searcher:
    """Build searcher ``name`` for ``problem``; ``options`` are its config fields (CLI options)."""
    cls = get_searcher(name)
    return cls(problem, seed=seed, config=build_config(cls, options or {}), context=context)
