"""How fast is the supernet? Training overhead of weight sharing, scoring rate, peak memory.

Questions answered (space macro-fmnist, real Fashion-MNIST, CPU):

1. Weight-sharing overhead: time per SGD step of the supernet on a sequence of
   uniformly sampled paths, versus the same paths as separate stand-alone networks
   (built beforehand, untimed) on the same batches.
2. Scoring: seconds to score one sub-network (BN recalibration on 2,000 training
   images + accuracy on the 10,000 validation images), and sub-networks per minute.
3. Peak resident memory of supernet training and of scoring (separate processes).

Usage:  .venv/bin/python benchmarks/supernet_speed.py [--steps 120] [--archs 30]
Writes benchmarks/results/supernet_speed.json and supernet_speed.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evonas.data import Normalizer, batches  # noqa: E402
from evonas.run.run import load_run_splits  # noqa: E402
from evonas.run.config import TrainConfig  # noqa: E402
from evonas.supernet import build_supernet  # noqa: E402
from evonas.supernet.chain import build_standalone  # noqa: E402
from search_spaces import get_space  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def step_times(steps: int, seed: int) -> dict:
    """Per-step seconds of the supernet and of stand-alone networks on the same paths and batches."""
    space = get_space("macro-fmnist")
    cfg = TrainConfig(space="macro-fmnist", seed=seed)
    splits = load_run_splits(cfg)
    norm = Normalizer(splits.mean, splits.std)
    rng = random.Random(seed)
    paths = [space.sample(rng) for _ in range(steps)]
    data = [(norm(x), y) for (x, y), _ in zip(batches(splits.train_x, splits.train_y, 128, generator=torch.Generator().manual_seed(seed)), range(steps))]
    torch.manual_seed(seed)
    supernet = build_supernet(space).train()
    standalone = {str(a): build_standalone(space, a).train() for a in set(paths)}

    def sgd(params):
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)

    opt_super = sgd(supernet.parameters())
    opts = {k: sgd(m.parameters()) for k, m in standalone.items()}

    def run(shared: bool) -> float:
        start = time.perf_counter()
        for arch, (x, y) in zip(paths, data):
            if shared:
                model, opt = (lambda t, a=arch: supernet(t, a)), opt_super
            else:
                model, opt = standalone[str(arch)], opts[str(arch)]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / steps

    run(True), run(False)  # warm-up: allocator, kernels
    rounds = [(run(True), run(False)) for _ in range(3)]
    shared = min(r[0] for r in rounds)
    alone = min(r[1] for r in rounds)
    return {
        "steps": steps,
        "batch_size": 128,
        "supernet_s_per_step": round(shared, 5),
        "standalone_s_per_step": round(alone, 5),
        "supernet_images_per_s": round(128 / shared, 1),
        "overhead_percent": round(100 * (shared / alone - 1), 2),
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, run_dir: str, n: int) -> None:
    """Run in a subprocess so its peak RSS is measured alone."""
    if mode == "train":
        from evonas.training.train import train_supernet

        cfg = TrainConfig(space="macro-fmnist", epochs=1, train_limit=n)
        t = time.perf_counter()
        train_supernet(Path(run_dir), cfg, progress=False)
        out = {"train_seconds": time.perf_counter() - t, "images": n}
    else:
        from evonas.evaluation.scoring import SupernetEvaluator

        ev = SupernetEvaluator.from_run(run_dir)
        space = ev.space
        rng = random.Random(1)
        archs = [space.sample(rng) for _ in range(n)]
        ev.evaluate(archs[0])  # warm-up
        times = []
        for a in archs:
            t = time.perf_counter()
            ev.evaluate(a)
            times.append(time.perf_counter() - t)
        times.sort()
        out = {
            "archs": n,
            "mean_s": sum(times) / n,
            "median_s": times[n // 2],
            "p90_s": times[int(0.9 * (n - 1))],
            "per_minute": 60 * n / sum(times),
            "recalib_images": ev.recalib_images,
            "eval_images": ev.val_images,
        }
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


def in_child(mode: str, run_dir: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, run_dir, str(n)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    torch.set_num_threads(torch.get_num_threads())
    result = {"machine": {"cpus": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "platform": platform.platform()}}
    result["weight_sharing"] = step_times(args.steps, args.seed)
    print("weight sharing:", result["weight_sharing"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result["training"] = in_child("train", tmp, 50_000)
        print("training:", result["training"], flush=True)
        result["scoring"] = in_child("score", tmp, args.archs)
        print("scoring:", result["scoring"], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "supernet_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    ws, tr, sc = result["weight_sharing"], result["training"], result["scoring"]
    md = f"""# Supernet speed (macro-fmnist, CPU)

Command: `.venv/bin/python benchmarks/supernet_speed.py --steps {args.steps} --archs {args.archs}`
Machine: {result['machine']['cpus']} CPUs, torch {result['machine']['torch']} with {result['machine']['torch_threads']} threads.

| question | result | target |
| --- | --- | --- |
| weight-sharing overhead per SGD step (batch 128, same {ws['steps']} sampled paths and batches) | supernet {1000 * ws['supernet_s_per_step']:.1f} ms vs stand-alone {1000 * ws['standalone_s_per_step']:.1f} ms: **{ws['overhead_percent']:+.1f}%** | under 10% |
| supernet training throughput | {ws['supernet_images_per_s']:.0f} images/s; one epoch of 50,000 images in {tr['train_seconds']:.0f} s | |
| time to score one sub-network ({sc['recalib_images']} recalibration + {sc['eval_images']} validation images) | mean {sc['mean_s']:.2f} s, median {sc['median_s']:.2f} s, p90 {sc['p90_s']:.2f} s | |
| sub-networks scored per minute | **{sc['per_minute']:.0f}** | 60 or better |
| peak resident memory, supernet training (one epoch, 50k images in memory) | {tr['peak_rss_mib']:.0f} MiB | |
| peak resident memory, scoring | {sc['peak_rss_mib']:.0f} MiB | |

Stand-alone networks are built before timing; each step of either kind is forward,
backward and an SGD (Nesterov) update. Best of 3 rounds after a warm-up.
"""
    (RESULTS / "supernet_speed.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
