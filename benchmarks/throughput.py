"""Throughput: supernet training against a plain PyTorch loop, and scoring rate, per device.

For each space, one fixed sub-network is trained two ways on the same batches, with the
same data path (uint8 images normalised on the device) and precision:

* ``supernet``: evonas's training loop (``evonas.training.loop.train_epoch``) stepping
  the supernet on that one path (``model(x, arch)``), as a strategy step does;
* ``plain``: the same sub-network extracted as an ordinary module, trained by a
  minimal loop (forward, cross-entropy, backward, SGD step).

``ratio`` = supernet images/s over plain images/s: what weight sharing and evonas's
loop cost beyond the network itself (target >= 0.9). ``scoring_subnets_per_min`` is the
rate of ``evonas eval`` on a one-epoch supernet of the space (BN recalibration and
validation at the space's default sizes).

Spaces: ``macro-fmnist`` and ``example`` (examples/my_model.py, the README's model, on
Fashion-MNIST).

    .venv/bin/python benchmarks/throughput.py                       # CPU
    .venv/bin/python benchmarks/throughput.py --device cuda --precision bf16

Writes benchmarks/results/throughput.json (``{"devices": {DEVICE: {SPACE: {...}}}}``,
one entry per device, kept across runs) and throughput.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import evonas  # noqa: E402,F401  (installs the resolver of PATH.py:FACTORY spaces)
from evonas.data import Normalizer, batches, load_splits  # noqa: E402
from evonas.device import autocast, check_precision, device_name, grad_scaler, resolve_device  # noqa: E402
from evonas.run.config import TrainConfig  # noqa: E402
from evonas.spaces import resolve_space  # noqa: E402
from evonas.supernet import build_supernet  # noqa: E402
from evonas.training.loop import StepResult, make_optimizer, supervised_step, train_epoch  # noqa: E402
from search_spaces import get_space  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
EXAMPLE = f"{ROOT / 'examples' / 'my_model.py'}:build"


def space_of(name: str):
    if name == "example":
        return resolve_space(EXAMPLE, {"in_channels": 1, "num_classes": 10, "image_size": 28})
    return get_space(name)


def config_of(space, args) -> TrainConfig:
    kwargs = {"space_kwargs": space.kwargs} if hasattr(space, "kwargs") else {}
    return TrainConfig(space=space.name, dataset="fmnist", batch_size=args.batch_size, epochs=1, lr=0.05,
                       precision=args.precision, **kwargs)


def fixed_arch(space, seed: int):
    """The path both loops train: a seeded sample whose FLOPs are near the space's median."""
    rng = random.Random(seed)
    archs = sorted((space.sample(rng) for _ in range(101)), key=lambda a: space.cost(a).flops)
    return archs[50]


def time_supernet(space, arch, splits, cfg, device, steps: int) -> float:
    """Images per second of evonas's loop on the supernet, one fixed path (after one warm-up epoch)."""
    torch.manual_seed(0)
    model = build_supernet(space, cfg).to(device).train()
    norm = Normalizer(splits.mean, splits.std)
    opt, sched = make_optimizer(model, cfg, 10 * steps)
    step = lambda x, y: supervised_step(lambda xb: model(xb, arch), x, y, cfg)  # noqa: E731
    train_epoch(step, splits, cfg, 0, norm, opt, sched, "warm-up", False, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    stats = train_epoch(step, splits, cfg, 1, norm, opt, sched, "timed", False, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return stats["images_seen"] / (time.perf_counter() - t0)


def time_plain(space, arch, splits, cfg, device, steps: int) -> float:
    """Images per second of a minimal PyTorch loop on the same sub-network, batches and precision."""
    torch.manual_seed(0)
    module = build_supernet(space, cfg).extract(arch).to(device).train()
    norm = Normalizer(splits.mean, splits.std)
    opt = torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                          weight_decay=cfg.weight_decay)
    scaler = grad_scaler(device, cfg.precision)
    mean = norm.mean.to(device)
    std = norm.std.to(device)

    def epoch(seed: int) -> int:
        seen = 0
        for xb, yb in batches(splits.train_x, splits.train_y, cfg.batch_size, generator=torch.Generator().manual_seed(seed),
                              drop_last=True):
            x = (xb.to(device, non_blocking=True).float() - mean) / std
            y = yb.to(device, non_blocking=True)
            with autocast(device, cfg.precision):
                loss = F.cross_entropy(module(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            seen += len(yb)
        return seen

    epoch(0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    seen = epoch(1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen / (time.perf_counter() - t0)


def scoring_rate(space, args, device, archs: int) -> float:
    """Sub-networks scored per minute by `evonas eval` on a one-epoch supernet of the space."""
    from evonas.jobs.evaluate import EvalOptions, evaluate

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        settings = {"space": space.name, "dataset": "fmnist", "epochs": 1, "train_limit": 2048,
                    "precision": args.precision}
        if hasattr(space, "kwargs"):
            settings["space_kwargs"] = space.kwargs
        evonas.train(run, quiet=True, device=str(device), **settings)
        t0 = time.perf_counter()
        evaluate(run, EvalOptions(sample=archs, seed=1, quiet=True, device=str(device), precision=args.precision))
        return 60 * archs / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--spaces", default="macro-fmnist,example")
    parser.add_argument("--steps", type=int, default=60, help="SGD steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--score-archs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="alternate supernet/plain timings this many times")
    args = parser.parse_args()
    device = resolve_device(args.device)
    check_precision(args.precision, device)
    splits = load_splits("fmnist", val_size=10_000, train_limit=args.steps * args.batch_size)
    out = {}
    for name in args.spaces.split(","):
        space = space_of(name)
        cfg = config_of(space, args)
        arch = fixed_arch(space, 0)
        sup, plain = [], []
        for _ in range(args.repeats):  # alternated, so that a change of machine load hits both alike
            sup.append(time_supernet(space, arch, splits, cfg, device, args.steps))
            plain.append(time_plain(space, arch, splits, cfg, device, args.steps))
        s, p = sorted(sup)[len(sup) // 2], sorted(plain)[len(plain) // 2]
        out[name] = {"device_name": device_name(device), "precision": args.precision, "arch": str(arch),
                     "supernet_images_per_s": round(s, 1), "plain_images_per_s": round(p, 1), "ratio": round(s / p, 3),
                     "supernet_runs": [round(v, 1) for v in sup], "plain_runs": [round(v, 1) for v in plain],
                     "scoring_subnets_per_min": round(scoring_rate(space, args, device, args.score_archs), 1),
                     "batch_size": args.batch_size, "steps": args.steps}
        print(name, json.dumps(out[name]))
    path = RESULTS / "throughput.json"
    data = json.loads(path.read_text()) if path.is_file() else {"devices": {}}
    first = out[next(iter(out))]  # the headline: the first space (macro-fmnist by default); every space below
    keys = ("device_name", "supernet_images_per_s", "plain_images_per_s", "ratio", "scoring_subnets_per_min", "precision")
    data["devices"][device.type] = {**{k: first[k] for k in keys}, "space": next(iter(out)), "spaces": out,
                                    "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
                                    "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads"}
    path.write_text(json.dumps(data, indent=2) + "\n")
    lines = ["# Throughput: supernet training against a plain loop", "",
             "Written by `benchmarks/throughput.py`; each row is the median of alternated timings (the single runs "
             "are in throughput.json, with the command). `ratio` = supernet / plain images per second on the same "
             "fixed sub-network, batches and precision; the target is >= 0.9. On a shared 2-core VM single runs "
             "vary by up to a third: compare ratios within one run.", "",
             "| device | space | precision | supernet img/s | plain img/s | ratio | scoring subnets/min |",
             "|---|---|---|---|---|---|---|"]
    for dev, entry in data["devices"].items():
        for name, row in entry["spaces"].items():
            if isinstance(row, dict):
                lines.append(f"| {dev} ({row['device_name']}) | {name} | {row['precision']} | "
                             f"{row['supernet_images_per_s']} | {row['plain_images_per_s']} | {row['ratio']} | "
                             f"{row['scoring_subnets_per_min']} |")
    (RESULTS / "throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
