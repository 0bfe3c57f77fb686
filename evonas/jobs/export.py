"""The export job: sub-networks as standalone PyTorch modules with inherited weights.

Either the given architectures (one folder each, ``RUN/exports/ARCH`` by default) or
the ``top_k`` best stored architectures with a report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from evonas.errors import ConfigError
from evonas.names import check_inside
from evonas.progress import progress_enabled
from evonas.run.run import Run

RANKERS = ("supernet", "predictor")


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """What to export, and where."""

    archs: tuple[str, ...] = ()  # architectures to export
    top_k: int | None = None  # instead: the K best architectures found by searches, with a report
    scorer: str = "supernet"  # with top_k: rank by supernet accuracy or by the gap-corrected prediction
    out: str | Path | None = None  # output folder (default: the run's export folder of each architecture)
    quiet: bool = False  # no progress bar
    formats: tuple[str, ...] = ("torch",)  # torch (model.pt2, always) and/or onnx (model.onnx)
    latency: bool = True  # add predicted and measured latency when the run has a latency table for this device
    latency_backend: str = "eager"  # the run's latency table that reports (and limits) latency: this backend,
    latency_batch_size: int = 1  # ... batch size
    latency_threads: int = 1  # ... and thread count
    max_flops: float | None = None  # with top_k: only architectures within these limits
    max_params: float | None = None
    max_latency_ms: float | None = None  # predicted by the run's latency table; each export is measured against it
    device: str = "cpu"  # where BN is recalibrated and the exports are checked (the saved modules are on the CPU)
    precision: str = "fp32"  # precision of the recalibration and the accuracy in metrics.json (weights stay fp32)

    def __post_init__(self) -> None:
        from evonas.device import check_device_and_precision
        from evonas.export.module import FORMATS

        check_device_and_precision(self.device, self.precision)
        object.__setattr__(self, "archs", tuple(self.archs))
        object.__setattr__(self, "formats", tuple(dict.fromkeys(("torch", *self.formats))))
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise ConfigError(f"The 'formats' parameter must name formats among {', '.join(FORMATS)}; got {bad}",
                              param="formats")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"The 'top_k' parameter must be >= 1; got {self.top_k}", param="top_k")
        if self.top_k is None and not self.archs:
            raise ConfigError("give --arch STRING (repeatable) or --top-k K")
        limits = self.constraints()  # numbers > 0, or a one-line error naming the option
        if limits and self.top_k is None:
            raise ConfigError(f"limits ({', '.join(f'{k} {v:g}' for k, v in limits.limits.items())}) choose among "
                              "stored architectures: give them with --top-k K; an --arch is exported as given",
                              param="top_k")
        self.latency_setting()
        if self.scorer not in RANKERS:
            raise ConfigError(f"The 'scorer' parameter must be one of {', '.join(RANKERS)}; got {self.scorer!r}", param="scorer")
        if self.out is not None:  # the folder, or its nearest existing parent, must be a directory
            here = Path(self.out)
            existing = next((q for q in (here, *here.parents) if q.exists()), None)
            if existing is not None and not existing.is_dir():
                raise ConfigError(f"The 'out' parameter must be a folder; got {str(self.out)!r}, and {str(existing)!r} "
                                  "is a file", param="out")


    def constraints(self):
        from evonas.search.constraints import Constraints

        return Constraints(max_flops=self.max_flops, max_params=self.max_params, max_latency_ms=self.max_latency_ms)

    def latency_setting(self):
        from evonas.jobs.latency import LatencySetting

        return LatencySetting(backend=self.latency_backend, batch_size=self.latency_batch_size,
                              threads=self.latency_threads)


@dataclass(frozen=True, kw_only=True)
class Exported:
    """One exported architecture."""

    arch: str
    supernet_accuracy: float
    folder: Path
    latency: dict | None = None  # predicted and measured latency (and the limit) when a table reported them


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """The exported folders; with top_k, the report too."""

    exported: list[Exported]
    report: Path | None = None  # report.md of a top-k export

    @property
    def over_limit(self) -> list[str]:
        """One line per exported module measured above the latency limit (none without a limit)."""
        out = []
        for item in self.exported:
            lat = item.latency or {}
            if lat.get("within_limit") is False:
                out.append(f"{item.arch} measured {lat['measured_ms']:.3f} ms, above the limit {lat['limit_ms']:g} ms "
                           f"(predicted {lat['predicted_ms']:.3f} ms, spread {lat.get('spread', float('nan')):.2f}); "
                           "time it again on an idle machine before deploying it")
        return out


def export(run: Run | str | Path, options: ExportOptions) -> ExportResult:
    """Export ``options.archs`` (or the top ``options.top_k``) of ``run``'s supernet."""
    from tqdm.auto import tqdm

    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.export.module import METRICS, export_arch
    from evonas.export.topk import export_top_k, gap_metrics, load_run_gap_model, tuned_inputs

    run = Run.open(run)
    constraints = options.constraints()
    if options.max_latency_ms is not None:  # the limit needs this device's table: a clear error when there is none
        from evonas.jobs.latency import device_table

        latency = device_table(run, options.latency_setting())
    else:
        latency = _device_latency(run, options.latency_setting()) if options.latency else None
    if options.top_k is not None:
        metric = "accuracy" if options.scorer == "supernet" else "predicted"
        report = export_top_k(run, options.top_k, scorer=options.scorer, metric=metric, formats=options.formats,
                              latency=latency, constraints=constraints or None, device=options.device,
                              precision=options.precision)
        exported = []
        for folder in sorted(p for p in report.parent.iterdir() if (p / METRICS).is_file()):
            metrics = json.loads((folder / METRICS).read_text())
            exported.append(Exported(arch=metrics["arch"], supernet_accuracy=metrics["supernet_accuracy"], folder=folder,
                                     latency=metrics.get("latency")))
        return ExportResult(exported=exported, report=report)
    space = run.space
    archs = [space.parse(a) for a in options.archs]  # every string checked before the supernet loads
    out = Path(options.out) if options.out else None
    targets = [check_inside(out, out / str(a)) if out and len(archs) > 1 else (out or check_inside(run.path, run.export_dir(a)))
               for a in archs]  # an architecture string is a folder name: inside the run (or --out), checked first
    ev = SupernetEvaluator(run, device=options.device, precision=options.precision)
    gap = load_run_gap_model(run)
    tuned = tuned_inputs(run, gap, [str(space.canonical(a)) for a in archs], options.device)  # one scorer for all, when fine-tuned
    done = []
    for arch, target in tqdm(list(zip(archs, targets)), desc="export", unit="arch", file=sys.stderr,
                             disable=not progress_enabled(options.quiet) or len(archs) < 2):
        metrics = ev.evaluate(arch)
        key = str(space.canonical(arch))
        extra = {"supernet_accuracy": round(metrics["accuracy"], 4),
                 **gap_metrics(gap, space, key, tuned.get(key, metrics["accuracy"]))}
        export_arch(run, arch, target, extra, evaluator=ev, formats=options.formats, latency=latency)
        done.append(Exported(arch=str(arch), supernet_accuracy=metrics["accuracy"], folder=target))
    return ExportResult(exported=done)


def _device_latency(run: Run, setting=None):
    """The run's latency table for ``setting`` (default: eager, batch 1, 1 thread) when it was measured on this
    device, else None (nothing to report)."""
    from evonas.errors import EvonasError
    from evonas.jobs.latency import device_table

    if not run.latency_dir.is_dir():
        return None
    try:
        return device_table(run) if setting is None else device_table(run, setting)
    except (EvonasError, ValueError):  # none for this setting, or measured on another device: report no latency
        return None
