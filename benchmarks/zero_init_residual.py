"""Does zero-initialising the residual blocks' last BN help a deep supernet train?

Trains the supernet of ``--space`` (default mobilenet-fmnist, 16 layers) twice with
the same seed, data and schedule, once with ``zero_init_residual`` off and once on,
and scores the same ``--paths`` uniformly sampled paths of each with BN
recalibration (SupernetEvaluator: 2,000 recalibration images, ``--val-images``
validation images). One thread.

Usage:  .venv/bin/python benchmarks/zero_init_residual.py [--train-limit 5000] [--epochs 2] [--paths 5]
Writes benchmarks/results/zero_init_residual.json and zero_init_residual.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evonas.evaluation.scoring import SupernetEvaluator  # noqa: E402
from evonas.run.config import TrainConfig  # noqa: E402
from evonas.run.run import Run, RunLayout  # noqa: E402
from evonas.training.train import train_supernet  # noqa: E402
from search_spaces import get_space  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def measure(cfg: TrainConfig, archs: list, val_images: int) -> dict:
    """Train ``cfg``'s supernet in a temporary run and score ``archs``."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_supernet(Path(tmp), cfg, progress=False)
        train_s = time.perf_counter() - t0
        log = [json.loads(line) for line in RunLayout(tmp).train_log.read_text().splitlines()]
        ev = SupernetEvaluator(Run.open(tmp), recalib_images=2000, val_images=val_images, seed=cfg.seed)
        acc = [ev.evaluate(a)["accuracy"] for a in archs]
    return {
        "zero_init_residual": cfg.zero_init_residual,
        "train_seconds": round(train_s, 1),
        "final_train_loss": round(log[-1]["train_loss"], 4),
        "final_train_acc": round(log[-1]["train_acc"], 2),
        "accuracy": [round(a, 2) for a in acc],
        "mean_accuracy": round(statistics.mean(acc), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobilenet-fmnist")
    ap.add_argument("--train-limit", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--paths", type=int, default=5)
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = get_space(args.space)
    rng = random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.paths)]
    base = TrainConfig(space=args.space, train_limit=args.train_limit, epochs=args.epochs, seed=args.seed)
    rows = [measure(base.replace(zero_init_residual=z), archs, args.val_images) for z in (False, True)]
    result = {"command": " ".join(["benchmarks/zero_init_residual.py", *sys.argv[1:]]), "config": base.to_dict(),
              "archs": [str(a) for a in archs], "val_images": args.val_images, "runs": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zero_init_residual.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Zero-init of residual blocks in the supernet",
        "",
        f"`.venv/bin/python {result['command']}` (one thread): {args.space}, {args.train_limit} training images, "
        f"{args.epochs} epochs, {args.paths} uniformly sampled paths, BN-recalibrated accuracy on {args.val_images} "
        "validation images.",
        "",
        "| zero_init_residual | mean accuracy % | per path | final train loss | train s |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {r['zero_init_residual']} | {r['mean_accuracy']:.2f} | {', '.join(f'{a:.1f}' for a in r['accuracy'])} | "
          f"{r['final_train_loss']:.3f} | {r['train_seconds']:.0f} |" for r in rows),
    ]
    (RESULTS / "zero_init_residual.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
