"""The jobs layer: each command's work called directly, with options checked before any expensive step."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from tests.synthetic_tables import write_table

from evonas.errors import ConfigError, RunDirError
from evonas.jobs.evaluate import EvalOptions, evaluate
from evonas.jobs.export import ExportOptions, export
from evonas.jobs.fit_predictor import FitPredictorOptions, fit_predictor
from evonas.jobs.predictor_bench import PredictorBenchOptions, predictor_bench
from evonas.jobs.profile import ProfileOptions, profile
from evonas.jobs.search import SearchOptions, search
from evonas.jobs.train import TrainOptions, train
from evonas.progress import progress_enabled
from evonas.run.run import Run, RunLayout
from tests.predictors.test_predictor_bench_cli import synthetic_table

CLI = Path(__file__).resolve().parents[2] / "evonas" / "cli"


def test_layout_names_every_path_of_a_run(tmp_path):
    layout = RunLayout(tmp_path / "r")
    assert layout.config_file == tmp_path / "r" / "config.json"
    assert layout.checkpoint == tmp_path / "r" / "checkpoints" / "last.pt"
    assert layout.weights.name == "supernet.pt" and layout.store_file.name == "store.sqlite"
    assert layout.optuna_url == f"sqlite:///{(tmp_path / 'r' / 'optuna.db').resolve()}"
    assert layout.predictor_model == tmp_path / "r" / "predictor" / "model.pkl"
    assert layout.top_k_dir(3) == tmp_path / "r" / "exports" / "top3"
    assert layout.top_k_dir(3, "predictor").name == "top3-predictor"
    assert layout.search_result_file("evo-s0") == tmp_path / "r" / "searches" / "evo-s0" / "result.json"
    with pytest.raises(RunDirError, match="train-supernet"):
        Run.open(layout)


def test_train_job_and_resume_with_changed_settings(tmp_path):
    settings = dict(dataset="synthetic", val_size=200, epochs=1, batch_size=64, train_limit=256)
    result = train(tmp_path / "r", TrainOptions(settings=settings, quiet=True))
    assert result.finished and result.weights == result.run.weights and result.run.config.epochs == 1
    assert result.run.train_log.is_file()
    with pytest.raises(ConfigError, match="'lr': \\(0.1, 0.5\\)"):
        train(tmp_path / "r", TrainOptions(settings={**settings, "lr": 0.5}, resume=True))
    with pytest.raises(ConfigError, match="unknown training config keys"):
        TrainOptions(settings={"epoch": 3})


def test_evaluate_and_profile_jobs(tiny_run):
    run = Run.open(tiny_run)
    seen = []
    result = evaluate(run, EvalOptions(archs=("12012200",), sample=1, recalib_images=100, quiet=True), on_row=seen.append)
    assert [r["arch"] for r in result.rows][0] == "12012200" and len(result.rows) == 2 and seen == result.rows
    with pytest.raises(ConfigError, match="split"):
        EvalOptions(split="train")
    rows = profile(ProfileOptions(space="macro-cifar10", archs=("02012100",))).rows
    assert rows[0]["params"] == 890_666


def test_search_job_on_a_table_writes_its_result(tmp_path):
    table = write_table(tmp_path / "macro.csv")
    options = SearchOptions(space="macro-fmnist", table=str(table), target="val_acc", algo="random", budget=6,
                            max_flops=3e6, quiet=True)
    result = search(tmp_path / "run", options)
    assert result["evaluations"] == 6 and result.result_file == RunLayout(tmp_path / "run").search_result_file("random-s0")
    assert result.result_file.is_file()
    in_memory = search(None, options)
    assert in_memory["store"] is None and in_memory["best"] == result["best"]


@pytest.mark.parametrize("changes, message", [
    (dict(budget=0), "budget"),
    (dict(algo="nosuch"), "nosuch"),
    (dict(algo="tpe", searcher_options={"population": 5}), "population"),
    (dict(scorer="table"), "needs --table"),
    (dict(max_flops=-1.0), "max_flops"),
])
def test_search_options_are_checked_before_any_scorer_is_built(changes, message):
    with pytest.raises(Exception, match=message):
        SearchOptions(**changes)


def test_bad_predictor_name_is_rejected_before_any_anchor_is_trained(tiny_run, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("expensive work started before the options were checked")

    monkeypatch.setattr("evonas.gap.anchors.supernet_pool", forbidden)
    monkeypatch.setattr("evonas.scorers.standalone.StandaloneScorer.score", forbidden)
    monkeypatch.setattr("evonas.evaluation.scoring.SupernetEvaluator.evaluate", forbidden)
    with pytest.raises(ConfigError, match="choose from"):
        fit_predictor(tiny_run, FitPredictorOptions(anchors=5, anchor_epochs=1, predictors=("gap", "nosuch")))
    with pytest.raises(ConfigError, match="at least 4"):
        FitPredictorOptions(anchors=3)
    with pytest.raises(ConfigError, match="pool"):
        FitPredictorOptions(anchors=8, pool=5)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with pytest.raises(Exception, match="position|not a valid|invalid|digit"):
        fit_predictor(run, FitPredictorOptions(explicit=("1201220x", "00000000", "22222222", "10120110")))


def test_export_options_and_predictor_bench_job(tmp_path):
    with pytest.raises(ConfigError, match="top_k"):
        ExportOptions(top_k=0)
    with pytest.raises(ConfigError, match="--arch"):
        export(tmp_path, ExportOptions())
    table = tmp_path / "tab.csv"
    synthetic_table(table, n=60)
    with pytest.raises(ConfigError, match="choose from"):
        PredictorBenchOptions(table=table, target="acc", predictors=("nope",))
    result = predictor_bench(PredictorBenchOptions(table=table, target="acc", train_sizes=(10,), seeds=1,
                                                   predictors=("linear",), quiet=True))
    assert result.n_archs == 60 and {r["predictor"] for r in result.results} == {"linear"}
    assert result.to_dict()["results"] == result.results


def test_progress_bars_only_on_a_terminal(tmp_path):
    class Tty:
        def isatty(self):
            return True

    assert progress_enabled(False, Tty()) and not progress_enabled(True, Tty())
    with open(tmp_path / "log", "w") as piped:
        assert not progress_enabled(False, piped)


FORBIDDEN = ("evonas.gap", "evonas.search", "evonas.scorers", "evonas.training", "evonas.evaluation", "evonas.export",
             "evonas.run", "evonas.supernet", "evonas.data")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_cli_modules_only_parse_call_jobs_and_print(path):
    bad = [m for m in _imports(path) if m.startswith(FORBIDDEN) or (m.startswith("predictors") and m != "predictors.errors")]
    assert not bad, f"{path.name} does engine work itself: imports {bad}; call a job of evonas.jobs instead"
