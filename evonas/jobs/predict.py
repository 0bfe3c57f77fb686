"""The predict job: stand-alone accuracy with an interval, from the run's gap-correcting predictor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evonas.errors import ConfigError
from evonas.device import check_device_and_precision
from evonas.jobs.archs import read_archs
from evonas.run.run import Run


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """Which architectures to predict."""

    archs: tuple[str, ...] = ()  # architecture strings
    archs_file: str | Path | None = None  # file with one architecture string per line
    device: str = "cpu"  # where the supernet scores them (cpu, cuda, cuda:N, auto)
    precision: str | None = None  # None: the precision of the scores the predictor was fitted on (any other is refused)

    def __post_init__(self) -> None:
        object.__setattr__(self, "archs", tuple(self.archs))
        check_device_and_precision(self.device, self.precision or "fp32")
        if not self.archs and not self.archs_file:
            raise ConfigError("nothing to predict: give --arch STRING or --archs FILE")


@dataclass(frozen=True, kw_only=True)
class PredictResult:
    """One row per architecture (arch, canonical, predicted, lower, upper, coverage, supernet, flops, params, predictor)."""

    rows: list[dict[str, Any]]
    source_mismatch: bool  # the supernet scores come from another source than those the predictor was fitted on


def predict(run: Run | str | Path, options: PredictOptions) -> PredictResult:
    """Score each architecture with the supernet (cached in the store) and correct it with the fitted predictor."""
    from evonas.gap.corrector import load_gap_model, supernet_options
    from evonas.scorers.cached import score_cached
    from evonas.scorers.registry import make_scorer

    run = Run.open(run)
    space = run.space
    archs = read_archs(space, options.archs, options.archs_file)
    if not archs:
        raise ConfigError("nothing to predict: give --arch STRING or --archs FILE")
    gap = load_gap_model(run)
    fitted = supernet_options(gap)
    if options.precision is not None and options.precision != fitted.get("precision", "fp32"):
        raise ConfigError(f"The 'precision' parameter ({options.precision}) differs from the precision of the scores the "
                          f"predictor was fitted on ({fitted.get('precision', 'fp32')}); drop it, or fit the predictor "
                          "again with it", param="precision")
    supernet = make_scorer("supernet", run_dir=run, device=options.device, **fitted)  # scored as the predictor's pool was
    with run.store() as store:
        sup = [score_cached(supernet, store, space.canonical(a)).record.metric("accuracy") for a in archs]
    pred = gap.predict(archs, sup)
    rows = []
    for i, arch in enumerate(archs):
        cost = space.cost(arch)
        row = {
            "arch": str(arch),
            "canonical": str(space.canonical(arch)),
            "predicted": round(float(pred["predicted"][i]), 3),
            "lower": round(float(pred["lower"][i]), 3),
            "upper": round(float(pred["upper"][i]), 3),
            "coverage": gap.coverage,
            "supernet": round(sup[i], 3),
            "flops": cost.flops,
            "params": cost.params,
            "predictor": gap.best,
        }
        if "std" in pred:
            row["std"] = round(float(pred["std"][i]), 3)
        rows.append(row)
    return PredictResult(rows=rows, source_mismatch=supernet.source_key != gap.supernet_source)
