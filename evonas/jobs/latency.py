"""The latency jobs: time every (layer, option) on this device, then check the table end to end.

``build`` measures the run's space layer by layer, by default fits a scale of the whole
table and the entries themselves to a few hundred random whole networks timed end to
end (each kept only when it predicts better than the simpler table), and stores the table in the run directory (one file per
backend, batch size and thread count). ``validate`` times sampled sub-networks, none
of those the table was fitted to, exported from the supernet end to end and compares
them with the table's prediction; when a linear correction fitted on the first few
measurements predicts the rest measurably better, the table keeps that correction,
so every later constraint uses it. ``device_table`` is what searches and exports
read: the table for this device, refused when it was measured elsewhere.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evonas.errors import ConfigError, ResourceError, RunDirError
from evonas.jobs.threads import check_threads
from evonas.progress import progress_enabled
from evonas.run.run import Run, RunLayout

BACKENDS = ("eager", "onnxruntime")
CLOCKS = ("wall", "cpu")
METHODS = ("fitted", "isolated")
# the library's defaults, repeated so that the CLI's help needs no torch (a test checks they agree)
FIT_SECONDS = 20.0
MAX_FIT_ROUNDS = 50


@dataclass(frozen=True, kw_only=True)
class LatencySetting:
    """Which table: the backend and the conditions it was timed under."""

    backend: str = "eager"  # eager PyTorch, or ONNX Runtime for users who deploy that way
    batch_size: int = 1  # images per forward pass
    threads: int = 1  # intra-op threads, pinned while timing
    device: str = "cpu"  # cpu, or a GPU (cuda, cuda:N; eager backend), where the networks run while timed
    precision: str = "fp32"  # fp32, or bf16 / fp16 under autocast (eager backend; fp16 on a GPU)

    def __post_init__(self) -> None:
        import re

        if not isinstance(self.device, str) or not re.match(r"^(cpu|cuda(:\d+)?)$", self.device):
            raise ConfigError(f"The 'device' parameter must be cpu, cuda or cuda:N; got {self.device!r}", param="device")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"The 'precision' parameter must be one of fp32, bf16, fp16; got {self.precision!r}",
                              param="precision")
        if self.backend not in BACKENDS:
            raise ConfigError(f"The 'backend' parameter must be one of {', '.join(BACKENDS)}; got {self.backend!r}",
                              param="backend")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"The 'batch_size' parameter must be an integer >= 1; got {self.batch_size!r}",
                              param="batch_size")
        check_threads(self.threads)


@dataclass(frozen=True, kw_only=True)
class LatencyBuildOptions:
    """How to build a latency table."""

    setting: LatencySetting = LatencySetting()
    warmup: int = 10  # untimed calls before timing each module
    repeats: int = 50  # timed calls per module (the median is kept)
    clock: str = "wall"  # wall time, or this process's CPU time (1 thread; robust on a busy machine)
    method: str = "fitted"  # fit a scale and the entries to whole networks (kept when better), or "isolated" only
    fit_samples: int | None = None  # networks timed end to end for the fit (None: 3 per entry, 60 to 300)
    fit_rounds: int = 7  # the least interleaved timing rounds per fitting network (the median is kept)
    fit_seconds: float | None = None  # more rounds while they fit in this many seconds (None: FIT_SECONDS; 0: no more)
    rebuild: bool = False  # build anew even when a table for this setting exists
    allow_foreign: bool = False  # accept a stored table measured on another device
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in ("warmup", "repeats"):
            value, low = getattr(self, name), 0 if name == "warmup" else 3
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"The {name!r} parameter must be an integer >= {low}; got {value!r}", param=name)
        if self.clock not in CLOCKS:
            raise ConfigError(f"The 'clock' parameter must be one of {', '.join(CLOCKS)}; got {self.clock!r}", param="clock")
        if self.method not in METHODS:
            raise ConfigError(f"The 'method' parameter must be one of {', '.join(METHODS)}; got {self.method!r}",
                              param="method")
        if self.fit_samples is not None and (not isinstance(self.fit_samples, int) or self.fit_samples < 10):
            raise ConfigError(f"The 'fit_samples' parameter must be None or an integer >= 10; got {self.fit_samples!r}",
                              param="fit_samples")
        if not isinstance(self.fit_rounds, int) or self.fit_rounds < 1:
            raise ConfigError(f"The 'fit_rounds' parameter must be an integer >= 1; got {self.fit_rounds!r}",
                              param="fit_rounds")
        if self.fit_seconds is not None and (isinstance(self.fit_seconds, bool) or not isinstance(self.fit_seconds, (int, float))
                                             or not 0 <= self.fit_seconds < math.inf):
            raise ConfigError(f"The 'fit_seconds' parameter must be a finite number of seconds >= 0; got {self.fit_seconds!r}",
                              param="fit_seconds")
        if self.clock == "cpu" and self.setting.threads != 1:
            raise ConfigError(f"The 'clock' parameter 'cpu' needs 1 thread; got threads={self.setting.threads}",
                              param="clock")


@dataclass(frozen=True, kw_only=True)
class LatencyBuildResult:
    table_file: Path
    built: bool  # False when an existing table was reused
    entries: int
    min_latency_ms: float
    build_seconds: float
    noisy_entries: int
    warnings: tuple[str, ...]
    device: dict
    method: str = "isolated"  # how the entries predict: "fitted" or "scaled" to whole networks, or "isolated"
    fit_verdict: str | None = None  # why the fit was kept or not, with both errors


def physical_memory() -> int | None:
    """Bytes of memory of this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_batch_memory(space, batch_size: int) -> None:
    """A ResourceError when one input batch alone (float32 images) would not fit in this machine's memory."""
    from math import prod

    from evonas.supernet import input_shape

    total = physical_memory()
    if total is None:
        return
    need = batch_size * prod(input_shape(space)) * 4  # (B, C, H, W) float32
    if need > total:
        raise ResourceError(f"The 'batch_size' parameter ({batch_size}) needs {need / 2**30:,.1f} GiB for one input "
                            f"batch, more than this machine's {total / 2**30:,.1f} GiB of memory; lower it (timings "
                            "are usually taken at batch size 1)")


def _space(run: Run):
    from search_spaces import ChainSpace

    from evonas.supernet.model_space import ModelSpace

    if not isinstance(run.space, (ChainSpace, ModelSpace)):
        raise ConfigError(f"latency tables exist for the chain presets (macro-*, mobilenet-*) and your own model; the "
                          f"run's space {run.space.name!r} is scored from tables: limit FLOPs or parameters instead "
                          "(--max-flops, --max-params)")
    return run.space


def build(run: Run | RunLayout | str | Path, options: LatencyBuildOptions) -> LatencyBuildResult:
    """Build (or reuse) the run's latency table for ``options.setting`` on this device."""
    from evonas.latency.runs import load_or_build_table

    run = Run.open(run)
    space = _space(run)
    s = options.setting
    path = run.latency_table_file(space.name, s.backend, s.batch_size, s.threads, s.device, s.precision)
    existed = path.is_file() and not options.rebuild
    if not existed:
        check_batch_memory(space, s.batch_size)
    try:
        table = load_or_build_table(run, space, backend=s.backend, batch_size=s.batch_size, threads=s.threads,
                                    device=s.device, precision=s.precision, rebuild=options.rebuild, allow_foreign=options.allow_foreign,
                                    warmup=options.warmup, repeats=options.repeats, clock=options.clock,
                                    method=options.method, fit_samples=options.fit_samples, fit_rounds=options.fit_rounds,
                                    fit_seconds=options.fit_seconds, progress=progress_enabled(options.quiet))
    except (RuntimeError, MemoryError) as exc:
        from evonas.training.loop import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        raise ResourceError(f"out of memory while timing networks at the 'batch_size' parameter ({s.batch_size}); lower "
                            "it") from None
    return LatencyBuildResult(table_file=path, built=not existed, entries=len(table.entries),
                              min_latency_ms=table.min_latency(), build_seconds=table.build_seconds,
                              noisy_entries=len(table.noisy_entries), warnings=tuple(table.warnings), device=table.device,
                              method=table.method, fit_verdict=(table.fit or {}).get("verdict"))


def device_table(run: Run, setting: LatencySetting = LatencySetting(), *, allow_foreign: bool = False):
    """The run's table for ``setting``, checked against this device; a clear error when there is none."""
    from evonas.latency.device import describe_device
    from evonas.latency.table import LatencyTable

    space = _space(run)
    path = run.latency_table_file(space.name, setting.backend, setting.batch_size, setting.threads, setting.device,
                                  setting.precision)
    if not path.is_file():
        have = sorted(p.name for p in run.latency_dir.glob("*.json") if not p.name.endswith(".validation.json")) \
            if run.latency_dir.is_dir() else []
        raise RunDirError(
            f"{run.path} has no latency table for backend {setting.backend}, batch {setting.batch_size}, "
            f"{setting.threads} thread(s); build it with `evonas latency build --run {run.path} --backend "
            f"{setting.backend} --batch-size {setting.batch_size} --threads {setting.threads}"
            f"{'' if setting.device == 'cpu' else ' --device ' + setting.device}"
            f"{'' if setting.precision == 'fp32' else ' --precision ' + setting.precision}`"
            + (f" (tables there: {', '.join(have)})" if have else "")
        )
    table = LatencyTable.load(path)
    table.check_device(describe_device(setting.threads, setting.batch_size, setting.backend, setting.device,
                                       setting.precision),
                       allow_foreign=allow_foreign)
    return table


@dataclass(frozen=True, kw_only=True)
class LatencyValidateOptions:
    """How to check a table against end-to-end measurements."""

    setting: LatencySetting = LatencySetting()
    samples: int = 30  # sampled architectures timed end to end
    seed: int = 0  # which architectures
    calibrate: int = 5  # the first N measurements fit a linear correction, judged on the rest (0: none)
    warmup: int = 10
    repeats: int = 50
    clock: str = "wall"
    allow_foreign: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.samples, int) or self.samples < 3:
            raise ConfigError(f"The 'samples' parameter must be an integer >= 3; got {self.samples!r}", param="samples")
        if not isinstance(self.calibrate, int) or not 0 <= self.calibrate <= self.samples - 3:
            raise ConfigError(f"The 'calibrate' parameter must be an integer in [0, samples - 3] = [0, {self.samples - 3}]; "
                              f"got {self.calibrate!r}", param="calibrate")
        LatencyBuildOptions(setting=self.setting, warmup=self.warmup, repeats=self.repeats, clock=self.clock)


@dataclass(frozen=True, kw_only=True)
class LatencyValidateResult:
    report: dict[str, Any]  # mape (percent), within_10pct, kendall_tau, samples, per-arch rows, correction
    report_file: Path
    correction_kept: bool  # the table now predicts with the fitted correction


def validate(run: Run | RunLayout | str | Path, options: LatencyValidateOptions) -> LatencyValidateResult:
    """Time sampled sub-networks (inherited weights, exported from the supernet) against the table."""
    import json

    from evonas.latency.networks import sample_archs
    from evonas.latency.validate import networks_used, validate_latency

    run = Run.open(run)
    s = options.setting
    table = device_table(run, s, allow_foreign=options.allow_foreign)
    space = run.space
    base = replace(table, correction=None)  # judge the raw table, then decide on a correction afresh
    # fresh networks: none of those the table was fitted to
    archs = sample_archs(space, options.samples, random.Random(options.seed), exclude=networks_used(table.fit))
    supernet = run.load_supernet().eval()
    report = validate_latency(space, base, archs, backend=s.backend, batch_size=s.batch_size, threads=s.threads,
                              warmup=options.warmup, repeats=options.repeats, calibrate=options.calibrate,
                              module_factory=lambda arch: supernet.extract(arch).eval(), clock=options.clock,
                              allow_foreign=options.allow_foreign, progress=progress_enabled(options.quiet),
                              seed=options.seed, device=s.device, precision=s.precision)
    correction = report.get("correction") or {}
    keep = bool(correction.get("improves")) and correction["a"] > 0
    if keep:  # a correction that predicts a non-positive latency for the fastest network is an artefact of noise
        keep = base.with_correction(correction["a"], correction["b"]).min_latency() > 0
    path = run.latency_table_file(space.name, s.backend, s.batch_size, s.threads, s.device, s.precision)
    if keep:
        base.with_correction(correction["a"], correction["b"]).save(path)
    elif table.correction is not None:
        base.save(path)  # the old correction no longer earns its keep
    report["correction_kept"] = keep
    out = run.latency_validation_file(space.name, s.backend, s.batch_size, s.threads, s.device, s.precision)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return LatencyValidateResult(report=report, report_file=out, correction_kept=keep)
