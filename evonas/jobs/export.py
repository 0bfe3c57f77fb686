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

    def __post_init__(self) -> None:
        from evonas.export.module import FORMATS

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
        if self.scorer not in RANKERS:
            raise ConfigError(f"The 'scorer' parameter must be one of {', '.join(RANKERS)}; got {self.scorer!r}", param="scorer")
        if self.out is not None:  # the folder, or its nearest existing parent, must be a directory
            here = Path(self.out)
            existing = next((q for q in (here, *here.parents) if q.exists()), None)
            if existing is not None and not existing.is_dir():
                raise ConfigError(f"The 'out' parameter must be a folder; got {str(self.out)!r}, and {str(existing)!r} "
                                  "is a file", param="out")


@dataclass(frozen=True, kw_only=True)
class Exported:
    """One exported architecture."""

    arch: str
    supernet_accuracy: float
    folder: Path


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """The exported folders; with top_k, the report too."""

    exported: list[Exported]
    report: Path | None = None  # report.md of a top-k export


def export(run: Run | str | Path, options: ExportOptions) -> ExportResult:
    """Export ``options.archs`` (or the top ``options.top_k``) of ``run``'s supernet."""
    from tqdm.auto import tqdm

    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.export.module import METRICS, export_arch
    from evonas.export.topk import export_top_k, gap_metrics, load_run_gap_model

    run = Run.open(run)
    latency = _device_latency(run) if options.latency else None
    if options.top_k is not None:
        metric = "accuracy" if options.scorer == "supernet" else "predicted"
        report = export_top_k(run, options.top_k, scorer=options.scorer, metric=metric, formats=options.formats,
                              latency=latency)
        exported = []
        for folder in sorted(p for p in report.parent.iterdir() if (p / METRICS).is_file()):
            metrics = json.loads((folder / METRICS).read_text())
            exported.append(Exported(arch=metrics["arch"], supernet_accuracy=metrics["supernet_accuracy"], folder=folder))
        return ExportResult(exported=exported, report=report)
    space = run.space
    archs = [space.parse(a) for a in options.archs]  # every string checked before the supernet loads
    ev = SupernetEvaluator(run)
    gap = load_run_gap_model(run)
    out = Path(options.out) if options.out else None
    done = []
    for arch in tqdm(archs, desc="export", unit="arch", file=sys.stderr, disable=not progress_enabled(options.quiet) or len(archs) < 2):
        metrics = ev.evaluate(arch)
        target = out / str(arch) if out and len(archs) > 1 else (out or run.export_dir(arch))
        extra = {"supernet_accuracy": round(metrics["accuracy"], 4),
                 **gap_metrics(gap, space, str(space.canonical(arch)), metrics["accuracy"])}
        export_arch(run, arch, target, extra, evaluator=ev, formats=options.formats, latency=latency)
        done.append(Exported(arch=str(arch), supernet_accuracy=metrics["accuracy"], folder=target))
    return ExportResult(exported=done)


def _device_latency(run: Run):
    """The run's default latency table when it was measured on this device, else None (nothing to report)."""
    from evonas.errors import EvonasError
    from evonas.jobs.latency import device_table

    if not run.latency_dir.is_dir():
        return None
    try:
        return device_table(run)
    except (EvonasError, ValueError):  # none for this setting, or measured on another device: report no latency
        return None
