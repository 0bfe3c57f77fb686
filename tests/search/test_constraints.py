"""Constraints and cost models: limits, violations, infeasibility errors, bounded feasible sampling."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from tests.synthetic_tables import write_table

from evonas.evaluation.costs import CostModel
from evonas.search.constraints import Constraints, feasible_sampler
from evonas.errors import ConfigError, cli_message
from evonas.scorers.tables import load_table
from search_spaces import InfeasibleConstraintError, get_space


def test_constraints_are_frozen_keyword_only_and_validated():
    c = Constraints(max_flops=3e6, max_params=1e5)
    assert c.limits == {"flops": 3e6, "params": 1e5}
    with pytest.raises(Exception):
        c.max_flops = 1  # frozen
    with pytest.raises(TypeError):
        Constraints(3e6)  # keyword-only
    with pytest.raises(ConfigError, match=r"The 'max_params' parameter must be a finite number > 0; got -1\.") as info:
        Constraints(max_params=-1)
    assert info.value.param == "max_params"
    assert cli_message(info.value) == "--max-params must be a finite number > 0; got -1."
    assert not Constraints()


def test_violations_and_satisfied():
    c = Constraints(max_flops=100, max_latency_ms=2.0)
    assert c.violations({"flops": 90, "latency_ms": 3.0}) == {"flops": -10, "latency_ms": 1.0}
    assert not c.satisfied({"flops": 90, "latency_ms": 3.0})
    assert c.satisfied({"flops": 100, "latency_ms": 2.0})
    assert math.isinf(c.violations({"flops": 90})["latency_ms"])  # unknown latency is never feasible


def test_infeasible_limit_states_smallest_value():
    space = get_space("macro-fmnist")
    smallest = space.min_cost("flops")
    with pytest.raises(InfeasibleConstraintError, match=f"at least {smallest:,}") as info:
        CostModel(space).check(Constraints(max_flops=smallest - 1))
    assert cli_message(info.value).startswith(f"--max-flops {smallest - 1:,} is infeasible for space 'macro-fmnist'")
    CostModel(space).check(Constraints(max_flops=smallest))  # exactly the smallest is feasible


def test_latency_without_source_is_a_config_error():
    with pytest.raises(ConfigError, match="The 'max_latency_ms' parameter needs a latency source") as info:
        CostModel(get_space("macro-fmnist")).check(Constraints(max_latency_ms=5))
    message = cli_message(info.value)
    assert message.startswith("--max-latency-ms needs a latency source: build one for this device")
    assert "--latency-table and --latency-column" in message


def test_table_columns_feed_costs_and_checks(tmp_path):
    space = get_space("macro-fmnist")
    table = load_table(write_table(tmp_path / "t.csv"), space)
    model = CostModel(space, columns={"latency_ms": table.column("latency_ms")}, index=table.index)
    arch = table.archs[5]
    assert model.costs(arch)["latency_ms"] == pytest.approx(table.value(arch, "latency_ms"))
    lowest = float(np.nanmin(table.column("latency_ms")))
    with pytest.raises(InfeasibleConstraintError, match="smallest network has latency_ms"):
        model.check(Constraints(max_latency_ms=lowest * 0.5))
    # each limit alone feasible, jointly not: here latency falls as params grow
    inverted = np.array([space.max_cost("params") - space.cost(a).params + 1.0 for a in table.archs])
    model = CostModel(space, columns={"latency_ms": inverted}, index=table.index)
    with pytest.raises(InfeasibleConstraintError, match="meets all limits at once"):
        model.check(Constraints(max_latency_ms=1.0, max_params=space.min_cost("params")))


def test_feasible_sampler_is_bounded_and_repairs_tight_limits():
    space = get_space("mobilenet-fmnist")  # 7^16 strings: uniform draws almost never hit a tight limit
    c = Constraints(max_flops=space.min_cost("flops") * 1.02)
    model = CostModel(space)
    ok = lambda a: c.satisfied(model.costs(a))  # noqa: E731
    sample = feasible_sampler(space, ok, model.costs, c, tries=50)
    rng = random.Random(0)
    for _ in range(5):
        assert ok(sample(rng))
    never = feasible_sampler(space, lambda a: False, model.costs, c, tries=20)
    with pytest.raises(InfeasibleConstraintError, match="loosen the limits"):
        never(rng)
