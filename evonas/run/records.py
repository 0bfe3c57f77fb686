"""Immutable records of what was scored and what a search did.

A :class:`Record` is one score: the canonical architecture, the scorer that produced
it, its metrics, where the numbers came from (supernet checkpoint, table file, seed)
and when. Searchers and reports read records; only :mod:`evonas.run.store` writes them.
:class:`SearchRun` and :class:`Step` are the history of one search: which
architecture it proposed at each step and what value it saw.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text (and digests)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, kw_only=True)
class Record:
    """One evaluation of one architecture by one scorer."""

    space: str  # search-space name
    arch: str  # canonical architecture string (the cache key)
    scorer: str  # registered scorer name: supernet, table, predictor, ...
    source_key: str  # short digest of ``source``: records are reused only within one source
    metrics: Mapping[str, float]  # e.g. accuracy, loss, flops, params, table columns
    source: Mapping[str, Any]  # where the numbers came from (checkpoint sha256, table file, seed)
    created: float  # Unix time the score was stored
    id: int | None = None  # row id in the store (None before it is stored)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", _frozen(self.metrics))
        object.__setattr__(self, "source", _frozen(self.source))

    def metric(self, name: str) -> float:
        """The value of one metric; NaN if the scorer did not produce it."""
        value = self.metrics.get(name)
        return math.nan if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "space": self.space,
            "arch": self.arch,
            "scorer": self.scorer,
            "source_key": self.source_key,
            "metrics": dict(self.metrics),
            "source": dict(self.source),
            "created": self.created,
        }


@dataclass(frozen=True, kw_only=True)
class SearchRun:
    """One invocation of a searcher: its algorithm, seed and resolved configuration."""

    id: int
    name: str  # unique within a store, e.g. evolution-s0
    algo: str
    seed: int
    config: Mapping[str, Any]  # resolved options: constraints, objectives, searcher config, scorer
    created: float
    finished: float | None = None  # None while running or after a kill
    summary: Mapping[str, Any] = field(default_factory=dict)  # the final result object, once finished

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", _frozen(self.config))
        object.__setattr__(self, "summary", _frozen(self.summary))


@dataclass(frozen=True, kw_only=True)
class Step:
    """One distinct architecture a search proposed: scored (feasible) or rejected by the constraints."""

    run_id: int
    index: int  # 0-based position among this run's distinct proposals
    arch: str  # canonical string
    value: float | None  # target value; None when the architecture was infeasible (not scored)
    feasible: bool
    record_id: int | None  # the Record that holds the metrics (None when not scored)
    created: float
