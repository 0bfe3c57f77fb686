"""Top-k export and the search report: standalone modules, metrics, plots and a Markdown summary.

``export_top_k`` ranks the run's stored records, exports the best ``k`` with
inherited weights (through :func:`evonas.export.module.export_arch`) and writes
``report.md`` in the run's top-k folder (``RunLayout.top_k_dir``) with two plots beside it: best-so-far per
evaluation for every search run in the store, and accuracy against FLOPs with the
Pareto front highlighted.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from evonas.search.constraints import Constraints
from evonas.errors import RunDirError
from evonas.search.pareto import pareto_front
from evonas.run.records import Record, SearchRun, Step
from evonas.run.run import RunLayout


def arch_dirname(arch: str) -> str:
    """A file-system-safe folder name for an architecture string."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", arch).strip("_") or "arch"


def rank_records(records: Sequence[Record], metric: str, *, constraints: Constraints | None = None) -> list[Record]:
    """Records with ``metric``, best first (ties: fewer FLOPs, then older), optionally within constraints."""
    keep = [r for r in records if not math.isnan(r.metric(metric))]
    if constraints:
        keep = [r for r in keep if constraints.satisfied(r.metrics)]
    return sorted(keep, key=lambda r: (-r.metric(metric), r.metric("flops"), r.id or 0))


def within_limits(records: Sequence[Record], constraints: Constraints | None, latency=None) -> list[Record]:
    """The records whose costs satisfy ``constraints``; all of them without constraints.

    A latency limit is checked against ``latency`` (the device table the export
    measures with), not against the latency a record was stored with: records of
    searches without a latency limit hold none, and a record scored with another
    table must not pass on that table's word.
    """
    if not constraints:
        return list(records)
    if "latency_ms" in constraints.limits:
        if latency is None:
            from evonas.errors import ConfigError

            raise ConfigError("a latency limit needs the run's latency table for this device; build it with "
                              "`evonas latency build`", param="max_latency_ms")
        return [r for r in records if constraints.satisfied({**r.metrics, "latency_ms": latency.predict(r.arch)})]
    return [r for r in records if constraints.satisfied(r.metrics)]


def best_so_far(steps: Sequence[Step]) -> list[float]:
    """The best value after each scored step of a search run."""
    out, best = [], -math.inf
    for s in steps:
        if s.feasible and s.value is not None:
            best = max(best, s.value)
            out.append(best)
    return out


def _load_evaluator(run: RunLayout, device: str = "cpu", precision: str = "fp32"):
    from evonas.evaluation.scoring import SupernetEvaluator

    return SupernetEvaluator.from_run(run, device=device, precision=precision)


def load_run_gap_model(run: RunLayout | str | Path):
    """The run's fitted gap model, or None when fit-predictor has not been run."""
    from evonas.gap.corrector import load_gap_model

    layout = RunLayout.of(run)
    return load_gap_model(layout) if layout.predictor_model.is_file() else None


def gap_metrics(gap, space, arch: str, supernet_accuracy: float) -> dict[str, Any]:
    """Predicted stand-alone accuracy and its interval (empty when ``gap`` is None).

    ``supernet_accuracy`` is the score the predictor reads: the plain one, or
    when that is a fine-tuned score (:func:`tuned_inputs`), ``predictor_input`` says so.
    """
    if gap is None:
        return {}
    from evonas.gap.corrector import supernet_options

    pred = gap.predict([space.parse(arch)], [supernet_accuracy])
    out = {
        "predicted_accuracy": round(float(pred["predicted"][0]), 4),
        "predicted_interval": [round(float(pred["lower"][0]), 4), round(float(pred["upper"][0]), 4)],
        "interval_coverage": gap.coverage,
        "predictor": gap.best,
    }
    if supernet_options(gap):
        out["predictor_input"] = {"supernet_accuracy": round(float(supernet_accuracy), 4), **supernet_options(gap)}
    return out


def tuned_inputs(run: RunLayout | str | Path, gap, archs: Sequence[str], device: str = "cpu") -> dict[str, float]:
    """Canonical arch -> the fine-tuned supernet score ``gap`` reads, when it was fitted on such scores.

    Empty when the predictor reads plain BN-recalibrated scores (or there is none):
    the caller then passes the plain score. Otherwise each architecture is scored the
    way fit-predictor scored its pool (``--finetune-steps``), cached in the store.
    """
    from evonas.gap.corrector import supernet_options

    options = supernet_options(gap) if gap is not None else {}
    if not options or not archs:
        return {}
    from evonas.scorers.cached import score_cached
    from evonas.scorers.registry import make_scorer

    layout = RunLayout.of(run)
    scorer = make_scorer("supernet", run_dir=layout.path, device=device, **options)
    with layout.store() as store:
        return {a: score_cached(scorer, store, scorer.space.parse(a)).record.metric("accuracy") for a in archs}


def plot_best_so_far(runs: Sequence[tuple[SearchRun, list[Step]]], path: Path, ylabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run, steps in runs:
        curve = best_so_far(steps)
        if curve:
            ax.plot(range(1, len(curve) + 1), curve, label=run.name, lw=1.5)
    ax.set_xlabel("evaluations (distinct architectures scored)")
    ax.set_ylabel(f"best {ylabel} so far")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pareto(records: Sequence[Record], metric: str, path: Path, highlight: Sequence[Record] = ()) -> tuple[Path, list[Record]]:
    """Scatter of ``metric`` against FLOPs with the Pareto front; returns (path, front records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r.metric(metric), r.metric("flops")) for r in records]
    front = [records[i] for i in pareto_front(pts, (True, False))]
    front.sort(key=lambda r: r.metric("flops"))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p[1] for p in pts], [p[0] for p in pts], s=10, alpha=0.4, label="scored")
    ax.plot([r.metric("flops") for r in front], [r.metric(metric) for r in front], "o-", color="C3", ms=4, label="Pareto front")
    if highlight:
        ax.scatter([r.metric("flops") for r in highlight], [r.metric(metric) for r in highlight], marker="*", s=80,
                   color="C2", label="exported", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs (multiply-accumulates)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path, front


def current_records(layout: RunLayout, scorer: str, records: Sequence[Record]) -> list[Record]:
    """The records that belong to the run's current weights, one per architecture (the newest).

    A supernet score belongs to the weights whose content digest it carries, whatever
    path or settings it was scored under, except fine-tuned scores (``finetune_steps``
    in the source: those of ``fit-predictor --finetune-steps`` and of what ``predict``
    scored for such a predictor), which are higher by construction and would not rank
    fairly among the searches' plain scores; a predictor score to the fitted model
    file's digest. Without a current digest to compare (a table scorer), every record counts.
    """
    from evonas.run.digest import file_sha256

    if scorer == "supernet" and layout.weights.is_file():
        key, digest = "sha256", file_sha256(layout.weights)
    elif scorer == "predictor" and layout.predictor_model.is_file():
        key, digest = "predictor_sha256", file_sha256(layout.predictor_model)
    else:
        key, digest = None, None
    newest: dict[str, Record] = {}
    for rec in records:
        if key is not None and rec.source.get(key) != digest:
            continue
        if scorer == "supernet" and rec.source.get("finetune_steps"):
            continue
        old = newest.get(rec.arch)
        if old is None or (rec.created, rec.id or 0) > (old.created, old.id or 0):
            newest[rec.arch] = rec
    return list(newest.values())


def export_top_k(run: RunLayout | str | Path, k: int, *, scorer: str = "supernet", metric: str = "accuracy",
                 constraints: Constraints | None = None, formats: tuple[str, ...] = ("torch",), latency=None,
                 device: str = "cpu", precision: str = "fp32") -> Path:
    """Export the ``k`` best stored architectures of ``run`` and write the report; returns report.md's path.

    Records are those of ``scorer`` from its newest source (the current supernet
    checkpoint), ranked by ``metric``; ``constraints`` keeps only architectures within limits.
    """
    from evonas.export.module import export_arch

    layout = RunLayout.of(run)
    run_dir = layout.path
    if k < 1:
        from evonas.errors import ConfigError

        raise ConfigError(f"The 'k' parameter of export_top_k must be an integer >= 1; got {k!r}.", param="k")
    if not layout.store_file.is_file():
        raise RunDirError(f"{run_dir} has no {layout.store_file.name}; run `evonas search --run {run_dir}` first")
    with layout.store() as store:
        records = store.records(scorer=scorer)
        if not records:
            raise RunDirError(f"the store of {run_dir} has no {scorer!r} scores; run `evonas search --run {run_dir}` first")
        records = current_records(layout, scorer, records)
        if not records:
            raise RunDirError(f"the store of {run_dir} has no {scorer!r} score of a search with the current weights (those "
                              f"stored come from an older supernet or predictor, or are fit-predictor's fine-tuned pool "
                              f"scores); score with the current ones: `evonas search --run {run_dir}`")
        ranked = rank_records(within_limits(records, constraints, latency), metric)
        runs = list(store.iter_steps())
        states = {r.name: store.search_state(r) for r, _ in runs}
    if not ranked:
        raise RunDirError(f"no stored {scorer!r} score of {run_dir} has {metric!r} within the limits {constraints}")
    top = ranked[:k]
    limit_ms = constraints.limits.get("latency_ms") if constraints else None
    out = layout.top_k_dir(k, scorer)
    out.mkdir(parents=True, exist_ok=True)
    _drop_earlier_exports(out)  # an earlier top-k (other limits, older weights) must not mix with this one
    evaluator = _load_evaluator(run, device, precision)
    gap = load_run_gap_model(layout)
    exported: list[tuple[Record, Path]] = []
    tuned = tuned_inputs(layout, gap, [rec.arch for rec in top], device)
    for rank, rec in enumerate(top, start=1):
        folder = out / f"rank{rank:02d}_{arch_dirname(rec.arch)}"
        metrics: dict[str, Any] = {
            "rank": rank,
            f"{scorer}_{metric}": rec.metric(metric),
            "flops": int(rec.metric("flops")),
            "params": int(rec.metric("params")),
            "record": rec.to_dict(),
        }
        supernet_acc = rec.metric("accuracy") if scorer == "supernet" else evaluator.evaluate(evaluator.space.parse(rec.arch))["accuracy"]
        metrics["supernet_accuracy"] = supernet_acc
        metrics.update(gap_metrics(gap, evaluator.space, rec.arch, tuned.get(rec.arch, supernet_acc)))
        exported.append((rec, Path(export_arch(run, rec.arch, folder, metrics, evaluator=evaluator, formats=formats,
                                                latency=latency, latency_limit_ms=limit_ms))))
    by_scorer = [(r, s) for r, s in runs if dict(r.config.get("scorer", {})).get("scorer", scorer) == scorer]
    curve_png = plot_best_so_far(by_scorer, out / "best_so_far.png", metric)
    pareto_png, front = plot_pareto(records, metric, out / "pareto.png", highlight=top)
    report = out / "report.md"
    report.write_text(_markdown(run_dir, k, scorer, metric, exported, by_scorer, front, len(records), constraints,
                                curve_png, pareto_png, states))
    return report


def _drop_earlier_exports(out: Path) -> None:
    """Remove the rank folders an earlier top-k export wrote into ``out`` (only folders holding its metrics.json)."""
    import shutil

    from evonas.export.module import METRICS

    for folder in out.glob("rank*_*"):
        if folder.is_dir() and re.fullmatch(r"rank\d+_.+", folder.name) and (folder / METRICS).is_file():
            shutil.rmtree(folder)


def _exported_latency(folder: Path) -> dict | None:
    import json

    from evonas.export.module import METRICS

    try:
        return json.loads((folder / METRICS).read_text()).get("latency")
    except (OSError, ValueError):
        return None


def search_state_text(run: SearchRun, state: str | None, run_dir: Path) -> str:
    """How a search run ended, with the command that continues an interrupted one."""
    state = state or ("finished" if run.finished else "interrupted")
    if state == "finished":
        return "yes"
    if state == "running":
        return "no (running now)"
    if state == "abandoned":
        return f"no (abandoned: {run.summary.get('superseded_by', 'a later search')} reran it)"
    return f"no (interrupted; `evonas search --run {run_dir} --resume --name {run.name}` with its options continues it)"


def _markdown(run_dir: Path, k: int, scorer: str, metric: str, exported: list[tuple[Record, Path]],
              runs: list[tuple[SearchRun, list[Step]]], front: list[Record], n_records: int,
              constraints: Constraints | None, curve_png: Path, pareto_png: Path,
              states: dict[str, str] | None = None) -> str:
    lines = [f"# Top {k} architectures of `{run_dir}`", ""]
    lines.append(f"Ranked by {scorer} {metric} over {n_records} stored scores"
                 + (f" within {constraints.limits}" if constraints else "") + ".")
    lats = [_exported_latency(folder) for _, folder in exported]
    with_latency = any(lat is not None for lat in lats)
    head = f"| rank | arch | {metric} | FLOPs | params |" + (" predicted ms | measured ms |" if with_latency else "")
    lines += ["", head + " export |", "| ---: | --- | ---: | ---: | ---: |" + (" ---: | ---: |" if with_latency else "")
              + " --- |"]
    over = []
    for i, ((rec, folder), lat) in enumerate(zip(exported, lats), start=1):
        cells = ""
        if with_latency:
            cells = (f" {lat['predicted_ms']:.3f} | {lat['measured_ms']:.3f} |" if lat else " | |")
            if lat and lat.get("within_limit") is False:
                over.append(f"`{rec.arch}` ({lat['measured_ms']:.3f} ms measured, {lat['limit_ms']:g} ms limit)")
        lines.append(f"| {i} | `{rec.arch}` | {rec.metric(metric):.4f} | {int(rec.metric('flops')):,} | "
                     f"{int(rec.metric('params')):,} |{cells} `{folder.name}/` |")
    if over:
        lines += ["", f"**Measured above the latency limit** (the table predicted them within it): {', '.join(over)}. "
                  "Time them again on an idle machine (`evonas latency validate`) before deploying them."]
    lines += ["", "Each folder holds the standalone module with inherited weights and its `metrics.json`.", ""]
    lines += ["## Searches", "", "| search run | algo | seed | evaluations | best | finished |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for run, steps in runs:
        curve = best_so_far(steps)
        lines.append(f"| {run.name} | {run.algo} | {run.seed} | {len(curve)} | "
                     f"{curve[-1] if curve else float('nan'):.4f} | {search_state_text(run, (states or {}).get(run.name), run_dir)} |")
    lines += ["", f"![best so far]({curve_png.name})", "", "## Accuracy against FLOPs", "",
              f"![Pareto front]({pareto_png.name})", "", f"Pareto front ({len(front)} architectures):", "",
              f"| arch | {metric} | FLOPs |", "| --- | ---: | ---: |"]
    lines += [f"| `{r.arch}` | {r.metric(metric):.4f} | {int(r.metric('flops')):,} |" for r in front]
    return "\n".join(lines) + "\n"
