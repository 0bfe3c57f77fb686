"""Multi-fidelity anchors against held-out truth: do a few long trainings beat many short ones?

``evonas fit-predictor --long-anchors M --long-epochs E`` trains all K anchors with
the short schedule and M of them again with the long one, then fits the corrector
on the long scale (``evonas.gap.fidelity``). This benchmark asks whether that buys
a better ranking of architectures the corrector never saw than spending the same
stand-alone training on short anchors only, or on long anchors only.

Data (``macro-fmnist``, the 40 architectures of ``gap_truth.py``, nothing trained here):

* target: the 3-epoch stand-alone accuracy, mean over its seeds (the truth);
* long label of an anchor: its 3-epoch accuracy of seed 0 alone (what one long
  training gives);
* short label: its 1-epoch accuracy, seed 0 (``gap_truth.py --epochs 1 --seeds 1``);
* supernet score: the default-recipe supernets ``uniform-s0`` and ``uniform-s1`` of
  ``gap_strategies.py`` (zero-initialised residual BNs), BN-recalibrated scores as
  that benchmark recorded them (``results/gap_strategies_records.jsonl``).

For each training budget B (in epochs of stand-alone training: a short anchor costs
1, a long one 3) and each of ``--draws`` random orders of the 40 architectures, on
both supernets:

* ``supernet``: the supernet score alone;
* ``short``: B anchors with 1-epoch labels (today's single-fidelity fit);
* ``long``: B/3 anchors with 3-epoch labels;
* ``mixed``: B/2 anchors trained short, B/6 of them (chosen as fit-predictor
  chooses them) also long: half the budget on each fidelity.

Every method runs ``fit_gap_model`` end to end (held-out selection, the supernet
baseline kept unless beaten) and is scored by Kendall tau against the truth on the
same held-out architectures: the 40 - B that no method of that budget used as an
anchor. Gains are paired differences to the supernet on the same draw.

Usage::

  .venv/bin/python benchmarks/gap_truth.py --space macro-fmnist --threads 1 --epochs 1 --seeds 1
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multi_fidelity.py
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from corrector_heldout import summarise  # noqa: E402  (paired gains over the supernet, the same table)
from gap_truth import PROTOCOL, complete_seeds, load_truth, read_jsonl, truth_archs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
NAME = "multi_fidelity"
SPACE = "macro-fmnist"
SHORT_EPOCHS = 1
SUPERNETS = ("uniform-s0", "uniform-s1")
METHODS = ("supernet", "short", "long", "mixed")


def supernet_scores(archs: list[str]) -> dict[str, np.ndarray]:
    """supernet name -> BN-recalibrated scores of ``archs``, as gap_strategies.py recorded them."""
    out: dict[str, dict[str, float]] = {}
    for row in read_jsonl(RESULTS / "gap_strategies_records.jsonl"):
        name = f"{row['strategy']}-s{row['seed']}"
        if row.get("space") == SPACE and name in SUPERNETS:
            out.setdefault(name, {})[row["arch"]] = float(row["accuracy"])
    missing = [n for n in SUPERNETS if not all(a in out.get(n, {}) for a in archs)]
    if missing:
        raise SystemExit(f"no scores of {missing} for the {len(archs)} architectures in gap_strategies_records.jsonl; "
                         f"run benchmarks/gap_strategies.py supernets --space {SPACE} and analyse first")
    return {n: np.array([out[n][a] for a in archs]) for n in SUPERNETS}


def fit_and_rank(space, archs, score, anchors: dict[str, float], held: np.ndarray, truth: np.ndarray, *,
                 fidelities=None, predictors, n_splits: int, seed: int) -> tuple[float, str]:
    """Kendall tau on ``held`` of the model fit_gap_model chooses from ``anchors``, and its name."""
    from evonas.gap.corrector import fit_gap_model
    from predictors import kendall_tau

    pool = {a: float(s) for a, s in zip(archs, score)}
    gap, _ = fit_gap_model(space, anchors, pool, supernet_source="benchmark", predictors=predictors,
                           n_splits=n_splits, seed=seed, fidelities=fidelities)
    pred = gap.predict([space.parse(archs[i]) for i in held], score[held])["predicted"]
    return float(kendall_tau(truth[held], pred)), gap.best


def one_draw(space, archs, score, truth, short, long, order: np.ndarray, budget: int, *, predictors, n_splits,
             seed) -> tuple[dict[str, float], dict[str, str]]:
    from evonas.gap.fidelity import Fidelities, choose_long_anchors
    from predictors import kendall_tau

    held = np.sort(order[budget:])
    taus, best = {"supernet": float(kendall_tau(truth[held], score[held]))}, {}
    kw = dict(predictors=predictors, n_splits=n_splits, seed=seed)
    short_idx = order[:budget]
    taus["short"], best["short"] = fit_and_rank(space, archs, score, {archs[i]: short[i] for i in short_idx}, held,
                                                truth, **kw)
    long_idx = order[:budget // 3]
    taus["long"], best["long"] = fit_and_rank(space, archs, score, {archs[i]: long[i] for i in long_idx}, held,
                                              truth, **kw)
    k, m = budget // 2, budget // 6
    mixed = {archs[i]: short[i] for i in order[:k]}
    chosen = choose_long_anchors(mixed, {a: float(s) for a, s in zip(archs, score)}, m, seed=seed)
    by_arch = dict(zip(archs, long))
    fid = Fidelities(short=mixed, long={a: by_arch[a] for a in chosen}, short_epochs=SHORT_EPOCHS,
                     long_epochs=PROTOCOL[SPACE]["epochs"])
    taus["mixed"], best["mixed"] = fit_and_rank(space, archs, score, fid.labels(), held, truth, fidelities=fid, **kw)
    return taus, best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="12,24", help="stand-alone training budgets in epochs (multiples of 6)")
    ap.add_argument("--draws", type=int, default=20, help="random anchor orders per budget and supernet")
    ap.add_argument("--predictors", default="supernet_residual",
                    help="candidates of fit_gap_model besides the supernet baseline ('all': every registered one)")
    ap.add_argument("--n-splits", type=int, default=50, help="held-out splits of the anchors used for the choice")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        budgets = [int(b) for b in args.budgets.split(",")]
        if not budgets or any(b < 6 or b % 6 for b in budgets):
            raise ValueError
    except ValueError:
        ap.error(f"--budgets {args.budgets!r}: expected multiples of 6 (e.g. 12,24), so that a third and a sixth "
                 "of the budget are whole anchors")
    if max(budgets) > 40 - 5:
        ap.error(f"--budgets {args.budgets!r}: at most 35, so that 5 of the 40 architectures stay held out")
    if args.draws < 2:
        ap.error(f"--draws {args.draws}: expected at least 2 (the standard errors need two)")

    from search_spaces import get_space

    space = get_space(SPACE)
    archs = truth_archs(SPACE, PROTOCOL[SPACE]["archs"])
    records = complete_seeds(load_truth(SPACE))
    short_rec = load_truth(SPACE, epochs=SHORT_EPOCHS)
    lacking = [a for a in archs if a not in records or 0 not in records[a] or 0 not in short_rec.get(a, {})]
    if lacking:
        raise SystemExit(f"{len(lacking)} of the {len(archs)} architectures lack a 3-epoch seed-0 or a 1-epoch "
                         f"label (e.g. {lacking[0]}); run: .venv/bin/python benchmarks/gap_truth.py --space {SPACE} "
                         "--threads 1 --epochs 1 --seeds 1")
    truth = np.array([np.mean(list(records[a].values())) for a in archs])
    long = np.array([records[a][0] for a in archs])
    short = np.array([short_rec[a][0] for a in archs])
    scores = supernet_scores(archs)
    predictors = None if args.predictors == "all" else [p.strip() for p in args.predictors.split(",") if p.strip()]
    from predictors import kendall_tau

    result = {"space": SPACE, "archs": len(archs), "draws": args.draws,
              "predictors": args.predictors, "n_splits": args.n_splits,
              "seeds_per_truth": round(float(np.mean([len(records[a]) for a in archs])), 2),
              "short_vs_truth_tau": round(float(kendall_tau(truth, short)), 4),
              "long_vs_truth_tau": round(float(kendall_tau(truth, long)), 4),
              "supernet_vs_truth_tau": {n: round(float(kendall_tau(truth, s)), 4) for n, s in scores.items()},
              "by_budget": {}}
    t0 = time.perf_counter()
    for budget in budgets:
        values: dict[str, list[float]] = {m: [] for m in METHODS}
        chosen: dict[str, dict[str, int]] = {m: {} for m in METHODS[1:]}
        for name, score in scores.items():
            for d in range(args.draws):
                order = np.random.default_rng([args.seed, budget, d]).permutation(len(archs))
                taus, best = one_draw(space, archs, score, truth, short, long, order, budget,
                                      predictors=predictors, n_splits=args.n_splits, seed=args.seed)
                for m in METHODS:
                    values[m].append(taus[m])
                for m, b in best.items():
                    chosen[m][b] = chosen[m].get(b, 0) + 1
            print(f"B={budget} {name}: " + ", ".join(f"{m} {np.mean(v[-args.draws:]):.3f}" for m, v in values.items())
                  + f"  ({time.perf_counter() - t0:.0f}s)", flush=True)
        result["by_budget"][str(budget)] = {"held_out": len(archs) - budget, "methods": summarise(values),
                                            "chosen": chosen,
                                            "anchors": {"short": f"{budget} x {SHORT_EPOCHS} epoch",
                                                        "long": f"{budget // 3} x 3 epochs",
                                                        "mixed": f"{budget // 2} x {SHORT_EPOCHS} epoch, "
                                                                 f"{budget // 6} of them also 3 epochs"}}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    given = sys.argv[1:] if argv is None else list(argv)
    result["command"] = " ".join(["OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multi_fidelity.py", *given])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(report(result))
    print(report(result))


def report(r: dict) -> str:
    lines = [
        f"# Multi-fidelity anchors against held-out truth ({r['space']}, {r['archs']} architectures)",
        "",
        f"`{r['command']}` ({r['seconds']:.0f} s). Target: 3-epoch stand-alone accuracy, mean of "
        f"{r['seeds_per_truth']} seeds on average. Kendall tau against it, over the whole set: 1-epoch label "
        f"(one seed) {r['short_vs_truth_tau']:.3f}, 3-epoch label of seed 0 alone {r['long_vs_truth_tau']:.3f}, "
        "supernets " + ", ".join(f"{n} {t:.3f}" for n, t in r["supernet_vs_truth_tau"].items())
        + " (gap_strategies.py's uniform supernets, BN-recalibrated).",
        "",
        f"Per budget (epochs of stand-alone training), tau on the architectures no method of that budget used as an "
        f"anchor; mean over {r['draws']} random anchor orders on each of the two supernets (+- standard error); gain: "
        f"paired difference to the supernet; worse: share of draws below it. Candidates of fit_gap_model: "
        f"`{r['predictors']}` and the supernet baseline.",
        "",
        "| budget | held out | method | anchors | tau | gain vs supernet | worse | chosen |",
        "| ---: | ---: | --- | --- | --- | --- | ---: | --- |",
    ]
    for b, row in r["by_budget"].items():
        for m, v in row["methods"].items():
            ch = ", ".join(f"{n} {c}" for n, c in sorted(row["chosen"].get(m, {}).items(), key=lambda x: -x[1]))
            lines.append(f"| {b} | {row['held_out']} | {m} | {row['anchors'].get(m, '')} | {v['mean_tau']:.3f} +- "
                         f"{v['se']:.3f} | {v['gain_vs_supernet']:+.3f} +- {v['gain_se']:.3f} | "
                         f"{v['worse_than_supernet']:.2f} | {ch} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
