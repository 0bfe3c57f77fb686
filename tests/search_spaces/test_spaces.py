"""The search-space descriptions: encoding, canonical forms, operators, costs, registry."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from search_spaces import (
    Arch,
    ArchStringError,
    ChainSpace,
    InfeasibleConstraintError,
    SpaceError,
    UnknownNameError,
    get_space,
    list_spaces,
    register_space,
)
from tests.conftest import NB201_CSV, needs_nb201

REFERENCE = {  # (space, arch): (params, FLOPs) from the issue / NAS-Bench-Macro
    ("macro-cifar10", "00000000"): (387_882, 7_713_280),
    ("macro-cifar10", "02012100"): (890_666, 47_327_744),
    ("macro-cifar10", "22222222"): (2_932_586, 105_660_928),
    ("macro-fmnist", "02012100"): (52_418, 2_754_848),
}


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_reference_costs(key):
    space = get_space(key[0])
    cost = space.cost(space.parse(key[1]))
    assert (cost.params, cost.flops) == REFERENCE[key]


def test_macro_canonical_count():
    space = get_space("macro-fmnist")
    assert space.num_strings == 6561
    assert sum(1 for _ in space.enumerate()) == 3969
    # identity layers after a stage's first move to the stage end; the stage-first stays
    assert str(space.canonical(space.parse("01002110"))) == "01020110"
    assert str(space.canonical(space.parse("10210120"))) == "10210120"
    assert space.canonical(space.parse("10201220")) == space.canonical(space.parse("10210220"))


@pytest.mark.parametrize("name", list_spaces())
def test_conformance(name):
    space = get_space(name)
    rng = random.Random(7)
    for _ in range(50):
        arch = space.sample(rng)
        assert space.parse(str(arch)) == arch
        assert space.validate(arch) == arch
        canon = space.canonical(arch)
        assert space.canonical(canon) == canon
        assert space.cost(canon) == space.cost(arch)
        child = space.mutate(arch, rng, prob=0.1)
        assert child != arch and space.validate(child) == child
        other = space.sample(rng)
        kid = space.crossover(arch, other, rng)
        assert all(c in (a, b) for c, a, b in zip(kid.choices, arch.choices, other.choices))
        cost = space.cost(arch)
        assert space.min_cost("flops") <= cost.flops <= space.max_cost("flops")
        assert space.min_cost("params") <= cost.params <= space.max_cost("params")
    assert [space.sample(random.Random(3)) for _ in range(3)] == [space.sample(random.Random(3)) for _ in range(3)]
    assert len(set(space.labels)) == len(space.dims)


def test_malformed_string_names_position_character_and_choices():
    space = get_space("macro-fmnist")
    with pytest.raises(ArchStringError, match=r"'3' at position 2 \(s1_b0_op\).*allowed: 0=id, 1=mb3_k3, 2=mb6_k5"):
        space.parse("02312100")
    with pytest.raises(ArchStringError, match="8 digits"):
        space.parse("0201")
    with pytest.raises(ArchStringError, match="unknown op 'conv_9x9'"):
        get_space("nb201").parse("|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_mobilenet_space_is_large_and_deep():
    space = get_space("mobilenet-fmnist")
    assert len(space.dims) >= 12
    assert space.num_strings >= 10**9
    first = space.dims[0]
    assert "skip" not in first.names  # the first layer of a stage changes shape
    assert "skip" in space.dims[1].names
    with pytest.raises(InfeasibleConstraintError, match="enumeration limit"):
        next(space.enumerate())


def test_min_and_max_cost_are_exact():
    # limits are checked against min_cost by evonas.evaluation.costs.CostModel (tests/search/test_constraints.py)
    space = get_space("macro-fmnist")
    for metric in ("flops", "params"):
        values = [space.cost(a).get(metric) for a in space.enumerate()]
        assert space.min_cost(metric) == min(values) and space.max_cost(metric) == max(values)
    with pytest.raises(UnknownNameError, match="The 'metric' parameter must be 'flops' or 'params'; got 'latency'"):
        space.cost(space.sample(random.Random(0))).get("latency")


def test_bad_input_raises_space_errors():
    space = get_space("macro-fmnist")
    arch = space.sample(random.Random(0))
    with pytest.raises(SpaceError, match=r"The 'prob' parameter of Space.mutate must be a probability in \[0, 1\]; got 1.5"):
        space.mutate(arch, random.Random(0), prob=1.5)
    with pytest.raises(SpaceError, match="already registered"):
        register_space(ChainSpace(name="macro-fmnist", net=space.net, ops=space.ops,
                                   first_layer_identity=True, summary="a copy"))
    with pytest.raises(UnknownNameError, match="space 'not-registered' cannot be printed: the space is not registered"):
        str(Arch("not-registered", (0, 1)))


def test_unknown_space_lists_valid_names():
    with pytest.raises(UnknownNameError, match="macro-fmnist"):
        get_space("macro-imagenet")


def test_importing_spaces_does_not_import_torch():
    code = "import sys, search_spaces; search_spaces.get_space('nb201'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_nb201_cost_range_matches_benchmark():
    space = get_space("nb201")
    # NAS-Bench-201 reports 7.78 to 220.11 MFLOPs (CIFAR-10 network)
    assert round(space.min_cost("flops") / 1e6, 2) == 7.78
    assert abs(space.max_cost("flops") / 1e6 - 220.11) < 0.02


@needs_nb201
def test_nb201_strings_of_the_table_round_trip():
    import csv

    space = get_space("nb201")
    with open(NB201_CSV) as fh:
        rows = [r["arch"] for _, r in zip(range(500), csv.DictReader(fh))]
    for text in rows:
        assert str(space.parse(text)) == text
