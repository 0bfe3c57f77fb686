"""Property-based tests: what must hold for every architecture of every space, and every record."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evonas.run.store import Store
from search_spaces import get_space, list_spaces

SPACES = list_spaces()
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
seeds = st.integers(min_value=0, max_value=2**32 - 1)
probs = st.floats(min_value=0.0, max_value=1.0)


def check_arch(space, arch) -> None:
    """Valid, round-trips through its string, canonical form idempotent and cost-preserving."""
    assert space.validate(arch) == arch
    assert space.parse(str(arch)) == arch
    canon = space.canonical(arch)
    assert space.canonical(canon) == canon
    assert space.parse(str(canon)) == canon
    assert space.cost(canon) == space.cost(arch)


@pytest.mark.parametrize("name", SPACES)
@SETTINGS
@given(seed=seeds)
def test_sampled_architectures_are_valid_and_round_trip(name, seed):
    space = get_space(name)
    check_arch(space, space.sample(random.Random(seed)))


@pytest.mark.parametrize("name", SPACES)
@SETTINGS
@given(seed=seeds, prob=probs)
def test_mutated_architectures_are_valid_and_round_trip(name, seed, prob):
    space = get_space(name)
    rng = random.Random(seed)
    check_arch(space, space.mutate(space.sample(rng), rng, prob=prob))


@pytest.mark.parametrize("name", SPACES)
@SETTINGS
@given(seed=seeds)
def test_crossed_over_architectures_are_valid_and_round_trip(name, seed):
    space = get_space(name)
    rng = random.Random(seed)
    child = space.crossover(space.sample(rng), space.sample(rng), rng)
    check_arch(space, child)


@pytest.mark.parametrize("name", SPACES)
@SETTINGS
@given(choices=st.data())
def test_any_choice_vector_is_an_architecture(name, choices):
    space = get_space(name)
    codes = [choices.draw(st.sampled_from(dim.options)) for dim in space.dims]
    check_arch(space, space.make(codes))


names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | finite | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None)
@given(metrics=st.dictionaries(names, finite, max_size=6), source=st.dictionaries(names, json_values, max_size=5),
       arch=names, scorer=names, key=names)
def test_store_records_round_trip(metrics, source, arch, scorer, key):
    with Store.memory() as store:
        rec = store.put(space="macro-fmnist", arch=arch, scorer=scorer, source_key=key, metrics=metrics, source=source)
        back = store.get("macro-fmnist", arch, scorer, key)
        assert back == rec
        assert dict(back.metrics) == {k: float(v) for k, v in metrics.items()}
        assert dict(back.source) == source
        for name in metrics:
            assert math.isclose(back.metric(name), metrics[name]) or back.metric(name) == metrics[name]
        assert store.records(scorer=scorer) == [rec]
