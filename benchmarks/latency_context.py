"""Does the number of networks timed together change their times? (why the latency build times in groups)

The latency build fits its table to random whole networks timed in interleaved rounds,
and ``evonas latency validate`` then times about 45 others the same way. If a network's
time depended on how many others are timed with it, a fit to networks timed all at
once (60 to 300) would learn that setting rather than the networks. This benchmark
times the same ``--probes`` networks (eager PyTorch, one thread):

* ``reference``: among themselves, ``--ref-rounds`` rounds (as benchmarks/latency.py
  validates);
* ``group``: among themselves, ``--rounds`` rounds (the build's rounds, in a group as
  small as validate's: what ``build_latency_table`` does since it times in groups);
* ``all at once``: among ``--others`` more networks (default: as many as the build
  fits to), ``--rounds`` rounds (what the build did before);
* ``group again``: the group setting repeated after that (is a difference the number
  of networks, or merely a later timing?);
* ``reference again``: the reference setting repeated last (the timing's own
  repeatability from one timing to the next).

For each: Kendall tau of the probes' medians against the reference, the ratio of the
medians (percentiles), and the retest tau (even against odd rounds of that timing).
Run it on an idle machine.

Usage:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_context.py [--space mobilenet-fmnist] [--batch-size 32]
Writes benchmarks/results/latency_context.json and .md (or under --out).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evonas.latency.build import fit_sample_size  # noqa: E402
from evonas.latency.fit import _tau  # noqa: E402
from evonas.latency.networks import sample_archs  # noqa: E402
from evonas.latency.timing import time_interleaved  # noqa: E402
from evonas.latency.validate import retest_tau  # noqa: E402
from evonas.supernet.chain import build_standalone  # noqa: E402
from search_spaces import get_space  # noqa: E402


def summary(timings: list[dict], reference: np.ndarray | None, seconds: float) -> dict:
    med = np.array([t["median_ms"] for t in timings])
    out = {"retest_tau": retest_tau(timings), "median_ms": float(np.median(med)), "seconds": round(seconds, 1)}
    if reference is not None:
        out["tau_vs_reference"] = _tau(med, reference)
        out["ratio_percentiles"] = {str(q): round(float(v), 3)
                                    for q, v in zip((0, 10, 50, 90, 100), np.percentile(med / reference, [0, 10, 50, 90, 100]))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="mobilenet-fmnist")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probes", type=int, default=35, help="networks whose times are compared")
    parser.add_argument("--others", type=int, default=None, help="networks timed with them at once (default: the build's fit size)")
    parser.add_argument("--rounds", type=int, default=7, help="the build's interleaved rounds")
    parser.add_argument("--ref-rounds", type=int, default=100, help="validate's rounds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    command = "python benchmarks/latency_context.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    space = get_space(args.space)
    others_n = fit_sample_size(space) if args.others is None else args.others
    probes = sample_archs(space, args.probes, random.Random(f"probes-{args.seed}"))
    others = sample_archs(space, others_n, random.Random(f"others-{args.seed}"), exclude=set(map(space.format, probes)))
    net = space.net
    x = torch.randn(args.batch_size, net.in_channels, net.image_size, net.image_size)
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = {}
    with torch.inference_mode():
        def callables(archs):
            return [(lambda m=m: m(x)) for m in (build_standalone(space, a).eval() for a in archs)]

        def timed(name, fns, reference, **kw):
            t0 = time.perf_counter()
            timings = time_interleaved(fns, **kw)[:args.probes]
            rows[name] = summary(timings, reference, time.perf_counter() - t0)
            print(name, json.dumps(rows[name]), flush=True)
            return np.array([t["median_ms"] for t in timings])

        fns = callables(probes)
        reference = timed("reference", fns, None, warmup=10, rounds=args.ref_rounds, seed=args.seed)
        timed("group", fns, reference, warmup=2, rounds=args.rounds, seed=args.seed + 1)
        more = callables(others)
        timed("all at once", fns + more, reference, warmup=2, rounds=args.rounds, seed=args.seed + 2)
        del more
        gc.collect()
        timed("group again", fns, reference, warmup=2, rounds=args.rounds, seed=args.seed + 4)
        timed("reference again", fns, reference, warmup=10, rounds=args.ref_rounds, seed=args.seed + 3)
    wall = time.perf_counter() - started
    result = {"command": command, "space": args.space, "batch_size": args.batch_size, "backend": "eager", "threads": 1,
              "probes": args.probes, "others": others_n, "rounds": args.rounds, "ref_rounds": args.ref_rounds,
              "wall_s": round(wall, 1), "settings": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency_context.json").write_text(json.dumps(result, indent=2) + "\n")
    names = {"reference": f"among themselves, {args.ref_rounds} rounds (as the benchmark validates)",
             "group": f"among themselves, {args.rounds} rounds (the build, in groups)",
             "all at once": f"among {others_n} more, {args.rounds} rounds (the build before groups)",
             "group again": f"among themselves, {args.rounds} rounds, after the setting above",
             "reference again": f"among themselves, {args.ref_rounds} rounds, again at the end"}
    md = ["# Does the number of networks timed together change their times?", "",
          f"Command: `{command.strip()}` ({wall:.0f} s). {args.probes} random {args.space} networks, eager PyTorch, "
          f"batch {args.batch_size}, one thread, timed in interleaved rounds in {len(rows)} settings, in this order. tau: Kendall tau of their "
          "median times against the first setting's; ratio: their median time over the first setting's (10th / 50th / "
          "90th percentile, and the largest); retest tau: the even against the odd rounds of the same timing.", "",
          "| setting | tau vs reference | ratio p10 / p50 / p90 (max) | retest tau | median ms |",
          "| --- | ---: | --- | ---: | ---: |"]
    for name, row in rows.items():
        r = row.get("ratio_percentiles")
        ratio = f"{r['10']:.3f} / {r['50']:.3f} / {r['90']:.3f} ({r['100']:.3f})" if r else "-"
        tau = f"{row['tau_vs_reference']:.3f}" if "tau_vs_reference" in row else "-"
        md.append(f"| {names[name]} | {tau} | {ratio} | {row['retest_tau']:.3f} | {row['median_ms']:.2f} |")
    (args.out / "latency_context.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
