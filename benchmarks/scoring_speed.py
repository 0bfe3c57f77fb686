"""Faster supernet scoring at equal fidelity: BN-recalibration and validation set sizes.

Question: scoring one sub-network recalibrates BN on ``recalib_images`` training
images and validates on ``val_images`` validation images (2,000 and 10,000 today).
How few of each keep the ranking of the 40 stand-alone-trained architectures of
``benchmarks/gap_truth.py`` (Kendall tau against the mean over seeds), and how much
faster is ``evonas eval`` then?

Protocol, for each trained macro-fmnist supernet (``uniform-s0`` and ``uniform-s1`` of
``runs/bench-strategies``, not retrained):

1. Fidelity grid. For each recalibration size R, every architecture is recalibrated
   on the first R images of the evaluator's fixed, seeded recalibration subset (the
   subsets are nested, as the evaluator draws them) and classifies the validation
   split once; its accuracy on the first V validation images (a random sample: the
   split is a seeded permutation) is read off that one pass. Kendall tau of those
   accuracies against the stand-alone truth is reported for every (R, V). Sizes that
   can give no 2x speed-up (V = 10,000 with R < 2,000) are not evaluated.
2. Choice. The cheapest (R, V) by a per-image cost model measured in step 1 whose tau
   is within ``TOLERANCE`` of today's defaults on *both* supernets and whose
   predicted speed-up is at least 2x; none qualifying keeps today's defaults.
3. Wall time of the user's path: the ``evonas eval`` job (``evonas.jobs.evaluate``:
   load the run, recalibrate, score every architecture) over the 40 architectures, at
   today's defaults and at the chosen setting, alternated in one process so load
   from other jobs on the machine hits both alike; reported as ratios.

``--deep-check`` asks whether the chosen setting also holds on the deep space, which the
choice above never saw: the default-schedule ``mobilenet-fmnist`` supernet
(``runs/bench-mobilenet/e12-s0``) scores the 30 architectures of its stand-alone truth
at today's defaults and at the chosen setting (same nested subsets as the grid; both
recalibration sizes crossed with both validation sizes, so that the report shows which of
the two costs fidelity, and today's sizes once more with another draw of the
recalibration images: how far two equally good scorings disagree); the report gives each setting's median accuracy, the mean absolute change per
architecture, and Kendall tau against whatever truth is finished (``gap_truth.py
--space mobilenet-fmnist``). Written to ``results/scoring_speed_mobilenet.{json,md}``;
the per-architecture accuracies are kept, so the tau is recomputed with ``--deep-check
--reuse-grid`` when more truth arrives, without scoring again.

With ``--supernets all`` the grid covers every finished macro-fmnist supernet of
``runs/bench-strategies`` (ten: five strategies, two seeds each). Tau on 40
architectures moves by 0.02-0.05 between neighbouring sizes by chance, so with four
supernets or more a setting qualifies when its *mean* drop over the supernets is within
``TOLERANCE`` (the table also shows its standard error and the worst single drop);
with fewer, every supernet must be within it. Each supernet's grid is appended to
``results/scoring_speed_grids.jsonl`` when it finishes, so a killed run continues
where it stopped.

One torch thread throughout. Usage::

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scoring_speed.py --deep-check

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scoring_speed.py
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scoring_speed.py --supernets all --recalib 250,500,1000,2000
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

import torch  # noqa: E402

from gap_truth import complete_seeds, load_truth, truth_archs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "bench-strategies" / "macro-fmnist"
SUPERNETS = ("uniform-s0", "uniform-s1")
SPACE = "macro-fmnist"
N_ARCHS = 40
TODAY = (2000, 10000)  # (recalibration images, validation images) before this benchmark
RECALIB = (250, 500, 1000, 2000)
VAL = (1000, 2500, 5000, 10000)
MAX_VAL_BELOW_TODAY_R = 5000  # with R < 2000, V = 10000 cannot be 2x faster: not evaluated
TOLERANCE = 0.01  # tau may drop at most this much below today's, on each supernet
MIN_SPEEDUP = 2.0
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scoring_speed.py"
GRIDS = RESULTS / "scoring_speed_grids.jsonl"
MEAN_RULE_MIN_SUPERNETS = 4  # from this many supernets on, the mean drop decides (see the docstring)


def finished_supernets() -> list[str]:
    """Every run under RUNS whose training finished (it wrote supernet.pt), by name."""
    return sorted(p.parent.name for p in RUNS.glob("*/supernet.pt"))


def kendall_tau(a: list[float], b: list[float]) -> float:
    from predictors.metrics import kendall_tau as tau

    return float(tau(a, b))


@torch.inference_mode()
def correct_per_image(ev, arch, n: int) -> torch.Tensor:
    """Boolean (n,): whether ``arch`` (recalibrated already) classifies each of the first n images right."""
    out = []
    for i in range(0, n, ev.batch_size):
        xb, yb = ev.x[i:min(i + ev.batch_size, n)], ev.y[i:min(i + ev.batch_size, n)]
        out.append(ev.model(xb, arch).argmax(1) == yb)  # (B,)
    return torch.cat(out)


def fidelity_grid(run_dir: Path, archs: list[str], truth: list[float], recalib: tuple[int, ...] = RECALIB) -> dict:
    """tau[(R, V)] against the truth, plus per-image timings for the cost model."""
    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.run.run import Run

    run = Run.open(run_dir)
    cells: dict[str, dict] = {}
    recal_s: dict[int, float] = {}
    eval_s_per_image: list[float] = []
    for r in recalib:
        ev = SupernetEvaluator(run, recalib_images=r, val_images=None)  # the whole split, cut below
        n = max(VAL) if r == TODAY[0] else MAX_VAL_BELOW_TODAY_R
        accs = {v: [] for v in VAL if v <= n}
        t_recal = t_eval = 0.0
        for text in archs:
            arch = ev.canonical(ev.space.parse(text))
            t0 = time.perf_counter()
            ev.prepare(arch)
            t1 = time.perf_counter()
            hits = correct_per_image(ev, arch, n)
            t2 = time.perf_counter()
            t_recal += t1 - t0
            t_eval += t2 - t1
            for v in accs:
                accs[v].append(100.0 * hits[:v].float().mean().item())
        recal_s[r] = t_recal / len(archs)
        eval_s_per_image.append(t_eval / len(archs) / n)
        for v, values in accs.items():
            cells[f"{r}/{v}"] = {"recalib_images": r, "val_images": v, "tau": kendall_tau(values, truth),
                                 "accuracy": values}
        print(f"  R={r}: recalibration {recal_s[r]:.3f} s/arch, evaluation {t_eval / len(archs):.3f} s/arch "
              f"({n} images); tau " + ", ".join(f"V={v} {cells[f'{r}/{v}']['tau']:.3f}" for v in accs), flush=True)
    # pooled per-image rates (load from other jobs varies between the passes): cost = a * R + b * V
    per_image = sum(eval_s_per_image) / len(eval_s_per_image)
    recal_per_image = sum(recal_s.values()) / sum(recal_s)
    for cell in cells.values():
        cell["model_s"] = recal_per_image * cell["recalib_images"] + per_image * cell["val_images"]
    return {"cells": cells, "recalib_s": recal_s, "recalib_s_per_image": recal_per_image, "eval_s_per_image": per_image}


def grids_from_results(path: Path) -> dict[str, dict]:
    """The fidelity grids of an earlier run's JSON (``--reuse-grid``), cost model recomputed."""
    saved = json.loads(path.read_text())["per_supernet"]
    grids = {}
    for name, g in saved.items():
        recal_s = {int(r): t for r, t in g["recalib_s"].items()}
        recal_per_image = sum(recal_s.values()) / sum(recal_s)
        cells = {}
        for key, tau in g["tau"].items():
            r, v = (int(x) for x in key.split("/"))
            cells[key] = {"recalib_images": r, "val_images": v, "tau": tau,
                          "model_s": recal_per_image * r + g["eval_s_per_image"] * v}
        grids[name] = {"cells": cells, "recalib_s": recal_s, "recalib_s_per_image": recal_per_image,
                       "eval_s_per_image": g["eval_s_per_image"]}
    return grids


def saved_grids(archs: list[str]) -> dict[str, dict]:
    """Grids appended to GRIDS by earlier runs over the same architectures (the last one per supernet wins)."""
    from gap_truth import read_jsonl

    grids = {}
    for row in read_jsonl(GRIDS):
        if row.get("archs") != archs:
            continue
        recal_s = {int(r): t for r, t in row["recalib_s"].items()}
        cells = {k: {"recalib_images": int(k.split("/")[0]), "val_images": int(k.split("/")[1]), "tau": c["tau"],
                     "accuracy": c.get("accuracy"),
                     "model_s": row["recalib_s_per_image"] * int(k.split("/")[0])
                     + row["eval_s_per_image"] * int(k.split("/")[1])} for k, c in row["cells"].items()}
        grids[row["supernet"]] = {"cells": cells, "recalib_s": recal_s, "recalib_s_per_image": row["recalib_s_per_image"],
                                  "eval_s_per_image": row["eval_s_per_image"]}
    return grids


def append_grid(name: str, archs: list[str], grid: dict) -> None:
    row = {"supernet": name, "archs": archs, "recalib_s": grid["recalib_s"],
           "recalib_s_per_image": grid["recalib_s_per_image"], "eval_s_per_image": grid["eval_s_per_image"],
           "cells": {k: {"tau": c["tau"], "accuracy": c.get("accuracy")} for k, c in grid["cells"].items()}}
    GRIDS.parent.mkdir(parents=True, exist_ok=True)
    with open(GRIDS, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def choose(grids: dict[str, dict]) -> tuple[tuple[int, int], list[dict]]:
    """A setting within TOLERANCE of today's tau on every supernet and MIN_SPEEDUP faster (cost model).

    With MEAN_RULE_MIN_SUPERNETS supernets or more the mean drop over them must be within
    TOLERANCE, with fewer every supernet's. Among those that qualify, the one with the most validation images, then the most
    recalibration images: tau on 40 architectures moves by more than TOLERANCE between
    neighbouring sizes by chance, so the cheapest qualifying cell would be chosen by
    noise; the largest keeps the most fidelity for the required speed-up.
    """
    today = f"{TODAY[0]}/{TODAY[1]}"
    names = list(grids)
    keys = [k for k in grids[names[0]]["cells"] if all(k in grids[n]["cells"] for n in names)]
    mean_rule = len(names) >= MEAN_RULE_MIN_SUPERNETS
    rows = []
    for key in keys:
        row = {"recalib_images": int(key.split("/")[0]), "val_images": int(key.split("/")[1])}
        speedups, drops = [], []
        for name in names:
            cells = grids[name]["cells"]
            row[f"tau_{name}"] = cells[key]["tau"]
            drops.append(cells[today]["tau"] - cells[key]["tau"])
            speedups.append(cells[today]["model_s"] / cells[key]["model_s"])
        n = len(drops)
        mean = sum(drops) / n
        row["mean_tau"] = sum(row[f"tau_{m}"] for m in names) / n
        row["mean_tau_drop"] = mean
        row["tau_drop_se"] = (sum((d - mean) ** 2 for d in drops) / (n - 1) / n) ** 0.5 if n > 1 else None
        row["max_tau_drop"] = max(drops)
        row["model_speedup"] = min(speedups)
        drop = mean if mean_rule else row["max_tau_drop"]
        row["qualifies"] = drop <= TOLERANCE + 1e-12 and row["model_speedup"] >= MIN_SPEEDUP
        rows.append(row)
    ok = [r for r in rows if r["qualifies"]]
    if not ok:
        return TODAY, rows
    best = max(ok, key=lambda r: (r["val_images"], r["recalib_images"]))
    return (best["recalib_images"], best["val_images"]), rows


def candidates(rows: list[dict]) -> list[tuple[int, int]]:
    """Settings that qualify on tau and the cost model, most fidelity first: each is then timed in turn."""
    ok = sorted((r for r in rows if r["qualifies"]), key=lambda r: (-r["val_images"], -r["recalib_images"]))
    return [(r["recalib_images"], r["val_images"]) for r in ok]


def time_eval_job(run_dir: Path, archs: list[str], setting: tuple[int, int]) -> float:
    """Wall seconds of the `evonas eval` job over ``archs`` at (recalib_images, val_images)."""
    from evonas.jobs.evaluate import EvalOptions, evaluate

    r, v = setting
    opts = EvalOptions(archs=tuple(archs), recalib_images=r, val_images=None if v >= TODAY[1] else v, quiet=True,
                       threads=1)
    t0 = time.perf_counter()
    evaluate(run_dir, opts)
    return time.perf_counter() - t0


DEEP_SPACE = "mobilenet-fmnist"
DEEP_RUN = ROOT / "runs" / "bench-mobilenet" / "e12-s0"
DEEP_ARCHS = 30
DEEP_OUT = RESULTS / "scoring_speed_mobilenet.json"


def deep_check(reuse: bool) -> None:
    """Today's defaults against the chosen setting on the deep space's default supernet."""
    import statistics

    chosen = json.loads((RESULTS / "scoring_speed.json").read_text())["chosen"]
    setting = (chosen["recalib_images"], chosen["val_images"])
    if setting == TODAY:
        raise SystemExit("scoring_speed.json chose today's defaults: nothing to check on the deep space")
    if not (DEEP_RUN / "supernet.pt").is_file():
        raise SystemExit(f"no trained supernet at {DEEP_RUN.relative_to(ROOT)}; train it with "
                         "benchmarks/mobilenet_supernet.py")
    archs = truth_archs(DEEP_SPACE, DEEP_ARCHS)
    started = time.perf_counter()
    if reuse and DEEP_OUT.is_file():
        accuracy = json.loads(DEEP_OUT.read_text())["accuracy"]
    else:
        torch.set_num_threads(1)
        from evonas.evaluation.scoring import SupernetEvaluator
        from evonas.run.run import Run

        run = Run.open(DEEP_RUN)
        accuracy = {}
        sizes = sorted({TODAY[1], setting[1]})  # both validation sizes from one pass per recalibration size
        for r in sorted({TODAY[0], setting[0]}, reverse=True):
            ev = SupernetEvaluator(run, recalib_images=r, val_images=None)
            values = {v: [] for v in sizes}
            for i, text in enumerate(archs):
                arch = ev.canonical(ev.space.parse(text))
                ev.prepare(arch)
                hits = correct_per_image(ev, arch, max(sizes))
                for v in sizes:
                    values[v].append(100.0 * hits[:v].float().mean().item())
                print(f"  R={r} [{i + 1}/{len(archs)}] {text}: " + ", ".join(
                    f"V={v} {values[v][-1]:.2f}%" for v in sizes), flush=True)
            accuracy.update({f"{r}/{v}": values[v] for v in sizes})
        # the noise floor: today's sizes with another seeded draw of the recalibration images
        ev = SupernetEvaluator(run, recalib_images=TODAY[0], val_images=None, seed=1)
        floor = []
        for i, text in enumerate(archs):
            arch = ev.canonical(ev.space.parse(text))
            ev.prepare(arch)
            floor.append(100.0 * correct_per_image(ev, arch, TODAY[1]).float().mean().item())
            print(f"  {TODAY[0]}/{TODAY[1]} recalibration seed 1 [{i + 1}/{len(archs)}] {text}: {floor[-1]:.2f}%",
                  flush=True)
        accuracy[f"{TODAY[0]}/{TODAY[1]} (other recalibration images)"] = floor
    records = complete_seeds(load_truth(DEEP_SPACE))
    have = [i for i, a in enumerate(archs) if a in records]
    truth = [sum(records[archs[i]].values()) / len(records[archs[i]]) for i in have]
    rows = {}
    for key, values in accuracy.items():
        rows[key] = {"median_accuracy": statistics.median(values),
                     "tau": kendall_tau([values[i] for i in have], truth) if len(have) >= 3 else None}
    today, new = (f"{a}/{b}" for a, b in (TODAY, setting))
    diffs = [b - a for a, b in zip(accuracy[today], accuracy[new])]
    for key, row in rows.items():
        row["tau_against_today"] = kendall_tau(accuracy[today], accuracy[key])
        row["mean_change"] = sum(b - a for a, b in zip(accuracy[today], accuracy[key])) / len(archs)
    out = {
        "question": "does the scoring setting chosen on macro-fmnist keep the deep space's scores and ranking?",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scoring_speed.py --deep-check"
                   + (" --reuse-grid" if reuse else ""),
        "supernet": str(DEEP_RUN.relative_to(ROOT)),
        "archs": archs,
        "truth_archs": len(have),
        "truth_seeds": sum(len(records[archs[i]]) for i in have),
        "today": today, "chosen": new,
        "accuracy": accuracy,
        "rows": rows,
        "mean_abs_change": sum(abs(d) for d in diffs) / len(diffs),
        "mean_change": sum(diffs) / len(diffs),
        "tau_between_settings": kendall_tau(accuracy[today], accuracy[new]),
        "elapsed_s": time.perf_counter() - started,
    }
    DEEP_OUT.write_text(json.dumps(out, indent=2) + "\n")
    DEEP_OUT.with_suffix(".md").write_text(deep_report(out))
    print(deep_report(out))


def deep_report(out: dict) -> str:
    lines = [
        f"# The chosen scoring setting on the deep space ({DEEP_SPACE})",
        "",
        f"Command: `{out['command']}`. Supernet `{out['supernet']}` (the default 12-epoch schedule), the "
        f"{len(out['archs'])} architectures of the stand-alone truth protocol, one torch thread.",
        "",
        "| recalib / val images | median accuracy | mean change | tau against today's | tau against truth |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, row in out["rows"].items():
        tau = "n/a" if row["tau"] is None else f"{row['tau']:.3f}"
        lines.append(f"| {key} | {row['median_accuracy']:.2f}% | {row.get('mean_change', 0.0):+.2f} | "
                     f"{row.get('tau_against_today', 1.0):.3f} | {tau} |")
    lines += ["", f"Truth so far: {out['truth_archs']} of {len(out['archs'])} architectures "
              f"({out['truth_seeds']} stand-alone trainings, mean over seeds). Per architecture the chosen "
              f"setting changes the score by {out['mean_change']:+.2f} points on average "
              f"({out['mean_abs_change']:.2f} in absolute value); the two settings rank the "
              f"{len(out['archs'])} architectures with Kendall tau {out['tau_between_settings']:.3f} against "
              "each other."]
    floor_key = next((k for k in out["rows"] if "other recalibration" in k), None)
    if floor_key is not None:
        floor = out["rows"][floor_key]["tau_against_today"]
        keep = [k for k, row in out["rows"].items() if k not in (floor_key, out["today"])
                and row["tau_against_today"] >= floor]
        lines += ["", f"Rule: a cheaper setting replaces today's on this space only if it ranks like today's at "
                  f"least as closely as today's sizes with other recalibration images do (tau {floor:.3f}). "
                  + (f"Qualifying: {', '.join(keep)}." if keep else
                     "None qualifies, so this space keeps today's sizes (`SPACE_SCORING` in "
                     "`evonas/run/config.py`).")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="timed eval jobs per setting and supernet")
    parser.add_argument("--reuse-grid", action="store_true",
                        help="take the fidelity grid from results/scoring_speed.json; only choose and time again")
    parser.add_argument("--supernets", default=",".join(SUPERNETS),
                        help="comma-separated run names under runs/bench-strategies/macro-fmnist, or 'all' "
                             "(every finished one)")
    parser.add_argument("--recalib", default=",".join(map(str, RECALIB)),
                        help="recalibration sizes of the grid for supernets not graded yet")
    parser.add_argument("--no-timing", action="store_true", help="grid and choice only, no timed eval jobs")
    parser.add_argument("--deep-check", action="store_true",
                        help="check the chosen setting on the mobilenet-fmnist supernet (with --reuse-grid: "
                             "recompute tau from the kept scores)")
    args = parser.parse_args()
    if args.deep_check:
        deep_check(args.reuse_grid)
        return
    names = finished_supernets() if args.supernets == "all" else [n for n in args.supernets.split(",") if n]
    missing_runs = [n for n in names if not (RUNS / n / "supernet.pt").is_file()]
    if not names or missing_runs:
        parser.error(f"--supernets {args.supernets!r}: no finished supernet {missing_runs or names} under "
                     f"{RUNS.relative_to(ROOT)}; train it with benchmarks/gap_strategies.py supernets")
    try:
        recalib = tuple(sorted({int(r) for r in args.recalib.split(",")}))
        if TODAY[0] not in recalib or min(recalib) < 1:
            raise ValueError
    except ValueError:
        parser.error(f"--recalib {args.recalib!r}: expected positive integers including today's {TODAY[0]}, "
                     "e.g. 250,2000")
    torch.set_num_threads(1)
    started = time.perf_counter()
    archs = truth_archs(SPACE, N_ARCHS)
    records = complete_seeds(load_truth(SPACE))
    missing = [a for a in archs if a not in records]
    if missing:
        raise SystemExit(f"no stand-alone truth for {len(missing)} of the {N_ARCHS} architectures (e.g. {missing[0]})")
    truth = [sum(records[a].values()) / len(records[a]) for a in archs]
    grid_elapsed_s = json.loads((RESULTS / "scoring_speed.json").read_text()).get("grid_elapsed_s") \
        if args.reuse_grid else None
    earlier = RESULTS / "scoring_speed.json"
    same_archs = earlier.is_file() and json.loads(earlier.read_text()).get("archs") == archs
    grids = grids_from_results(earlier) if (args.reuse_grid or same_archs) else {}
    grids.update({n: g for n, g in saved_grids(archs).items() if n not in grids})
    grids = {n: grids[n] for n in names if n in grids}
    for name in names:
        if name not in grids:
            print(f"{name}: fidelity grid", flush=True)
            grids[name] = fidelity_grid(RUNS / name, archs, truth, recalib)
            append_grid(name, archs, grids[name])
    if grid_elapsed_s is None:
        grid_elapsed_s = time.perf_counter() - started
    _, rows = choose(grids)
    queue = candidates(rows)
    print("qualify on tau and the cost model: " + (", ".join(f"{r}/{v}" for r, v in queue) or "none"), flush=True)
    # The cost model leaves out the job's fixed cost (loading the run and data), so a setting
    # is adopted only when the user's path, the timed `evonas eval` job, is MIN_SPEEDUP
    # faster on every timed supernet; the candidates are timed in order until one is.
    chosen = TODAY
    timings: dict[str, dict[str, dict[str, list[float]]]] = {}
    ratios: dict[str, dict[str, float]] = {}
    timed = [n for n in SUPERNETS if n in names]
    before = json.loads(earlier.read_text()) if (args.reuse_grid and same_archs) else {}
    for setting in ([] if args.no_timing else queue):
        key = f"{setting[0]}/{setting[1]}"
        if key in before.get("eval_job_speedup", {}) and min(before["eval_job_speedup"][key].values()) < MIN_SPEEDUP:
            # timed already (--reuse-grid) and too slow: kept as measured, not timed again
            timings[key], ratios[key] = before["eval_job_seconds"][key], before["eval_job_speedup"][key]
            print(f"  {key}: timed before at " + ", ".join(f"{r:.2f}x" for r in ratios[key].values()), flush=True)
            continue
        for _ in range(args.repeats):
            for name in timed:  # alternated, so drifting load hits both settings alike
                for label, s_ in (("today", TODAY), ("contender", setting)):
                    sec = time_eval_job(RUNS / name, archs, s_)
                    timings.setdefault(key, {}).setdefault(name, {}).setdefault(label, []).append(sec)
                    print(f"  eval job {name} {label} {s_}: {sec:.1f} s", flush=True)
        ratios[key] = {n: min(t["today"]) / min(t["contender"]) for n, t in timings[key].items()}
        if min(ratios[key].values()) >= MIN_SPEEDUP:
            chosen = setting
            break
    print(f"chosen: recalib_images={chosen[0]}, val_images={chosen[1]}", flush=True)

    out = {
        "question": "Kendall tau of BN-recalibrated supernet scores against stand-alone truth, and `evonas eval` "
                    "wall time, as functions of recalibration and validation images",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scoring_speed.py " + " ".join(sys.argv[1:]),
        "grid_command": COMMAND,
        "grid_elapsed_s": grid_elapsed_s,
        "space": SPACE,
        "supernets": [str((RUNS / n).relative_to(ROOT)) for n in names],
        "rule": "mean drop over supernets" if len(names) >= MEAN_RULE_MIN_SUPERNETS else "every supernet's drop",
        "archs": archs,
        "truth": "mean stand-alone accuracy over seeds (benchmarks/gap_truth.py, 3 epochs, 2 seeds)",
        "threads": 1,
        "today": {"recalib_images": TODAY[0], "val_images": TODAY[1]},
        "tolerance": TOLERANCE,
        "min_speedup": MIN_SPEEDUP,
        "grid": rows,
        "per_supernet": {n: {"recalib_s": g["recalib_s"], "recalib_s_per_image": g["recalib_s_per_image"],
                             "eval_s_per_image": g["eval_s_per_image"],
                             "tau": {k: c["tau"] for k, c in g["cells"].items()}} for n, g in grids.items()},
        "chosen": {"recalib_images": chosen[0], "val_images": chosen[1]},
        "timed": list(timings),
        "untimed": [] if chosen != TODAY else [f"{r}/{v}" for r, v in queue if f"{r}/{v}" not in timings],
        "eval_job_seconds": timings,
        "eval_job_speedup": ratios,
        "elapsed_s": time.perf_counter() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scoring_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "scoring_speed.md").write_text(report(out))
    print(report(out))


def report(out: dict) -> str:
    names = [Path(n).name for n in out["supernets"]]
    mean_rule = out.get("rule") == "mean drop over supernets"
    grid_time = f" (grading the supernets not graded before: {out['grid_elapsed_s'] / 60:.1f} min on a 2-core machine shared with other " \
                "jobs, one torch thread)" if out.get("grid_elapsed_s") else ""
    lines = [
        "# Faster scoring at equal fidelity (macro-fmnist)",
        "",
        f"Command: `{out['command']}`{grid_time}. Per-supernet grids are kept in `scoring_speed_grids.jsonl`.",
        "",
        f"Kendall tau of BN-recalibrated supernet accuracy against the stand-alone truth of {len(out['archs'])} "
        f"architectures (mean over seeds, 3 epochs), for {len(names)} supernets ({', '.join(names)}). Today: "
        f"{TODAY[0]} recalibration and {TODAY[1]} validation images. Drop: today's tau minus the setting's "
        "(positive is worse), per supernet. Speed-up: predicted from per-image timings (the lowest over the "
        "supernets). A setting qualifies when it is "
        f"{MIN_SPEEDUP:g}x faster and its {'mean drop' if mean_rule else 'drop on every supernet'} is at most "
        f"{TOLERANCE}.",
        "",
        "| recalib images | val images | mean tau | tau range | mean drop (± s.e.) | worst drop | predicted speed-up "
        "| qualifies |",
        "|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in sorted(out["grid"], key=lambda r: (r["recalib_images"], r["val_images"])):
        taus = [r[f"tau_{n}"] for n in names]
        se = f" ± {r['tau_drop_se']:.3f}" if r.get("tau_drop_se") is not None else ""
        lines.append(f"| {r['recalib_images']} | {r['val_images']} | {r['mean_tau']:.3f} | {min(taus):.3f} to "
                     f"{max(taus):.3f} | {r['mean_tau_drop']:+.3f}{se} | {r['max_tau_drop']:+.3f} | "
                     f"{r['model_speedup']:.2f}x | {'yes' if r['qualifies'] else ''} |")
    c = out["chosen"]
    chosen_key = f"{c['recalib_images']}/{c['val_images']}"
    shown = [(TODAY[0], TODAY[1])] + [tuple(int(x) for x in key.split("/")) for key in out.get("timed", [])]
    by_key = {(r["recalib_images"], r["val_images"]): r for r in out["grid"]}
    lines += ["", "Per supernet, today against every setting that was timed:", "",
              "| supernet | " + " | ".join(f"tau {a} / {b}" for a, b in shown) + " |",
              "|---|" + "---:|" * len(shown)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{by_key[key][f'tau_{n}']:.3f}" for key in shown) + " |")
    if out["eval_job_speedup"]:
        lines += ["", f"Wall time of the `evonas eval` job over the {len(out['archs'])} architectures (load, "
                  "recalibrate, score), today's settings over each qualifying setting in turn (most fidelity "
                  f"first, until one is {MIN_SPEEDUP:g}x faster on every timed supernet), same process, "
                  "alternated:", ""]
        for key, per in out["eval_job_speedup"].items():
            secs = out["eval_job_seconds"][key]
            lines.append(f"- {key}: " + "; ".join(
                f"{name} {ratio:.2f}x ({min(secs[name]['today']):.1f} s vs {min(secs[name]['contender']):.1f} s)"
                for name, ratio in per.items()))
    if (c["recalib_images"], c["val_images"]) == TODAY:
        lines += ["", f"No setting is both {MIN_SPEEDUP:g}x faster on the timed job and within {TOLERANCE} tau of "
                  "today's: today's defaults stay."]
        if out.get("untimed"):
            lines.append(f"Qualifying on tau and the cost model but not timed yet: {', '.join(out['untimed'])} "
                         "(run the command again with `--reuse-grid` on an idle machine).")
    else:
        lines += ["", f"Chosen: {chosen_key} (recalibration / validation images)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
