"""Does gap correction make a better search? Predictor-guided search on the NAS-Bench-201 table.

The 12-epoch accuracy (``cifar10_valid_acc_12ep``) plays the supernet score: free to
query for every cell. A budget counts queries of the real target
(``cifar10_valid_acc``, 200 epochs), as in the searcher benchmark. With a budget B:

1. query K anchors (spread over proxy and FLOPs ranks, seeded) for their target;
2. fit the gap-correcting predictor on (architecture features, proxy) -> target;
3. rank every cell by the prediction and query the top B - K not yet queried;
4. report ``cifar10_test_acc`` of the queried cell with the best target value.

The proxy-only baseline skips 1-2 and queries the top B cells by proxy. 30 seeds.

Usage: .venv/bin/python benchmarks/guided_search_nb201.py [--seeds 30] [--anchors 20]
Writes benchmarks/results/guided_search_nb201.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evonas.scorers.tables import SHARED_NB201, load_table  # noqa: E402
from predictors import ArchEncoder, build_predictor, spread_anchors  # noqa: E402
from search_spaces import get_space  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUDGETS = (5, 10, 20, 30, 50, 100, 200)


def guided(X, proxy, flops, target, test, budget: int, k: int, seed: int, pi: int, ci: int) -> float:
    anchors = spread_anchors(k, proxy=proxy, flops=flops, seed=seed)
    model = build_predictor("gap", proxy_index=pi, cost_index=ci, random_state=seed).fit(X[anchors], target[anchors])
    pred = model.predict(X)
    pred[anchors] = -np.inf
    queried = list(anchors) + list(np.argsort(-pred, kind="stable")[: budget - k])
    best = max(queried, key=lambda i: target[i])
    return float(test[best])


def proxy_only(proxy, target, test, budget: int) -> float:
    queried = np.argsort(-proxy, kind="stable")[:budget]
    return float(test[max(queried, key=lambda i: target[i])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(SHARED_NB201 / "nb201.csv"))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--anchors", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    space = get_space("nb201")
    table = load_table(args.table, space)
    proxy = table.column("cifar10_valid_acc_12ep")
    target = table.column("cifar10_valid_acc")
    test = table.column("cifar10_test_acc")
    flops = np.array([space.cost(a).flops for a in table.archs], dtype=float)
    enc = ArchEncoder(space, extra_names=("proxy",))
    X = enc.transform(table.archs, extra={"proxy": proxy})
    pi, ci = enc.index_of("proxy"), enc.index_of("log_flops")
    rows = {}
    for budget in BUDGETS:
        k = min(args.anchors, budget // 2)  # at least half the budget goes to anchors' successors
        g = [guided(X, proxy, flops, target, test, budget, k, s, pi, ci) for s in range(args.seeds)]
        rows[budget] = {
            "anchors": k,
            "guided_mean": float(np.mean(g)),
            "guided_std": float(np.std(g, ddof=1)),
            "guided_optimum_found": int(sum(abs(v - test.max()) < 1e-9 for v in g)),
            "proxy_only": proxy_only(proxy, target, test, budget),
        }
        print(budget, rows[budget], flush=True)
    out = {"seeds": args.seeds, "anchors": args.anchors, "optimum": float(test.max()), "budgets": rows, "seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "guided_search_nb201.json").write_text(json.dumps(out, indent=2) + "\n")
    ref_rea = {50: "93.85 ± 0.34", 100: "94.19 ± 0.26", 200: "94.33 ± 0.09"}  # plain REA on this table, from the issue
    lines = [
        "# Predictor-guided search on NAS-Bench-201 (CIFAR-10)",
        "",
        f"Command: `.venv/bin/python benchmarks/guided_search_nb201.py --seeds {args.seeds} --anchors {args.anchors}` ({out['seconds']} s).",
        "",
        "The 12-epoch accuracy stands in for a supernet score (free for every cell); a budget counts queries of the "
        f"200-epoch `cifar10_valid_acc`. Guided: min({args.anchors}, budget/2) anchors spread over proxy and FLOPs ranks, the `gap` "
        "predictor fitted on them, then the top-predicted cells queried until the budget is spent; reported is "
        "`cifar10_test_acc` of the queried cell with the best validation accuracy, mean ± std over seeds.",
        "",
        "| budget | anchors | guided by the gap predictor | optimum found (of runs) | proxy alone (top-B by 12-epoch accuracy) | plain REA on this table (100 seeds, from the issue) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for b in BUDGETS:
        r = rows[b]
        lines.append(f"| {b} | {r['anchors']} | {r['guided_mean']:.2f} ± {r['guided_std']:.2f} | {r['guided_optimum_found']} / {args.seeds} | {r['proxy_only']:.2f} | {ref_rea.get(b, '-')} |")
    lines += ["", f"Optimum of the table: {test.max():.2f}. The proxy-alone column is deterministic (one value). "
              "Read this with care: once a cheap score exists for every cell, NAS-Bench-201 is easy — the top 50 cells by "
              "12-epoch accuracy already contain the optimum, so from 50 queries on, neither REA's numbers nor ours measure "
              "the predictor; the small budgets do. REA gets no free proxy, so the comparison with it is not like for like. "
              "At the smallest budgets the guided search is worse than the proxy alone: its anchors are spread over the "
              "whole range, which improves the overall ranking (tau, see predictor_nb201.md) but spends queries far from "
              "the top. "
              "The guided search assumes what a supernet gives: a cheap score for every candidate; on spaces too large "
              "to rank exhaustively, `evonas search --scorer predictor` does step 3 by evolution."]
    (RESULTS / "guided_search_nb201.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
