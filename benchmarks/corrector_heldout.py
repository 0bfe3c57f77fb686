"""Does the gap corrector that fit_gap_model chooses rank held-out architectures at least as well as the supernet?

Truth: ``benchmarks/results/gap_macro-fmnist_records.jsonl`` (collected by
``gap_macro_fmnist.py``): 40 macro-fmnist architectures with a BN-recalibrated
supernet score and 3-epoch stand-alone accuracy (the mean of the available seeds).
For K = 8, 16, 32 anchors and ``--draws`` random anchor sets each, every method sees
the anchors' stand-alone accuracy and the supernet score of all 40 architectures
(the pool), and is scored by Kendall tau on the 40 - K others:

* ``supernet``: the supernet score alone;
* ``chosen``: ``fit_gap_model`` end to end (held-out selection among
  ``--predictors`` plus the supernet baseline), ``GapModel.predict``;
* ``chosen_search_model``: the distilled architecture-only model the predictor
  scorer searches with (``GapModel.predict_arch_only``);
* ``supernet_residual``: the shrinkage corrector, always.

Writes ``benchmarks/results/corrector_heldout.json`` and ``.md``.

Usage:
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/corrector_heldout.py
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/corrector_heldout.py --draws 10 --predictors all
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
RECORDS = RESULTS / "gap_macro-fmnist_records.jsonl"
NAME = "corrector_heldout"
DEFAULT_PREDICTORS = "supernet_residual"
METHODS = ("supernet", "chosen", "chosen_search_model", "supernet_residual")


def load_truth(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(canonical archs, supernet score, mean stand-alone accuracy) of every arch with both."""
    supernet, standalone = {}, {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["kind"] == "supernet":
            supernet[r["arch"]] = float(r["accuracy"])
        elif r["kind"] == "standalone":
            standalone.setdefault(r["arch"], []).append(float(r["accuracy"]))
    archs = sorted(a for a in supernet if a in standalone)
    return archs, np.array([supernet[a] for a in archs]), np.array([np.mean(standalone[a]) for a in archs])


def one_draw(space, archs, score, truth, idx, predictors, n_splits, seed) -> tuple[dict[str, float], str]:
    from evonas.gap.corrector import SCORE, fit_gap_model
    from predictors import ArchEncoder, build_predictor, kendall_tau

    rest = np.setdiff1d(np.arange(len(archs)), idx)
    anchors = {archs[i]: float(truth[i]) for i in idx}
    pool = {a: float(s) for a, s in zip(archs, score)}
    gap, _ = fit_gap_model(space, anchors, pool, supernet_source="benchmark", predictors=predictors,
                           n_splits=n_splits, seed=seed)
    held = [space.parse(archs[i]) for i in rest]
    out = {
        "supernet": kendall_tau(truth[rest], score[rest]),
        "chosen": kendall_tau(truth[rest], gap.predict(held, score[rest])["predicted"]),
        "chosen_search_model": kendall_tau(truth[rest], gap.predict_arch_only(held)),
    }
    enc = ArchEncoder(space, extra_names=(SCORE,))
    X = enc.transform([space.parse(a) for a in archs], extra={SCORE: score})
    est = build_predictor("supernet_residual", proxy_index=enc.index_of(SCORE), cost_index=enc.index_of("log_flops"))
    out["supernet_residual"] = kendall_tau(truth[rest], est.fit(X[idx], truth[idx]).predict(X[rest]))
    return out, gap.best


def summarise(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = np.array(values["supernet"])
    out = {}
    for m, v in values.items():
        v = np.array(v)
        d = v - base
        out[m] = {
            "mean_tau": round(float(v.mean()), 4),
            "se": round(float(v.std(ddof=1) / np.sqrt(len(v))), 4),
            "gain_vs_supernet": round(float(d.mean()), 4),
            "gain_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4),
            "worse_than_supernet": round(float(np.mean(d < -1e-12)), 3),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="8,16,32", help="anchor counts")
    ap.add_argument("--draws", type=int, default=50, help="random anchor sets per K")
    ap.add_argument("--predictors", default=DEFAULT_PREDICTORS,
                    help="candidates for fit_gap_model besides the supernet baseline ('all': every registered one)")
    ap.add_argument("--n-splits", type=int, default=50, help="held-out splits of the anchors used for the choice")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from search_spaces import get_space

    space = get_space("macro-fmnist")
    archs, score, truth = load_truth(RECORDS)
    predictors = None if args.predictors == "all" else [p.strip() for p in args.predictors.split(",") if p.strip()]
    result = {"records": str(RECORDS.relative_to(ROOT)), "n_archs": len(archs), "draws": args.draws,
              "predictors": args.predictors, "n_splits": args.n_splits, "by_k": {}}
    t0 = time.perf_counter()
    for k in (int(x) for x in args.ks.split(",")):
        values: dict[str, list[float]] = {m: [] for m in METHODS}
        chosen: Counter = Counter()
        for d in range(args.draws):
            idx = np.sort(np.random.default_rng([args.seed, k, d]).permutation(len(archs))[:k])
            taus, best = one_draw(space, archs, score, truth, idx, predictors, args.n_splits, args.seed)
            for m in METHODS:
                values[m].append(taus[m])
            chosen[best] += 1
        result["by_k"][str(k)] = {"methods": summarise(values), "chosen": dict(chosen.most_common())}
        print(f"K={k}: " + ", ".join(f"{m} {v['mean_tau']:.3f}" for m, v in result["by_k"][str(k)]["methods"].items())
              + f"; chosen {dict(chosen)}  ({time.perf_counter() - t0:.0f}s)", flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    given = sys.argv[1:] if argv is None else list(argv)
    command = " ".join(["OMP_NUM_THREADS=1 .venv/bin/python benchmarks/corrector_heldout.py", *given])
    result["command"] = command
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Held-out ranking of the chosen gap corrector (macro-fmnist, 40 architectures)",
        "",
        f"`{command}` ({result['seconds']:.0f} s). Kendall tau against the mean stand-alone accuracy on the "
        f"40 - K architectures that are not anchors; mean over {args.draws} random anchor sets (+- standard error), "
        "gain = paired difference to the supernet score, worse = fraction of draws below it.",
        f"Candidates of fit_gap_model: `{args.predictors}` plus the `supernet` baseline; {args.n_splits} held-out splits.",
        "",
        "| K | method | tau | gain vs supernet | worse | chosen |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k, row in result["by_k"].items():
        for m, v in row["methods"].items():
            ch = ", ".join(f"{n} {c}" for n, c in row["chosen"].items()) if m == "chosen" else ""
            lines.append(f"| {k} | {m} | {v['mean_tau']:.3f} +- {v['se']:.3f} | {v['gain_vs_supernet']:+.3f} +- "
                         f"{v['gain_se']:.3f} | {v['worse_than_supernet']:.2f} | {ch} |")
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
