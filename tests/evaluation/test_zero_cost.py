"""Zero-cost scores with inherited supernet weights: deterministic, finite, and harmless to the supernet."""

from __future__ import annotations

import math

import pytest
import torch

from evonas.evaluation.zero_cost import SCORES, ZeroCostScorer, as_columns, feature_table
from evonas.supernet import build_supernet
from search_spaces import get_space

ARCHS = ("12012200", "00000000", "22222222")


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention
    space = get_space("macro-fmnist")
    torch.manual_seed(0)
    net = build_supernet(space)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(16, 1, 12, 12, generator=g)  # (N, C, H, W); small images keep the test fast
    labels = torch.randint(0, 10, (16,), generator=g)
    yield space, net, images, labels
    torch.set_num_threads(threads)


def scorer(setup, seed: int = 0) -> ZeroCostScorer:
    space, net, images, labels = setup
    return ZeroCostScorer(net, space, images, labels, batch_size=4, n_batches=2, seed=seed)


def test_scores_are_finite_deterministic_and_differ_between_archs(setup):
    space = setup[0]
    first = {a: scorer(setup).scores(space.parse(a)) for a in ARCHS}
    assert scorer(setup).scores(space.parse(ARCHS[0])) == first[ARCHS[0]]
    for values in first.values():
        assert set(values) == set(SCORES)
        assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
    for name in SCORES:
        assert len({first[a][name] for a in ARCHS}) == len(ARCHS), name
    # more (and wider) layers: larger gradients and more synaptic flow than the all-identity network
    assert first["22222222"]["synflow"] > first["00000000"]["synflow"]
    assert first["22222222"]["snip"] > first["00000000"]["snip"]


def test_supernet_weights_buffers_and_grads_are_untouched(setup):
    space, net = setup[0], setup[1]
    net.train()  # even a supernet left in training mode keeps its BN statistics
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scorer(setup).scores(space.parse("22222222"))
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in net.parameters())
    net.eval()


def test_seed_picks_the_batches(setup):
    space = setup[0]
    arch = space.parse("12012200")
    assert scorer(setup, seed=0).scores(arch)["grad_norm"] != scorer(setup, seed=5).scores(arch)["grad_norm"]


def test_feature_table_feeds_the_corrector(setup):
    space = setup[0]
    table = feature_table(scorer(setup), [space.parse(a) for a in ARCHS[:2]])
    assert set(table) == set(SCORES) and all(set(v) == set(ARCHS[:2]) for v in table.values())
    cols = as_columns(table, ARCHS[:2])
    assert all(len(v) == 2 for v in cols.values())


def test_bad_inputs_name_the_problem(setup):
    space, net, images, labels = setup
    with pytest.raises(ValueError, match="images must be"):
        ZeroCostScorer(net, space, images[0], labels)
    with pytest.raises(ValueError, match="batch_size"):
        ZeroCostScorer(net, space, images, labels, batch_size=1)
