"""Does a short fine-tune of each path before scoring rank architectures better?

Scoring with inherited weights measures a path in the state weight sharing left it
in. ``SupernetEvaluator(finetune_steps=N)`` (``evonas eval --finetune-steps N``)
first trains the path alone for N SGD steps of 128 images from those weights (the
same batches for every path, peak learning rate ``FINETUNE_LR``, cosine-decayed),
then recalibrates BN and scores it; the shared weights are restored afterwards.

For each supernet of ``--runs`` (default: the uniform macro-fmnist supernets of
``gap_strategies.py``, 6 and 18 epochs, seeds 0 and 1) every architecture of the
stand-alone truth (``gap_truth.py``) is scored with each of ``--steps``, and the
analysis reports Kendall tau against the mean of the stand-alone seeds, the paired
gain over plain scoring per supernet, the held-out tau of the gap corrector fitted on
K truth anchors (``gap_strategies.corrected_tau``, the same anchor draws for every
setting) and the scoring time per architecture (ratios within one run).

Phase ``score`` (minutes per supernet, resumable, append-only: one line per score in
``benchmarks/results/finetune_scoring_records.jsonl``); phase ``analyse`` writes
``finetune_scoring.json`` and ``.md``. Run several ``score`` processes on disjoint
``--runs`` with one thread each.

Usage::

  .venv/bin/python benchmarks/finetune_scoring.py score --threads 1
  .venv/bin/python benchmarks/finetune_scoring.py analyse
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

from gap_strategies import ANCHORS, corrected_tau  # noqa: E402
from gap_truth import PROTOCOL, complete_seeds, load_truth, read_jsonl, truth_archs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RECORDS = RESULTS / "finetune_scoring_records.jsonl"
NAME = "finetune_scoring"
SCORING = (2000, None)  # the sizes of every gap_strategies.py record: BN-recalibration images, validation images (all)
STRATEGIES = ROOT / "runs" / "bench-strategies"
DEFAULT_RUNS = ",".join(str(STRATEGIES / "macro-fmnist" / f"{n}-s{s}") for n in ("uniform", "uniform-3x") for s in (0, 1))
DEFAULT_STEPS = "0,50,100"
PY, R = ".venv/bin/python benchmarks/finetune_scoring.py", "runs/bench-strategies/macro-fmnist"  # the commands of the results


def score(args) -> None:
    import torch

    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.run import Run

    torch.set_num_threads(args.threads)
    steps_list = [int(s) for s in args.steps.split(",")]
    done = {(r["run"], r["steps"], r["lr"], r["arch"]) for r in read_jsonl(RECORDS)}
    for run_dir in args.runs.split(","):
        run = Run.open(run_dir)
        name = Path(run_dir).name
        archs = truth_archs(run.space.name, PROTOCOL[run.space.name]["archs"])
        for steps in steps_list:
            todo = [a for a in archs if (name, steps, args.lr, a) not in done]
            if not todo:
                continue
            ev = SupernetEvaluator(run, recalib_images=SCORING[0], val_images=SCORING[1], finetune_steps=steps,
                                   finetune_lr=args.lr)
            for text in todo:
                t0 = time.perf_counter()
                m = ev.evaluate(ev.space.parse(text))
                seconds = time.perf_counter() - t0
                RESULTS.mkdir(parents=True, exist_ok=True)
                with open(RECORDS, "a") as fh:
                    fh.write(json.dumps({"run": name, "space": run.space.name, "steps": steps, "lr": args.lr, "arch": text,
                                         "accuracy": m["accuracy"], "loss": m["loss"], "seconds": round(seconds, 3),
                                         "threads": args.threads}) + "\n")
            print(f"{name} {steps} steps: scored {len(todo)}", flush=True)


def corrected(space, archs: list[str], recs: dict, both: dict, draws: int, cache: dict) -> dict[str, float]:
    """Held-out tau of the gap corrector per K anchors (K <= archs - 6); the draws depend only on len(archs), so the
    same archs give paired values. ``cache`` holds each (setting, archs) once."""
    key = (id(recs), tuple(archs))
    if key not in cache:
        score, mean = np.array([recs[a]["accuracy"] for a in archs]), np.array([both[a] for a in archs])
        cache[key] = {str(k): corrected_tau(space, archs, score, mean, k, draws) for k in ANCHORS if k <= len(archs) - 6}
    return cache[key]


def analyse(args) -> None:
    from predictors import kendall_tau
    from search_spaces import get_space

    rows = read_jsonl(RECORDS)
    out: dict = {"commands": [f"{PY} score --threads 1 --runs {R}/uniform-s0,{R}/uniform-3x-s0",
                              f"{PY} score --threads 1 --runs {R}/uniform-s1,{R}/uniform-3x-s1",
                              f"{PY} score --threads 1 --runs runs/bench-mobilenet/e12-s0 --steps 0,50", f"{PY} analyse"], "records": str(RECORDS.relative_to(ROOT)),
                 "scoring": {"recalib_images": SCORING[0], "val_images": "all"}, "supernets": {}}
    by: dict = {}
    for r in rows:
        by.setdefault((r["space"], r["run"]), {}).setdefault((r["steps"], r["lr"]), {})[r["arch"]] = r
    gains: dict = {}
    corrected_gains: dict = {}
    cache: dict = {}
    for (space, run), settings in sorted(by.items()):
        truth, search_space = complete_seeds(load_truth(space)), get_space(space)
        both = {a: float(np.mean(list(v.values()))) for a, v in truth.items() if len(v) >= 2}
        plain = next((v for (s, _), v in settings.items() if s == 0), None)  # plain scoring does not depend on the lr
        entry = {}
        for (steps, lr), recs in sorted(settings.items()):
            archs = sorted(a for a in recs if a in both)
            if len(archs) < 10:
                continue
            tau = kendall_tau(np.array([both[a] for a in archs]), np.array([recs[a]["accuracy"] for a in archs]))
            row = {"steps": steps, "lr": lr, "archs": len(archs), "kendall_tau": round(tau, 3),
                   "seconds_per_arch": round(float(np.median([recs[a]["seconds"] for a in archs])), 2),
                   "median_accuracy": round(float(np.median([recs[a]["accuracy"] for a in archs])), 2)}
            row["corrected"] = {k: round(t, 3) for k, t in corrected(search_space, archs, recs, both, args.draws, cache).items()}
            if plain is not None and steps:
                common = sorted(a for a in archs if a in plain)
                base = kendall_tau(np.array([both[a] for a in common]), np.array([plain[a]["accuracy"] for a in common]))
                row["gain_vs_plain"] = round(tau - base, 3)
                row["time_vs_plain"] = round(row["seconds_per_arch"] / float(np.median([plain[a]["seconds"] for a in common])), 2)
                gains.setdefault((space, steps, lr), []).append(tau - base)
                corr = corrected(search_space, common, recs, both, args.draws, cache)  # paired: same archs, same draws
                base_corr = corrected(search_space, common, plain, both, args.draws, cache)
                row["corrected_gain_vs_plain"] = {k: round(corr[k] - base_corr[k], 3) for k in corr if k in base_corr}
                if "16" in row["corrected_gain_vs_plain"]:
                    corrected_gains.setdefault((space, steps, lr), []).append(corr["16"] - base_corr["16"])
            entry[f"{steps}@{lr:g}"] = row
        out["supernets"][f"{space}/{run}"] = entry

    def summary(g: list[float]) -> dict:
        return {"mean": round(float(np.mean(g)), 3), "min": round(float(np.min(g)), 3), "max": round(float(np.max(g)), 3)}

    out["mean_gain"] = {f"{sp} {s}@{lr:g}": {**summary(g), "supernets": len(g),
                                            **({"corrected_16": summary(corrected_gains[(sp, s, lr)])}
                                               if (sp, s, lr) in corrected_gains else {})}
                        for (sp, s, lr), g in sorted(gains.items())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Fine-tuning each path before scoring it",
        "",
        "Commands: " + ", ".join(f"`{c}`" for c in out["commands"]) + " (the first two at once, one thread each). Every path is trained alone for "
        "N SGD steps of 128 images from its inherited weights (the same batches for every path, cosine-decayed "
        "learning rate), BN-recalibrated on 2,000 images and scored on all 10,000 validation images. Kendall tau "
        "against the mean of the stand-alone seeds of the truth (`gap_truth.py`); gain = paired difference to plain "
        "scoring of the same supernet; time = median seconds per architecture relative to plain scoring, in the same run. "
        "Corrected K = held-out tau of the supernet-anchored gap corrector `fit-predictor` chooses, fitted on K random "
        f"truth architectures as anchors and scored on the rest, mean over {args.draws} draws (the same draws for every "
        "setting of a supernet, so the corrected gain is paired; K <= archs - 6).",
        "",
        "| supernet | steps | lr | archs | tau | gain vs plain | time vs plain | median acc % | "
        + " | ".join(f"corrected K={k}" for k in ANCHORS) + " |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in ANCHORS) + " |",
    ]
    for name, entry in out["supernets"].items():
        for row in entry.values():
            lines.append(f"| {name} | {row['steps']} | {row['lr']:g} | {row['archs']} | {row['kendall_tau']:.3f} | "
                         f"{row.get('gain_vs_plain', 0):+.3f} | {row.get('time_vs_plain', 1.0):.2f}x | {row['median_accuracy']:.2f} | "
                         + " | ".join(f"{row['corrected'][str(k)]:.3f}" if str(k) in row["corrected"] else "-" for k in ANCHORS) + " |")
    lines += ["", "| space, steps @ lr | mean gain | min | max | supernets | mean corrected gain K=16 | min | max |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, g in out["mean_gain"].items():
        c = g.get("corrected_16")
        lines.append(f"| {key} | {g['mean']:+.3f} | {g['min']:+.3f} | {g['max']:+.3f} | {g['supernets']} | "
                     + (f"{c['mean']:+.3f} | {c['min']:+.3f} | {c['max']:+.3f} |" if c else "- | - | - |"))
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    from evonas.run.config import FINETUNE_LR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=["score", "analyse"])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help="comma list of supernet run directories")
    ap.add_argument("--steps", default=DEFAULT_STEPS, help="fine-tuning steps to compare (0: plain scoring)")
    ap.add_argument("--lr", type=float, default=FINETUNE_LR, help="peak learning rate of the fine-tuning")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--draws", type=int, default=20, help="random anchor sets per K for the corrected tau (analyse)")
    args = ap.parse_args()
    score(args) if args.phase == "score" else analyse(args)


if __name__ == "__main__":
    main()
