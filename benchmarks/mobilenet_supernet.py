"""Does the deep supernet train? Accuracy of 20 sampled paths of ``mobilenet-fmnist`` versus epoch.

Trains one supernet with the project's defaults (uniform single-path sampling,
zero-initialised residual BN, full 50,000-image split) one epoch at a time, and
after every ``--curve-every`` epochs scores the same 20 paths with the weights of
that moment (BN recalibrated on 2,000 training images, validated on the first
``--curve-val`` validation images). After the last epoch the 20 paths are scored
with ``evonas eval``'s defaults (10,000 validation images). The paths are the
first 20 architectures of the stand-alone truth protocol
(``benchmarks/gap_truth.py``: drawn uniformly with ``random.Random(0)``), so the
report shows each path's inherited-weight accuracy beside its stand-alone
accuracy wherever that training has finished.

Everything is appended to ``benchmarks/results/mobilenet_supernet_records.jsonl``
and the run lives in ``runs/bench-mobilenet/``; a killed run resumes from its last
epoch and skips every score already recorded.

Usage (one thread, in the background; then the report)::

  .venv/bin/python benchmarks/mobilenet_supernet.py train --threads 1
  .venv/bin/python benchmarks/mobilenet_supernet.py report
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gap_truth import complete_seeds, load_truth, read_jsonl, truth_archs  # noqa: E402

SPACE = "mobilenet-fmnist"
RESULTS = ROOT / "benchmarks" / "results"
RECORDS = RESULTS / "mobilenet_supernet_records.jsonl"
RUNS = ROOT / "runs" / "bench-mobilenet"
PATHS = 20
TARGET = 85.0


def read_records() -> list[dict]:
    return read_jsonl(RECORDS)


def append(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RECORDS, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _tag(args) -> str:
    return f"e{args.epochs}-s{args.seed}" + (f"-ls{args.label_smoothing:g}" if args.label_smoothing else "")


def _snapshot(layout, epoch: int):
    """A run directory holding the checkpoint's weights after ``epoch`` (what scoring opens)."""
    import shutil

    from evonas.run.checkpoint import load_checkpoint, save_checkpoint
    from evonas.run.run import RunLayout

    snap = RunLayout(layout.path / "curve" / f"epoch-{epoch:02d}")
    if not snap.weights.is_file():
        state = load_checkpoint(layout.checkpoint, kind="supernet")
        assert state["epoch"] == epoch, (state["epoch"], epoch)
        snap.path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(layout.config_file, snap.config_file)
        save_checkpoint(snap.weights, {"kind": "weights", "config": state["config"], "model": state["model"],
                                       "epoch": epoch, "phase": state.get("phase"), "images_seen": state["images_seen"]})
    return snap


def train(args) -> None:
    import torch

    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.run import Run
    from evonas.run.checkpoint import load_checkpoint
    from evonas.run.config import TrainConfig
    from evonas.run.run import RunLayout
    from evonas.training.train import train_supernet
    from search_spaces import get_space

    torch.set_num_threads(args.threads)
    space = get_space(SPACE)
    archs = truth_archs(SPACE, PATHS)
    tag = _tag(args)
    cfg = TrainConfig(space=SPACE, seed=args.seed, epochs=args.epochs, label_smoothing=args.label_smoothing)
    layout = RunLayout(RUNS / tag)
    done = {(r["epoch"], r["val_images"], r["arch"]) for r in read_records() if r["run"] == tag}

    def score(run_dir, epoch: int, val_images: int | None) -> None:
        todo = [a for a in archs if (epoch, val_images or 10000, a) not in done]
        if not todo:
            return
        t = time.perf_counter()
        ev = SupernetEvaluator(Run.open(run_dir), recalib_images=2000, val_images=val_images)  # as every record so far
        for text in todo:
            m = ev.evaluate(space.parse(text))
            append({"run": tag, "epoch": epoch, "val_images": ev.val_images, "arch": text,
                    "accuracy": m["accuracy"], "loss": m["loss"], "threads": args.threads})
        accs = [r["accuracy"] for r in read_records() if r["run"] == tag and r["epoch"] == epoch and r["val_images"] == ev.val_images]
        print(f"epoch {epoch}: median {statistics.median(accs):.2f}% of {len(accs)} paths on {ev.val_images} images "
              f"(scored in {time.perf_counter() - t:.0f}s)", flush=True)

    while not layout.weights.is_file():
        have = load_checkpoint(layout.checkpoint, kind="supernet")["epoch"] if layout.checkpoint.is_file() else 0
        if have and have % args.curve_every == 0:
            score(_snapshot(layout, have), have, args.curve_val)
        train_supernet(layout, cfg, resume=layout.checkpoint.is_file(), progress=False, stop_after=1)
        log = [json.loads(x) for x in layout.train_log.read_text().splitlines() if x.strip()]
        last = log[-1]
        print(f"epoch {last['epoch']}/{args.epochs}: train loss {last['train_loss']:.3f}, train acc {last['train_acc']:.1f}% "
              f"in {last['seconds']:.0f}s", flush=True)
    score(_snapshot(layout, args.epochs), args.epochs, args.curve_val)
    score(layout, args.epochs, None)


def report(args) -> None:
    records = [r for r in read_records() if r["run"] == _tag(args)]
    if not records:
        sys.exit(f"no records for run {_tag(args)} in {RECORDS}; run `train` first")
    truth = complete_seeds(load_truth(SPACE))
    log_path = RUNS / _tag(args) / "train_log.jsonl"
    log = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()] if log_path.is_file() else []
    train_s = sum(e["seconds"] for e in log)
    curve = {}
    for r in records:
        curve.setdefault((r["epoch"], r["val_images"]), {})[r["arch"]] = r["accuracy"]
    final = curve.get((args.epochs, 10000), {})
    lines = [
        f"# Does the deep supernet train? ({SPACE})", "",
        f"Command: `.venv/bin/python benchmarks/mobilenet_supernet.py train --threads {records[0]['threads']} --epochs {args.epochs}"
        + (f" --label-smoothing {args.label_smoothing:g}" if args.label_smoothing else "") + "`, then `report`.",
        f"One supernet, the project's defaults ({args.epochs} epochs over the 50,000-image split, seed {args.seed}); "
        f"training took {train_s / 60:.1f} min on {records[0]['threads']} thread(s) (wall time of the epochs, "
        "with other jobs running beside it); the median epoch took "
        f"{statistics.median([e['seconds'] for e in log]) if log else float('nan'):.0f} s, the slowest "
        f"{max([e['seconds'] for e in log], default=float('nan')):.0f} s (an epoch's wall time includes any pause of the job).",
        "The 20 paths are the first 20 architectures of the stand-alone truth protocol (uniformly sampled).", "",
        "## Accuracy versus epoch (BN recalibrated)", "",
        "| epoch | validation images | median % | min % | max % | train acc % | train loss |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_epoch = {e["epoch"]: e for e in log}
    for (epoch, val), accs in sorted(curve.items()):
        v = list(accs.values())
        e = by_epoch.get(epoch, {})
        lines.append(f"| {epoch} | {val} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} | "
                     f"{e.get('train_acc', float('nan')):.1f} | {e.get('train_loss', float('nan')):.3f} |")
    verdict = ""
    if len(final) == PATHS:
        med = statistics.median(final.values())
        verdict = (f"Median of the {PATHS} paths after the full schedule: **{med:.2f}%** "
                   f"(target {TARGET:.0f}%: {'met' if med >= TARGET else f'missed by {TARGET - med:.2f} points'}).")
        lines += ["", verdict]
    lines += ["", "## Each path: inherited weights beside stand-alone training", "",
              "Stand-alone: the truth protocol (2 epochs alone, mean of the seeds finished so far; `-` where none has).", "",
              "| arch | supernet % | stand-alone % | seeds |", "| --- | --- | --- | --- |"]
    pairs = []
    for a in truth_archs(SPACE, PATHS):
        seeds = truth.get(a, {})
        sa = statistics.mean(seeds.values()) if seeds else None
        sn = final.get(a)
        if sa is not None and sn is not None:
            pairs.append((sn, sa))
        lines.append(f"| {a} | {'-' if sn is None else f'{sn:.2f}'} | {'-' if sa is None else f'{sa:.2f}'} | {len(seeds)} |")
    if len(pairs) >= 5:
        from scipy.stats import kendalltau

        tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic
        lines += ["", f"Kendall tau, supernet vs stand-alone on the {len(pairs)} paths with truth so far: {tau:.3f}."]
    (RESULTS / "mobilenet_supernet.md").write_text("\n".join(lines) + "\n")
    summary = {"space": SPACE, "epochs": args.epochs, "seed": args.seed, "train_minutes": round(train_s / 60, 1),
               "curve": {f"{e}@{v}": statistics.median(a.values()) for (e, v), a in sorted(curve.items())},
               "final_median": statistics.median(final.values()) if len(final) == PATHS else None, "target": TARGET}
    (RESULTS / "mobilenet_supernet.json").write_text(json.dumps(summary, indent=1) + "\n")
    _plot(curve)
    print("\n".join(lines))


def _plot(curve) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    pts = sorted((e, statistics.median(a.values()), min(a.values()), max(a.values())) for (e, v), a in curve.items() if v != 10000)
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="median of 20 paths")
    ax.fill_between([p[0] for p in pts], [p[2] for p in pts], [p[3] for p in pts], alpha=0.25, label="min to max")
    ax.axhline(TARGET, color="gray", ls="--", lw=1, label=f"target {TARGET:.0f}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("BN-recalibrated accuracy %")
    ax.set_title(f"{SPACE} supernet")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "mobilenet_supernet.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "report"):
        p = sub.add_parser(name)
        p.add_argument("--epochs", type=int, default=12)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--label-smoothing", type=float, default=0.0)
        if name == "train":
            p.add_argument("--threads", type=int, default=1)
            p.add_argument("--curve-every", type=int, default=2)
            p.add_argument("--curve-val", type=int, default=2000)
    args = ap.parse_args()
    train(args) if args.cmd == "train" else report(args)


if __name__ == "__main__":
    main()
