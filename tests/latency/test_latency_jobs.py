"""The latency jobs on a tiny run: build, reuse, validate, and constrain a search with the run's own table."""

from __future__ import annotations

import pytest

from evonas.errors import ConfigError, RunDirError
from evonas.jobs.latency import LatencyBuildOptions, LatencySetting, LatencyValidateOptions, build, device_table, validate
from evonas.jobs.search import SearchOptions, search
from evonas.run import Run
from search_spaces import InfeasibleConstraintError

QUICK = dict(warmup=1, repeats=3, quiet=True)


@pytest.fixture(scope="module")
def latency_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run with an eager batch-1 latency table."""
    import shutil

    run = tmp_path_factory.mktemp("latency") / "run"
    shutil.copytree(tiny_run, run)
    build(run, LatencyBuildOptions(**QUICK, fit_seconds=0))
    return run


def test_build_stores_one_entry_per_layer_option_and_reuses_it(latency_run):
    run = Run.open(latency_run)
    again = build(latency_run, LatencyBuildOptions(**QUICK, fit_seconds=0))
    assert not again.built and again.table_file == run.latency_table_file("macro-fmnist", "eager", 1, 1)
    assert again.entries == sum(len(d.options) for d in run.space.dims)
    assert again.min_latency_ms > 0


def test_a_missing_table_names_the_build_command(latency_run):
    with pytest.raises(RunDirError, match="evonas latency build --run .* --batch-size 8"):
        device_table(Run.open(latency_run), LatencySetting(batch_size=8))


def test_bad_settings_fail_before_any_timing():
    with pytest.raises(ConfigError, match="'backend'"):
        LatencySetting(backend="tensorrt")
    with pytest.raises(ConfigError, match="'calibrate'"):
        LatencyValidateOptions(samples=4, calibrate=3)


def test_validate_reports_the_documented_keys(latency_run):
    rep = validate(latency_run, LatencyValidateOptions(samples=5, calibrate=0, **QUICK)).report
    assert rep["samples"] == 5 and 0 <= rep["within_10pct"] <= 1 and rep["mape"] >= 0 and -1 <= rep["kendall_tau"] <= 1
    assert {"predicted_ms", "measured_ms", "error_pct"} <= set(rep["archs"][0])


def test_a_latency_limit_constrains_a_supernet_search_with_the_runs_table(latency_run):
    table = device_table(Run.open(latency_run))
    limit = table.min_latency() * 1.6
    out = search(latency_run, SearchOptions(algo="random", budget=6, max_latency_ms=limit, quiet=True)).to_dict()
    assert out["best"]["latency_ms"] <= limit
    with pytest.raises(InfeasibleConstraintError, match="max_latency_ms"):
        search(latency_run, SearchOptions(algo="random", budget=6, max_latency_ms=table.min_latency() * 0.5, quiet=True))


def test_export_writes_onnx_and_reports_predicted_and_measured_latency(latency_run, tmp_path):
    import json

    from evonas.jobs.export import ExportOptions, export

    out = export(latency_run, ExportOptions(archs=("12012200",), out=tmp_path / "x", formats=("onnx",), quiet=True))
    metrics = json.loads((out.exported[0].folder / "metrics.json").read_text())
    assert (out.exported[0].folder / "model.onnx").is_file() and metrics["onnx"]["max_abs_diff_vs_torch"] < 1e-4
    lat = metrics["latency"]
    assert lat["predicted_ms"] > 0 and lat["measured_ms"] > 0 and lat["backend"] == "eager"
    with pytest.raises(ConfigError, match="'formats'"):
        ExportOptions(archs=("12012200",), formats=("tflite",))


def test_top_k_export_keeps_the_latency_limit_and_measures_each_model_against_it(latency_run, tmp_path):
    """Records of an unconstrained search must not slip past a limit; an earlier top-k must not mix in."""
    import json
    import shutil

    from evonas.jobs.export import ExportOptions, export

    run = tmp_path / "run"
    shutil.copytree(latency_run, run)
    table = device_table(Run.open(run))
    search(run, SearchOptions(algo="random", budget=8, seed=1, name="free", quiet=True))  # no limit: no latency_ms
    limit = table.min_latency() * 1.3
    search(run, SearchOptions(algo="random", budget=6, seed=2, name="limited", max_latency_ms=limit, quiet=True))
    with Run.open(run).store() as store:
        records = store.records(scorer="supernet")
    over = [r.arch for r in records if table.predict(r.arch) > limit]
    assert over, "the free search should have scored architectures above the limit"

    export(run, ExportOptions(top_k=3, quiet=True))  # unconstrained first: its folders must be replaced
    result = export(run, ExportOptions(top_k=3, max_latency_ms=limit, quiet=True))
    folders = sorted(p for p in result.report.parent.iterdir() if (p / "metrics.json").is_file())
    assert sorted(e.folder for e in result.exported) == folders and 1 <= len(folders) <= 3
    for item in result.exported:
        assert table.predict(item.arch) <= limit and item.arch not in over
        lat = json.loads((item.folder / "metrics.json").read_text())["latency"]
        assert lat["limit_ms"] == pytest.approx(limit) and lat["within_limit"] == (lat["measured_ms"] <= limit)
        assert lat["spread"] >= 0
    assert len(result.over_limit) == sum(not e.latency["within_limit"] for e in result.exported)
    with pytest.raises(ConfigError, match="--top-k"):
        ExportOptions(archs=("12012200",), max_latency_ms=limit)
