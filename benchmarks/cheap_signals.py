"""How well does each cheap signal rank architectures, beside the supernet's own accuracy?

For one trained supernet and the stand-alone truth of ``benchmarks/gap_truth.py``
(mean of the stand-alone seeds), this computes for every truth architecture the
BN-recalibrated supernet accuracy and loss, the zero-cost scores with inherited
weights (gradient norm, SNIP, SynFlow, NASWOT; ``evonas.evaluation.zero_cost``),
FLOPs and params, and prints Kendall tau of each against the truth (the sign of
the loss is flipped, so higher is better everywhere). Then it asks whether the
corrector gains from them: held-out tau of ``fit_gap_model`` with and without the
signals as extra features, over random anchor draws.

Writes ``benchmarks/results/cheap_signals.json`` and ``.md``.

Usage::

  .venv/bin/python benchmarks/cheap_signals.py --run runs/bench-strategies/macro-fmnist/uniform-s0 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gap_truth import complete_seeds, load_truth  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="run directory of a trained supernet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--draws", type=int, default=20, help="random anchor sets per K for the corrector comparison")
    ap.add_argument("--predictors", default="supernet_residual",
                    help="candidates of fit_gap_model beside the supernet baseline (comma list; 'all' for every one)")
    args = ap.parse_args()

    import numpy as np
    import torch
    from scipy.stats import kendalltau

    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.evaluation.zero_cost import SCORES, ZeroCostScorer
    from evonas.gap.corrector import fit_gap_model
    from evonas.run import Run

    torch.set_num_threads(args.threads)
    run = Run.open(args.run)
    space = run.space
    truth = complete_seeds(load_truth(space.name))
    archs = sorted(truth)
    mean = np.array([np.mean(list(truth[a].values())) for a in archs])
    ev = SupernetEvaluator(run, recalib_images=2000, val_images=None)  # the former defaults, as its records
    x, y = ev.splits.train_x, ev.splits.train_y
    zc = ZeroCostScorer(ev.model, space, ev.norm(x[:4096]), y[:4096], batch_size=64, n_batches=2, seed=0)
    t0 = time.perf_counter()
    cols: dict[str, list[float]] = {k: [] for k in ("supernet_accuracy", "supernet_loss", *SCORES, "flops", "params")}
    for text in archs:
        arch = space.parse(text)
        m = ev.evaluate(arch)
        cols["supernet_accuracy"].append(m["accuracy"])
        cols["supernet_loss"].append(m["loss"])
        for name, value in zc.scores(arch).items():
            cols[name].append(value)
        cost = space.cost(arch)
        cols["flops"].append(float(cost.flops))
        cols["params"].append(float(cost.params))
    seconds = time.perf_counter() - t0
    sign = {"supernet_loss": -1.0}
    taus = {k: float(kendalltau(sign.get(k, 1.0) * np.array(v), mean).statistic) for k, v in cols.items()}

    extra = {k: {a: float(v) for a, v in zip(archs, cols[k])} for k in ("supernet_loss", *SCORES)}
    pool = dict(zip(archs, cols["supernet_accuracy"]))
    names = None if args.predictors == "all" else [n.strip() for n in args.predictors.split(",")]
    corrector = {}
    for k in (8, 16, 24):
        if k > len(archs) - 6:
            continue
        row = {"supernet": [], "corrected": [], "corrected_with_signals": []}
        for d in range(args.draws):
            idx = np.random.default_rng(2000 + d).permutation(len(archs))
            train, test = idx[:k], idx[k:]
            anchors = {archs[i]: float(mean[i]) for i in train}
            test_archs = [space.parse(archs[i]) for i in test]
            test_sup = [pool[archs[i]] for i in test]
            row["supernet"].append(float(kendalltau(test_sup, mean[test]).statistic))
            plain, _ = fit_gap_model(space, anchors, pool, supernet_source="benchmark", seed=d, predictors=names)
            row["corrected"].append(float(kendalltau(plain.predict(test_archs, test_sup)["predicted"], mean[test]).statistic))
            rich, _ = fit_gap_model(space, anchors, pool, supernet_source="benchmark", seed=d, extra_features=extra,
                                    predictors=names)
            more = {name: [extra[name][archs[i]] for i in test] for name in extra}
            row["corrected_with_signals"].append(
                float(kendalltau(rich.predict(test_archs, test_sup, extra=more)["predicted"], mean[test]).statistic))
        corrector[str(k)] = {name: round(float(np.mean(v)), 4) for name, v in row.items()}

    out = {"run": str(args.run), "space": space.name, "truth_archs": len(archs), "seconds_for_signals": round(seconds, 1),
           "kendall_tau": {k: round(v, 4) for k, v in taus.items()}, "corrector_heldout_tau": corrector,
           "draws": args.draws}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cheap_signals.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# Cheap signals against stand-alone truth", "",
             f"Command: `.venv/bin/python benchmarks/cheap_signals.py --run {args.run} --threads {args.threads} "
             f"--draws {args.draws} --predictors {args.predictors}`. "
             f"Supernet: `{args.run}` ({run.config.strategy}, {run.config.epochs} epochs, seed {run.config.seed}); "
             f"truth: {len(archs)} {space.name} architectures, mean of two stand-alone seeds.", "",
             "| signal | Kendall tau vs stand-alone |", "| --- | ---: |"]
    lines += [f"| {k}{' (negated)' if k in sign else ''} | {v:.3f} |" for k, v in taus.items()]
    lines += ["", f"Held-out tau of the corrector fit_gap_model chooses, mean over {args.draws} random anchor sets:", "",
              "| K anchors | supernet | corrected | corrected with the signals |", "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {k} | {r['supernet']:.3f} | {r['corrected']:.3f} | {r['corrected_with_signals']:.3f} |" for k, r in corrector.items()]
    (RESULTS / "cheap_signals.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
