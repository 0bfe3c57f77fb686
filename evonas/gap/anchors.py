"""Stand-alone anchors: the ground truth that gap-correcting predictors learn from.

An anchor is an architecture trained from scratch with a short schedule on the run's
own train split and scored on its validation split. :class:`StandaloneScorer` makes
that a scorer like any other, so each anchor is a store record (scorer
``standalone``, with the epochs and seed in its source): training resumes anchor by
anchor, and an anchor is never trained twice for the same settings.
"""

from __future__ import annotations

import logging
import random
from typing import Sequence

from search_spaces import Arch

from evonas.scorers.base import Scorer
from evonas.scorers.standalone import StandaloneScorer
from evonas.scorers.cached import score_cached
from evonas.progress import progress_enabled
from evonas.run.store import Store

logger = logging.getLogger(__name__)


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
    store: Store, scorer: StandaloneScorer | Sequence[StandaloneScorer], archs: Sequence[Arch], *, kind: str = "anchor"
) -> dict[str, float]:
    """Train (or read back) every anchor; canonical arch -> stand-alone accuracy.

    With several scorers (one per training seed), every anchor is trained once per
    seed and its label is the mean over the seeds: the noise of one short training
    is what limits how well any estimator can be checked, and averaging lowers it.
    Each anchor is logged at INFO as it is ready, ``kind`` first ("anchor 3/16 ...", "long anchor 1/4 ...").
    """
    scorers = [scorer] if isinstance(scorer, StandaloneScorer) else list(scorer)
    out = {}
    for i, arch in enumerate(archs, start=1):
        accs, hows = [], []
        for sc in scorers:
            result = score_cached(sc, store, arch)
            rec = result.record
            accs.append(rec.metric("accuracy"))
            hows.append("cached" if result.cached else f"trained in {rec.metric('seconds'):.0f}s")
        seeds = "" if len(scorers) == 1 else f" (mean of seeds {', '.join(str(sc.seed) for sc in scorers)}: " \
            f"{', '.join(f'{a:.2f}' for a in accs)})"
        logger.info("%s %d/%d %s: %.2f%%%s (%s)", kind, i, len(archs), rec.arch, sum(accs) / len(accs), seeds,
                    "; ".join(dict.fromkeys(hows)))
        out[rec.arch] = sum(accs) / len(accs)
    return out


def per_seed_anchors(store: Store, scorers: Sequence[StandaloneScorer], archs: Sequence[str]) -> list[dict[str, float]]:
    """For each scorer (seed), canonical arch -> stand-alone accuracy of the stored anchors among ``archs``."""
    out = []
    for sc in scorers:
        got = {r.arch: r.metric("accuracy")
               for r in store.records(space=sc.space.name, scorer=sc.name, source_key=sc.source_key)}
        out.append({a: got[a] for a in archs if a in got})
    return out


def stored_anchors(store: Store, scorer: StandaloneScorer) -> dict[str, float]:
    """Every anchor already trained with these settings."""
    return {
        r.arch: r.metric("accuracy")
        for r in store.records(space=scorer.space.name, scorer=scorer.name, source_key=scorer.source_key)
    }
