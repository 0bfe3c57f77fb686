"""Latency-constrained search on the NAS-Bench-201 tables: how close does each searcher get to the best feasible cell?

For each device column of ``nb201_latency.csv`` (pixel3_ms, raspi4_ms by default)
the limit is a quantile of that device's latencies (default: the median). Every
registered searcher searches ``cifar10_valid_acc`` under the limit with a budget of
distinct evaluations, over several seeds, through the same search job the CLI runs;
the figure is the test accuracy (``cifar10_test_acc``) of the cell it returns,
against the test accuracy of the best feasible cell by validation accuracy (what a
perfect searcher would return) and the best feasible test accuracy. Every returned
cell is checked to meet the limit.

Usage::

  .venv/bin/python benchmarks/latency_search_nb201.py --seeds 10 --budget 100
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "benchmarks" / "nas-bench-201"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=SHARED / "nb201.csv")
    ap.add_argument("--latency-table", type=Path, default=SHARED / "nb201_latency.csv")
    ap.add_argument("--devices", default="pixel3_ms,raspi4_ms")
    ap.add_argument("--quantile", type=float, default=0.5, help="the limit: this quantile of the device's latencies")
    ap.add_argument("--searchers", default="evolution,rea,random,tpe,nsga2,optuna-nsga2,optuna-random")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()

    import numpy as np

    from evonas.jobs.search import SearchOptions, search
    from evonas.scorers.tables import load_table
    from search_spaces import get_space

    space = get_space("nb201")
    table = load_table(args.table, space)
    table.join(args.latency_table)
    val, test = table.column("cifar10_valid_acc"), table.column("cifar10_test_acc")
    out = {"budget": args.budget, "seeds": args.seeds, "quantile": args.quantile, "devices": {}}
    lines = ["# Latency-constrained search on NAS-Bench-201", "",
             f"Command: `.venv/bin/python benchmarks/latency_search_nb201.py --seeds {args.seeds} --budget {args.budget} "
             f"--quantile {args.quantile}`. Search target cifar10_valid_acc, reported cifar10_test_acc of the cell "
             f"returned (mean ± std over seeds); the limit is the {args.quantile:.0%} quantile of the device's latencies.", ""]
    for device in args.devices.split(","):
        lat = table.column(device)
        limit = float(np.nanquantile(lat, args.quantile))
        ok = np.flatnonzero(~np.isnan(lat) & (lat <= limit) & ~np.isnan(val))
        oracle = ok[np.nanargmax(val[ok])]
        entry = {"limit_ms": limit, "feasible_cells": int(len(ok)), "oracle_test_acc": float(test[oracle]),
                 "best_feasible_test_acc": float(np.nanmax(test[ok])), "searchers": {}}
        for name in args.searchers.split(","):
            found, worst = [], 0.0
            for seed in range(args.seeds):
                res = search(None, SearchOptions(space="nb201", table=str(args.table), target="cifar10_valid_acc",
                                                 report="cifar10_test_acc", latency_table=str(args.latency_table),
                                                 latency_column=device, max_latency_ms=limit, algo=name,
                                                 budget=args.budget, seed=seed, quiet=True)).to_dict()
                best = res["best"]
                worst = max(worst, float(best["latency_ms"]) / limit)
                found.append(float(best["report"]))
            entry["searchers"][name] = {"test_acc_mean": float(np.mean(found)), "test_acc_std": float(np.std(found)),
                                        "worst_latency_over_limit": worst}
        out["devices"][device] = entry
        lines += [f"## {device}: limit {limit:.4g} ms ({len(ok):,} feasible cells)", "",
                  f"Best feasible cell by validation accuracy: test {entry['oracle_test_acc']:.2f}%; best feasible test "
                  f"accuracy {entry['best_feasible_test_acc']:.2f}%.", "",
                  "| searcher | test acc of the cell found | gap to the oracle | worst latency / limit |",
                  "| --- | ---: | ---: | ---: |"]
        for name, r in entry["searchers"].items():
            lines.append(f"| {name} | {r['test_acc_mean']:.2f} ± {r['test_acc_std']:.2f} | "
                         f"{r['test_acc_mean'] - entry['oracle_test_acc']:+.2f} | {r['worst_latency_over_limit']:.3f} |")
        lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency_search_nb201.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "latency_search_nb201.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
