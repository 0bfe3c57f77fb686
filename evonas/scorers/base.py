"""The scorer interface: one architecture in, a dict of metrics out, with its provenance."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from search_spaces import Arch, Space

from evonas.evaluation.costs import CostModel
from evonas.run.records import canonical_json


def source_key(provenance: dict[str, Any]) -> str:
    """A short, stable digest of a provenance dict: records are shared only within one key."""
    return hashlib.sha256(canonical_json(provenance).encode()).hexdigest()[:16]


class Scorer(ABC):
    """Scores architectures of one space.

    ``score(arch)`` returns metrics that include ``target`` (the value searches
    maximise) and the cost metrics (flops, params, and latency_ms when known).
    ``provenance()`` says where the numbers come from; its digest, ``source_key``,
    keys the cache so a retrained supernet or an edited table is never confused with
    the old one. ``costs(arch)`` is free: constraints are checked before scoring.
    """

    name: ClassVar[str]
    space: Space
    target: str  # the metric searches maximise
    report: str | None = None  # a metric to report beside it (e.g. test accuracy)
    cost_model: CostModel

    @abstractmethod
    def score(self, arch: Arch) -> dict[str, float]:
        """Metrics of ``arch`` (canonical); must include ``self.target``."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """JSON-able description of the source of the numbers."""

    @property
    def source_key(self) -> str:
        cached = self.__dict__.get("_source_key")
        if cached is None:
            cached = self.__dict__["_source_key"] = source_key({"scorer": self.name, **self.provenance()})
        return cached

    def knows(self, arch: Arch) -> bool:
        """Whether ``arch`` can be scored at all (a table scorer knows only its rows)."""
        return True

    def costs(self, arch: Arch) -> dict[str, float]:
        return self.cost_model.costs(arch)

    def describe(self) -> dict[str, Any]:
        """What a search result records about its scorer."""
        return {"scorer": self.name, "target": self.target, "report": self.report, "source_key": self.source_key}
