"""Supernet paths, extraction and cost counting against independent oracles."""

from __future__ import annotations

import random

import pytest
import torch

from evonas.evaluation.profile import count_module
from evonas.evaluation.scoring import batchnorms, recalibrate_bn
from evonas.data import Normalizer
from evonas.supernet import build_supernet
from evonas.supernet.chain import build_standalone
from search_spaces import get_space

CHAIN_SPACES = ["macro-fmnist", "macro-cifar10", "mobilenet-fmnist"]


def _input(space, n=3):
    net = space.net
    return torch.randn(n, net.in_channels, net.image_size, net.image_size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", CHAIN_SPACES)
def test_extracted_module_matches_supernet_path(name):
    space = get_space(name)
    torch.manual_seed(0)
    model = build_supernet(space)
    rng = random.Random(1)
    x = _input(space)
    for _ in range(3):
        arch = space.sample(rng)
        # give the path distinct BN statistics, as recalibration would
        model.train()
        recalibrate_bn(lambda t: model(t, arch), batchnorms(model.path_modules(arch)), (x * 50 + 100).clamp(0, 255).to(torch.uint8), Normalizer((0.5,) * x.shape[1], (0.25,) * x.shape[1]), 3)
        model.eval()
        sub = model.extract(arch).eval()
        with torch.no_grad():
            expected = model(x, arch)  # (B, classes)
            got = sub(x)
        assert got.shape == (3, space.net.num_classes)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", CHAIN_SPACES)
def test_description_costs_match_flop_counter(name):
    space = get_space(name)
    rng = random.Random(2)
    net = space.net
    for _ in range(4):
        arch = space.sample(rng)
        measured = count_module(build_standalone(space, arch), (net.in_channels, net.image_size, net.image_size))
        cost = space.cost(arch)
        assert measured == {"flops": cost.flops, "params": cost.params}, str(arch)


def test_supernet_trains_only_the_sampled_path():
    space = get_space("macro-fmnist")
    model = build_supernet(space)
    arch = space.parse("10000000")
    loss = model(_input(space), arch).sum()
    loss.backward()
    used = {id(p) for m in model.path_modules(arch) for p in m.parameters()}
    for p in model.parameters():
        assert (p.grad is not None) == (id(p) in used)


def test_wrong_number_of_choices_is_an_error():
    model = build_supernet(get_space("macro-fmnist"))
    with pytest.raises(ValueError, match="expected 8 choices"):
        model(torch.zeros(1, 1, 28, 28), (0, 1))


def test_nb201_has_no_supernet_and_says_how_to_score_it():
    from evonas.errors import ConfigError

    with pytest.raises(ConfigError, match="--table"):
        build_supernet(get_space("nb201"))
