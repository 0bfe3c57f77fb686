"""Multi-fidelity anchors: a few anchors also trained long, the long schedule is the target and the judge."""

from __future__ import annotations

import contextlib
import json
import logging

import numpy as np
import pytest

from evonas.gap.fidelity import (
    MIN_LONG_FOR_CV,
    Fidelities,
    choose_long_anchors,
    cross_validate_long,
    fit_short_to_long,
    long_splits,
    select_on_fidelities,
)
from evonas.jobs.fit_predictor import FitPredictorOptions, fit_predictor
from evonas.run.run import Run
from predictors import kendall_tau
from tests.cli.test_cli_train import run_cli

ANCHORS = ("00000000", "10000000", "00100000", "00000100", "01000000")  # small networks: quick stand-alone trainings
BASE = dict(explicit=ANCHORS, anchor_epochs=1, pool=len(ANCHORS), predictors=("gap",), quiet=True)
TODAYS_BASIS = {"anchors", "seeds_per_anchor", "seeds", "anchor_epochs", "seed_to_seed_tau", "text"}


@contextlib.contextmanager
def _logged():
    """The messages the "evonas" loggers give at INFO and above within the block, as a list of lines."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("evonas")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _standalone(run) -> list:
    with Run.open(run).store() as store:
        return list(store.records(scorer="standalone"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A tiny supernet on 128 synthetic train images, so each stand-alone training takes about a second."""
    from evonas.training.train import train_supernet
    from tests.conftest import tiny_config

    run = tmp_path_factory.mktemp("multi_fidelity") / "run"
    train_supernet(run, tiny_config(train_limit=128, val_size=100, epochs=1), progress=False)
    return run


@pytest.fixture(scope="module")
def long_fit(small_run):
    """fit-predictor with 4 of the 5 anchors also trained for 2 epochs: (result, log lines)."""
    with _logged() as lines:
        result = fit_predictor(small_run, FitPredictorOptions(**BASE, long_anchors=4, long_epochs=2))
    return result, lines


# -- the pieces, without training ------------------------------------------------------------------

def test_mapping_fits_the_offset_and_shrinks_the_slope_toward_one():
    one = fit_short_to_long([10.0], [30.0], scale=[0.0, 10.0, 20.0])
    assert one.slope == pytest.approx(1.0) and one(10.0) == pytest.approx(30.0)  # one pair: offset only
    two = fit_short_to_long([10.0, 20.0], [10.0, 40.0], scale=[10.0, 15.0, 20.0])  # least squares says 3
    assert two.ols_slope == pytest.approx(3.0) and 1.0 < two.slope < 3.0
    many = fit_short_to_long(np.arange(40.0), 3 * np.arange(40.0), scale=np.arange(40.0))
    assert many.slope == pytest.approx(3.0, rel=0.06)  # many pairs: the data win
    inverted = fit_short_to_long([10.0, 20.0, 30.0], [60.0, 40.0, 20.0])
    assert inverted.slope >= 0.0  # never inverts the short ranking


def test_long_anchors_are_chosen_deterministically_over_the_range():
    short = {f"a{i}": float(i) for i in range(12)}
    scores = {f"a{i}": float((5 * i) % 12) for i in range(12)}
    chosen = choose_long_anchors(short, scores, 4, seed=3)
    assert chosen == choose_long_anchors(short, scores, 4, seed=3) and len(set(chosen)) == 4
    ranks = sorted(short[a] for a in chosen)
    assert ranks[0] < 3 and ranks[-1] > 8  # covers the short labels' range
    assert choose_long_anchors(short, scores, 12) == sorted(short)


def test_held_out_tau_is_measured_against_long_labels_only():
    rng = np.random.default_rng(0)
    k = 10
    score = rng.normal(50, 5, k)
    X = np.column_stack([rng.normal(size=k), score])  # (cost, supernet score)
    short = score + rng.normal(0, 1, k)
    long = np.full(k, np.nan)
    long[:5] = -score[:5]  # the long schedule reverses the supernet's ranking on the long anchors
    report = cross_validate_long(X, short, long, proxy_index=1, cost_index=0, predictors=("gap",), n_splits=20)
    # the supernet baseline ranks like the score: its held-out tau is the score's tau on held-out LONG labels
    expected = np.mean([kendall_tau(long[test], score[test]) for _, test in long_splits(range(5), k, 20, 0)])
    supernet = next(e for e in report.estimators if e.name == report.baseline)
    assert supernet.kendall_tau == pytest.approx(expected) and supernet.kendall_tau < 0
    assert report.n_anchors == 5 and "of the 5 long anchors" in report.scheme
    assert all(len(test) >= 3 and np.isin(test, range(5)).all() for _, test in long_splits(range(5), k, 20, 0))


def test_fewer_than_four_long_anchors_fall_back_to_the_short_labels():
    rng = np.random.default_rng(1)
    names = [f"a{i}" for i in range(8)]
    X = np.column_stack([rng.normal(size=8), rng.normal(50, 5, 8)])
    short = dict(zip(names, X[:, 1] + rng.normal(0, 1, 8)))
    kw = dict(proxy_index=1, cost_index=0, flops=None, predictors=("gap",), coverage=0.8, random_state=0, n_splits=10,
              margin=0.5)
    few = Fidelities(short=short, long={a: short[a] + 5 for a in names[:MIN_LONG_FOR_CV - 1]}, short_epochs=1, long_epochs=4)
    report, reference = select_on_fidelities(X, names, few, **kw)
    assert reference is None and report.n_anchors == 8 and "too few points" in report.notes[-1]
    assert report.best == report.baseline or report.beats_proxy  # the supernet rule still chooses
    enough = Fidelities(short=short, long={a: short[a] + 5 for a in names[:MIN_LONG_FOR_CV]}, short_epochs=1, long_epochs=4)
    report, reference = select_on_fidelities(X, names, enough, **kw)
    assert report.n_anchors == MIN_LONG_FOR_CV and reference.n_anchors == 8
    assert enough.labels()[names[0]] == pytest.approx(short[names[0]] + 5)  # long where trained
    assert enough.labels()[names[-1]] == pytest.approx(short[names[-1]] + 5)  # mapped: the offset is fitted


# -- a tiny run ----------------------------------------------------------------------------------

def test_long_anchors_are_trained_once_stored_and_reported(small_run, long_fit):
    result, lines = long_fit
    records = _standalone(small_run)
    assert len(records) == len(ANCHORS) + 4  # 5 short trainings + 4 long ones, one store record each
    long_records = {r.arch: r.metric("accuracy") for r in records if r.source["epochs"] == 2}
    assert long_records == result.long_anchors
    assert sorted(r.arch for r in records if r.source["epochs"] == 1) == sorted(result.anchors)
    assert len(result.long_anchors) == 4 and set(result.long_anchors) <= set(result.anchors)
    assert all(result.labels[a] == result.long_anchors[a] for a in result.long_anchors)  # long labels are the target
    basis = result.report["basis"]
    assert basis["anchors"] == 5 and basis["long_anchors"] == 4 and basis["long_epochs"] == 2 and basis["anchor_epochs"] == 1
    assert basis["seeds_per_anchor"] == 1 and basis["selection_labels"] == "long"
    assert isinstance(basis["short_long_tau"], float)
    assert "4 of them also trained for 2 epochs" in basis["text"] and "short-vs-long tau" in basis["text"]
    assert result.report["n_anchors"] == 4 and "short_fidelity_cv" in result.report  # chosen on long labels
    md = (small_run / "predictor" / "report.md").read_text()
    assert "measured against the 2-epoch labels only" in md and "short-vs-long tau" in md
    saved = json.loads((small_run / "predictor" / "report.json").read_text())
    assert saved["basis"]["long_anchors"] == 4 and saved["fidelity"]["selection_labels"] == "long"
    assert sum("long anchor" in line and "trained in" in line for line in lines) == 4

    with _logged() as again:
        rerun = fit_predictor(small_run, FitPredictorOptions(**BASE, long_anchors=4, long_epochs=2))
    assert len(_standalone(small_run)) == len(records)  # read back, nothing retrained
    assert not any("trained in" in line for line in again)
    assert rerun.long_anchors == result.long_anchors and rerun.labels == result.labels


def test_zero_long_anchors_is_todays_result(small_run, long_fit):
    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items() if k != "seconds"}
        return [strip(v) for v in d] if isinstance(d, list) else d

    today = fit_predictor(small_run, FitPredictorOptions(**BASE))
    zero = fit_predictor(small_run, FitPredictorOptions(**BASE, long_anchors=0, long_epochs=5))
    assert set(zero.basis) == TODAYS_BASIS and zero.basis == today.basis
    assert strip(zero.report) == strip(today.report) and "fidelity" not in zero.report
    assert zero.anchors == today.anchors == zero.labels and zero.long_anchors == {}
    archs = [Run.open(small_run).space.parse(a) for a in sorted(zero.anchors)]
    scores = [60.0 + i for i in range(len(archs))]
    assert np.array_equal(zero.gap.predict(archs, scores)["predicted"], today.gap.predict(archs, scores)["predicted"])


@pytest.mark.parametrize("args, flag", [
    (["--anchors", "5", "--long-anchors", "-1"], "--long-anchors"),
    (["--anchors", "5", "--long-anchors", "6"], "--long-anchors 6"),
    (["--anchors", "5", "--anchor-epochs", "2", "--long-anchors", "2", "--long-epochs", "2"], "--long-epochs"),
    ([arg for a in ANCHORS for arg in ("--anchor", a)] + ["--long-anchors", "6"], "--long-anchors 6"),
])
def test_bad_long_options_exit_2_with_one_line(capsys, small_run, args, flag):
    before = len(_standalone(small_run))
    code, _, err = run_cli(capsys, "fit-predictor", "--run", str(small_run), "--quiet", *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and flag in err, err
    assert len(_standalone(small_run)) == before  # checked before anything is trained
