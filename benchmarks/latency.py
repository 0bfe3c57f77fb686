"""How far can the latency table be trusted? Predicted versus measured end-to-end latency.

Questions answered (CPU, threads 1 by default), for each space (macro-fmnist,
mobilenet-fmnist), backend (eager PyTorch, onnxruntime) and batch size (1, 32):

1. How long does building the table take (the layers timed alone, then the fit to
   whole networks)?
2. How well do the prediction methods match the measured latency of sampled networks
   (none of them one the table was fitted to): MAPE, share within +-10%, Kendall tau,
   on at least 30 held-out networks (``--archs`` defaults to 30 + ``--calibrate``, so
   35)? Methods, all judged on the same held-out measurements:
   * ``isolated``: each layer timed alone, summed, plus the fixed part (end-to-end of
     the fastest network minus its sum);
   * ``corrected``: ``a * isolated + b`` fitted on the first ``--calibrate`` networks
     (which are then left out of every method's metrics);
   * ``scaled``: ``a * isolated + b`` fitted by the build to its fitting networks (what
     ``evonas latency build`` stores when it wins; shown whenever ``a > 0``);
   * ``fitted``: the entries and fixed part fitted to random whole networks, shrunk
     toward the isolated table (what ``evonas latency build`` stores when it beats
     the simpler table chosen before it by MAPE, or ranks its held-out fitting
     networks better at no higher MAPE; shown kept or not).
3. Was the machine quiet enough: the table's noise verdict, the median relative
   spread of the validation timings, and the retest tau (the validation timing against
   itself). A setting whose build or validation the library itself calls too busy to
   measure is measured again (``--busy-retries``), and the attempts are reported.

ONNX models are exported once per space and reused for both batch sizes (the models
have a dynamic batch axis). Run it on an idle machine.

Usage:  .venv/bin/python benchmarks/latency.py [--archs 35] [--calibrate 5] [--repeats 30] [--spaces ...]
Writes benchmarks/results/latency.json and latency.md (or under --out).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evonas.latency.build import build_latency_table  # noqa: E402
from evonas.latency.networks import FIT_GROUP, sample_archs  # noqa: E402
from evonas.latency.validate import networks_used, rank_metrics, validate_latency  # noqa: E402
from search_spaces import get_space  # noqa: E402

METHODS = ("isolated", "corrected", "scaled", "fitted")


def clean(value):
    """JSON without NaN: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def rounds_text(fit: dict) -> str:
    """' x 7' or ' x 7-50': the least and the most fitting rounds of the build's groups (empty without a fit)."""
    if not fit.get("rounds"):
        return ""
    low, high = fit["rounds"], fit.get("rounds_max", fit["rounds"])
    return f" x {low}" if low == high else f" x {low}-{high}"


def fitted_candidate(space, fit: dict, archs) -> np.ndarray | None:
    """The build's per-entry fit, kept or not, as predictions for ``archs`` (None: the table has no fit)."""
    if not fit.get("fitted_coef"):
        return None
    coef = {(layer, code): w for layer, code, w in fit["fitted_coef"]}
    return np.array([fit["intercept_ms"] + sum(coef.get((i, c), 0.0) for i, c in enumerate(space.coerce(a).choices))
                     for a in archs])


def one_setting(space_name: str, backend: str, batch_size: int, args, export_dir: Path) -> dict:
    """:func:`measure_setting`, again (up to ``--busy-retries`` times) while the library calls the machine too busy."""
    discarded = []
    for attempt in range(args.busy_retries + 1):
        row = measure_setting(space_name, backend, batch_size, args, export_dir)
        if not row["too_busy"] or attempt == args.busy_retries:
            break
        discarded.append(row["too_busy"])
        print(f"{space_name} {backend} b{batch_size}, {row['too_busy']}; measuring again", flush=True)
        time.sleep(args.busy_pause)
    row["attempts"] = len(discarded) + 1
    row["discarded"] = discarded  # why each earlier attempt was not kept
    return row


def measure_setting(space_name: str, backend: str, batch_size: int, args, export_dir: Path) -> dict:
    space = get_space(space_name)
    table = build_latency_table(
        space, batch_size=batch_size, threads=args.threads, backend=backend, warmup=args.warmup,
        repeats=args.repeats, progress=not args.quiet, clock=args.clock, seed=args.seed, method="fitted",
        fit_samples=args.fit_samples, fit_rounds=args.fit_rounds, fit_seconds=args.fit_seconds, export_dir=export_dir,
    )
    fit = table.fit or {}
    archs = sample_archs(space, args.archs, random.Random(args.seed), exclude=networks_used(fit))
    calibrate = args.calibrate if len(archs) - args.calibrate >= 2 else 0
    started = time.perf_counter()
    fitted = table if table.method == "fitted" else None
    res = validate_latency(
        space, table, archs, warmup=args.warmup, repeats=args.validate_rounds, progress=not args.quiet, seed=args.seed,
        export_dir=export_dir,
    )
    validate_s = time.perf_counter() - started
    meas = np.array([r["measured_ms"] for r in res["archs"]])
    iso_table = table.isolated()
    iso = np.array([iso_table.predict(a) for a in archs])
    k = calibrate
    methods = {"isolated": rank_metrics(iso[k:], meas[k:])}
    if k:
        a, b = np.polyfit(iso[:k], meas[:k], 1) if k >= 2 else (meas[:k].sum() / iso[:k].sum(), 0.0)
        methods["corrected"] = {**rank_metrics(a * iso[k:] + b, meas[k:]), "a": float(a), "b": float(b)}
    if fit.get("scaled_cv_mape") is not None:  # the build's scaled candidate, kept or not
        a, b = fit["scaled_a"], fit["scaled_b"]
        methods["scaled"] = {**rank_metrics(a * iso[k:] + b, meas[k:]), "a": float(a), "b": float(b)}
    # the fit's own entries, kept or not (older tables without "fitted_coef": only when kept)
    fit_pred = fitted_candidate(space, fit, archs)
    if fit_pred is None and fitted is not None:
        fit_pred = np.array([r["predicted_ms"] for r in res["archs"]])
    if fit_pred is not None:
        methods["fitted"] = {**rank_metrics(fit_pred[k:], meas[k:]), "kept": table.method == "fitted"}
    noisy_share = res["noisy"] / len(archs)
    too_busy = ""
    if table.busy:
        too_busy = "build: " + "; ".join(w for w in table.warnings if "too busy" in w)
    elif noisy_share > table.settings["max_noisy_share"]:
        too_busy = (f"validation: the machine is too busy to measure: {res['noisy']} of {len(archs)} networks have a relative spread above "
                    f"{table.settings['noise_threshold']:g}")
    return {
        "space": space_name,
        "backend": backend,
        "batch_size": batch_size,
        "threads": args.threads,
        "clock": args.clock,
        "entries": len(table.entries),
        "noisy_entries": len(table.noisy_entries),
        "busy": table.busy,
        "too_busy": too_busy,
        "table_warnings": list(table.warnings),
        "build_s": table.build_seconds,
        "fit_s": fit.get("seconds"),
        "fit_samples": fit.get("samples"),
        "table_method": table.method,
        "fit_verdict": fit.get("verdict"),
        "fit_cv_mape": fit.get("cv_mape"),
        "fit": {key: v for key, v in fit.items() if key not in ("archs", "fitted_coef")},
        "validate_s": validate_s,
        "validation_median_spread": res["median_spread"],
        "retest_kendall_tau": res["retest_kendall_tau"],
        "drift": res.get("drift"),
        "noisy_measurements": res["noisy"],
        "fit_overlap": res["fit_overlap"],
        "samples": len(archs) - k,
        "calibration_samples": k,
        "methods": methods,
        "overhead": table.overhead,
        "device": table.device,
        "archs": [{**r, "isolated_ms": float(p)} for r, p in zip(res["archs"], iso)],
    }


def fmt(value, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec) + unit


def markdown(rows: list[dict], command: str, wall_s: float) -> str:
    device = rows[0]["device"] if rows else {}
    lines = [
        "# Latency table: predicted versus measured end-to-end latency",
        "",
        f"Command: `{command}` ({wall_s:.0f} s)",
        "",
        f"CPU: {device.get('cpu_model')} ({device.get('logical_cores')} logical cores); torch {device.get('torch')}, "
        f"onnxruntime {device.get('onnxruntime')}. Every method is judged on the same held-out networks (none used "
        "to fit): 'isolated' sums layers timed alone plus the fixed part; 'corrected' is a * isolated + b fitted on "
        "the calibration networks; 'scaled' is a * isolated + b fitted by the build to its fitting networks; "
        "'fitted' fits the entries to random whole networks, shrunk toward the isolated table (shown kept or not). "
        "'table' is what `evonas latency build` kept: the scaled table when its cross-validated error beats the "
        "isolated table's, the fitted one when it beats that choice in turn by MAPE, or ranks the held-out fitting "
        "networks better (Kendall tau +0.03) at no higher MAPE ('tau' after the name). Targets: within 10% "
        ">= 0.90, Kendall tau >= 0.9; the kept table's figures are in bold. 'spread' is the median (p90 - p10) / "
        "median of the validation timings; 'retest tau' is the Kendall tau between the medians of the even and of "
        "the odd validation rounds (the timing against itself, each half with half the rounds): where a method's tau "
        "comes near it, timing noise rather than the table limits the ranking; 'fit retest tau' is the same for the "
        "build's fitting networks (their rounds against themselves: what the fit learned from), timed in groups of at "
        f"most {FIT_GROUP} with the fresh networks, in at least --fit-rounds rounds and more while they fit in the build's time "
        "budget ('nets x rounds': the least and the most rounds of any group). 'tries': a setting the library calls "
        "too busy to measure (build or validation) is measured again, up to --busy-retries times; 'busy' says "
        "whether the kept try was still too busy. 'drift' is how much slower (+) or faster the build's 10 fresh whole "
        "networks (timed among its fitting networks) ran at validation, timed among the validation networks: the "
        "machine's own change of speed, which every prediction inherits.",
        "",
        "| space | backend | batch | build s (fit s, nets x rounds) | table | spread | tries | busy | drift % | fit retest tau | retest tau | "
        + " | ".join(f"{m} MAPE % / within 10% / tau" for m in METHODS) + " | n |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in METHODS) + " | --- |",
    ]
    for r in rows:
        cells = []
        for m in METHODS:
            x = r["methods"].get(m)
            text = ("n/a" if not x else
                    f"{fmt(x['mape'], '.1f')} / {fmt(x['within_10pct'], '.2f')} / {fmt(x['kendall_tau'], '.3f')}")
            cells.append(f"**{text}**" if x and m == r["table_method"] else text)
        lines.append(
            f"| {r['space']} | {r['backend']} | {r['batch_size']} | {r['build_s']:.1f} ({fmt(r['fit_s'], '.1f')}, "
            f"{r['fit_samples'] or 0}{rounds_text(r['fit'])}) | {r['table_method']}{' (tau)' if r['fit'].get('fitted_for') == 'tau' and r['table_method'] == 'fitted' else ''} | "
            f"{fmt(r['validation_median_spread'], '.2f')} | {r.get('attempts', 1)} | "
            f"{'yes' if r.get('too_busy') or r['busy'] else 'no'} | {fmt((r.get('drift') or {}).get('pct'), '+.1f')} | "
            f"{fmt(r['fit'].get('retest_kendall_tau'), '.3f')} | {fmt(r.get('retest_kendall_tau'), '.3f')} | " + " | ".join(cells)
            + f" | {r['samples']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="macro-fmnist,mobilenet-fmnist")
    parser.add_argument("--backends", default="eager,onnxruntime")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--archs", type=int, default=None,
                        help="sampled networks timed end to end per setting (default 30 + --calibrate: 30 held out)")
    parser.add_argument("--calibrate", type=int, default=5, help="networks that fit the linear correction")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per layer")
    parser.add_argument("--validate-rounds", type=int, default=100,
                        help="interleaved rounds per validation network (more rounds: a higher retest tau)")
    parser.add_argument("--busy-retries", type=int, default=2,
                        help="measure a setting again this many times while its build or validation is too busy")
    parser.add_argument("--busy-pause", type=float, default=30.0, help="seconds to wait before measuring again")
    parser.add_argument("--fit-samples", type=int, default=None, help="networks the fit uses (default: 3 per entry, 60-300)")
    parser.add_argument("--fit-rounds", type=int, default=7, help="the least fitting rounds")
    parser.add_argument("--fit-seconds", type=float, default=None,
                        help="more fitting rounds while they fit in this many seconds (default: the library's)")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.archs is None:
        args.archs = 30 + args.calibrate  # the calibration networks are left out of every method's metrics
    command = "python benchmarks/latency.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evonas-latency-bench-") as tmp:
        for space_name in args.spaces.split(","):
            for backend in args.backends.split(","):
                for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                    row = one_setting(space_name, backend, batch_size, args, Path(tmp) / space_name)
                    rows.append(row)
                    summary = ", ".join(
                        f"{m} {fmt(x['mape'], '.1f', '%')}/{fmt(x['within_10pct'], '.2f')}/{fmt(x['kendall_tau'], '.3f')}"
                        for m, x in row["methods"].items()
                    )
                    print(
                        f"{space_name} {backend} b{batch_size}: build {row['build_s']:.1f}s (fit {fmt(row['fit_s'], '.1f')}s), "
                        f"table {row['table_method']}, spread {fmt(row['validation_median_spread'], '.2f')}, "
                        f"retest tau {fmt(row['retest_kendall_tau'], '.3f')}, "
                        f"drift {fmt((row['drift'] or {}).get('pct'), '+.1f', '%')}; "
                        f"MAPE/within10/tau: {summary}" + (" [busy]" if row["too_busy"] else ""),
                        flush=True,
                    )
    wall_s = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "latency.json").write_text(
        json.dumps(clean({"command": command, "settings": settings, "wall_s": wall_s, "results": rows}), indent=1) + "\n"
    )
    (args.out / "latency.md").write_text(markdown(rows, command, wall_s))
    print(f"wrote {args.out / 'latency.json'} and {args.out / 'latency.md'} in {wall_s:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
