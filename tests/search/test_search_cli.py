"""`evonas search` end to end on the NAS-Bench-201 table and on synthetic tables."""

from __future__ import annotations

import json

import pytest
from tests.synthetic_tables import write_table

from evonas.cli.main import main
from evonas.scorers.tables import SHARED_NB201

NB201_CSV = SHARED_NB201 / "nb201.csv"
NB201_LAT = SHARED_NB201 / "nb201_latency.csv"
needs_nb201 = pytest.mark.skipif(not NB201_CSV.is_file(), reason=f"NAS-Bench-201 table not at {NB201_CSV}")
NB = ["search", "--space", "nb201", "--table", str(NB201_CSV), "--target", "cifar10_valid_acc"]


def run_json(capsys, args):
    main(args + ["--json"])
    return json.loads(capsys.readouterr().out)


def run_error(capsys, args) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    return capsys.readouterr().err


@needs_nb201
def test_nb201_json_has_best_evaluations_and_history(capsys):
    out = run_json(capsys, NB + ["--report", "cifar10_test_acc", "--algo", "evolution", "--budget", "100", "--seed", "3"])
    best = out["best"]
    assert {"arch", "value", "flops", "params", "report"} <= set(best)
    assert out["evaluations"] == 100 and len(out["history"]) == 100 and out["history"][-1] == best["value"]
    assert 85 < best["report"] <= 94.38 and best["flops"] > 7e6
    again = run_json(capsys, NB + ["--report", "cifar10_test_acc", "--algo", "evolution", "--budget", "100", "--seed", "3"])
    assert again["best"] == best and again["history"] == out["history"]


@needs_nb201
@pytest.mark.parametrize("algo", ["evolution", "nsga2", "rea", "random", "tpe", "optuna-nsga2", "optuna-random"])
def test_nb201_every_searcher_under_latency_flops_and_params(capsys, algo):
    args = NB + ["--latency-table", str(NB201_LAT), "--latency-column", "pixel3_ms", "--max-latency-ms", "12",
                 "--max-flops", "120e6", "--max-params", "1e6", "--algo", algo, "--budget", "20"]
    out = run_json(capsys, args)
    assert out["evaluations"] == 20
    assert out["best"]["latency_ms"] <= 12 and out["best"]["flops"] <= 120e6 and out["best"]["params"] <= 1e6


@needs_nb201
def test_nb201_infeasible_and_missing_latency_are_clear_errors(capsys):
    err = run_error(capsys, NB + ["--max-flops", "1e6"])
    assert "--max-flops 1,000,000 is infeasible" in err and "at least 7,783,040" in err
    err = run_error(capsys, NB + ["--max-latency-ms", "5"])
    assert "--max-latency-ms needs a latency source" in err
    err = run_error(capsys, NB + ["--algo", "tpe", "--population", "5"])
    assert "--population does not apply to --algo tpe" in err
    err = run_error(capsys, NB + ["--algo", "evolution", "--objectives", "accuracy,flops"])
    assert "optimises one objective" in err


def test_run_directory_keeps_store_pareto_and_resumes_without_rescoring(tmp_path, capsys):
    table = write_table(tmp_path / "macro.csv")
    run = tmp_path / "run"
    base = ["search", "--run", str(run), "--space", "macro-fmnist", "--table", str(table), "--target", "val_acc",
            "--report", "test_acc", "--max-flops", "3e6"]
    half = run_json(capsys, base + ["--algo", "nsga2", "--objectives", "accuracy,flops", "--budget", "15"])
    assert half["cached"] == 0 and (run / "store.sqlite").is_file()
    assert json.loads((run / "searches" / "nsga2-s0" / "pareto.json").read_text()) == half["pareto"]
    full = run_json(capsys, base + ["--algo", "nsga2", "--objectives", "accuracy,flops", "--budget", "30", "--resume"])
    assert full["resumed"] and full["search_run"] == "nsga2-s0" and full["cached"] == 15
    other = run_json(capsys, base + ["--algo", "tpe", "--budget", "10"])  # Optuna study in RUN/optuna.db
    assert (run / "optuna.db").is_file() and other["evaluations"] == 10
    main(base + ["--algo", "random", "--budget", "5"])
    text = capsys.readouterr().out
    assert "random (seed 0) on macro-fmnist: 5 architectures scored" in text and "store:" in text


def test_supernet_scorer_needs_a_trained_run(tmp_path, capsys):
    err = run_error(capsys, ["search", "--space", "macro-fmnist", "--budget", "3"])
    assert "needs --run DIR" in err
    err = run_error(capsys, ["search", "--run", str(tmp_path / "empty"), "--budget", "3"])
    assert "train-supernet" in err


def test_help_teaches_with_examples(capsys):
    main(["search", "--help"])
    text = capsys.readouterr().out
    assert "--max-flops 3e6" in text and "--resume" in text and "optuna-nsga2" in text
