"""The latency table: one entry per (layer, option), additive predictions, persistence, device and noise checks."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest
import torch

from search_spaces import get_space

from evonas.errors import ConfigError
from evonas.latency.build import build_latency_table
from evonas.latency.device import describe_device
from evonas.latency.table import LatencyTable
from evonas.latency.timing import time_callable, time_interleaved
from evonas.latency.validate import networks_used, retest_tau, validate_latency

FAST = dict(warmup=1, repeats=3, progress=False, fit_seconds=0)  # exactly the rounds asked: quick


@pytest.fixture(scope="module")
def macro():
    return get_space("macro-fmnist")


@pytest.fixture(scope="module")
def table(macro) -> LatencyTable:
    return build_latency_table(macro, **FAST)


def test_describe_device_key_depends_on_timing_fields_only():
    a = describe_device(1, 1, "eager")
    assert {"cpu_model", "logical_cores", "threads", "batch_size", "backend", "torch", "onnxruntime", "device_key"} <= set(a)
    assert a["device_key"] == describe_device(1, 1, "eager")["device_key"]
    assert len({a["device_key"], describe_device(2, 1, "eager")["device_key"],
                describe_device(1, 32, "eager")["device_key"], describe_device(1, 1, "onnxruntime")["device_key"]}) == 4
    with pytest.raises(ConfigError, match="'backend' parameter.*got 'tvm'"):
        describe_device(1, 1, "tvm")
    with pytest.raises(ConfigError, match="'batch_size' parameter must be an integer >= 1; got 0"):
        describe_device(1, 0, "eager")


def test_time_callable_statistics():
    calls = []
    stats = time_callable(lambda: calls.append(1), warmup=2, repeats=5, number=3)
    assert len(calls) == 2 + 5 * 3
    assert stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    assert stats["spread"] >= 0 and stats["repeats"] == 5 and stats["number"] == 3
    cpu = time_callable(lambda: sum(range(100)), warmup=0, repeats=3, clock="cpu")
    assert cpu["clock"] == "cpu" and cpu["median_ms"] >= 0
    with pytest.raises(ConfigError, match="'repeats' parameter must be an integer >= 1; got 0"):
        time_callable(lambda: None, repeats=0)


def test_one_entry_per_layer_and_option(macro, table):
    keys = [(e.layer, e.code) for e in table.entries]
    expected = [(i, c) for i, dim in enumerate(macro.dims) for c in dim.options]
    assert sorted(keys) == sorted(expected) and len(set(keys)) == len(keys)
    for e in table.entries:
        slot = macro.slots[e.layer]
        assert e.input_shape == (1, slot.cin, slot.size_in, slot.size_in)
        if macro.ops[e.code].is_identity and not slot.changes_shape:
            assert not e.measured and e.median_ms == 0.0  # dropped from exported networks
        else:
            assert e.measured and e.isolated_ms > 0 and e.median_ms >= 0 and e.p10_ms <= e.raw_ms <= e.p90_ms
    assert table.device == describe_device(1, 1, "eager")
    assert table.settings["backend"] == "eager" and table.settings["repeats"] == 3
    assert table.build_seconds > 0
    # the isolated fixed part is the residual one; a fitted table's own comes from its fit
    assert table.overhead["method"] == "residual" and table.isolated().overhead_ms == table.overhead["residual_ms"]
    fit, residual = table.fit or {}, table.overhead["residual_ms"]
    expected = {"fitted": fit.get("intercept_ms"), "isolated": residual,
                "scaled": fit.get("scaled_a", 0) * residual + fit.get("scaled_b", 0)}[table.method]
    assert table.overhead_ms == pytest.approx(expected)
    assert table.overhead["components_ms"] > 0 and table.overhead["reference_arch"]


def test_predict_is_table_sum_plus_overhead(macro, table):
    rng = random.Random(0)
    for _ in range(5):
        arch = macro.sample(rng)
        expected = sum(table.entry(i, c).median_ms for i, c in enumerate(arch.choices)) + table.overhead_ms
        assert table.predict(arch) == pytest.approx(expected)
        assert table.predict(str(arch)) == pytest.approx(expected)
        assert table.predict(arch) > 0
    corrected = table.with_correction(2.0, 0.5)
    arch = macro.sample(rng)
    assert corrected.predict(arch) == pytest.approx(2 * table.predict(arch) + 0.5)


def test_noisy_entries_and_busy_warning(table):
    strict = replace(table, settings={**table.settings, "noise_threshold": -1.0})
    measured = [e for e in table.entries if e.measured]
    assert len(strict.noisy_entries) == len(measured)
    assert all(e.spread > table.settings["noise_threshold"] for e in table.noisy_entries)
    # every entry noisy on purpose: the build reports it instead of raising
    busy = build_latency_table("macro-fmnist", layers=[0], noise_threshold=1e-12, max_noisy_share=0.0, **FAST)
    assert busy.busy and any("too busy to measure" in w for w in busy.warnings)


def test_save_load_round_trip(tmp_path, table):
    path = table.save(tmp_path / "latency" / "eager-b1-t1.json")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    loaded = LatencyTable.load(path)
    assert loaded == table and loaded.source == str(path)
    assert loaded.predict("12012200") == table.predict("12012200")


def test_corrupt_or_missing_file_names_it_and_the_fix(tmp_path, table):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "evonas-latency-table", "entries": [')
    with pytest.raises(ConfigError, match=r"bad\.json is unreadable.*rebuild"):
        LatencyTable.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="other.json.*not an evonas latency table"):
        LatencyTable.load(other)
    with pytest.raises(ConfigError, match="No latency table at .*missing.json"):
        LatencyTable.load(tmp_path / "missing.json")


def test_foreign_device_is_refused_naming_both(tmp_path, table):
    foreign = {**table.device, "cpu_model": "Imaginary CPU 9000", "device_key": "0123456789ab"}
    path = replace(table, device=foreign).save(tmp_path / "t.json")
    loaded = LatencyTable.load(path)
    here = describe_device(1, 1, "eager")
    with pytest.raises(ConfigError) as info:
        loaded.check_device(here)
    message = str(info.value)
    assert "0123456789ab" in message and "Imaginary CPU 9000" in message
    assert here["device_key"] in message and "t.json" in message and "'allow_foreign'" in message
    assert loaded.check_device(here, allow_foreign=True) is False
    assert table.check_device(here) is True


def test_build_rejects_bad_parameters(macro):
    with pytest.raises(ConfigError, match="'repeats' parameter must be an integer >= 3; got 1"):
        build_latency_table(macro, warmup=0, repeats=1, progress=False)
    with pytest.raises(ConfigError, match="'layers' parameter"):
        build_latency_table(macro, layers=[8], **FAST)
    with pytest.raises(ConfigError, match="'clock' parameter 'cpu'.*threads=1"):
        build_latency_table(macro, threads=2, clock="cpu", **FAST)
    with pytest.raises(ConfigError, match="'space' parameter must be a chain space"):
        build_latency_table("nb201", **FAST)


def test_partial_table_refuses_to_predict_missing_layers():
    partial = build_latency_table("macro-fmnist", layers=[0, 1], **FAST)
    assert {e.layer for e in partial.entries} == {0, 1}
    assert partial.overhead["method"] == "none" and partial.overhead_ms == 0.0
    assert any("cannot predict whole networks" in w for w in partial.warnings)
    with pytest.raises(ConfigError, match="no entry for option .* at layer 2"):
        partial.predict("12012200")


def test_validate_reports_documented_metrics(macro, table):
    rng = random.Random(1)
    archs = [macro.sample(rng) for _ in range(4)]
    res = validate_latency(macro, table, archs, warmup=1, repeats=3)
    assert {"mape", "within_10pct", "kendall_tau", "samples", "archs", "correction"} <= set(res)
    assert res["samples"] == 4 and len(res["archs"]) == 4 and res["correction"] is None
    assert res["mape"] >= 0 and 0 <= res["within_10pct"] <= 1
    assert math.isnan(res["kendall_tau"]) or -1 <= res["kendall_tau"] <= 1
    assert math.isnan(res["retest_kendall_tau"]) or -1 <= res["retest_kendall_tau"] <= 1
    for row, arch in zip(res["archs"], archs):
        assert row["arch"] == str(arch) and row["predicted_ms"] == pytest.approx(table.predict(arch))
        assert row["measured_ms"] > 0
    # a supernet's extracted paths work as the module factory; a linear correction on 2 of 5
    from evonas.supernet.chain import ChainSupernet

    supernet = ChainSupernet(macro).eval()
    res = validate_latency(macro, table, archs + [macro.sample(rng)], warmup=1, repeats=3, calibrate=2,
                           module_factory=supernet.extract)
    corr = res["correction"]
    assert res["samples"] == 3 and corr["calibration_samples"] == 2 and corr["samples"] == 3
    assert isinstance(corr["improves"], bool) and math.isfinite(corr["a"]) and math.isfinite(corr["b"])
    assert [r["role"] for r in res["archs"]] == ["calibration"] * 2 + ["test"] * 3


def test_validate_times_the_builds_fresh_networks_again_to_see_whether_the_machine_changed(macro, table):
    """The build's fresh networks, timed among the validation's: a table built on a slower machine is flagged."""
    from dataclasses import replace

    archs = [macro.sample(random.Random(2)) for _ in range(3)]
    fresh = table.fit["fresh"]
    assert len(fresh["archs"]) == len(fresh["times_ms"]) == 10 and set(fresh["archs"]) <= set(networks_used(table.fit))
    res = validate_latency(macro, table, archs, warmup=1, repeats=3)
    drift = res["drift"]
    assert drift["source"] == "fresh networks" and drift["networks"] == 10 and len(res["archs"]) == 3  # not scored
    assert validate_latency(macro, table, archs, warmup=1, repeats=3, drift=False)["drift"] is None
    assert validate_latency(macro, table, archs, warmup=1, repeats=3, clock="cpu")["drift"] is None  # not comparable
    slow = replace(table, fit={**table.fit, "fresh": {**fresh, "times_ms": [1e3 * t for t in fresh["times_ms"]]}})
    drift = validate_latency(macro, slow, archs, warmup=1, repeats=3)["drift"]  # built when 1000x slower
    assert drift["pct"] < -90 and drift["changed"] is True
    # a table without them (older, or built without a fit) times its reference network again, alone
    old = replace(table, fit={k: v for k, v in table.fit.items() if k != "fresh"})
    old = replace(old, overhead={**old.overhead, "reference_e2e_ms": 1e3 * old.overhead["reference_e2e_ms"]})
    drift = validate_latency(macro, old, archs, warmup=1, repeats=3)["drift"]
    assert drift["source"] == "reference network" and drift["pct"] < -90 and drift["changed"] is True
    no_ref = replace(old, overhead={k: v for k, v in old.overhead.items() if k != "reference_arch"})
    assert validate_latency(macro, no_ref, archs, warmup=1, repeats=3)["drift"] is None


def test_one_exported_module_is_timed_alone_against_its_table(macro, table, monkeypatch):
    """measure_latency (export) times the module and nothing else: no drift networks beside it."""
    import evonas.latency.validate as L
    from evonas.export.module import measure_latency
    from evonas.supernet.chain import build_standalone

    calls = []
    real = L.time_interleaved
    monkeypatch.setattr(L, "time_interleaved", lambda fns, **kw: calls.append(len(fns)) or real(fns, **kw))
    arch = macro.parse("12012200")
    out = measure_latency(macro, table, arch, build_standalone(macro, arch), repeats=3)
    assert calls == [1] and out["measured_ms"] > 0


def test_retest_tau_compares_the_two_interleaved_halves_of_a_timing():
    """Even and odd rounds are two half-measurements; their Kendall tau is the timing's own repeatability."""
    import time as _time

    def sleeper(ms: float):
        return lambda: _time.sleep(ms / 1000)

    timings = time_interleaved([sleeper(1), sleeper(5), sleeper(15)], warmup=0, rounds=4, min_repeat_ms=0)
    for t in timings:
        lo, hi = sorted(t["half_medians_ms"])
        assert t["min_ms"] <= lo <= hi <= 4 * t["mean_ms"]
    assert retest_tau(timings) == pytest.approx(1.0)  # 1, 5 and 15 ms keep their order in both halves
    agree = [{"half_medians_ms": [1.0, 1.1]}, {"half_medians_ms": [2.0, 2.1]}, {"half_medians_ms": [3.0, 3.1]}]
    swapped = [{"half_medians_ms": [1.0, 2.1]}, {"half_medians_ms": [2.0, 1.1]}, {"half_medians_ms": [3.0, 3.1]}]
    assert retest_tau(agree) == pytest.approx(1.0) and retest_tau(swapped) == pytest.approx(1 / 3)
    assert math.isnan(retest_tau([{"half_medians_ms": None}, {"half_medians_ms": None}]))
    assert time_interleaved([sleeper(1)], warmup=0, rounds=1, min_repeat_ms=0)[0]["half_medians_ms"] is None


def test_validate_checks_space_and_device(macro, table):
    with pytest.raises(ConfigError, match="built for space 'macro-fmnist', not 'mobilenet-fmnist'"):
        validate_latency("mobilenet-fmnist", table, ["0" * 16])
    with pytest.raises(ConfigError, match="built on device"):
        validate_latency(macro, table, ["12012200"], batch_size=2, warmup=1, repeats=3)
    with pytest.raises(ConfigError, match="'calibrate' parameter"):
        validate_latency(macro, table, ["12012200", "00000000"], calibrate=1, warmup=1, repeats=3)


def test_onnxruntime_table_for_a_few_layers(macro):
    ort_table = build_latency_table(macro, backend="onnxruntime", layers=[7], **FAST)  # each op: one ONNX export
    assert ort_table.device["backend"] == "onnxruntime"
    assert sorted((e.layer, e.code) for e in ort_table.entries) == [(7, 0), (7, 1), (7, 2)]
    assert [e.measured for e in sorted(ort_table.entries, key=lambda e: e.code)] == [False, True, True]
    for e in ort_table.entries:
        assert e.median_ms >= 0 and (e.measured or e.median_ms == 0.0)
        assert e.median_ms <= e.raw_ms  # the session's per-call cost is charged once, to the fixed part
    assert ort_table.overhead["call_ms"] > 0


def test_build_restores_torch_threads():
    torch.set_num_threads(2)  # not the build's count, whatever the suite runs with (one thread under xdist)
    build_latency_table("macro-fmnist", layers=[0], threads=1, **FAST)
    assert torch.get_num_threads() == 2


def test_load_or_build_keeps_one_table_per_setting_in_the_run(tmp_path):
    from evonas.latency.runs import load_or_build_table, table_path

    path = table_path(tmp_path, "macro-fmnist", backend="eager", batch_size=1, threads=1)
    assert path == tmp_path / "latency" / "macro-fmnist-eager-b1-t1.json"
    built = load_or_build_table(tmp_path, "macro-fmnist", **FAST)
    assert path.is_file() and built.source == str(path)
    assert load_or_build_table(tmp_path, "macro-fmnist", **FAST) == built  # loaded, not rebuilt
    foreign = {**built.device, "device_key": "ffffffffffff"}
    replace(built, device=foreign).save(path)
    with pytest.raises(ConfigError, match="ffffffffffff"):
        load_or_build_table(tmp_path, "macro-fmnist", **FAST)
    assert load_or_build_table(tmp_path, "macro-fmnist", allow_foreign=True, **FAST).device == foreign
