"""How far can the latency table be trusted? Predicted versus measured end-to-end latency.

Questions answered (CPU, threads 1 by default), for each space (macro-fmnist,
mobilenet-fmnist), backend (eager PyTorch, onnxruntime) and batch size (1, 32):

1. How long does building the per-layer table take?
2. How well does ``table.predict`` (layer sum + fixed part) match the measured latency of
   N sampled networks (default 30): MAPE, share within +-10%, Kendall tau?
3. Does the other fixed-part estimate (stem + head + empty call, "components") do better
   than the default (end-to-end of the fastest network minus its sum, "residual")?
4. Does a linear correction ``a * predicted + b`` fitted on the first ``--calibrate``
   networks lower the MAPE of the others?

Run it on an idle machine: every table records how noisy its entries were, and a table
built on a busy one says so (the "busy" column).

Usage:  .venv/bin/python benchmarks/latency.py [--archs 30] [--repeats 50] [--spaces ...]
Writes benchmarks/results/latency.json and latency.md (or under --out).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evonas.evaluation.latency import build_latency_table, validate_latency  # noqa: E402
from search_spaces import get_space  # noqa: E402


def sample_archs(space, n: int, seed: int) -> list:
    """``n`` distinct networks (canonical forms) drawn uniformly with ``seed``."""
    rng = random.Random(seed)
    seen: dict[str, object] = {}
    for _ in range(100 * n):
        arch = space.canonical(space.sample(rng))
        seen.setdefault(str(arch), arch)
        if len(seen) == n:
            break
    return list(seen.values())


def clean(value):
    """JSON without NaN: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def one_setting(space_name: str, backend: str, batch_size: int, args) -> dict:
    space = get_space(space_name)
    table = build_latency_table(
        space, batch_size=batch_size, threads=args.threads, backend=backend, warmup=args.warmup,
        repeats=args.repeats, progress=not args.quiet, clock=args.clock, seed=args.seed,
    )
    archs = sample_archs(space, args.archs, args.seed)
    calibrate = args.calibrate if len(archs) - args.calibrate >= 2 else 0
    started = time.perf_counter()
    res = validate_latency(
        space, table, archs, warmup=args.warmup, repeats=args.repeats, calibrate=calibrate,
        progress=not args.quiet, seed=args.seed,
    )
    validate_s = time.perf_counter() - started
    held = [r for r in res["archs"] if r["role"] == "test"]
    meas = np.array([r["measured_ms"] for r in held])
    shift = table.overhead["components_ms"] - table.overhead_ms
    comp = np.array([r["predicted_ms"] for r in held]) + shift
    comp_err = np.abs(comp - meas) / meas
    corr = res["correction"] or {}
    return {
        "space": space_name,
        "backend": backend,
        "batch_size": batch_size,
        "threads": args.threads,
        "clock": args.clock,
        "entries": len(table.entries),
        "noisy_entries": len(table.noisy_entries),
        "busy": table.busy,
        "table_warnings": list(table.warnings),
        "build_s": table.build_seconds,
        "validate_s": validate_s,
        "overhead": table.overhead,
        "mape": res["mape"],
        "within_10pct": res["within_10pct"],
        "kendall_tau": res["kendall_tau"],
        "samples": res["samples"],
        "noisy_measurements": res["noisy"],
        "components_mape": float(100 * comp_err.mean()) if len(meas) else None,
        "components_within_10pct": float((comp_err <= 0.1).mean()) if len(meas) else None,
        "correction": res["correction"],
        "corrected_mape": corr.get("mape"),
        "device": table.device,
        "archs": res["archs"],
    }


def fmt(value, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec) + unit


def markdown(rows: list[dict], command: str) -> str:
    device = rows[0]["device"] if rows else {}
    lines = [
        "# Latency table: predicted versus measured end-to-end latency",
        "",
        f"Command: `{command}`",
        "",
        f"CPU: {device.get('cpu_model')} ({device.get('logical_cores')} logical cores); torch {device.get('torch')}, "
        f"onnxruntime {device.get('onnxruntime')}. MAPE and the share within +-10% are over the held-out networks; "
        "'components' replaces the fixed part by stem + head + one empty call; 'corrected' applies "
        "a * predicted + b fitted on the calibration networks.",
        "",
        "| space | backend | batch | build s | entries (noisy) | busy | MAPE % | within 10% | Kendall tau | "
        "components MAPE % | corrected MAPE % | correction helps | n |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        corr = r["correction"] or {}
        lines.append(
            f"| {r['space']} | {r['backend']} | {r['batch_size']} | {r['build_s']:.1f} | "
            f"{r['entries']} ({r['noisy_entries']}) | {'yes' if r['busy'] else 'no'} | {fmt(r['mape'], '.1f')} | "
            f"{fmt(r['within_10pct'], '.2f')} | {fmt(r['kendall_tau'], '.3f')} | {fmt(r['components_mape'], '.1f')} | "
            f"{fmt(corr.get('mape'), '.1f')} | {'yes' if corr.get('improves') else 'no' if corr else 'n/a'} | "
            f"{r['samples']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default="macro-fmnist,mobilenet-fmnist")
    parser.add_argument("--backends", default="eager,onnxruntime")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--archs", type=int, default=30, help="sampled networks timed end to end per setting")
    parser.add_argument("--calibrate", type=int, default=5, help="networks that fit the linear correction")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    command = "python benchmarks/latency.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    rows = []
    for space_name in args.spaces.split(","):
        for backend in args.backends.split(","):
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                row = one_setting(space_name, backend, batch_size, args)
                rows.append(row)
                print(
                    f"{space_name} {backend} b{batch_size}: build {row['build_s']:.1f}s, MAPE {fmt(row['mape'], '.1f', '%')}, "
                    f"within 10% {fmt(row['within_10pct'], '.2f')}, tau {fmt(row['kendall_tau'], '.3f')}, "
                    f"components MAPE {fmt(row['components_mape'], '.1f', '%')}, corrected {fmt(row['corrected_mape'], '.1f', '%')}"
                    + (" [busy]" if row["busy"] else ""),
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (args.out / "latency.json").write_text(
        json.dumps(clean({"command": command, "settings": settings, "results": rows}), indent=1) + "\n"
    )
    (args.out / "latency.md").write_text(markdown(rows, command))
    print(f"wrote {args.out / 'latency.json'} and {args.out / 'latency.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
