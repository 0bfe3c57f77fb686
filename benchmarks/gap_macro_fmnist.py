"""A real optimization-gap measurement on macro-fmnist (and a smaller one on mobilenet-fmnist).

Phase ``collect`` (CPU-heavy, resumable): train a supernet, pick architectures
uniformly at random (canonical, distinct), score each with the supernet (with and
without BN recalibration), and train each stand-alone with a short schedule; a
subset is trained again with a second seed. Every result is appended to
``benchmarks/results/gap_<space>_records.jsonl`` as it finishes, so a killed
collection resumes where it stopped.

Phase ``analyse`` (seconds): Kendall tau against stand-alone accuracy of the
supernet score, FLOPs, and the gap-correcting predictor fitted on K anchors
(random subsets, evaluated on the remaining architectures), plus the seed-to-seed
ceiling. Writes ``gap_<space>.json`` and ``gap_<space>.md``.

Usage:
  .venv/bin/python benchmarks/gap_macro_fmnist.py collect --space macro-fmnist --archs 40 --twice 20
  .venv/bin/python benchmarks/gap_macro_fmnist.py analyse --space macro-fmnist
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


def records_path(space: str) -> Path:
    return RESULTS / f"gap_{space}_records.jsonl"


def load_records(space: str) -> list[dict]:
    path = records_path(space)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(space: str, record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(records_path(space), "a") as fh:
        fh.write(json.dumps(record) + "\n")


def collect(args) -> None:
    import torch

    from evonas.run.config import TrainConfig
    from evonas.run.run import RunLayout, load_run_splits
    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.training.train import train_standalone, train_supernet
    from search_spaces import get_space

    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"gap_{args.space}_protocol.json").write_text(json.dumps({"command": " ".join(["benchmarks/gap_macro_fmnist.py", *sys.argv[1:]])}) + "\n")
    space = get_space(args.space)
    run_dir = ROOT / "runs" / f"bench-gap-{args.space}"
    cfg = TrainConfig(space=args.space, epochs=args.supernet_epochs, seed=0, train_limit=args.train_limit)
    layout = RunLayout(run_dir)
    if not layout.weights.is_file():
        train_supernet(layout, cfg, resume=layout.checkpoint.exists(), progress=True)
    done = {(r["kind"], r["arch"], r.get("seed")) for r in load_records(args.space)}
    rng = random.Random(args.seed)
    archs, seen = [], set()
    while len(archs) < args.archs:
        arch = space.canonical(space.sample(rng))
        if str(arch) not in seen:
            seen.add(str(arch))
            archs.append(arch)
    for recal in (True, False):
        ev = SupernetEvaluator.from_run(run_dir, recalibrate=recal)
        kind = "supernet" if recal else "supernet_no_recal"
        for arch in archs:
            if (kind, str(arch), None) in done:
                continue
            m = ev.evaluate(arch)
            cost = space.cost(arch)
            append(args.space, {"kind": kind, "arch": str(arch), "accuracy": m["accuracy"], "flops": cost.flops, "params": cost.params})
        del ev
    splits = load_run_splits(cfg)
    jobs = [(a, 0) for a in archs] + [(a, 1) for a in archs[: args.twice]]
    for i, (arch, seed) in enumerate(jobs):
        if ("standalone", str(arch), seed) in done:
            continue
        t = time.perf_counter()
        m = train_standalone(arch, cfg.replace(epochs=args.anchor_epochs, seed=seed), splits, progress=False)
        append(args.space, {"kind": "standalone", "arch": str(arch), "seed": seed, "epochs": args.anchor_epochs, "accuracy": m["accuracy"], "seconds": m["seconds"]})
        print(f"[{i + 1}/{len(jobs)}] {arch} seed {seed}: {m['accuracy']:.2f}% in {time.perf_counter() - t:.0f}s", flush=True)


def analyse(args) -> None:
    import numpy as np
    from scipy.stats import kendalltau

    records = load_records(args.space)
    sup = {r["arch"]: r["accuracy"] for r in records if r["kind"] == "supernet"}
    raw = {r["arch"]: r["accuracy"] for r in records if r["kind"] == "supernet_no_recal"}
    flops = {r["arch"]: r["flops"] for r in records if r["kind"] == "supernet"}
    seeds: dict[str, dict[int, float]] = {}
    for r in records:
        if r["kind"] == "standalone":
            seeds.setdefault(r["arch"], {})[r["seed"]] = r["accuracy"]
    archs = [a for a in sup if 0 in seeds.get(a, {})]
    truth0 = np.array([seeds[a][0] for a in archs])

    def tau(x, y) -> float:
        return float(kendalltau(x, y).statistic)

    out = {"space": args.space, "archs": len(archs)}
    out["tau_supernet_recal"] = tau([sup[a] for a in archs], truth0)
    out["tau_supernet_no_recal"] = tau([raw[a] for a in archs], truth0)
    out["tau_flops"] = tau([flops[a] for a in archs], truth0)
    twice = [a for a in archs if 1 in seeds[a]]
    if len(twice) >= 5:
        s0 = np.array([seeds[a][0] for a in twice])
        s1 = np.array([seeds[a][1] for a in twice])
        out["twice"] = len(twice)
        out["tau_seed_to_seed"] = tau(s0, s1)
        out["tau_supernet_vs_two_seed_mean"] = tau([sup[a] for a in twice], (s0 + s1) / 2)
        out["tau_flops_vs_two_seed_mean"] = tau([flops[a] for a in twice], (s0 + s1) / 2)
    out["predictor"] = predictor_curve(args, archs, sup, flops, truth0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"gap_{args.space}.json").write_text(json.dumps(out, indent=2) + "\n")
    write_markdown(args, out, records)
    print(json.dumps(out, indent=2))


def predictor_curve(args, archs, sup, flops, truth) -> list[dict]:
    """Tau on held-out architectures of predictors fitted on K random anchors (supernet score as a feature)."""
    import numpy as np
    from scipy.stats import kendalltau

    from predictors import ArchEncoder, build_predictor
    from search_spaces import get_space

    space = get_space(args.space)
    enc = ArchEncoder(space, extra_names=("supernet_score",))
    proxy = np.array([sup[a] for a in archs])
    X = enc.transform([space.parse(a) for a in archs], extra={"supernet_score": proxy})
    pi, ci = enc.index_of("supernet_score"), enc.index_of("log_flops")
    rows = []
    for k in (8, 16, 32):
        if k > len(archs) - 5:
            continue
        taus: dict[str, list[float]] = {name: [] for name in PREDICTORS}
        proxy_taus = []
        for rep in range(args.repeats):
            idx = np.random.default_rng(rep).permutation(len(archs))
            train, test = idx[:k], idx[k:]
            proxy_taus.append(kendalltau(proxy[test], truth[test]).statistic)
            for name in PREDICTORS:
                model = build_predictor(name, proxy_index=pi, cost_index=ci, random_state=rep).fit(X[train], truth[train])
                taus[name].append(kendalltau(model.predict(X[test]), truth[test]).statistic)
        row = {"anchors": k, "held_out": len(archs) - k, "repeats": args.repeats, "tau_supernet_same_split": float(np.mean(proxy_taus))}
        for name, values in taus.items():
            row[f"tau_{name}"] = float(np.mean(values))
            row[f"tau_{name}_std"] = float(np.std(values))
        rows.append(row)
    return rows


PREDICTORS = ("gap", "gap_residual", "xgb", "linear")


def write_markdown(args, out, records) -> None:
    secs = [r["seconds"] for r in records if r["kind"] == "standalone"]
    sup_acc = [r["accuracy"] for r in records if r["kind"] == "supernet"]
    alone_acc = [r["accuracy"] for r in records if r["kind"] == "standalone"]
    proto = RESULTS / f"gap_{args.space}_protocol.json"
    protocol = json.loads(proto.read_text())["command"] if proto.is_file() else f"benchmarks/gap_macro_fmnist.py collect --space {args.space}"
    lines = [
        f"# Optimization gap on {args.space}",
        "",
        f"Commands: `.venv/bin/python {protocol}` (collect), then "
        f"`.venv/bin/python benchmarks/gap_macro_fmnist.py analyse --space {args.space} --repeats {args.repeats}`.",
        f"Records (one line per measurement): `benchmarks/results/gap_{args.space}_records.jsonl`.",
        f"{out['archs']} architectures drawn uniformly (canonical, distinct); stand-alone training "
        f"{records[-1].get('epochs', '?') if records else '?'} epochs each"
        + (f", {sum(secs) / len(secs):.0f} s per training on average" if secs else "") + ".",
        f"Supernet accuracy (BN recalibrated) ranges {min(sup_acc):.1f}-{max(sup_acc):.1f}%, stand-alone accuracy {min(alone_acc):.1f}-{max(alone_acc):.1f}%.",
        "",
        "| estimator | Kendall tau vs stand-alone accuracy |",
        "| --- | --- |",
        f"| supernet, BN recalibrated | {out['tau_supernet_recal']:.3f} |",
        f"| supernet, no recalibration | {out['tau_supernet_no_recal']:.3f} |",
        f"| FLOPs alone | {out['tau_flops']:.3f} |",
    ]
    if "tau_seed_to_seed" in out:
        lines += [
            f"| stand-alone seed 0 vs seed 1 ({out['twice']} archs): the noise ceiling | {out['tau_seed_to_seed']:.3f} |",
            f"| supernet vs two-seed mean ({out['twice']} archs) | {out['tau_supernet_vs_two_seed_mean']:.3f} |",
            f"| FLOPs vs two-seed mean ({out['twice']} archs) | {out['tau_flops_vs_two_seed_mean']:.3f} |",
        ]
    if out["predictor"]:
        lines += ["", "Predictors fitted on K random anchors (architecture one-hot, counts, log FLOPs/params and the supernet score), "
                  "Kendall tau on the remaining architectures, mean ± std over repeats; seed-0 stand-alone accuracy as truth:", "",
                  "| K | supernet alone (same held-out sets) | " + " | ".join(PREDICTORS) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in PREDICTORS) + " |"]
        for r in out["predictor"]:
            cells = " | ".join(f"{r['tau_' + n]:.3f} ± {r['tau_' + n + '_std']:.3f}" for n in PREDICTORS)
            lines.append(f"| {r['anchors']} | {r['tau_supernet_same_split']:.3f} | {cells} |")
    (RESULTS / f"gap_{args.space}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=["collect", "analyse"])
    ap.add_argument("--space", default="macro-fmnist")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--twice", type=int, default=20, help="how many architectures get a second seed")
    ap.add_argument("--supernet-epochs", type=int, default=8)
    ap.add_argument("--anchor-epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    collect(args) if args.phase == "collect" else analyse(args)


if __name__ == "__main__":
    main()
