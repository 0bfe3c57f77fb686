"""Defects that cost users trust without telling them: each test failed before its fix."""

from __future__ import annotations

import os

import pytest

from evonas.evaluation.scoring import SupernetEvaluator
from evonas.run import Run
from evonas.scorers.supernet import SupernetScorer


def test_every_spelling_of_a_network_gets_one_score(tiny_run):
    ev = SupernetEvaluator(Run.open(tiny_run), recalib_images=64)
    space = ev.space
    a, b = space.parse("11202010"), space.parse("11220010")
    assert a != b and space.canonical(a) == space.canonical(b)
    assert ev.evaluate(a) == ev.evaluate(b)


def test_supernet_scores_are_keyed_by_weights_not_by_the_typed_path(tiny_run, monkeypatch):
    absolute = SupernetScorer(SupernetEvaluator(Run.open(tiny_run.resolve()), recalib_images=64))
    monkeypatch.chdir(tiny_run.parent)
    relative = SupernetScorer(SupernetEvaluator(Run.open(os.path.join(".", tiny_run.name)), recalib_images=64))
    assert absolute.source_key == relative.source_key
    other_settings = SupernetScorer(SupernetEvaluator(Run.open(tiny_run), recalib_images=32))
    assert other_settings.source_key != absolute.source_key


@pytest.mark.parametrize("text", ["11202010", "11220010"])
def test_export_writes_the_canonical_network(tiny_run, tmp_path, text):
    from evonas.export.module import export_arch, load_exported

    ev = SupernetEvaluator(Run.open(tiny_run), recalib_images=64)
    _, metrics = load_exported(export_arch(tiny_run, text, tmp_path / text, evaluator=ev))
    assert metrics["arch"] == str(ev.space.canonical(ev.space.parse(text)))


def test_resume_with_nothing_to_resume_says_so_and_creates_nothing(tmp_path):
    from evonas.errors import RunDirError
    from evonas.jobs.train import TrainOptions, train

    target = tmp_path / "fresh"
    with pytest.raises(RunDirError, match="nothing to resume"):
        train(target, TrainOptions(settings={"dataset": "synthetic", "train_limit": 64, "val_size": 50, "epochs": 1},
                                   resume=True, quiet=True))
    assert not target.exists()


def test_top_k_ranks_every_record_of_the_current_weights_whatever_its_source_key(tiny_run, tmp_path):
    import shutil

    from evonas.export.topk import current_records
    from evonas.run.digest import file_sha256
    from evonas.run.run import RunLayout

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    layout = RunLayout(run)
    sha = file_sha256(layout.weights)
    with layout.store() as store:
        # the best score was stored under an older key (the run path typed another way)
        best = store.put(space="macro-fmnist", arch="22222222", scorer="supernet", source_key="typed-path-a",
                         metrics={"accuracy": 90.0, "flops": 1.0}, source={"sha256": sha, "checkpoint": "runs/a"})
        newer = store.put(space="macro-fmnist", arch="11111111", scorer="supernet", source_key="typed-path-b",
                          metrics={"accuracy": 50.0, "flops": 1.0}, source={"sha256": sha, "checkpoint": "/abs/runs/a"})
        store.put(space="macro-fmnist", arch="00000000", scorer="supernet", source_key="other-weights",
                  metrics={"accuracy": 99.0, "flops": 1.0}, source={"sha256": "0" * 64})
        records = store.records(scorer="supernet")
    kept = {r.arch for r in current_records(layout, "supernet", records)}
    assert kept == {best.arch, newer.arch}


def test_a_table_row_without_a_target_value_is_never_scored(tmp_path):
    import csv

    from evonas.jobs.search import SearchOptions, search

    from tests.synthetic_tables import write_table

    full = write_table(tmp_path / "full.csv", latency=False)
    rows = list(csv.reader(full.open()))
    for row in rows[1:200]:
        row[1] = ""  # no val_acc for these architectures
    holes = tmp_path / "holes.csv"
    with holes.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    run = tmp_path / "run"
    out = search(run, SearchOptions(space="macro-fmnist", table=str(holes), target="val_acc", algo="random", budget=300,
                                    quiet=True)).to_dict()
    from evonas.run.run import RunLayout

    with RunLayout(run).store() as store:
        scored = {r.arch for r in store.records(scorer="table")}
    empty = {r[0] for r in rows[1:200]}
    assert out["evaluations"] == 300 and len(scored) == 300 and not empty & scored
