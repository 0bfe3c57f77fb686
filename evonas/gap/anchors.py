"""Stand-alone anchors: the ground truth that gap-correcting predictors learn from.

An anchor is an architecture trained from scratch with a short schedule on the run's
own train split and scored on its validation split. :class:`StandaloneScorer` makes
that a scorer like any other, so each anchor is a store record (scorer
``standalone``, with the epochs and seed in its source): training resumes anchor by
anchor, and an anchor is never trained twice for the same settings.
"""

from __future__ import annotations

import random
from typing import Sequence

from search_spaces import Arch

from evonas.scorers.base import Scorer
from evonas.scorers.standalone import StandaloneScorer
from evonas.scorers.cached import score_cached
from evonas.progress import progress_enabled
from evonas.run.store import Store


def supernet_pool(store: Store, scorer: Scorer, size: int, *, seed: int = 0, progress: bool = True) -> dict[str, float]:
    """Canonical arch -> supernet accuracy for at least ``size`` architectures.

    Every architecture the store already holds for this supernet counts; new ones
    are sampled uniformly (seeded) and scored until the pool is big enough.
    """
    from tqdm.auto import tqdm

    space = scorer.space
    pool = {r.arch: r.metric("accuracy") for r in store.records(space=space.name, scorer=scorer.name, source_key=scorer.source_key)}
    missing = max(size - len(pool), 0)
    if missing:
        rng = random.Random(seed)
        bar = tqdm(total=missing, desc="supernet scores for the anchor pool", unit="arch", disable=not progress_enabled(not progress))
        tries = 0
        while len(pool) < size and tries < 100 * size:
            tries += 1
            arch = space.canonical(space.sample(rng))
            if str(arch) in pool:
                continue
            pool[str(arch)] = score_cached(scorer, store, arch).record.metric("accuracy")
            bar.update(1)
        bar.close()
    return pool


def train_anchors(
    store: Store, scorer: StandaloneScorer, archs: Sequence[Arch], *, echo=print
) -> dict[str, float]:
    """Train (or read back) every anchor; canonical arch -> stand-alone accuracy."""
    out = {}
    for i, arch in enumerate(archs, start=1):
        result = score_cached(scorer, store, arch)
        rec = result.record
        how = "cached" if result.cached else f"trained in {rec.metric('seconds'):.0f}s"
        echo(f"anchor {i}/{len(archs)} {rec.arch}: {rec.metric('accuracy'):.2f}% ({how})")
        out[rec.arch] = rec.metric("accuracy")
    return out


def stored_anchors(store: Store, scorer: StandaloneScorer) -> dict[str, float]:
    """Every anchor already trained with these settings."""
    return {
        r.arch: r.metric("accuracy")
        for r in store.records(space=scorer.space.name, scorer=scorer.name, source_key=scorer.source_key)
    }
