"""Anchors trained with several seeds: the label is the mean, the report says what it rests on."""

from __future__ import annotations

import logging
import shutil

import pytest

from evonas.errors import ConfigError
from evonas.jobs.fit_predictor import FitPredictorOptions, fit_predictor
from evonas.run.run import Run

ANCHORS = ("00000000", "22222222", "10120110", "21012020", "01201100")


def _standalone_records(run):
    with Run.open(run).store() as store:
        return [r for r in store.records(scorer="standalone")]


def test_two_seeds_average_and_reuse_the_first_seed(small_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    one = fit_predictor(run, FitPredictorOptions(explicit=ANCHORS, anchor_epochs=1, pool=5, predictors=("gap",), quiet=True))
    assert one.basis["seeds_per_anchor"] == 1 and one.basis["seed_to_seed_tau"] is None
    assert len(_standalone_records(run)) == len(ANCHORS)

    caplog.set_level(logging.INFO, logger="evonas")
    caplog.clear()
    two = fit_predictor(run, FitPredictorOptions(explicit=ANCHORS, anchor_epochs=1, anchor_seeds=2, pool=5, predictors=("gap",),
                                                 quiet=True))
    lines = caplog.messages
    records = _standalone_records(run)
    assert len(records) == 2 * len(ANCHORS)  # the seed-0 trainings were read back, only seed 1 was trained
    by_arch: dict[str, list[float]] = {}
    for r in records:
        by_arch.setdefault(r.arch, []).append(r.metric("accuracy"))
    for arch, acc in two.anchors.items():
        assert acc == pytest.approx(sum(by_arch[arch]) / 2)
        assert one.anchors[arch] in by_arch[arch]
    assert two.basis["seeds"] == [0, 1] and two.basis["anchors"] == len(ANCHORS)
    assert two.basis["seed_to_seed_tau"] is not None
    assert any("mean of seeds 0, 1" in line for line in lines)
    report = Run.open(run).layout.predictor_report.read_text() if hasattr(Run.open(run), "layout") else None
    text = report or (run / "predictor" / "report.md").read_text()
    assert "each the mean of 2 seeds of 1-epoch stand-alone training" in text
    assert two.report["basis"]["seeds_per_anchor"] == 2


@pytest.mark.parametrize("bad", [0, -1, 11, 2.5])
def test_bad_seed_count_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="anchor_seeds"):
        FitPredictorOptions(anchors=8, anchor_seeds=bad)
