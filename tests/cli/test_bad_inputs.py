"""No user input ends in a traceback: every command, driven through ``main()``, with a table of bad inputs.

Each case must exit 2 with exactly one line on stderr (nothing on stdout, no
"Traceback"), leave every file of the run and of the inputs byte-identical, and, when it names a
new run directory (``{new}``), leave no directory behind. ``CASES`` is plain data
(command -> list of (case id, argv, expected fragment of the message)) so that
``benchmarks/fault_report.py`` can count the cases per command.

Placeholders in argv: ``{run}`` a copy of the tiny trained run, ``{new}`` a directory
that does not exist, ``{file}`` a regular file, ``{notrun}`` an empty directory,
``{missing}`` a missing file, ``{bin}`` random bytes, ``{gz}`` a gzip file,
``{empty}`` an empty file, ``{header}`` a header-only table, ``{table}`` a good
table of macro-fmnist, ``{badtable}`` a table with a malformed architecture.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import shutil
import time

import pytest
from tests.synthetic_tables import write_table

from evonas.cli.main import main

RUN = ["--run", "{run}"]
TABLE = ["--space", "macro-fmnist", "--table", "{table}", "--target", "val_acc"]
THREADS = [("threads-0", "0"), ("threads-neg", "-1")]

CASES: dict[str, list[tuple[str, list[str], str]]] = {
    "train-supernet": [
        ("epochs-0", ["--run", "{new}", "--epochs", "0", "--dataset", "synthetic"], "--epochs must be an integer >= 1"),
        ("epochs-not-a-number", ["--run", "{new}", "--epochs", "abc"], "'abc' is not a valid integer"),
        *[(f"{name}", ["--run", "{new}", "--threads", v, "--dataset", "synthetic"], "--threads must be an integer >= 1")
          for name, v in THREADS],
        ("lr-negative", ["--run", "{new}", "--lr", "-1", "--dataset", "synthetic"], "--lr must be"),
        ("lr-infinite", ["--run", "{new}", "--lr", "inf", "--dataset", "synthetic"], "--lr must be a finite float > 0"),
        ("weight-decay-infinite", ["--run", "{new}", "--weight-decay", "inf", "--dataset", "synthetic"],
         "--weight-decay must be a finite float >= 0"),
        ("batch-size-0", ["--run", "{new}", "--batch-size", "0", "--dataset", "synthetic"], "--batch-size"),
        ("val-size-negative", ["--run", "{new}", "--val-size", "-1", "--dataset", "synthetic"], "--val-size"),
        ("unknown-strategy", ["--run", "{new}", "--strategy", "nope", "--dataset", "synthetic"], "--strategy must be one of"),
        ("unknown-space", ["--run", "{new}", "--space", "nope"], "'nope' is not a search space"),
        ("unknown-dataset", ["--run", "{new}", "--dataset", "bogus"], "--dataset must be one of"),
        ("dataset-not-installed", ["--run", "{new}", "--space", "macro-cifar10"], "CIFAR-10 is never downloaded"),
        ("data-root-missing", ["--run", "{new}", "--dataset", "fmnist", "--data-root", "{missing}"], "Fashion-MNIST is not in"),
        ("few-shot-layer-out-of-range", ["--run", "{new}", "--strategy", "few-shot", "--few-shot-layer", "99",
                                         "--dataset", "synthetic"], "--few-shot-layer"),
        ("resume-nothing", ["--run", "{new}", "--resume"], "nothing to resume"),
        ("run-is-a-file", ["--run", "{file}", "--dataset", "synthetic"], "is a file"),
        ("resume-changed-options", ["--run", "{run}", "--resume", "--epochs", "7"], "--resume continues the run"),
    ],
    "eval": [
        ("malformed-arch", RUN + ["--arch", "0000000x"], "position 7"),
        ("short-arch", RUN + ["--arch", "12"], "8 digits"),
        ("archs-file-missing", RUN + ["--archs", "{missing}"], "does not exist"),
        ("archs-file-binary", RUN + ["--archs", "{bin}"], "not a text file"),
        ("archs-file-is-a-dir", RUN + ["--archs", "{notrun}"], "a directory"),
        *[(name, RUN + ["--arch", "12012200", "--threads", v], "--threads must be an integer >= 1") for name, v in THREADS],
        ("recalib-images-0", RUN + ["--arch", "12012200", "--recalib-images", "0"], "--recalib-images must be >= 1"),
        ("sample-negative", RUN + ["--sample", "-1"], "--sample must be an integer >= 0"),
        ("sample-not-a-number", RUN + ["--sample", "x"], "'x' is not a valid integer"),
        ("nothing-to-score", RUN, "give"),
        ("run-is-a-file", ["--run", "{file}", "--arch", "12012200"], "is a file"),
        ("run-missing", ["--run", "{new}", "--arch", "12012200"], "does not exist"),
        ("not-a-run", ["--run", "{notrun}", "--arch", "12012200"], "not an evonas run directory"),
    ],
    "profile": [
        ("malformed-arch", ["--arch", "0201210x"], "position 7"),
        ("archs-file-missing", ["--archs", "{missing}"], "does not exist"),
        ("archs-file-binary", ["--archs", "{bin}"], "not a text file"),
        ("archs-file-gzip", ["--archs", "{gz}"], "not a text file"),
        ("unknown-space", ["--space", "nope", "--arch", "0"], "'nope' is not a search space"),
        ("nothing-to-profile", [], "nothing to profile"),
        ("check-of-a-space-without-networks", ["--space", "nb201", "--check", "--arch",
                                               "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
                                               "nor_conv_3x3~1|nor_conv_3x3~2|"], "drop --check"),
        ("archs-file-is-a-device", ["--archs", "/dev/zero"], "not a regular file"),
    ],
    "export": [
        ("malformed-arch", RUN + ["--arch", "zz"], "8 digits"),
        ("top-k-0", RUN + ["--top-k", "0"], "--top-k must be >= 1"),
        ("top-k-not-a-number", RUN + ["--top-k", "many"], "'many' is not a valid integer"),
        ("unknown-ranker", RUN + ["--top-k", "3", "--scorer", "nope"], "'nope' is not one of"),
        ("unknown-format", RUN + ["--arch", "12012200", "--format", "tflite"], "'tflite' is not one of"),
        ("out-is-a-file", RUN + ["--arch", "12012200", "--out", "{file}"], "--out must be a folder"),
        ("nothing-to-export", RUN, "give --arch"),
        ("limit-without-top-k", RUN + ["--arch", "12012200", "--max-latency-ms", "1"], "with --top-k"),
        ("max-latency-not-a-number", RUN + ["--top-k", "3", "--max-latency-ms", "abc"], "'abc' is not a number"),
        ("max-flops-negative", RUN + ["--top-k", "3", "--max-flops", "-1"], "--max-flops must be a finite number > 0"),
        ("latency-limit-without-table", RUN + ["--top-k", "3", "--max-latency-ms", "1"], "evonas latency build"),
        ("latency-batch-0", RUN + ["--top-k", "3", "--latency-batch-size", "0"], "not in the range"),
        ("run-is-a-file", ["--run", "{file}", "--arch", "12012200"], "is a file"),
        ("not-a-run", ["--run", "{notrun}", "--arch", "12012200"], "not an evonas run directory"),
    ],
    "search": [
        ("unknown-searcher", RUN + ["--algo", "nope"], "'nope' is not one of"),
        ("unknown-scorer", RUN + ["--scorer", "nope"], "--scorer must be one of"),
        *[(name, RUN + ["--threads", v], "--threads must be an integer >= 1") for name, v in THREADS],
        ("budget-0", RUN + ["--budget", "0"], "--budget must be an integer >= 1"),
        ("max-flops-not-a-number", RUN + ["--max-flops", "abc"], "'abc' is not a number"),
        ("max-flops-nan", RUN + ["--max-flops", "nan"], "--max-flops must be a finite number > 0"),
        ("max-params-negative", RUN + ["--max-params", "-5"], "--max-params must be a finite number > 0"),
        ("infeasible-flops", RUN + ["--max-flops", "1"], "is infeasible"),
        ("infeasible-table-params", TABLE + ["--max-params", "10"], "is infeasible"),
        ("latency-without-source", TABLE + ["--max-latency-ms", "1", "--latency-column", "nope"], "nope"),
        ("unknown-objective", RUN + ["--algo", "nsga2", "--objectives", "accuracy,bogus"], "--objectives"),
        ("option-of-another-searcher", RUN + ["--algo", "tpe", "--population", "5"], "--population does not apply"),
        ("population-0", RUN + ["--population", "0"], "--population must be an integer >= 1"),
        ("mutation-prob-2", RUN + ["--mutation-prob", "2"], "--mutation-prob must be a probability"),
        ("storage-not-a-url", RUN + ["--algo", "tpe", "--storage", "notaurl"], "--storage must be an SQLAlchemy URL"),
        ("storage-no-driver-or-host", RUN + ["--algo", "tpe", "--storage", "postgresql://nohost:1/x"], "--storage"),
        ("storage-unknown-database", RUN + ["--algo", "tpe", "--storage", "nosuchdb://x/y"], "does not know"),
        ("storage-unopenable-sqlite", RUN + ["--algo", "tpe", "--storage", "sqlite:////nonexistent/dir/x.db"],
         "cannot be used"),
        ("storage-not-a-database", RUN + ["--algo", "tpe", "--storage", "sqlite:///{bin}"], "file is not a database"),
        ("storage-refused-port", RUN + ["--algo", "tpe", "--storage", "postgresql://evonas@127.0.0.1:1/x"],
         "Connection refused"),
        ("storage-missing-driver", RUN + ["--algo", "tpe", "--storage", "mysql://u@127.0.0.1/x"], "needs the Python driver"),
        ("storage-with-deap", RUN + ["--algo", "evolution", "--storage", "postgresql://nohost:1/x"],
         "--storage is for the Optuna searchers"),
        ("study-name-with-deap", RUN + ["--algo", "nsga2", "--study-name", "s"], "--study-name is for the Optuna searchers"),
        ("study-name-empty", RUN + ["--algo", "tpe", "--study-name", " "], "--study-name must be a non-empty"),
        ("study-name-without-database", TABLE + ["--algo", "tpe", "--study-name", "s"], "--study-name needs a database"),
        ("table-missing", TABLE[:3] + ["{missing}", "--target", "val_acc"], "does not exist"),
        ("table-binary-new-run", ["--run", "{new}"] + TABLE[:3] + ["{bin}", "--target", "val_acc"], "binary"),
        ("table-gzip", TABLE[:3] + ["{gz}", "--target", "val_acc"], "gzip"),
        ("table-empty", TABLE[:3] + ["{empty}", "--target", "val_acc"], "empty"),
        ("table-header-only", TABLE[:3] + ["{header}", "--target", "val_acc"], "header but no rows"),
        ("table-bad-arch-new-run", ["--run", "{new}"] + TABLE[:3] + ["{badtable}", "--target", "val_acc"], ":3:1:"),
        ("table-of-another-space", ["--space", "nb201", "--table", "{table}", "--target", "val_acc"], ":2:1:"),
        ("table-is-a-dir", TABLE[:3] + ["{notrun}", "--target", "val_acc"], "is a directory"),
        ("table-is-a-device", TABLE[:3] + ["/dev/zero", "--target", "val_acc"], "not a regular file"),
        ("unknown-target", TABLE[:5] + ["nope"], "column 'nope' is not in table"),
        ("latency-table-binary", TABLE + ["--latency-table", "{gz}", "--latency-column", "x"], "gzip"),
        ("table-without-target", TABLE[:4], "--table needs --target"),
        ("bad-storage-new-run", ["--run", "{new}"] + TABLE + ["--algo", "tpe", "--storage", "notaurl"], "--storage"),
        ("run-is-a-file", ["--run", "{file}"], "is a file"),
        ("not-a-run", ["--run", "{notrun}"], "not an evonas run directory"),
        ("no-run-no-table", [], "needs --run"),
        ("name-traversal", RUN + ["--name", "../../other/searches/x"], "--name must be a plain name"),
        ("name-absolute", RUN + ["--name", "{new}"], "--name must be a plain name"),
        ("name-control-character", RUN + ["--name", "a\tb"], "control character"),
        ("study-name-path", RUN + ["--algo", "tpe", "--study-name", "a/b"], "--study-name must be a plain name"),
        ("resume-nothing", RUN + ["--resume"], "--resume continues an interrupted search"),
        ("resume-table-without-run", TABLE + ["--resume"], "--resume continues an interrupted search"),
        ("objectives-for-single-objective-searcher", RUN + ["--algo", "evolution", "--objectives", "accuracy,flops"],
         "optimises one objective"),
    ],
    "fit-predictor": [
        ("anchors-0", RUN + ["--anchors", "0"], "--anchors must be at least 4"),
        ("anchor-epochs-0", RUN + ["--anchor-epochs", "0"], "--anchor-epochs must be an integer >= 1"),
        ("pool-0", RUN + ["--pool", "0"], "--pool must be an integer >= 1"),
        ("pool-below-anchors", RUN + ["--anchors", "8", "--pool", "5"], "--pool"),
        ("coverage-2", RUN + ["--coverage", "2"], "--coverage must be a float in (0, 1)"),
        ("unknown-predictor", RUN + ["--predictors", "nope"], "--predictors has unknown name(s)"),
        ("unknown-selection", RUN + ["--selection", "nope"], "'nope' is not one of"),
        *[(name, RUN + ["--threads", v], "--threads must be an integer >= 1") for name, v in THREADS],
        ("malformed-anchor", RUN + ["--anchor", "zz", "--anchor", "00000000"], "8 digits"),
        ("anchors-file-binary", RUN + ["--anchors-file", "{bin}"], "not a text file"),
        ("anchors-file-missing", RUN + ["--anchors-file", "{missing}"], "does not exist"),
        ("run-is-a-file", ["--run", "{file}"], "is a file"),
        ("not-a-run", ["--run", "{notrun}"], "not an evonas run directory"),
    ],
    "predict": [
        ("no-predictor", RUN + ["--arch", "12012200"], "has no fitted predictor"),
        ("malformed-arch", RUN + ["--arch", "zz"], "8 digits"),
        ("archs-file-binary", RUN + ["--archs", "{bin}"], "not a text file"),
        ("run-is-a-file", ["--run", "{file}", "--arch", "12012200"], "is a file"),
        ("not-a-run", ["--run", "{notrun}", "--arch", "12012200"], "not an evonas run directory"),
    ],
    "predictor-bench": [
        ("table-missing", ["--table", "{missing}"], "does not exist"),
        ("table-binary", ["--table", "{bin}"], "binary"),
        ("table-gzip", ["--table", "{gz}"], "gzip"),
        ("table-header-only", ["--space", "macro-fmnist", "--table", "{header}", "--target", "val_acc"],
         "header but no rows"),
        ("table-of-another-space", ["--space", "nb201", "--table", "{table}", "--target", "val_acc"], ":2:1:"),
        ("unknown-predictor", ["--space", "macro-fmnist", "--table", "{table}", "--target", "val_acc",
                               "--predictors", "nope"], "--predictors has unknown name(s)"),
        ("unknown-target", ["--space", "macro-fmnist", "--table", "{table}", "--target", "nope"], "column 'nope'"),
        ("unknown-proxy", ["--space", "macro-fmnist", "--table", "{table}", "--target", "val_acc", "--proxy", "nope"],
         "column 'nope'"),
        ("seeds-0", ["--seeds", "0"], "--seeds must be an integer >= 1"),
        ("train-sizes-not-numbers", ["--train-sizes", "a,b"], "--train-sizes must be a comma-separated list"),
        ("train-sizes-0", ["--train-sizes", "0"], "--train-sizes must be integers >= 1"),
    ],
    "latency build": [
        *[(name, RUN + ["--threads", v], "--threads must be an integer >= 1") for name, v in THREADS],
        ("batch-size-0", RUN + ["--batch-size", "0"], "--batch-size must be an integer >= 1"),
        ("batch-size-beyond-memory", RUN + ["--batch-size", "1000000000"], "lower it"),
        ("repeats-0", RUN + ["--repeats", "0"], "--repeats must be an integer >= 3"),
        ("warmup-negative", RUN + ["--warmup", "-1"], "--warmup must be an integer >= 0"),
        ("unknown-backend", RUN + ["--backend", "nope"], "'nope' is not one of"),
        ("unknown-clock", RUN + ["--clock", "nope"], "'nope' is not one of"),
        ("run-is-a-file", ["--run", "{file}"], "is a file"),
        ("not-a-run", ["--run", "{notrun}"], "not an evonas run directory"),
    ],
    "latency validate": [
        ("no-latency-table", RUN, "has no latency table"),
        *[(name, RUN + ["--threads", v], "--threads must be an integer >= 1") for name, v in THREADS],
        ("samples-0", RUN + ["--samples", "0"], "--samples must be an integer >= 3"),
        ("calibrate-negative", RUN + ["--calibrate", "-1"], "--calibrate must be an integer"),
        ("run-is-a-file", ["--run", "{file}"], "is a file"),
        ("not-a-run", ["--run", "{notrun}"], "not an evonas run directory"),
    ],
    "spaces": [
        ("unknown-option", ["--bogus"], "No such option"),
        ("extra-argument", ["extra"], "unexpected extra argument"),
    ],
}

CASE_SECONDS = 15.0  # a bad input is refused at once (the storage probe gives up after 10 s)


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_run) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad_inputs")
    run = root / "run"
    shutil.copytree(tiny_run, run)
    (root / "file.txt").write_text("not a directory\n")
    (root / "notrun").mkdir()
    (root / "bin.csv").write_bytes(random.Random(0).randbytes(4096))
    (root / "t.csv.gz").write_bytes(gzip.compress(b"arch,val_acc\n00000000,1\n"))
    (root / "empty.csv").write_bytes(b"")
    (root / "header.csv").write_text("arch,val_acc,test_acc\n")
    table = write_table(root / "table.csv")
    lines = table.read_text().splitlines()
    (root / "badtable.csv").write_text("\n".join(lines[:2] + ["0000000x,1,2,3"] + lines[2:5]) + "\n")
    return {"run": str(run), "new": str(root / "new_run"), "file": str(root / "file.txt"),
            "notrun": str(root / "notrun"), "missing": str(root / "missing.csv"), "bin": str(root / "bin.csv"),
            "gz": str(root / "t.csv.gz"), "empty": str(root / "empty.csv"), "header": str(root / "header.csv"),
            "table": str(table), "badtable": str(root / "badtable.csv")}


def tree_digest(folder: str) -> dict[str, str]:
    from pathlib import Path

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def check_case(capsys, places, command: str, argv: list[str], fragment: str) -> list[str]:
    """Run one bad input; the list of what went wrong (empty when the case passes)."""
    from pathlib import Path

    args = command.split() + [a.format(**places) for a in argv]
    root = str(Path(places["run"]).parent)  # the run and every file the cases name: a refusal changes none of them
    before = tree_digest(root)
    start = time.monotonic()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - a traceback is the failure this test looks for
        code = f"raised {type(exc).__name__}: {exc}"
    seconds = time.monotonic() - start
    out = capsys.readouterr()
    problems = []
    if code != 2:
        problems.append(f"exit {code!r}")
    lines = out.err.strip().splitlines()
    if len(lines) != 1 or out.out.strip():
        problems.append(f"stderr has {len(lines)} lines, stdout {out.out.strip()[:100]!r}")
    if "Traceback" in out.err + out.out:
        problems.append("a traceback")
    if fragment not in out.err:
        problems.append(f"{fragment!r} not in the message")
    after = tree_digest(root)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        problems.append(f"files changed: {changed[:5]}")
    if Path(places["new"]).exists():
        shutil.rmtree(places["new"]) if Path(places["new"]).is_dir() else Path(places["new"]).unlink()
        problems.append("a run directory was left behind")
    if seconds > CASE_SECONDS:
        problems.append(f"took {seconds:.1f}s")
    return [f"{' '.join(args)}: {', '.join(problems)} -- stderr: {out.err.strip()[:300]!r}"] if problems else []


@pytest.mark.parametrize("command", list(CASES))
def test_bad_inputs_exit_2_with_one_line_and_change_nothing(capsys, places, command):
    failures = []
    for case_id, argv, fragment in CASES[command]:
        failures += [f"[{case_id}] {f}" for f in check_case(capsys, places, command, argv, fragment)]
    assert not failures, "\n".join(failures)


def test_every_command_has_bad_input_cases():
    from evonas.cli.main import cli

    commands = set()
    for name, cmd in cli.commands.items():
        subs = getattr(cmd, "commands", None)
        commands |= {f"{name} {sub}" for sub in subs} if subs else {name}
    assert commands == set(CASES)
    for command, cases in CASES.items():
        ids = [c[0] for c in cases]
        assert len(ids) == len(set(ids)), command
