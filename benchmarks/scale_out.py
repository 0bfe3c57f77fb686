"""Scaling out on one machine: supernet training with 1 and 2 processes, searches with 1 and 2 workers.

Every figure is a ratio to one process that uses all the cores, measured in the
same run (absolute seconds depend on what else the machine does); run it on an idle
machine. All commands are the real CLI, started as subprocesses, timed by wall clock.

1. Training (``macro-fmnist``, one epoch of ``--train-images`` images): one process
   with 2 threads against ``--nproc-per-node 2`` with 1 thread each. The epoch time
   from ``train_log.jsonl`` (the training itself) and the wall time (with start-up).
2. Scoring workers (``evonas search --algo evolution``, a trained supernet, a fresh
   store each time so every architecture is scored): ``--threads 2`` against
   ``--workers 2 --threads-per-worker 1``, and one process with 1 thread (how well
   scoring itself uses a second thread bounds what a second worker can add).
   Target of the issue: at least 1.4x.
3. A shared study: one ``--algo optuna-random`` process with 2 threads against two
   worker processes of one ``--study-name`` with 1 thread each, on SQLite (the run's
   ``optuna.db``) and on PostgreSQL (a throwaway server on loopback, as the tests use).

Usage::

  .venv/bin/python benchmarks/scale_out.py [--supernet runs/bench-strategies/macro-fmnist/uniform-s0]

Writes benchmarks/results/scale_out.json and scale_out.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SUPERNET = ROOT / "runs" / "bench-strategies" / "macro-fmnist" / "uniform-s0"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "evonas", *args]


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def _wall(cmds: list[list[str]], threads: int) -> float:
    """Start every command at once; seconds until the last one ends (each must succeed)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=ROOT, env=_env(threads), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    for p, c in zip(procs, cmds):
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(c)} failed ({p.returncode}): {err.strip()[-800:]}")
    return time.perf_counter() - t0


def training(tmp: Path, images: int, repeats: int) -> dict:
    rows = []
    for rep in range(repeats):
        for label, extra, threads in (("1 process x 2 threads", ["--threads", "2"], 2),
                                      ("2 processes x 1 thread", ["--nproc-per-node", "2", "--threads", "1"], 1)):
            run = tmp / f"train-{rep}-{threads}"
            shutil.rmtree(run, ignore_errors=True)
            wall = _wall([_cli("train-supernet", "--run", str(run), "--epochs", "1", "--train-limit", str(images),
                               "--quiet", *extra)], threads)
            log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines() if x.strip()]
            rows.append({"setting": label, "repeat": rep, "wall_s": round(wall, 2), "epoch_s": log[-1]["seconds"],
                         "images_seen": log[-1]["images_seen"]})
            print(f"train {label}: epoch {log[-1]['seconds']:.1f}s, wall {wall:.1f}s", flush=True)
    return _ratios(rows, "1 process x 2 threads", ("epoch_s", "wall_s"))


def _fresh_run(supernet: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in ("config.json", "supernet.pt"):
        shutil.copy2(supernet / name, dest / name)
    return dest


def scoring(tmp: Path, supernet: Path, budget: int, repeats: int) -> dict:
    rows = []
    for rep in range(repeats):
        for label, extra, threads in (("1 process x 2 threads", ["--threads", "2"], 2),
                                      ("1 process x 1 thread", ["--threads", "1"], 1),
                                      ("2 workers x 1 thread", ["--workers", "2", "--threads-per-worker", "1"], 1)):
            run = _fresh_run(supernet, tmp / f"score-{rep}-{label[0]}-{threads}")
            wall = _wall([_cli("search", "--run", str(run), "--algo", "evolution", "--budget", str(budget),
                               "--population", str(budget // 2), "--seed", str(rep), "--quiet", *extra)], threads)
            rows.append({"setting": label, "repeat": rep, "wall_s": round(wall, 2), "archs": budget})
            print(f"score {label}: {budget} archs in {wall:.1f}s", flush=True)
    return _ratios(rows, "1 process x 2 threads", ("wall_s",))


def shared(tmp: Path, supernet: Path, budget: int, repeats: int, pg_url) -> dict:
    rows = []
    for rep in range(repeats):
        run = _fresh_run(supernet, tmp / f"one-{rep}")
        wall = _wall([_cli("search", "--run", str(run), "--algo", "optuna-random", "--budget", str(budget),
                           "--seed", str(rep), "--threads", "2", "--quiet")], 2)
        rows.append({"setting": "1 process x 2 threads", "repeat": rep, "wall_s": round(wall, 2)})
        print(f"shared baseline: {wall:.1f}s", flush=True)
        for storage in ("sqlite", "postgresql"):
            if storage == "postgresql" and pg_url is None:
                continue
            runs = [_fresh_run(supernet, tmp / f"{storage}-{rep}-{w}") for w in range(2)]
            extra = [] if storage == "sqlite" else ["--storage", pg_url(f"study{rep}")]
            if storage == "sqlite":  # one machine: both workers on one run directory and its optuna.db
                runs = [runs[0], runs[0]]
            cmds = [_cli("search", "--run", str(r), "--algo", "optuna-random", "--budget", str(budget), "--seed", str(rep),
                         "--threads", "1", "--study-name", f"scale{rep}", "--quiet", *extra) for r in runs]
            wall = _wall(cmds, 1)
            rows.append({"setting": f"2 workers x 1 thread, {storage}", "repeat": rep, "wall_s": round(wall, 2)})
            print(f"shared {storage}: {wall:.1f}s", flush=True)
    return _ratios(rows, "1 process x 2 threads", ("wall_s",))


def _ratios(rows: list[dict], base: str, keys: tuple[str, ...]) -> dict:
    """Per setting: median of each timing over the repeats, and the speed-up over ``base``."""
    import statistics

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    med = {s: {k: statistics.median(r[k] for r in rows if r["setting"] == s) for k in keys} for s in settings}
    return {"rows": rows, "median": med,
            "speedup": {s: {k: round(med[base][k] / med[s][k], 3) for k in keys} for s in settings}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", type=Path, default=DEFAULT_SUPERNET, help="a trained macro-fmnist run directory")
    ap.add_argument("--train-images", type=int, default=8192)
    ap.add_argument("--budget", type=int, default=40, help="architectures per search")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if not (args.supernet / "supernet.pt").is_file():
        raise SystemExit(f"--supernet {args.supernet} has no supernet.pt; train one or point at a trained run")
    import pg

    server = None
    if pg.why_unavailable() is None:
        server = pg.start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="evonas-scale-") as tmp:
            tmp = Path(tmp)
            out = {
                "command": "benchmarks/scale_out.py " + " ".join(sys.argv[1:]),
                "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
                "training": training(tmp, args.train_images, args.repeats),
                "scoring": scoring(tmp, args.supernet, args.budget, args.repeats),
                "shared_study": shared(tmp, args.supernet, args.budget, args.repeats,
                                       None if server is None else server.create_database),
                "postgresql": None if server is None else "throwaway server on loopback (tests/pg.py)",
            }
    finally:
        if server is not None:
            server.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "scale_out.md").write_text(report(out, args))
    print(report(out, args))


def scoring_bound(sec: dict) -> tuple[float, float] | None:
    """(2-thread speed-up of one scoring process, best speed-up two 1-thread workers could reach), if measured."""
    med = sec["median"]
    if "1 process x 1 thread" not in med or "1 process x 2 threads" not in med:
        return None
    gain = med["1 process x 1 thread"]["wall_s"] / med["1 process x 2 threads"]["wall_s"]
    return gain, 2.0 / gain


def report(out: dict, args) -> str:
    lines = ["# Scaling out on one machine", "",
             f"Command: `.venv/bin/python {out['command'].strip()}` on {out['machine']['cores']} cores, nothing else running; "
             f"median of {args.repeats} repeats. Speed-up: time of one process with 2 threads over the setting's time "
             "(same run).", ""]
    for key, title in (("training", f"Supernet training, macro-fmnist, one epoch of {args.train_images} images"),
                       ("scoring", f"Scoring workers: `search --algo evolution`, {args.budget} architectures, trained supernet"),
                       ("shared_study", f"A shared study: `search --algo optuna-random --study-name`, {args.budget} architectures in all")):
        sec = out[key]
        cols = list(next(iter(sec["median"].values())))
        lines += [f"## {title}", "", "| setting | " + " | ".join(f"{c} (median)" for c in cols) + " | speed-up |",
                  "| --- | " + " | ".join("---:" for _ in cols) + " | ---: |"]
        for s, m in sec["median"].items():
            lines.append(f"| {s} | " + " | ".join(f"{m[c]:.1f}" for c in cols) + f" | {sec['speedup'][s][cols[0]]:.2f}x |")
        lines.append("")
    sc = out["scoring"]["speedup"].get("2 workers x 1 thread", {}).get("wall_s")
    if sc is not None:
        lines.append(f"Two 1-thread scoring workers against one process using both cores: {sc:.2f}x "
                     f"(target 1.4x: {'met' if sc >= 1.4 else 'missed'}).")
    bound = scoring_bound(out["scoring"])
    if bound is not None:
        threads_gain, best = bound
        lines += ["", f"How far a second worker can go: one scoring process runs {threads_gain:.2f}x faster with 2 "
                  f"threads than with 1, so two 1-thread workers, each as fast as the 1-thread process, with no "
                  f"start-up and no idle worker at a generation's end, would be at most 2 / {threads_gain:.2f} = "
                  f"{best:.2f}x faster than the 2-thread process. "
                  + ("The 1.4x target is beyond that bound on this machine: scoring (BN recalibration and "
                     "inference on large batches) already uses the second core well inside one process, unlike "
                     "training, where the issue measured two 1-thread processes at 1.5x." if best < 1.4 else
                     "The bound allows the target; what separates the pool from it is start-up and idle time.")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
