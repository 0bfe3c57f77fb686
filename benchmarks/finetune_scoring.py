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
gain over plain scoring per supernet, and the scoring time per architecture
(ratios within one run).

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

from gap_truth import PROTOCOL, load_truth, read_jsonl, truth_archs  # noqa: E402

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


def analyse(args) -> None:
    from predictors import kendall_tau

    rows = read_jsonl(RECORDS)
    out: dict = {"commands": [f"{PY} score --threads 1 --runs {R}/uniform-s0,{R}/uniform-3x-s0",
                              f"{PY} score --threads 1 --runs {R}/uniform-s1,{R}/uniform-3x-s1",
                              f"{PY} score --threads 1 --runs runs/bench-mobilenet/e12-s0 --steps 0,50", f"{PY} analyse"], "records": str(RECORDS.relative_to(ROOT)),
                 "scoring": {"recalib_images": SCORING[0], "val_images": "all"}, "supernets": {}}
    by: dict = {}
    for r in rows:
        by.setdefault((r["space"], r["run"]), {}).setdefault((r["steps"], r["lr"]), {})[r["arch"]] = r
    gains: dict = {}
    for (space, run), settings in sorted(by.items()):
        truth = load_truth(space)
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
            if plain is not None and steps:
                common = sorted(a for a in archs if a in plain)
                base = kendall_tau(np.array([both[a] for a in common]), np.array([plain[a]["accuracy"] for a in common]))
                row["gain_vs_plain"] = round(tau - base, 3)
                row["time_vs_plain"] = round(row["seconds_per_arch"] / float(np.median([plain[a]["seconds"] for a in common])), 2)
                gains.setdefault((space, steps, lr), []).append(tau - base)
            entry[f"{steps}@{lr:g}"] = row
        out["supernets"][f"{space}/{run}"] = entry
    out["mean_gain"] = {f"{sp} {s}@{lr:g}": {"mean": round(float(np.mean(g)), 3), "min": round(float(np.min(g)), 3),
                                        "max": round(float(np.max(g)), 3), "supernets": len(g)}
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
        "scoring of the same supernet; time = median seconds per architecture relative to plain scoring, in the same run.",
        "",
        "| supernet | steps | lr | archs | tau | gain vs plain | time vs plain | median acc % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, entry in out["supernets"].items():
        for row in entry.values():
            lines.append(f"| {name} | {row['steps']} | {row['lr']:g} | {row['archs']} | {row['kendall_tau']:.3f} | "
                         f"{row.get('gain_vs_plain', 0):+.3f} | {row.get('time_vs_plain', 1.0):.2f}x | {row['median_accuracy']:.2f} |")
    lines += ["", "| space, steps @ lr | mean gain | min | max | supernets |", "| --- | ---: | ---: | ---: | ---: |"]
    for key, g in out["mean_gain"].items():
        lines.append(f"| {key} | {g['mean']:+.3f} | {g['min']:+.3f} | {g['max']:+.3f} | {g['supernets']} |")
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
    args = ap.parse_args()
    score(args) if args.phase == "score" else analyse(args)


if __name__ == "__main__":
    main()
