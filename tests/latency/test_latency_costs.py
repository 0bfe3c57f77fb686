"""Latency as a cost: a device's latency table feeds constraints like FLOPs do."""

from __future__ import annotations

import pytest

from evonas.evaluation.costs import CostModel
from evonas.latency.table import LatencyEntry, LatencyTable
from evonas.search.constraints import Constraints
from search_spaces import InfeasibleConstraintError, get_space


def fake_table(space_name: str = "macro-fmnist") -> LatencyTable:
    """A table whose entries are known numbers (no timing): option code c at layer i costs 0.1*(i+1)*c ms."""
    space = get_space(space_name)
    entries = tuple(
        LatencyEntry(layer=i, code=c, input_shape=(1, 1, 1, 1), median_ms=0.1 * (i + 1) * c + 0.05, p10_ms=0.0,
                     p90_ms=0.0, spread=0.0, raw_ms=0.0, measured=True)
        for i, dim in enumerate(space.dims) for c in dim.options
    )
    return LatencyTable(space=space_name, entries=entries, overhead_ms=1.0, overhead={"method": "test"},
                        device={"device_key": "test"}, settings={"noise_threshold": 0.25}, build_seconds=0.0)


def test_min_latency_is_the_exact_minimum_over_the_space():
    space = get_space("macro-fmnist")
    table = fake_table()
    brute = min(table.predict(a) for a in space.enumerate(canonical_only=False))
    assert table.min_latency() == pytest.approx(brute)
    corrected = table.with_correction(2.0, 0.5)
    assert corrected.min_latency() == pytest.approx(2.0 * brute + 0.5)


def test_latency_table_is_a_cost_and_a_constraint():
    space = get_space("macro-fmnist")
    table = fake_table()
    model = CostModel(space, latency=table)
    arch = space.parse("12012200")
    assert model.has("latency_ms") and model.costs(arch)["latency_ms"] == pytest.approx(table.predict(arch))
    model.check(Constraints(max_latency_ms=table.min_latency()))  # exactly the fastest network is feasible
    with pytest.raises(InfeasibleConstraintError, match="max_latency_ms"):
        model.check(Constraints(max_latency_ms=table.min_latency() * 0.9))


def test_without_a_latency_source_a_latency_limit_says_how_to_get_one():
    from evonas.errors import ConfigError

    with pytest.raises(ConfigError, match="evonas latency build"):
        CostModel(get_space("macro-fmnist")).check(Constraints(max_latency_ms=5))
