"""Stand-alone truth for the gap head-to-head: every architecture trained alone, two seeds or more.

This is the slow half of ``benchmarks/gap_strategies.py`` (hours of CPU), kept in
its own script so it can run in the background, be killed at any point, and
continue where it stopped: each finished training is appended as one JSON line to
``benchmarks/results/truth_<space>.jsonl`` and never recomputed.

Protocol (one per space, fixed so that records from several sessions pool):
the architectures are drawn uniformly with ``random.Random(0)``, canonical and
distinct; each is trained from PyTorch's default initialisation with the project's
stand-alone recipe (SGD Nesterov, lr 0.1, cosine per step, batch 128, weight decay
1e-4) on the full 50,000-image training split (split seed 0) and scored on the
10,000 validation images. Seeds 0 and 1 of one architecture run back to back, so a
partial collection always holds complete pairs.

On ``macro-fmnist`` the first 40 architectures and their 3-epoch trainings are the
ones of ``gap_macro-fmnist_records.jsonl`` (same protocol); they are read from there
and not trained again.

Usage (one thread, in the background)::

  .venv/bin/python benchmarks/gap_truth.py --space macro-fmnist --threads 1
  .venv/bin/python benchmarks/gap_truth.py --space mobilenet-fmnist --threads 1
  # two processes sharing the work, one core each
  .venv/bin/python benchmarks/gap_truth.py --space mobilenet-fmnist --threads 1 --shard 0/2 &
  .venv/bin/python benchmarks/gap_truth.py --space mobilenet-fmnist --threads 1 --shard 1/2 &
  # the stratified deep-space truth (issue 24): 32 architectures over the cost range, 8 epochs, on a GPU
  for i in $(seq 0 15); do python benchmarks/gap_truth.py --space mobilenet-fmnist-strat --shard $i/16 --device cuda & done
  # short labels for benchmarks/multi_fidelity.py: one seed, one epoch
  .venv/bin/python benchmarks/gap_truth.py --space macro-fmnist --threads 1 --epochs 1 --seeds 1
  # a third seed on a GPU, 20 processes sharing it (each record then says "device": "cuda")
  for i in $(seq 0 19); do python benchmarks/gap_truth.py --seeds 3 --shard $i/20 --device cuda & done

Same protocol on a GPU: the network, initialisation, schedule, data split and order
are the same; only the arithmetic differs, as between two CPUs. The analyses average
the seeds every architecture has, so a seed still being collected waits until it is
complete.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"

# truth name -> architectures, seeds each, stand-alone epochs; "space" when the name is not the space's, and
# "draw": "stratified" for architectures spread over the cost range (stratified_archs) instead of uniform samples
PROTOCOL = {
    "macro-fmnist": {"archs": 40, "seeds": 2, "epochs": 3},
    "mobilenet-fmnist": {"archs": 30, "seeds": 2, "epochs": 2},
    # uniform samples of mobilenet-fmnist all land mid-range (30 within half a point, seed-to-seed tau 0.15):
    # this truth spans FLOPs and skipped layers, and trains longer, so that two seeds can agree
    "mobilenet-fmnist-strat": {"space": "mobilenet-fmnist", "archs": 32, "seeds": 2, "epochs": 8,
                               "draw": "stratified"},
}
STRATA = (4, 4)  # stratified draw: FLOPs quartiles x skipped-layer quartiles of a large uniform pool
POOL = 20_000  # the pool the strata are cut from
LEGACY = {"macro-fmnist": RESULTS / "gap_macro-fmnist_records.jsonl"}


def truth_path(space: str, results: Path = RESULTS) -> Path:
    return results / f"truth_{space}.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: the training is simply redone
                continue
    return out


def space_of(truth: str) -> str:
    """The search space a truth's architectures belong to."""
    return PROTOCOL.get(truth, {}).get("space", truth)


def stratified_archs(space, n: int, strata: tuple[int, int] = STRATA, pool: int = POOL) -> list[str]:
    """``n`` distinct canonical architectures spread over FLOPs and the number of skipped layers.

    The pool (``pool`` draws, ``Random(0)``) covers every depth: each draw picks a skip
    rate q uniform in [0, 1], then every layer that may be skipped is skipped with
    probability q and otherwise takes one of its other ops uniformly. The pool is cut
    into FLOPs quantile bins times skipped-layer quantile bins, and the architectures
    are taken one per non-empty cell in turn (cells in a fixed order, each cell's
    members in a ``Random(1)`` shuffle) until ``n`` are chosen, so the extremes of the
    cost range are as present as its middle.
    """
    import numpy as np

    from search_spaces import Arch

    rng = random.Random(0)
    seen: dict[str, tuple[float, int]] = {}
    for _ in range(pool):
        q = rng.random()
        codes = []
        for dim in space.dims:
            skip = [c for c in dim.options if space.ops[c].is_identity]
            other = [c for c in dim.options if not space.ops[c].is_identity]
            codes.append(skip[0] if skip and rng.random() < q else rng.choice(other))
        arch = space.canonical(Arch(space.name, tuple(codes)))
        text = str(arch)
        if text not in seen:
            skips = sum(1 for code in arch.choices if space.ops[code].is_identity)
            seen[text] = (float(space.cost(arch).flops), skips)
    texts = sorted(seen)
    flops = np.array([seen[t][0] for t in texts])
    skips = np.array([seen[t][1] for t in texts], float)

    def bins(values, k):
        edges = np.quantile(values, np.linspace(0, 1, k + 1)[1:-1])
        return np.searchsorted(edges, values, side="right")

    cell = bins(flops, strata[0]) * strata[1] + bins(skips, strata[1])
    members = {c: [t for t, ci in zip(texts, cell) if ci == c] for c in sorted(set(cell.tolist()))}
    shuffle = random.Random(1)
    for group in members.values():
        shuffle.shuffle(group)
    chosen: list[str] = []
    while len(chosen) < n and any(members.values()):
        for group in members.values():
            if group and len(chosen) < n:
                chosen.append(group.pop())
    return chosen


def truth_archs(space_name: str, n: int) -> list[str]:
    """The protocol's architecture list (canonical, distinct): drawn with Random(0), or stratified."""
    from search_spaces import get_space

    space = get_space(space_of(space_name))
    if PROTOCOL.get(space_name, {}).get("draw") == "stratified":
        return stratified_archs(space, n)
    rng = random.Random(0)
    archs: list[str] = []
    while len(archs) < n:
        text = str(space.canonical(space.sample(rng)))
        if text not in archs:
            archs.append(text)
    return archs


def load_truth(space: str, results: Path = RESULTS, epochs: int | None = None) -> dict[str, dict[int, float]]:
    """arch -> {seed: stand-alone accuracy} for every finished training of the protocol.

    ``epochs``: another schedule's trainings (``--epochs``), e.g. the short labels of
    ``multi_fidelity.py``; default: the protocol's, the truth.
    """
    epochs = PROTOCOL[space]["epochs"] if epochs is None else epochs
    rows = [r for r in read_jsonl(truth_path(space, results)) if r.get("epochs") == epochs]
    legacy = LEGACY.get(space)
    if legacy is not None:
        rows += [r for r in read_jsonl(legacy) if r.get("kind") == "standalone" and r.get("epochs") == epochs]
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        out.setdefault(r["arch"], {})[int(r["seed"])] = float(r["accuracy"])
    return out


def complete_seeds(truth: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """``truth`` (of :func:`load_truth`) with every architecture of two seeds or more cut to the seeds they all have.

    A seed still being collected (on some architectures only) waits until it is
    complete, so every mean averages the same seeds; architectures with a single seed
    are left out.
    """
    kept = {a: s for a, s in truth.items() if len(s) >= 2}
    if not kept:
        return {}
    common = set.intersection(*(set(s) for s in kept.values()))
    if len(common) < 2:
        raise ValueError(f"the truth's architectures share {len(common)} seed(s) ({sorted(common)}); every mean needs "
                         "two: finish the collection (gap_truth.py) before analysing")
    return {a: {seed: acc for seed, acc in s.items() if seed in common} for a, s in kept.items()}


def collect(space_name: str, *, threads: int, results: Path, limit_archs: int | None,
            seeds: int | None = None, shard: tuple[int, int] = (0, 1), epochs: int | None = None,
            device: str = "cpu") -> None:
    import torch

    from evonas.run.config import TrainConfig
    from evonas.run.run import load_run_splits
    from evonas.training.train import train_standalone

    torch.set_num_threads(threads)
    proto = PROTOCOL[space_name]
    archs = truth_archs(space_name, limit_archs or proto["archs"])
    epochs = epochs or proto["epochs"]
    cfg = TrainConfig(space=space_of(space_name), epochs=epochs, seed=0)
    splits = load_run_splits(cfg)  # split seed 0 for every training
    n_seeds = seeds or proto["seeds"]
    index, count = shard
    done = load_truth(space_name, results, epochs)
    jobs = [(a, s) for i, a in enumerate(archs) if i % count == index
            for s in range(n_seeds) if s not in done.get(a, {})]
    print(f"{space_name}: {len(archs)} architectures x {n_seeds} seeds x {epochs} epochs (shard {index}/{count}), "
          f"{len(jobs)} trainings to go", flush=True)
    from search_spaces import get_space

    space = get_space(space_of(space_name))
    results.mkdir(parents=True, exist_ok=True)
    for i, (text, seed) in enumerate(jobs):
        t = time.perf_counter()
        m = train_standalone(space.parse(text), cfg.replace(seed=seed), splits, progress=False, device=device)
        record = {"arch": text, "seed": seed, "epochs": epochs, "train_images": len(splits.train_x),
                  "accuracy": m["accuracy"], "loss": m.get("loss"), "seconds": m["seconds"], "threads": threads,
                  **({} if device == "cpu" else {"device": device})}
        with open(truth_path(space_name, results), "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(f"[{i + 1}/{len(jobs)}] {text} seed {seed}: {m['accuracy']:.2f}% in {time.perf_counter() - t:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=sorted(PROTOCOL), default="macro-fmnist",
                    help="the truth to collect: a space's name, or mobilenet-fmnist-strat (stratified over costs)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--archs", type=int, default=None, help="only the first N architectures (quick checks)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of truth_<space>.jsonl")
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds per architecture (default: the protocol's; more seeds tighten the ceiling)")
    ap.add_argument("--shard", default="0/1", metavar="I/N",
                    help="train only architectures whose index is I modulo N, so N processes share the work")
    ap.add_argument("--epochs", type=int, default=None,
                    help="another schedule than the protocol's (kept apart from the truth by its epochs field), "
                         "e.g. 1 for the short labels of multi_fidelity.py")
    ap.add_argument("--device", default="cpu", help="where to train (cpu, cuda); each record says so when not cpu")
    args = ap.parse_args()
    if args.epochs is not None and args.epochs < 1:
        ap.error(f"--epochs {args.epochs}: expected at least 1")
    try:
        index, count = (int(x) for x in args.shard.split("/"))
        if not 0 <= index < count:
            raise ValueError
    except ValueError:
        ap.error(f"--shard {args.shard!r}: expected I/N with 0 <= I < N, e.g. 0/2")
    if args.seeds is not None and args.seeds < 1:
        ap.error(f"--seeds {args.seeds}: expected at least 1")
    collect(args.space, threads=args.threads, results=args.results, limit_archs=args.archs,
            seeds=args.seeds, shard=(index, count), epochs=args.epochs, device=args.device)


if __name__ == "__main__":
    main()
