"""Scoring through the store: read the cached record, or score and store one.

This is what makes caching across searchers, and resuming after a kill, free of
repeated work: an architecture already in the store for this scorer and source is
served from there and never scored again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from search_spaces import Arch

from evonas.run.records import Record
from evonas.run.store import Store
from evonas.scorers.base import Scorer


@dataclass(frozen=True)
class Evaluated:
    """A record and whether it came from the store (``cached``) or was scored now."""

    record: Record
    cached: bool
    seconds: float  # time spent scoring (0 when cached)


def score_cached(scorer: Scorer, store: Store, arch: Arch) -> Evaluated:
    """The record of ``arch`` for ``scorer``: from ``store`` if there, else scored and committed."""
    space = scorer.space
    key = str(space.canonical(arch))
    found = store.get(space.name, key, scorer.name, scorer.source_key)
    if found is not None:
        return Evaluated(found, True, 0.0)
    t0 = time.perf_counter()
    metrics = scorer.score(space.canonical(arch))
    seconds = time.perf_counter() - t0
    record = store.put(space=space.name, arch=key, scorer=scorer.name, source_key=scorer.source_key,
                       metrics=metrics, source=scorer.provenance())
    return Evaluated(record, False, seconds)
