"""Fault report: bad-input cases, kill points and concurrent-worker runs per command, and whether they pass.

Counts come from the tests themselves: the bad-input table ``CASES`` of
``tests/cli/test_bad_inputs.py`` (command -> cases), and the test functions whose names
say kill, resume, concurrent, race or claim (kill points: those whose body sends
SIGKILL or uses ``stop_after``; concurrent-worker runs: those that start several
workers, processes or threads). The groups are then run with pytest (one thread)
and each outcome is recorded with the command that produced it.

    python benchmarks/fault_report.py                  # everything (several minutes)
    python benchmarks/fault_report.py --only bad-inputs

Writes benchmarks/results/fault_report.json and fault_report.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
RESULTS = ROOT / "benchmarks" / "results"
BAD_INPUT_FILES = ["tests/cli/test_bad_inputs.py", "tests/scorers/test_tables_validation.py"]
GUARD_FILES = ["tests/cli/test_fault_guards.py"]  # issue 25: one test per case (run with the bad inputs)
FAULT_WORDS = ("kill", "resume", "concurrent", "race", "claim")
KILL = re.compile(r"SIGKILL|stop_after|\.kill\(")
WORKERS = re.compile(r"Process\(|Popen\(|Thread\(|ThreadPool|ProcessPool|concurrent\.futures|workers")

# Which command a fault test exercises, from words in its file or test name (first match wins).
COMMAND_OF = [("latency", "latency build"), ("predictor", "fit-predictor"), ("anchor", "fit-predictor"),
              ("search", "search"), ("store", "search"), ("claim", "search"), ("strateg", "train-supernet"),
              ("train", "train-supernet"), ("export", "export"), ("eval", "eval")]


def bad_input_cases() -> dict[str, int]:
    sys.path.insert(0, str(ROOT))  # tests/ is a package; its modules import tests.synthetic_tables and the like
    from tests.cli.test_bad_inputs import CASES  # the table is data: command -> list of cases

    return {command: len(cases) for command, cases in CASES.items()}


def guard_tests(commands: list[str]) -> list[dict]:
    """The tests of GUARD_FILES, each with the command it drives: the first command name its body spells."""
    found = []
    for file in GUARD_FILES:
        source = (ROOT / file).read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            words = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            command = next((w if w in commands else f"{w} build" for w in words
                            if w in commands or f"{w} build" in commands), None)
            found.append({"file": file, "test": node.name, "command": command or command_of(file, node.name)})
    return found


def command_of(file: str, name: str) -> str:
    text = f"{Path(file).stem} {name}".lower()
    return next((cmd for word, cmd in COMMAND_OF if word in text), "other")


def fault_tests() -> list[dict]:
    """Test functions named after a fault (kill, resume, concurrent, race, claim), with what they exercise."""
    found = []
    for path in sorted(TESTS.rglob("test_*.py")):  # tests/ and its folders, one per package tested
        file = path.relative_to(ROOT).as_posix()
        if file in BAD_INPUT_FILES + GUARD_FILES:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            if not any(w in node.name for w in FAULT_WORDS):
                continue
            body = ast.get_source_segment(source, node) or ""
            found.append({"file": file, "test": node.name, "command": command_of(path.name, node.name),
                          "kill_point": bool(KILL.search(body)),
                          "concurrent": bool(WORKERS.search(body)) or any(w in node.name for w in ("concurrent", "race", "claim"))})
    return found


def run_pytest(args: list[str], label: str) -> dict:
    """Run pytest on ``args`` (one thread); its command, exit code, seconds and per-test outcomes."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    xml = RESULTS / f".fault_report_{label}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    outcomes = {}
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = case.get("name", "")
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            outcomes[f"{case.get('classname', '')}::{name}"] = "failed" if failed else "skipped" if skipped else "passed"
        xml.unlink()
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    shown = " ".join(c if c != sys.executable else "python" for c in cmd if not c.startswith("--junitxml"))
    return {"command": shown, "returncode": proc.returncode, "seconds": round(seconds, 1),
            "summary": tail[0] if tail else "", "outcomes": outcomes}


def verdict(outcomes: dict[str, str], keep) -> str:
    chosen = [v for k, v in outcomes.items() if keep(k)]
    if not chosen:
        return "not run"
    return "fail" if "failed" in chosen else "pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bad-inputs", "faults"], default=None, help="Run one group only.")
    args = parser.parse_args()

    cases = bad_input_cases()
    faults = fault_tests()
    guards = guard_tests(sorted(cases))
    runs = {}
    if args.only in (None, "bad-inputs"):
        runs["bad_inputs"] = run_pytest(BAD_INPUT_FILES + GUARD_FILES, "bad_inputs")
    if args.only in (None, "faults") and faults:
        files = sorted({f["file"] for f in faults})
        runs["faults"] = run_pytest(files + ["-k", " or ".join(FAULT_WORDS)], "faults")

    commands = sorted(set(cases) | {f["command"] for f in faults} | {g["command"] for g in guards},
                      key=lambda c: (c not in cases, c))
    previous = _previous_rows() if args.only else {}
    rows = []
    bad = runs.get("bad_inputs", {}).get("outcomes", {})
    fault_out = runs.get("faults", {}).get("outcomes", {})
    for command in commands:
        mine = [f for f in faults if f["command"] == command]
        guarded = [g for g in guards if g["command"] == command]
        rows.append({
            "command": command,
            "bad_input_cases": cases.get(command, 0),
            "bad_inputs": verdict(bad, lambda k, c=command: k.endswith(f"[{c}]")) if command in cases else "none",
            "kill_points": sum(f["kill_point"] for f in mine),
            "concurrent_worker_runs": sum(f["concurrent"] for f in mine),
            "fault_tests": [f["test"] for f in mine],
            "faults": verdict(fault_out, lambda k, m=mine: any(k.endswith(f"::{f['test']}") or f"::{f['test']}[" in k
                                                              for f in m)) if mine else "none",
            "guard_tests": [g["test"] for g in guarded],
            "guards": verdict(bad, lambda k, m=guarded: any(k.endswith(f"::{g['test']}") or f"::{g['test']}[" in k
                                                            for g in m)) if guarded else "none",
        })
        if rows[-1]["faults"] == "not run" and previous.get(command, {}).get("faults") not in (None, "not run"):
            kept = previous[command]["faults"].replace(" (earlier report)", "")
            rows[-1]["faults"] = f"{kept} (earlier report)"  # a group not rerun keeps its verdict, marked as such
    report = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "table_validation": verdict(bad, lambda k: "test_tables_validation" in k),
        "commands": rows,
        "totals": {"bad_input_cases": sum(cases.values()), "kill_points": sum(f["kill_point"] for f in faults),
                   "concurrent_worker_runs": sum(f["concurrent"] for f in faults), "fault_tests": len(faults),
                   "guard_tests": len(guards)},
        "runs": {k: {kk: vv for kk, vv in v.items() if kk != "outcomes"} | {"failed": sorted(t for t, o in v["outcomes"].items() if o == "failed")}
                 for k, v in runs.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fault_report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Fault report", "", f"Created {report['created']} (Python {report['python']}) by "
             f"`python benchmarks/fault_report.py{' --only ' + args.only if args.only else ''}`.", "",
             "| command | bad-input cases | bad inputs | kill points | concurrent-worker runs | fault tests | "
             "guard tests (issue 25) | guards |",
             "| --- | ---: | --- | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['command']} | {r['bad_input_cases']} | {r['bad_inputs']} | {r['kill_points']} | "
                     f"{r['concurrent_worker_runs']} | {r['faults']} | {len(r['guard_tests'])} | {r['guards']} |")
    t = report["totals"]
    lines += ["", f"Totals: {t['bad_input_cases']} bad-input cases, {t['kill_points']} kill points, "
              f"{t['concurrent_worker_runs']} concurrent-worker runs in {t['fault_tests']} fault tests; "
              f"{t['guard_tests']} guard tests of {', '.join(GUARD_FILES)}; "
              f"table validation: {report['table_validation']}.", "", "## Runs", ""]
    for name, run in report["runs"].items():
        lines.append(f"- {name}: `{run['command']}` -> exit {run['returncode']} in {run['seconds']} s: {run['summary']}")
        lines += [f"  - failed: {t}" for t in run["failed"]]
    (RESULTS / "fault_report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _previous_rows() -> dict[str, dict]:
    """The rows of the report this run replaces (command -> row), to keep the verdicts of a group not rerun."""
    try:
        return {r["command"]: r for r in json.loads((RESULTS / "fault_report.json").read_text())["commands"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


if __name__ == "__main__":
    main()
