"""Top-k export and the Markdown report, with the supernet evaluator and exporter faked."""

from __future__ import annotations

import json

import pytest
from tests.scorers.test_scorers_supernet import FakeEvaluator

from evonas.export import topk as report
from evonas.search.constraints import Constraints
from evonas.errors import RunDirError
from evonas.search.pareto import pareto_front
from evonas.scorers.supernet import SupernetScorer
from evonas.search import make_problem, make_searcher, run_search
from evonas.run.store import Store


def test_pareto_front_mixed_directions():
    pts = [(90, 5), (91, 6), (89, 4), (90, 6), (91, 6), (85, 10)]
    front = pareto_front(pts, (True, False))
    assert sorted(front) == [0, 1, 2, 4]
    with pytest.raises(ValueError):
        pareto_front([(1, 2, 3)], (True, False))


def test_export_top_k_writes_modules_metrics_and_report(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    scorer = SupernetScorer(FakeEvaluator())
    with Store.open(run_dir) as store:
        for algo, objectives in (("evolution", None), ("nsga2", "accuracy,flops")):
            problem = make_problem(scorer, Constraints(), objectives)
            run, _ = store.begin_search(algo=algo, seed=0, config={"scorer": scorer.describe()})
            run_search(make_searcher(algo, problem, seed=0), scorer, store, budget=12, search_run=run)

    exported = []

    def fake_export(run_dir_, arch, out_dir, metrics, *, evaluator=None, formats=("torch",), latency=None,
                    latency_limit_ms=None):
        out_dir.mkdir(parents=True)
        (out_dir / "metrics.json").write_text(json.dumps({"arch": arch, **metrics}))
        exported.append(arch)
        return out_dir

    monkeypatch.setattr("evonas.export.module.export_arch", fake_export)
    monkeypatch.setattr(report, "_load_evaluator", lambda run_dir, device="cpu", precision="fp32": FakeEvaluator())
    path = report.export_top_k(run_dir, 3)
    assert path == run_dir / "exports" / "top3" / "report.md"
    text = path.read_text()
    assert "evolution-s0" in text and "nsga2-s0" in text and "Pareto front" in text
    assert (path.parent / "best_so_far.png").stat().st_size > 0 and (path.parent / "pareto.png").stat().st_size > 0
    folders = sorted(p.name for p in path.parent.iterdir() if p.is_dir())
    assert [f[:6] for f in folders] == ["rank01", "rank02", "rank03"]
    first = json.loads((path.parent / folders[0] / "metrics.json").read_text())
    with Store.open(run_dir) as store:
        best = max(r.metric("accuracy") for r in store.records())
    assert first["supernet_accuracy"] == best and first["rank"] == 1 and first["flops"] > 0
    with Store.open(run_dir) as store:
        flops = sorted(r.metric("flops") for r in store.records())
    exported.clear()
    limited = report.export_top_k(run_dir, 1, constraints=Constraints(max_flops=flops[0]))
    assert limited.is_file() and len(exported) == 1


def test_export_top_k_without_store_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="run `evonas search --run"):
        report.export_top_k(tmp_path, 2)
