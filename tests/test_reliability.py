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
