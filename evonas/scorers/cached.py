"""Scoring through the store: read the cached record, or claim, score and store one.

This is what makes caching across searchers, and resuming after a kill, free of
repeated work: an architecture already in the store for this scorer and source is
served from there and never scored again. Processes sharing a store claim a key
before scoring it (``Store.claim``), so two searches started together do not score
the same architecture twice: the second waits for the first one's record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from search_spaces import Arch

from evonas.errors import ConfigError
from evonas.run.records import Record
from evonas.run.store import CLAIM_TIMEOUT_S, Store
from evonas.scorers.base import Scorer

POLL_MIN_S = 0.02  # first wait for another process's record; doubles up to POLL_MAX_S
POLL_MAX_S = 0.5


@dataclass(frozen=True)
class Evaluated:
    """A record and whether it came from the store (``cached``) or was scored now."""

    record: Record
    cached: bool
    seconds: float  # time spent scoring (0 when cached)


def score_cached(scorer: Scorer, store: Store, arch: Arch, *, claim_timeout_s: float = CLAIM_TIMEOUT_S) -> Evaluated:
    """The record of ``arch`` for ``scorer``: from ``store`` if there, else scored and committed.

    Before scoring, the key is claimed in the store. While another live process holds
    the claim, this one polls the store (sleeping ``POLL_MIN_S`` doubling to
    ``POLL_MAX_S``) until that process's record appears; it takes the claim over when
    the owner is gone (same host, pid not alive) or the claim is older than
    ``claim_timeout_s``, so the wait is bounded. The claim is released after the record
    is stored, and also when scoring fails.
    """
    if not isinstance(claim_timeout_s, (int, float)) or isinstance(claim_timeout_s, bool) or not claim_timeout_s > 0:
        raise ConfigError(f"The 'claim_timeout_s' parameter must be a number of seconds > 0; got {claim_timeout_s!r}; "
                          "pass a longer time than one scoring takes", param="claim_timeout_s")
    space = scorer.space
    canonical = space.canonical(arch)
    key = (space.name, str(canonical), scorer.name, scorer.source_key)
    pause = POLL_MIN_S
    while True:
        found = store.get(*key)
        if found is not None:
            return Evaluated(found, True, 0.0)
        if store.claim(*key, timeout_s=claim_timeout_s):
            break
        time.sleep(pause)  # another process is scoring it: wait for its record
        pause = min(POLL_MAX_S, pause * 2)
    try:
        found = store.get(*key)  # stored between our read and our claim (its owner had just released it)
        if found is None:
            t0 = time.perf_counter()
            metrics = scorer.score(canonical)
            seconds = time.perf_counter() - t0
            record = store.put(space=key[0], arch=key[1], scorer=key[2], source_key=key[3],
                               metrics=metrics, source=scorer.provenance())
    except BaseException:
        try:
            store.release(*key)
        except Exception:
            pass  # keep the scoring error; a claim left behind is taken over once this process is gone
        raise
    store.release(*key)
    return Evaluated(found, True, 0.0) if found is not None else Evaluated(record, False, seconds)
