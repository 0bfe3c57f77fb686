"""The registry of scorers: a name, a factory and the options it accepts.

``supernet``, ``table``, ``predictor`` and ``standalone`` are built in;
``register_scorer(name, factory)`` adds more. A factory takes keyword options only;
the options it accepts are read from its signature (or given explicitly), so
:func:`make_scorer` rejects an option the scorer does not take and lists the valid
ones. A caller holding options for several scorers (the search command) passes only
those that apply: ``make_scorer(name, **select_options(name, options))``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping

from search_spaces import UnknownNameError

from evonas.errors import ConfigError
from evonas.scorers.base import Scorer

ScorerFactory = Callable[..., Scorer]

_SCORERS: dict[str, ScorerFactory] = {}
_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # name -> (accepted, required)


def _signature_options(name: str, factory: ScorerFactory) -> tuple[frozenset[str], frozenset[str]]:
    accepted, required = set(), set()
    for p in inspect.signature(factory).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            raise ConfigError(
                f"The 'options' parameter is required to register scorer {name!r}: its factory takes **{p.name}, "
                "so the options it accepts cannot be read from its signature", param="options"
            )
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            accepted.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    return frozenset(accepted), frozenset(required)


def register_scorer(name: str, factory: ScorerFactory, *, options: Iterable[str] | None = None,
                    replace: bool = False) -> ScorerFactory:
    """Register ``factory(**options) -> Scorer`` under ``name``.

    ``options`` lists the keyword options the factory accepts; by default they are
    read from its signature (a factory taking ``**kwargs`` must list them).
    """
    if name in _SCORERS and _SCORERS[name] is not factory and not replace:
        raise ConfigError(f"The 'name' parameter must be new: a scorer named {name!r} is already registered; "
                          "pass replace=True to override it", param="name")
    if options is None:
        accepted = _signature_options(name, factory)
    else:
        accepted = (frozenset(options), frozenset())
    _SCORERS[name] = factory
    _OPTIONS[name] = accepted
    return factory


def get_scorer(name: str) -> ScorerFactory:
    """The factory registered as ``name``; an unknown name lists the valid ones."""
    _load_builtins()
    try:
        return _SCORERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown scorer {name!r}; choose one of: {', '.join(list_scorers())}") from None


def scorer_options(name: str) -> frozenset[str]:
    """The options scorer ``name`` accepts (keyword arguments of :func:`make_scorer`)."""
    get_scorer(name)
    return _OPTIONS[name][0]


def select_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``options`` that scorer ``name`` accepts, for callers holding a superset."""
    accepted = scorer_options(name)
    return {k: v for k, v in options.items() if k in accepted}


def make_scorer(name: str, **options: Any) -> Scorer:
    """Build scorer ``name``; an option it does not accept, or a missing required one, is a ConfigError."""
    factory = get_scorer(name)
    accepted, required = _OPTIONS[name]
    valid = ", ".join(sorted(accepted)) or "none"
    for key in sorted(options):
        if key not in accepted:
            raise ConfigError(f"The {key!r} option is not accepted by scorer {name!r}; valid options: {valid}",
                              param=key)
    for key in sorted(required):
        if key not in options:
            raise ConfigError(f"The {key!r} option is required by scorer {name!r}; valid options: {valid}",
                              param=key)
    return factory(**options)


def list_scorers() -> list[str]:
    """The registered scorer names, sorted."""
    _load_builtins()
    return sorted(_SCORERS)


def _load_builtins() -> None:
    if "table" not in _SCORERS:
        from evonas.scorers.predictor import PredictorScorer
        from evonas.scorers.standalone import StandaloneScorer
        from evonas.scorers.supernet import SupernetScorer
        from evonas.scorers.table import TableScorer

        register_scorer("table", TableScorer.from_options)
        register_scorer("supernet", SupernetScorer.from_options)
        register_scorer("predictor", PredictorScorer.from_options)
        register_scorer("standalone", StandaloneScorer.from_options)
