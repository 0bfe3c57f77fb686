"""Conformance of every registered scorer: built by name, strict options, metrics, keys, cache.

Each scorer in ``list_scorers()`` needs a builder below (its options on a tiny fixture);
a newly registered scorer without one fails here, so it is tested the day it is added.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from tests.synthetic_tables import write_table

from evonas.errors import ConfigError
from evonas.run.store import Store
from evonas.scorers import Scorer, list_scorers, make_scorer, score_cached
from evonas.scorers.registry import scorer_options, select_options


def _table(request, tmp: Path) -> dict[str, Any]:
    return {"space": "macro-fmnist", "table": write_table(tmp / "macro.csv"), "target": "val_acc", "report": "test_acc"}


def _supernet(request, tmp: Path) -> dict[str, Any]:
    return {"run_dir": request.getfixturevalue("tiny_run"), "recalib_images": 64, "batch_size": 64}


def _standalone(request, tmp: Path) -> dict[str, Any]:
    # small_run: the same supernet config on 256 train images, so each stand-alone scoring trains 4 steps, not 16
    return {"run_dir": request.getfixturevalue("small_run"), "epochs": 1, "seed": 0, "progress": False}


def _predictor(request, tmp: Path) -> dict[str, Any]:
    """A copy of the tiny run with a gap model fitted on made-up anchors (no stand-alone training)."""
    from evonas.gap.corrector import fit_gap_model
    from search_spaces import get_space

    run = tmp / "run"
    shutil.copytree(request.getfixturevalue("tiny_run"), run)
    space = get_space("macro-fmnist")
    rng = random.Random(0)
    pool = {str(space.canonical(space.sample(rng))): 0.0 for _ in range(40)}
    keys = sorted(pool)
    for i, key in enumerate(keys):
        pool[key] = 40.0 + 0.5 * sum(space.parse(key).choices) + 0.1 * (i % 5)  # made-up supernet scores
    anchors = {key: 60.0 + 0.8 * pool[key] - 20.0 for key in keys[:8]}
    gap, _ = fit_gap_model(space, anchors, pool, supernet_source="made-up", predictors=["linear"], n_splits=5)
    gap.save(run)
    return {"run_dir": run}


BUILDERS: dict[str, Callable[[Any, Path], dict[str, Any]]] = {
    "table": _table,
    "supernet": _supernet,
    "standalone": _standalone,
    "predictor": _predictor,
}


@pytest.fixture(scope="module", params=list_scorers())
def built(request, tmp_path_factory) -> tuple[str, dict[str, Any], Scorer]:
    """(name, options, scorer) for each registered scorer, built once per module."""
    name = request.param
    if name not in BUILDERS:
        pytest.fail(f"scorer {name!r} is registered but has no builder in {__file__}; add one")
    options = BUILDERS[name](request, tmp_path_factory.mktemp(f"scorer_{name}"))
    return name, options, make_scorer(name, **options)


def _archs(scorer: Scorer, n: int = 3) -> list:
    rng = random.Random(1)
    known = []
    for _ in range(200):
        arch = scorer.space.canonical(scorer.space.sample(rng))
        if scorer.knows(arch) and arch not in known:
            known.append(arch)
        if len(known) == n:
            break
    assert known, f"scorer {scorer.name!r} knows none of 200 sampled architectures"
    return known


def test_builds_by_name(built):
    name, options, scorer = built
    assert isinstance(scorer, Scorer) and scorer.name == name
    assert set(options) <= scorer_options(name)
    assert isinstance(scorer.target, str) and scorer.target


def test_rejects_an_unknown_option_listing_the_valid_ones(built):
    name, options, _ = built
    valid = ", ".join(sorted(scorer_options(name)))
    message = f"The 'bogus_option' option is not accepted by scorer '{name}'; valid options: {valid}"
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        make_scorer(name, **options, bogus_option=1)
    assert info.value.param == "bogus_option"
    # a caller holding options for several scorers passes only those that apply
    assert select_options(name, {**options, "bogus_option": 1}) == options


def test_a_missing_required_option_is_a_config_error(built):
    name, options, _ = built
    required = sorted(k for k in options if k in ("run_dir", "table", "target", "space"))
    for key in required:
        rest = {k: v for k, v in options.items() if k != key}
        with pytest.raises(ConfigError, match=f"'{key}'"):
            make_scorer(name, **rest)


@pytest.fixture(scope="module")
def scored(built):
    """One architecture scored through a fresh store, counting the calls to ``score`` (training is slow)."""
    _, _, scorer = built
    arch = _archs(scorer, 1)[0]
    calls = []
    original = scorer.score
    scorer.score = lambda a: calls.append(a) or original(a)
    store = Store.memory()
    try:
        first = score_cached(scorer, store, arch)
    finally:
        del scorer.score
    return scorer, arch, store, first, calls


def test_metrics_include_target_and_costs(scored):
    scorer, arch, _, first, _ = scored
    metrics = first.record.metrics
    assert scorer.target in metrics
    assert metrics["flops"] == scorer.space.cost(arch).flops and metrics["params"] == scorer.space.cost(arch).params
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    costs = scorer.costs(arch)
    assert costs["flops"] == metrics["flops"] and costs["params"] == metrics["params"]


def test_source_key_is_stable(built):
    name, options, scorer = built
    key = scorer.source_key
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert scorer.source_key == key
    assert make_scorer(name, **options).source_key == key  # a second build of the same source
    assert scorer.describe()["source_key"] == key


def test_knows_is_consistent(built):
    _, _, scorer = built
    rng = random.Random(2)
    for _ in range(20):
        arch = scorer.space.sample(rng)
        assert scorer.knows(arch) in (True, False)
        assert scorer.knows(arch) == scorer.knows(scorer.space.canonical(arch))
    for arch in _archs(scorer):
        assert scorer.knows(arch)


def test_score_cached_stores_then_serves_from_the_store(scored):
    scorer, arch, store, first, calls = scored
    original = scorer.score
    scorer.score = lambda a: calls.append(a) or original(a)
    try:
        again = score_cached(scorer, store, arch)
    finally:
        del scorer.score
    assert not first.cached and again.cached and len(calls) == 1
    assert again.record.metrics == first.record.metrics
    assert first.record.scorer == scorer.name and first.record.source_key == scorer.source_key
    assert first.record.arch == str(scorer.space.canonical(arch))
