"""The supernet scorer adapter, with a fake evaluator (the real one is tested in evaluation/test_scoring_export.py)."""

from __future__ import annotations

import pytest

from evonas.errors import ConfigError
from evonas.scorers.supernet import SupernetScorer
from evonas.run.store import Store
from search_spaces import get_space


class FakeEvaluator:
    """Stands in for SupernetEvaluator: a deterministic accuracy per architecture."""

    def __init__(self, space="macro-fmnist", sha="abc"):
        self.space = get_space(space)
        self.sha = sha
        self.calls = 0

    def evaluate(self, arch):
        self.calls += 1
        return {"accuracy": 50.0 + sum(arch.choices), "loss": 1.0}

    def provenance(self):
        return {"checkpoint": "RUN/supernet.pt", "sha256": self.sha, "recalibrate": True}


def test_supernet_scorer_adds_costs_and_keys_by_checkpoint():
    ev = FakeEvaluator()
    scorer = SupernetScorer(ev)
    arch = scorer.space.parse("12012200")
    m = scorer.score(arch)
    assert m["accuracy"] == 50.0 + sum(arch.choices) and m["flops"] == scorer.space.cost(arch).flops
    assert scorer.target == "accuracy" and "latency_ms" not in m
    assert SupernetScorer(FakeEvaluator(sha="other")).source_key != scorer.source_key


def test_supernet_scorer_searches_with_a_fake_evaluator():
    from evonas.search.constraints import Constraints
    from evonas.search import make_problem, make_searcher, run_search

    ev = FakeEvaluator()
    scorer = SupernetScorer(ev)
    problem = make_problem(scorer, Constraints(max_flops=3e6))
    res = run_search(make_searcher("evolution", problem, seed=0), scorer, Store.memory(), budget=15)
    assert res.evaluations == ev.calls == 15 and res.best["flops"] <= 3e6


def test_supernet_latency_needs_table_and_column(tmp_path):
    with pytest.raises(ConfigError, match="The 'latency_table' option and the 'latency_column' option of scorer "
                                          "'supernet' go together") as info:
        SupernetScorer(FakeEvaluator(), latency_column="x")
    assert info.value.param == "latency_table"
