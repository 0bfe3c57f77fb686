"""Validation: how well a table predicts whole networks timed end to end, and whether the machine has drifted.

:func:`validate_latency` times whole networks and reports how well the table predicts
them (MAPE, share within 10%, Kendall tau), with an optional linear correction fitted on
a few of them. A deep chain runs slower than its layers timed alone (each layer alone
keeps its weights and activations in cache): on mobilenet-fmnist the table
underestimated by a third, with the ranking intact (Kendall tau 0.96).
``validate_latency(..., calibrate=k)`` fits ``measured = a * predicted + b`` on ``k``
networks and reports it only as an improvement when it lowers held-out MAPE (there: 34%
to 4.4% with k = 5); ``LatencyTable.with_correction(a, b)`` applies it.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from search_spaces import Arch, ChainSpace

from evonas.errors import ConfigError
from evonas.latency.device import describe_device
from evonas.latency.params import (BACKENDS, _chain_space, _check_clock, _check_timing_device, _check_timing_precision,
                                   _choice_param, _float_param, _int_param)
from evonas.latency.table import LatencyTable
from evonas.latency.timing import _piece_key, _Runner, _torch_threads, time_interleaved

__all__ = ["DRIFT_WARN_PCT", "networks_used", "rank_metrics", "retest_tau", "validate_latency"]


def networks_used(fit: dict | None) -> tuple[str, ...]:
    """Every network a table's build timed whole (fitting and confirming): validation samples none of them."""
    fit = fit or {}
    return tuple(dict.fromkeys(tuple(fit.get("archs", ())) + tuple((fit.get("confirm") or {}).get("archs", ()))
                               + tuple((fit.get("fresh") or {}).get("archs", ()))))


def rank_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """MAPE (percent), share within +-10% and Kendall tau of ``predicted`` against ``measured``, and ``samples``."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if len(measured) == 0:
        return {"mape": math.nan, "within_10pct": math.nan, "kendall_tau": math.nan, "samples": 0}
    error = np.abs(predicted - measured) / measured
    from evonas.latency.fit import _tau

    tau = _tau(predicted, measured)  # NaN below 2 networks or without spread
    return {
        "mape": float(100 * error.mean()),
        "within_10pct": float((error <= 0.10).mean()),
        "kendall_tau": tau,
        "samples": int(len(measured)),
    }


def retest_tau(timings: Sequence[dict]) -> float:
    """Kendall tau between the two interleaved half-measurements of :func:`time_interleaved` (NaN without them).

    Each half has half the rounds, so this understates the repeatability of the full
    median a little; it is the ceiling a predicted-versus-measured tau is judged against.
    """
    halves = [t.get("half_medians_ms") for t in timings]
    if any(h is None for h in halves):
        return math.nan
    return rank_metrics([h[0] for h in halves], [h[1] for h in halves])["kendall_tau"]  # NaN below 2 or without spread


# The build's fresh networks this much slower or faster now: the machine has likely changed. Not less: they are
# timed among other networks, in other rounds, each time (benchmarks/latency.py: -6% to +5% on a quiet machine)
DRIFT_WARN_PCT = 10.0


def _drift_networks(table: LatencyTable) -> tuple[list[str], list[float]]:
    """The whole networks the build timed among its fitting networks, and their times then (none: empty)."""
    fresh = (table.fit or {}).get("fresh") or {}
    return list(fresh.get("archs", ())), list(fresh.get("times_ms", ()))


def _drift(space: ChainSpace, table: LatencyTable, runner: "_Runner", x: torch.Tensor,
           now: Sequence[dict] = ()) -> dict | None:
    """Has the machine's speed changed since the build? (+: slower now.)

    A table predicts the machine as it was while it was built; a laptop on battery, a
    throttled CPU or a neighbour on a shared VM can make every network 10% slower an hour
    later, and every prediction then misses by that much, whatever the table. ``now``
    holds the timings, in the validation's rounds, of the build's fresh networks
    (:func:`_drift_networks`): the drift is the median of their time ratios. A table
    without them (built before they were kept, or without a fit) times its reference
    network again as the build timed it, one network, alone: a rougher probe. None when
    the table has neither (a partial table).
    """
    from evonas.supernet import build_standalone

    archs, then = _drift_networks(table)
    if archs and len(now) == len(archs):
        ratios = np.array([t["median_ms"] for t in now]) / np.array(then)
        pct = 100 * (float(np.median(ratios)) - 1)
        return {"source": "fresh networks", "networks": len(archs), "pct": pct,
                "changed": bool(abs(pct) > DRIFT_WARN_PCT)}
    ref, built = table.overhead.get("reference_arch"), table.overhead.get("reference_e2e_ms")
    if not ref or not built:
        return None
    probe = runner.time(build_standalone(space, space.parse(ref)), x, table.settings.get("warmup", 10),
                        table.settings.get("repeats", 50))
    pct = 100 * (probe["median_ms"] / built - 1)
    return {"source": "reference network", "networks": 1, "reference_arch": ref, "built_ms": float(built),
            "now_ms": probe["median_ms"], "pct": pct, "spread": probe["spread"], "changed": bool(abs(pct) > DRIFT_WARN_PCT)}


def validate_latency(
    space: ChainSpace | str,
    table: LatencyTable,
    archs: Sequence[Arch | str],
    *,
    backend: str | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    module_factory: Callable[[Arch], nn.Module] | None = None,
    calibrate: int = 0,
    min_gain: float = 1.0,
    allow_foreign: bool = False,
    clock: str | None = None,
    progress: bool = False,
    seed: int = 0,
    export_dir: str | Path | None = None,
    drift: bool = True,
    device: str | None = None,
    precision: str | None = None,
) -> dict:
    """Time ``archs`` end to end and compare with ``table.predict``; returns the metrics.

    Each network comes from ``module_factory(arch)`` (default ``build_standalone(space,
    arch)``; ``supernet.extract`` works too) and runs as ``backend`` (default: the
    table's) at the table's batch size and threads. The result has ``archs`` (per
    architecture ``predicted_ms``, ``measured_ms``, ``error_pct``, ``spread``, ``role``,
    ``in_fit_set``), ``mape`` (percent), ``within_10pct`` (fraction), ``kendall_tau`` and
    ``samples``, computed on the held-out architectures; ``fit_overlap`` counts those a
    fitted table was fitted to (an honest check samples others, see :func:`sample_archs`).
    ``drift`` (:func:`_drift`) times the build's fresh networks again with the others (left
    out of the metrics): ``drift["pct"]`` is how much slower (+) or faster the machine
    runs them now, and ``drift["changed"]`` is True beyond ``DRIFT_WARN_PCT``; None with
    ``drift=False`` (one exported module timed against its limit needs no such check), on
    a foreign device, or when the backend, batch size, threads or clock differ from the
    table's (then the times do not compare).

    The networks are timed in ``repeats`` interleaved rounds (:func:`time_interleaved`)
    after ``warmup`` calls each. With onnxruntime each network is exported; with
    ``export_dir`` the files are kept there by architecture and reused (the module
    factory must then give the same structure for the same architecture).

    With ``calibrate=k`` the first ``k`` architectures fit ``measured = a * predicted +
    b`` (least squares) and are left out of the metrics; ``correction`` reports the fit
    and its metrics on the rest, and ``correction["improves"]`` is True only when it
    lowers held-out MAPE by at least ``min_gain`` points (then use
    ``table.with_correction(a, b)``).
    """
    space = _chain_space(space)
    opts = _check_options(space, table, archs, backend=backend, batch_size=batch_size, threads=threads, warmup=warmup,
                          repeats=repeats, calibrate=calibrate, min_gain=min_gain, allow_foreign=allow_foreign,
                          clock=clock, drift=drift, device=device, precision=precision)
    from evonas.supernet import build_standalone

    if module_factory is None:

        def module_factory(arch: Arch) -> nn.Module:
            return build_standalone(space, arch)

    predicted = [table.predict(a) for a in opts.archs]  # fails early on an incomplete table
    from evonas.supernet import input_shape

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(opts.batch_size, *input_shape(space), generator=generator)  # (B, C, H, W)
    with _torch_threads(opts.threads), tempfile.TemporaryDirectory(prefix="evonas-latency-") as tmp:
        if export_dir is not None:
            Path(export_dir).mkdir(parents=True, exist_ok=True)
        runner = _Runner(opts.backend, opts.threads, Path(tmp), opts.clock, export_dir=export_dir, device=opts.device,
                         precision=opts.precision)
        timings, drift_report = _time_archs(
            space, table, runner, opts.archs, module_factory, x, keyed=export_dir is not None,
            comparable=opts.comparable, warmup=opts.warmup, repeats=opts.repeats, seed=seed, progress=progress,
            desc=f"validate {space.name} {opts.backend} b{opts.batch_size}",
        )
    return _validation_result(space, table, opts, predicted, timings, drift_report)


@dataclass(frozen=True)
class _Options:
    """The checked options of one :func:`validate_latency` (the table's settings where the caller gave none)."""

    archs: list[Arch]
    backend: str
    batch_size: int
    threads: int
    warmup: int
    repeats: int
    calibrate: int
    clock: str
    device: Any
    precision: str
    min_gain: float
    comparable: bool  # the drift check runs: same device and timing settings as the build


def _check_options(space: ChainSpace, table: LatencyTable, archs: Sequence[Arch | str], *, backend: str | None,
                   batch_size: int | None, threads: int | None, warmup: int, repeats: int, calibrate: int,
                   min_gain: float, allow_foreign: bool, clock: str | None, drift: bool, device: str | None,
                   precision: str | None) -> _Options:
    """Check :func:`validate_latency`'s options against ``table`` before timing anything."""
    if table.space != space.name:
        raise ConfigError(f"The 'table' parameter was built for space {table.space!r}, not {space.name!r}.", param="table")
    settings = table.settings
    backend = _choice_param("backend", settings["backend"] if backend is None else backend, BACKENDS)
    batch_size = _int_param("batch_size", settings["batch_size"] if batch_size is None else batch_size, 1)
    threads = _int_param("threads", settings["threads"] if threads is None else threads, 1)
    warmup = _int_param("warmup", warmup, 0)
    repeats = _int_param("repeats", repeats, 3)
    calibrate = _int_param("calibrate", calibrate, 0)
    clock = _check_clock(settings.get("clock", "wall") if clock is None else clock, threads)
    device = _check_timing_device(settings.get("device", "cpu") if device is None else device, backend, clock)
    precision = _check_timing_precision(settings.get("precision", "fp32") if precision is None else precision, device,
                                        backend)
    min_gain = _float_param("min_gain", min_gain, 0.0)
    archs = _check_archs(space, archs, calibrate)
    same_device = table.check_device(describe_device(threads, batch_size, backend, device, precision),
                                     allow_foreign=allow_foreign)
    comparable = drift and same_device and (backend, batch_size, threads, clock) == (
        settings.get("backend"), settings.get("batch_size"), settings.get("threads"), settings.get("clock", "wall"))
    return _Options(archs=archs, backend=backend, batch_size=batch_size, threads=threads, warmup=warmup,
                    repeats=repeats, calibrate=calibrate, clock=clock, device=device, precision=precision,
                    min_gain=min_gain, comparable=comparable)


def _validation_result(space: ChainSpace, table: LatencyTable, opts: _Options, predicted: list[float],
                       timings: list[dict], drift_report: dict | None) -> dict[str, Any]:
    """What :func:`validate_latency` returns: the metrics on the held-out networks, each network's row, the correction."""
    calibrate = opts.calibrate
    rows = _rows(space, opts.archs, predicted, timings, calibrate, set(networks_used(table.fit)))
    pred = np.array(predicted)
    meas = np.array([t["median_ms"] for t in timings])
    result: dict[str, Any] = {
        "space": space.name,
        "backend": opts.backend,
        "batch_size": opts.batch_size,
        "threads": opts.threads,
        "clock": opts.clock,
        **rank_metrics(pred[calibrate:], meas[calibrate:]),
        "noisy": int(sum(t["spread"] > table.settings.get("noise_threshold", math.inf) for t in timings)),
        "median_spread": float(np.median([t["spread"] for t in timings])),
        "method": table.method,
        # the measurement against itself: Kendall tau between the medians of the even and of the odd rounds. Below
        # the table's tau, timing noise, not the table, limits how well any prediction can be shown to rank.
        "retest_kendall_tau": retest_tau(timings[calibrate:]),
        "fit_overlap": int(sum(r["in_fit_set"] for r in rows[calibrate:])),
        "drift": drift_report,
        "archs": rows,
        "correction": None,
    }
    if calibrate:
        result["correction"] = _correction(pred, meas, calibrate, result["mape"], opts.min_gain)
    return result


def _check_archs(space: ChainSpace, archs: Sequence[Arch | str], calibrate: int) -> list[Arch]:
    """``archs`` as architectures of ``space``: at least one, and 2 held out beside ``calibrate`` calibration ones."""
    archs = [space.coerce(a) for a in archs]
    if not archs:
        raise ConfigError("The 'archs' parameter must hold at least one architecture; got none.", param="archs")
    if calibrate and len(archs) - calibrate < 2:
        raise ConfigError(
            f"The 'calibrate' parameter must leave at least 2 of the {len(archs)} architectures held out; got {calibrate}.",
            param="calibrate",
        )
    return archs


def _time_archs(space: ChainSpace, table: LatencyTable, runner: _Runner, archs: Sequence[Arch],
                module_factory: Callable[[Arch], nn.Module], x: torch.Tensor, *, keyed: bool, comparable: bool,
                warmup: int, repeats: int, seed: int, progress: bool, desc: str) -> tuple[list[dict], dict | None]:
    """Time ``archs`` (and, when ``comparable``, the build's fresh networks) in interleaved rounds.

    Returns the timings of ``archs`` and the drift report (:func:`_drift`; None unless
    ``comparable``). ``keyed``: each network's export is kept under its architecture.
    """
    from evonas.supernet import build_standalone

    fns = []
    # the build's fresh networks, built as the build built them, timed with the others, left out of the metrics
    probes = [space.parse(a) for a in _drift_networks(table)[0]] if comparable else []
    for arch in tqdm(archs, desc=desc, disable=not progress):
        key = _piece_key(space, f"net-{space.format(arch)}") if keyed else None
        fns.append(runner.callable(module_factory(arch), x, key))
    fns += [runner.callable(build_standalone(space, arch), x) for arch in probes]
    timings = time_interleaved(fns, warmup=warmup, rounds=repeats, clock=runner.clock, seed=seed)
    timings, probe_timings = timings[:len(archs)], timings[len(archs):]
    drift_report = _drift(space, table, runner, x, probe_timings) if comparable else None
    return timings, drift_report


def _rows(space: ChainSpace, archs: Sequence[Arch], predicted: Sequence[float], timings: Sequence[dict],
          calibrate: int, fitted_on: set[str]) -> list[dict]:
    """Per architecture: predicted and measured time, error, spread, role and whether the table was fitted to it."""
    rows = []
    for k, (arch, pred, t) in enumerate(zip(archs, predicted, timings)):
        rows.append({
            "arch": space.format(arch),
            "predicted_ms": pred,
            "measured_ms": t["median_ms"],
            "error_pct": 100 * (pred - t["median_ms"]) / t["median_ms"],
            "spread": t["spread"],
            "role": "calibration" if k < calibrate else "test",
            "in_fit_set": space.format(arch) in fitted_on,
        })
    return rows


def _correction(pred: np.ndarray, meas: np.ndarray, calibrate: int, mape: float, min_gain: float) -> dict:
    """``measured = a * predicted + b`` fitted on the first ``calibrate`` networks, and its metrics on the rest.

    ``improves`` is True when it lowers the held-out ``mape`` by at least ``min_gain`` points.
    """
    if calibrate >= 2 and np.ptp(pred[:calibrate]) > 0:
        a, b = (float(v) for v in np.polyfit(pred[:calibrate], meas[:calibrate], 1))
    else:  # one point (or no spread): a scale only
        a, b = float(meas[:calibrate].sum() / pred[:calibrate].sum()), 0.0
    corrected = rank_metrics(a * pred[calibrate:] + b, meas[calibrate:])
    return {
        "a": a,
        "b": b,
        "calibration_samples": calibrate,
        **corrected,
        "improves": bool(corrected["mape"] <= mape - min_gain),
    }
