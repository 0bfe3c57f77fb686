"""Does a latency-constrained search deliver models that meet the limit when measured?

A latency-constrained search on a trained supernet, the way a user runs it: for each
space (macro-fmnist, mobilenet-fmnist) and backend (eager by default), batch size 1,
1 thread, the benchmark copies a trained run's ``config.json`` and ``supernet.pt``
into a temporary run directory (the source runs are only read) and then runs the CLI:

1. ``evonas latency build`` (the default fitted table); its seconds are recorded;
2. a limit that binds: the ``--quantile`` (default 0.3) of the table's predicted
   latency of ``--samples`` uniformly sampled architectures (seeded), so that most of
   the space is infeasible;
3. ``evonas search --algo evolution --max-latency-ms LIMIT --budget B``;
4. ``evonas export --top-k K --max-latency-ms LIMIT --latency-backend BACKEND`` (the
   search's limit and table) and each export's ``metrics.json``: accuracy, predicted
   and measured latency, measured by export itself.

Each (space, backend) gets its own fresh run.

Questions answered, per space and backend:

* How long do the table, the search and the export take?
* For every exported model: measured / limit and predicted / limit. The target is
  measured / limit <= 1.0 for every model; the worst ratio is reported, and every
  model over the limit is named with by how much (and whether the table predicted it
  within the limit, i.e. a prediction error, or not, i.e. an infeasible export).

Every exported module is also re-timed by the benchmark, all of a setting's models
together in ``--recheck-repeats`` interleaved rounds with their spread: it does not
change the verdict, it tells a noisy measurement from a model that is really too slow.

Should an export's ``metrics.json`` lack a latency of the setting's backend, the
benchmark times that module itself with the function export uses
(``evonas.export.module.measure_latency``); the rows say which source each
measurement has.

Usage::

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_search.py [--budget 40] [--top-k 5] [--quantile 0.3]
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_search.py --quick --out /tmp/latency_search   # smoke

Writes benchmarks/results/latency_search.json and latency_search.md (or under --out),
with the command. Run it on an idle machine: measured latency is wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVONAS = ROOT / ".venv" / "bin" / "evonas"
SOURCES = {
    "macro-fmnist": ROOT / "runs" / "bench-strategies" / "macro-fmnist" / "uniform-s0",
    "mobilenet-fmnist": ROOT / "runs" / "bench-strategies" / "mobilenet-fmnist" / "uniform-s0",
}
COPIED = ("config.json", "supernet.pt")  # all a run needs to be searched and exported


def evonas(*argv: str) -> tuple[float, str]:
    """Run the CLI as a user does; returns (seconds, stdout). Progress and errors go to our stderr."""
    cmd = [str(EVONAS), *argv]
    print("$ evonas " + shlex.join(argv), file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"`evonas {' '.join(argv)}` failed with exit status {proc.returncode}:\n{proc.stdout}")
    return seconds, proc.stdout


def copy_run(source: Path, target: Path, space_name: str) -> None:
    """A fresh run directory holding only the source run's config and trained weights."""
    missing = [name for name in COPIED if not (source / name).is_file()]
    if missing:
        raise SystemExit(f"{source} is not a trained run: it has no {', '.join(missing)}")
    config = json.loads((source / "config.json").read_text())
    have = config.get("config", {}).get("space")
    if have != space_name:
        raise SystemExit(f"{source} is a run of space {have!r}, not {space_name!r}")
    target.mkdir(parents=True)
    for name in COPIED:
        shutil.copy2(source / name, target / name)


def choose_limit(run_dir: Path, backend: str, args) -> dict:
    """The ``args.quantile`` of the table's predicted latency over ``args.samples`` uniform samples."""
    import numpy as np

    from evonas.latency.networks import sample_archs
    from evonas.jobs.latency import LatencySetting, device_table
    from evonas.run.run import Run

    run = Run.open(run_dir)
    table = device_table(run, LatencySetting(backend=backend, batch_size=1, threads=args.threads))
    archs = sample_archs(run.space, args.samples, random.Random(args.seed))
    predicted = np.array([table.predict(a) for a in archs])
    limit = float(f"{np.quantile(predicted, args.quantile):.4g}")  # a number a user would type
    return {
        "limit_ms": limit,
        "how": f"the {args.quantile:g} quantile of the predicted latency of {len(archs)} uniformly sampled "
               f"architectures (seed {args.seed}), rounded to 4 significant digits",
        "sampled": len(archs),
        "feasible_share_of_samples": float(np.mean(predicted <= limit)),
        "predicted_ms_min_median_max": [float(predicted.min()), float(np.median(predicted)), float(predicted.max())],
        "fastest_network_ms": float(table.min_latency()),
        "table_method": table.method,
        "table_build_seconds": float(table.build_seconds),
        "table_noisy_entries": len(table.noisy_entries),
        "table_busy": bool(table.busy),
        "table_warnings": list(table.warnings),
        "device": table.device,
    }


def exported_module(run, folder: Path, arch):
    """The exported network rebuilt from its ``state_dict.pt`` (as the export folder documents)."""
    import torch

    from evonas.export.module import WEIGHTS
    from evonas.supernet.chain import build_standalone

    module = build_standalone(run.space, arch)
    module.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu"))
    return module.eval()


def run_table(run_dir: Path, backend: str, threads: int):
    from evonas.jobs.latency import LatencySetting, device_table
    from evonas.run.run import Run

    run = Run.open(run_dir)
    return run, device_table(run, LatencySetting(backend=backend, batch_size=1, threads=threads))


def measure_myself(run_dir: Path, backend: str, threads: int, folder: Path, metrics: dict) -> dict:
    """Time one exported module with export's own function and the ``backend`` table (export cannot)."""
    from evonas.export.module import measure_latency

    run, table = run_table(run_dir, backend, threads)
    arch = run.space.parse(metrics["arch"])
    return measure_latency(run.space, table, arch, exported_module(run, folder, arch))


def retime(run_dir: Path, backend: str, threads: int, folders: list[Path], archs: list[str], repeats: int) -> list[dict]:
    """An independent check: all exported modules timed together in ``repeats`` interleaved rounds, with spread."""
    from evonas.latency.validate import validate_latency

    run, table = run_table(run_dir, backend, threads)
    parsed = [run.space.parse(a) for a in archs]
    modules = {run.space.format(a): exported_module(run, f, a) for a, f in zip(parsed, folders)}
    report = validate_latency(run.space, table, parsed, module_factory=lambda a: modules[run.space.format(a)],
                              warmup=10, repeats=repeats)
    return report["archs"]


def one_setting(space_name: str, backend: str, source: Path, args, work: Path) -> dict:
    run_dir = work / f"{space_name}-{backend}"
    copy_run(source, run_dir, space_name)
    run = str(run_dir)
    t = str(args.threads)

    build_s, _ = evonas("latency", "build", "--run", run, "--backend", backend, "--batch-size", "1", "--threads", t,
                        "--quiet")
    limit = choose_limit(run_dir, backend, args)
    lim = limit["limit_ms"]
    print(f"{space_name} {backend}: table built in {build_s:.1f} s ({limit['table_method']}); limit {lim} ms, "
          f"{limit['feasible_share_of_samples']:.0%} of samples feasible, fastest {limit['fastest_network_ms']:.4f} ms",
          flush=True)

    search_argv = ["search", "--run", run, "--algo", "evolution", "--max-latency-ms", repr(lim), "--budget",
                   str(args.budget), "--seed", str(args.seed), "--latency-backend", backend, "--latency-batch-size", "1",
                   "--latency-threads", t, "--threads", t, "--json", "--quiet"]
    search_s, out = evonas(*search_argv)
    summary = json.loads(out)

    export_argv = ["export", "--run", run, "--top-k", str(args.top_k), "--max-latency-ms", repr(lim),
                   "--latency-backend", backend, "--latency-batch-size", "1", "--latency-threads", t, "--quiet"]
    if backend == "onnxruntime":
        export_argv += ["--format", "onnx"]
    export_s, _ = evonas(*export_argv)

    from evonas.export.module import METRICS
    from evonas.run.run import RunLayout

    top = RunLayout.of(run_dir).top_k_dir(args.top_k)
    models = []
    for folder in sorted(p for p in top.iterdir() if (p / METRICS).is_file()):
        metrics = json.loads((folder / METRICS).read_text())
        lat = metrics.get("latency")
        source_of = "evonas export (metrics.json)"
        if lat is None or lat.get("backend") != backend:
            source_of = (f"benchmark (metrics.json has {'no latency' if lat is None else lat.get('backend') + ' latency'}"
                         f"; timed with export's measure_latency and the {backend} table)")
            lat = measure_myself(run_dir, backend, args.threads, folder, metrics)
        record_latency = metrics.get("record", {}).get("metrics", {}).get("latency_ms")
        predicted, measured = lat.get("predicted_ms"), lat.get("measured_ms")
        models.append({
            "rank": metrics.get("rank"),
            "arch": metrics["arch"],
            "folder": folder.name,
            "supernet_accuracy": metrics.get("supernet_accuracy"),
            "flops": metrics.get("flops"),
            "predicted_ms": predicted,
            "measured_ms": measured,
            "error_pct": lat.get("error_pct"),
            "search_latency_ms": record_latency,  # what the search's constraint saw (None if not stored)
            "predicted_over_limit": predicted / lim if predicted is not None else None,
            "measured_over_limit": measured / lim if measured is not None else None,
            "latency_source": source_of,
            "latency_setting": {k: lat.get(k) for k in ("backend", "batch_size", "threads")},
        })
    if models and args.recheck_repeats:
        folders = [top / m["folder"] for m in models]
        for m, r in zip(models, retime(run_dir, backend, args.threads, folders, [m["arch"] for m in models],
                                       args.recheck_repeats)):
            m.update(recheck_ms=r["measured_ms"], recheck_spread=r["spread"], recheck_over_limit=r["measured_ms"] / lim)
    ratios = [m["measured_over_limit"] for m in models if m["measured_over_limit"] is not None]
    rechecked = [m["recheck_over_limit"] for m in models if m.get("recheck_over_limit") is not None]
    over = [m for m in models if m["measured_over_limit"] is not None and m["measured_over_limit"] > 1.0]
    infeasible_exports = [m for m in models if m["predicted_over_limit"] is not None and m["predicted_over_limit"] > 1.0]
    row = {
        "space": space_name,
        "backend": backend,
        "batch_size": 1,
        "threads": args.threads,
        "source_run": str(source),
        "limit": limit,
        "build_s": build_s,
        "search_s": search_s,
        "export_s": export_s,
        "commands": {"search": "evonas " + shlex.join(search_argv), "export": "evonas " + shlex.join(export_argv)},
        "search": {k: summary.get(k) for k in ("evaluations", "rejected", "duplicates", "exhausted", "best", "timings")},
        "exported": len(models),
        "models": models,
        "worst_measured_over_limit": max(ratios) if ratios else None,
        "worst_recheck_over_limit": max(rechecked) if rechecked else None,
        "recheck_repeats": args.recheck_repeats,
        "missing_measurements": len(models) - len(ratios),
        "over_limit": [m["arch"] for m in over],
        "predicted_over_limit": [m["arch"] for m in infeasible_exports],
        "target_holds": bool(models) and len(ratios) == len(models) and not over,
    }
    worst = row["worst_measured_over_limit"]
    print(f"{space_name} {backend}: search {search_s:.1f} s ({row['search']['evaluations']} scored, "
          f"{row['search']['rejected']} refused), export {export_s:.1f} s of {len(models)}; worst measured/limit "
          f"{'n/a' if worst is None else f'{worst:.3f}'} (re-timed {fmt(row['worst_recheck_over_limit'], '.3f')})" + ("" if row["target_holds"] else "  TARGET MISSED"), flush=True)
    return row


def fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def verdict_lines(r: dict) -> list[str]:
    """Plain sentences on whether every exported model met the limit."""
    lim = r["limit"]["limit_ms"]
    out = []
    if not r["models"]:
        return ["**No model was exported**, so the target cannot hold."]
    if r["missing_measurements"]:
        out.append(f"**{r['missing_measurements']} exported model(s) have no measured latency.**")
    for m in r["models"]:
        if m["measured_over_limit"] is not None and m["measured_over_limit"] > 1.0:
            why = ("the table predicted it within the limit (a prediction error of "
                   f"{fmt(m['error_pct'], '+.1f')}%)" if m["predicted_over_limit"] <= 1.0
                   else "the table itself predicts it over the limit: an infeasible architecture was exported")
            out.append(f"**`{m['arch']}` exceeds the limit**: measured {m['measured_ms']:.4f} ms against {lim} ms, "
                       f"{(m['measured_over_limit'] - 1) * 100:+.1f}% ({m['measured_ms'] - lim:+.4f} ms); {why}.")
        elif m["predicted_over_limit"] is not None and m["predicted_over_limit"] > 1.0:
            out.append(f"**`{m['arch']}` is predicted over the limit** ({m['predicted_ms']:.4f} ms) although measured "
                       "within it: the export did not respect the search's constraint.")
    worst = r["worst_measured_over_limit"]
    out.append(f"Worst measured / limit: **{fmt(worst, '.3f')}**; target (<= 1.0 for every exported model) "
               + ("**holds**." if r["target_holds"] else "**missed**."))
    if r.get("worst_recheck_over_limit") is not None:
        over = [m for m in r["models"] if m.get("recheck_over_limit", 0) > 1.0]
        out.append(f"Independent re-timing (all exported models interleaved, {r['recheck_repeats']} rounds): worst "
                   f"re-timed / limit {r['worst_recheck_over_limit']:.3f}"
                   + ("; over the limit there too: " + ", ".join(f"`{m['arch']}`" for m in over) + "." if over
                      else "; every model within the limit."))
    if r["limit"]["table_warnings"]:
        out.append("Table warnings: " + " ".join(r["limit"]["table_warnings"]))
    return out


def markdown(rows: list[dict], command: str, wall_s: float, args) -> str:
    device = rows[0]["limit"]["device"] if rows else {}
    lines = [
        "# Latency-constrained search: do the exported models meet the limit when measured?",
        "",
        f"Command: `{command}` ({wall_s:.0f} s)",
        "",
        (f"CPU: {device.get('cpu_model')} ({device.get('logical_cores')} logical cores); torch {device.get('torch')}, "
        f"onnxruntime {device.get('onnxruntime')}; batch 1, {args.threads} thread(s), OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}. Per space and backend: a copy of the trained run, "
        "`evonas latency build`, a limit at the "
        f"{args.quantile:g} quantile of the predicted latency of {args.samples} uniform samples, `evonas search --algo "
        f"evolution --max-latency-ms LIMIT --budget {args.budget}`, then `evonas export --top-k {args.top_k}`; "
        "predicted and measured latency come from each export's `metrics.json` (the measured one is the median of "
        "30 timed calls after 5 warm-ups). Target: measured / limit <= 1.0 for every exported model. 'Re-timed' is "
        "the benchmark's own check: the exported modules (rebuilt from `state_dict.pt`) timed together in "
        f"{args.recheck_repeats} interleaved rounds, median, with the spread (p90 - p10) / median; it does not "
        "change the verdict, it tells a noisy measurement from a model that is really too slow."),
        "",
    ]
    all_ratios = [r["worst_measured_over_limit"] for r in rows if r["worst_measured_over_limit"] is not None]
    if rows:
        holds = all(r["target_holds"] for r in rows)
        lines += [(f"**Overall: worst measured / limit {fmt(max(all_ratios) if all_ratios else None, '.3f')}; "
                  f"target {'holds for every exported model' if holds else 'MISSED (see below)'}.**"), ""]
    for r in rows:
        lim = r["limit"]
        lines += [
            f"## {r['space']}, {r['backend']}",
            "",
            f"Limit **{lim['limit_ms']} ms** ({lim['how']}; {lim['feasible_share_of_samples']:.0%} of the samples "
            f"feasible; fastest network {lim['fastest_network_ms']:.4f} ms; sampled predictions min / median / max "
            + " / ".join(f"{x:.4f}" for x in lim["predicted_ms_min_median_max"]) + " ms). "
            f"Table: {lim['table_method']}, built in **{r['build_s']:.1f} s** (table's own timing "
            f"{lim['table_build_seconds']:.1f} s), {lim['table_noisy_entries']} noisy entries"
            + (", machine busy" if lim["table_busy"] else "") + f". Search **{r['search_s']:.1f} s** "
            f"({r['search']['evaluations']} scored, {r['search']['rejected']} refused by the limit); export "
            f"**{r['export_s']:.1f} s** for {r['exported']} models.",
            "",
            f"`{r['commands']['search']}`",
            "",
            ("| rank | arch | supernet acc | predicted ms | measured ms | error % | predicted / limit | measured / limit "
            "| latency from | re-timed ms (spread) | re-timed / limit |"),
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for m in r["models"]:
            flag = " **over**" if m["measured_over_limit"] is not None and m["measured_over_limit"] > 1.0 else ""
            lines.append(
                f"| {m['rank']} | `{m['arch']}` | {fmt(m['supernet_accuracy'], '.4f')} | {fmt(m['predicted_ms'], '.4f')} | "
                f"{fmt(m['measured_ms'], '.4f')} | {fmt(m['error_pct'], '+.1f')} | {fmt(m['predicted_over_limit'], '.3f')} | "
                f"{fmt(m['measured_over_limit'], '.3f')}{flag} | {'export' if m['latency_source'].startswith('evonas') else 'benchmark'} | "
                f"{fmt(m.get('recheck_ms'), '.4f')} ({fmt(m.get('recheck_spread'), '.2f')}) | "
                f"{fmt(m.get('recheck_over_limit'), '.3f')} |"
            )
        lines += [""] + verdict_lines(r) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default=None, help="comma list (default macro-fmnist,mobilenet-fmnist; --quick: macro-fmnist)")
    parser.add_argument("--backends", default="eager", help="comma list of eager, onnxruntime")
    parser.add_argument("--macro-run", type=Path, default=SOURCES["macro-fmnist"], help="trained macro-fmnist run (only read)")
    parser.add_argument("--mobilenet-run", type=Path, default=SOURCES["mobilenet-fmnist"],
                        help="trained mobilenet-fmnist run (only read)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quantile", type=float, default=0.3, help="the limit: this quantile of sampled predictions")
    parser.add_argument("--samples", type=int, default=None, help="architectures sampled for the limit (default 500; --quick 100)")
    parser.add_argument("--budget", type=int, default=None, help="search budget (default 40; --quick 8)")
    parser.add_argument("--top-k", type=int, default=None, help="models exported (default 5; --quick 2)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the limit's samples and the search")
    parser.add_argument("--recheck-repeats", type=int, default=100,
                        help="interleaved rounds of the independent re-timing of the exported models (0: none)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one space, budget 8, top-k 2, 100 samples")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run directories (their path is printed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    quick = args.quick
    args.spaces = args.spaces or ("macro-fmnist" if quick else "macro-fmnist,mobilenet-fmnist")
    args.samples = args.samples or (100 if quick else 500)
    args.budget = args.budget or (8 if quick else 40)
    args.top_k = args.top_k or (2 if quick else 5)
    if not 0 < args.quantile < 1:
        parser.error(f"--quantile must be in (0, 1); got {args.quantile}")
    sources = {"macro-fmnist": args.macro_run, "mobilenet-fmnist": args.mobilenet_run}
    spaces, backends = args.spaces.split(","), args.backends.split(",")
    for name in spaces:
        if name not in sources:
            parser.error(f"--spaces must name spaces among {', '.join(sources)}; got {name!r}")
        if not (sources[name] / "supernet.pt").is_file():
            parser.error(f"{sources[name]} has no trained supernet.pt")
    for b in backends:
        if b not in ("eager", "onnxruntime"):
            parser.error(f"--backends must name backends among eager, onnxruntime; got {b!r}")
    given = sys.argv[1:] if argv is None else argv
    omp = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={omp} " if omp else "") + ".venv/bin/python benchmarks/latency_search.py " + shlex.join(given)

    rows = []
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="evonas-latency-search-"))
    try:
        for space_name in spaces:
            for backend in backends:
                rows.append(one_setting(space_name, backend, sources[space_name], args, work))
    finally:
        if args.keep:
            print(f"kept the run directories under {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    wall_s = time.perf_counter() - started
    ratios = [r["worst_measured_over_limit"] for r in rows if r["worst_measured_over_limit"] is not None]
    overall = {"worst_measured_over_limit": max(ratios) if ratios else None,
               "target_holds": bool(rows) and all(r["target_holds"] for r in rows),
               "over_limit": {f"{r['space']}/{r['backend']}": r["over_limit"] for r in rows if r["over_limit"]}}
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "latency_search.json").write_text(json.dumps(
        {"command": command, "settings": settings, "omp_num_threads": omp, "wall_s": wall_s, "overall": overall,
         "results": rows}, indent=1, default=float) + "\n")
    (args.out / "latency_search.md").write_text(markdown(rows, command, wall_s, args))
    print(f"worst measured/limit {fmt(overall['worst_measured_over_limit'], '.3f')}; target "
          f"{'holds' if overall['target_holds'] else 'MISSED'}. Wrote {args.out / 'latency_search.json'} and "
          f"{args.out / 'latency_search.md'} in {wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
