"""Issue 25: nothing lost, nothing written outside the run, nothing silently wrong.

Each test is one case of the issue that failed before the fix: a name that is a
path, a resume that replaced a finished result, two writers on one run, a refused
command that wrote, training that diverged silently, a latency table or input file
that was not validated as read, and a Ctrl-C without the command that continues.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from tests.synthetic_tables import write_table

from evonas.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def run_cli(capsys, args: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``evonas ARGS`` run through ``main``."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys, args, fragment: str, *, unchanged: Path | None = None) -> str:
    """Run a command that must be refused: exit 2, one line holding ``fragment``, ``unchanged`` byte-identical."""
    before = digest(unchanged) if unchanged is not None else None
    code, out, err = run_cli(capsys, args)
    assert code == 2, (code, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert fragment in err, err
    if unchanged is not None:
        assert digest(unchanged) == before, f"{unchanged} changed"
    return err.strip()


# --- names are names -----------------------------------------------------------------------------

@pytest.fixture
def table_run(tmp_path) -> tuple[Path, list[str]]:
    """A run directory holding a finished table search of budget 10 (evolution-s0), and the search's argv."""
    table = write_table(tmp_path / "table.csv")
    run = tmp_path / "runs" / "a"
    args = ["search", "--run", run, "--space", "macro-fmnist", "--table", table, "--target", "val_acc",
            "--algo", "evolution", "--max-flops", "3e6", "--quiet"]
    main([str(a) for a in args] + ["--budget", "10"])
    return run, args


@pytest.mark.parametrize("name", ["../../other/searches/x", "../b", "a/b", "..", "a\nb", "a\x00b", "ABSOLUTE", "\\x"])
def test_search_name_that_is_a_path_is_refused_and_writes_nothing(capsys, tmp_path, table_run, name):
    run, args = table_run
    name = str(tmp_path / "abs" / "x") if name == "ABSOLUTE" else name
    other = tmp_path / "other"
    (other / "searches" / "x").mkdir(parents=True)
    (other / "searches" / "x" / "result.json").write_text("{}\n")
    capsys.readouterr()
    refused(capsys, args + ["--budget", "5", "--name", name], "--name must be a plain name", unchanged=tmp_path)
    assert not (tmp_path / "abs").exists()


def test_search_study_name_that_is_a_path_is_refused(capsys, table_run):
    run, args = table_run
    args = [a if a != "evolution" else "tpe" for a in args]
    refused(capsys, args + ["--study-name", "../../x"], "--study-name must be a plain name", unchanged=run)


def test_search_folder_reached_through_a_link_out_of_the_run_is_refused(capsys, tmp_path, table_run):
    run, args = table_run
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(run / "searches")
    (run / "searches").symlink_to(outside, target_is_directory=True)
    refused(capsys, args + ["--budget", "5", "--name", "n1"], "lies outside the run directory", unchanged=tmp_path)


# --- --resume means one thing ----------------------------------------------------------------------

def test_search_resume_of_a_finished_search_with_a_smaller_budget_is_refused_and_keeps_its_result(capsys, table_run):
    run, args = table_run
    result = run / "searches" / "evolution-s0" / "result.json"
    assert json.loads(result.read_text())["evaluations"] == 10
    capsys.readouterr()
    err = refused(capsys, args + ["--budget", "4", "--resume"], "finished with 10 architectures scored", unchanged=run)
    assert "--budget 4" in err and "above 10" in err
    refused(capsys, args + ["--budget", "10", "--resume"], "finished with 10", unchanged=run)
    code, _, err = run_cli(capsys, args + ["--budget", "14", "--resume"])  # a larger budget extends it
    assert code == 0, err
    assert json.loads(result.read_text())["evaluations"] == 14


def test_search_resume_with_no_earlier_search_is_refused(capsys, table_run):
    run, args = table_run
    capsys.readouterr()
    refused(capsys, args + ["--budget", "10", "--seed", "5", "--resume"],
            "no search run of --algo evolution with --seed 5", unchanged=run)
    refused(capsys, args + ["--budget", "10", "--name", "never", "--resume"], "no search run named 'never'", unchanged=run)


def test_search_resume_with_other_limits_is_refused_saying_what_differs(capsys, table_run):
    run, args = table_run
    capsys.readouterr()
    changed = [a if a != "3e6" else "4e6" for a in args]
    err = refused(capsys, changed + ["--budget", "10", "--resume"], "cannot replay search run 'evolution-s0'", unchanged=run)
    assert "constraints.max_flops: 3000000.0 -> 4000000.0" in err


def test_refused_search_records_no_search_run_and_abandons_nothing(capsys, tmp_path):
    """`--algo evolution --objectives accuracy,flops` was refused after the store had recorded an unfinished run."""
    from evonas.run.store import Store

    table = write_table(tmp_path / "table.csv")
    run = tmp_path / "run"
    base = ["search", "--run", run, "--space", "macro-fmnist", "--table", table, "--target", "val_acc", "--quiet",
            "--algo", "evolution", "--budget", "6"]
    main([str(a) for a in base])  # an earlier search, finished
    refused(capsys, base + ["--objectives", "accuracy,flops"], "optimises one objective", unchanged=run)
    store = Store.open(run)
    try:
        assert [(r.name, store.search_state(r)) for r in store.search_runs()] == [("evolution-s0", "finished")]
    finally:
        store.close()


# --- one writer per run ----------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from evonas.run.lock import run_lock
    with run_lock(sys.argv[1], "train-supernet"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_second_train_supernet_on_a_run_being_trained_is_refused_naming_the_holder(capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = digest(run)
        err = refused(capsys, ["train-supernet", "--run", run, "--dataset", "synthetic", "--epochs", "3", "--val-size", "64",
                               "--threads", "1", "--quiet"], "is being written by 'evonas train-supernet'")
        assert f"pid {holder.pid}" in err and "--run" in err
        assert digest(run) == before
    finally:
        holder.kill()
        holder.wait()
    from evonas.run.lock import run_lock

    with run_lock(run, "test"):  # the kernel dropped the dead holder's lock
        pass
    assert not (run / ".writer.json").exists()


def test_train_supernet_holds_the_run_lock_while_it_trains(capsys, tmp_path, monkeypatch):
    from evonas.errors import RunLockedError
    from evonas.run.lock import run_lock
    from evonas.training import supernet

    seen = {}

    def fake_train(layout, cfg, **kwargs):
        seen["holder"] = json.loads((layout.path / ".writer.json").read_text())
        with pytest.raises(RunLockedError, match="is being written by 'evonas train-supernet'"):
            with run_lock(layout.path, "train-supernet"):
                pass
        layout.path.mkdir(exist_ok=True)
        raise KeyboardInterrupt  # stop there

    monkeypatch.setattr(supernet, "train_supernet", fake_train)
    code, _, err = run_cli(capsys, ["train-supernet", "--run", tmp_path / "r", "--dataset", "synthetic", "--epochs", "1",
                                    "--train-limit", "128", "--val-size", "64", "--threads", "1", "--quiet"])
    assert code == 130 and seen["holder"]["command"] == "train-supernet"
    assert err.strip() == "interrupted before anything was kept; run the command again to start over"  # no epoch done
    assert not (tmp_path / "r").exists()  # nothing trained, nothing left


# --- training stops at the first non-finite loss or weight ------------------------------------------

TRAIN = ["train-supernet", "--dataset", "synthetic", "--epochs", "2", "--train-limit", "256", "--val-size", "64",
         "--batch-size", "64", "--threads", "1", "--quiet"]


@pytest.mark.parametrize("setting", [["--lr", "1e9"], ["--weight-decay", "1e30"]])
def test_diverging_training_stops_with_one_line_and_exit_2(capsys, tmp_path, setting):
    run = tmp_path / "run"
    err = refused(capsys, TRAIN + ["--run", run] + setting, "training diverged at epoch 1, step")
    assert "the loss is nan" in err and ("--lr" in err and "--weight-decay" in err)
    assert not run.exists()  # nothing trained: no half run is left


def test_train_supernet_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(capsys, tmp_path, monkeypatch):
    from evonas.training import supernet

    real = supernet.train_epoch

    def poisoned(step_fn, splits, cfg, epoch, *args, **kwargs):
        stats = real(step_fn, splits, cfg, epoch, *args, **kwargs)
        if epoch == 1:  # the second epoch's last step breaks a weight
            for model in models:
                next(model.parameters()).data.fill_(float("nan"))
        return stats

    models = []
    real_make = supernet.make_strategy

    def make_strategy(space, cfg):
        strategy = real_make(space, cfg)
        build = strategy.build_model

        def build_model(phase):
            model = build(phase)
            models.append(model)
            return model

        strategy.build_model = build_model
        return strategy

    monkeypatch.setattr(supernet, "train_epoch", poisoned)
    monkeypatch.setattr(supernet, "make_strategy", make_strategy)
    run = tmp_path / "run"
    err = refused(capsys, TRAIN[:4] + ["3"] + TRAIN[5:] + ["--run", run], "training diverged at epoch 2 (at its end)")
    assert "a weight is not finite" in err and "last good checkpoint (epoch 1) is kept" in err
    from evonas.run.run import RunLayout

    ckpt = torch.load(RunLayout(run).checkpoint, weights_only=False)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not RunLayout(run).weights.exists()


# --- Ctrl-C --------------------------------------------------------------------------------------

def test_ctrl_c_during_search_prints_the_resume_command(capsys, table_run, monkeypatch):
    import evonas.cli.search as search_cli

    run, args = table_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(search_cli, "run_search_job", interrupted)
    capsys.readouterr()
    code, out, err = run_cli(capsys, args + ["--budget", "50", "--seed", "2"])
    assert code == 130 and not out
    assert err.strip() == (f"interrupted; to continue where it stopped, run: evonas search --run {run} --space macro-fmnist "
                           f"--table {run.parent.parent / 'table.csv'} --target val_acc --algo evolution --max-flops 3e6 "
                           "--quiet --budget 50 --seed 2 --resume")
    code, _, err = run_cli(capsys, ["search", "--run", run.parent / "new", "--budget", "5"])  # nothing kept yet
    assert code == 130 and "run the command again to start over" in err


def test_ctrl_c_during_train_supernet_after_an_epoch_prints_the_resume_command(capsys, tmp_path, tiny_run, monkeypatch):
    from evonas.training import supernet

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(supernet, "train_supernet", interrupted)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    code, _, err = run_cli(capsys, ["train-supernet", "--run", run, "--resume", "--quiet"])
    assert code == 130 and err.strip() == f"interrupted; to continue where it stopped, run: evonas train-supernet --run {run} --resume --quiet"


# --- latency tables and input files are validated as read ----------------------------------------

def write_latency_table(run: Path, change=None) -> Path:
    """A hand-made latency table of macro-fmnist for this device in ``run`` (every entry 0.1 ms); ``change(data)`` edits it."""
    from search_spaces import get_space

    from evonas.latency.device import describe_device
    from evonas.latency.runs import table_path
    from evonas.latency.table import FORMAT, FORMAT_VERSION, LatencyEntry, LatencyTable

    space = get_space("macro-fmnist")
    entries = tuple(LatencyEntry(layer=i, code=c, input_shape=(1, 8, 28, 28), median_ms=0.1, p10_ms=0.09, p90_ms=0.11,
                                 spread=0.2, raw_ms=0.12) for i, dim in enumerate(space.dims) for c in dim.options)
    table = LatencyTable(space=space.name, entries=entries, overhead_ms=0.05, overhead={"method": "test"},
                         device=describe_device(1, 1, "eager"), settings={"backend": "eager", "batch_size": 1, "threads": 1},
                         build_seconds=0.0)
    path = table_path(run, space)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = table.to_dict()
    assert data["format"] == FORMAT and data["version"] == FORMAT_VERSION
    if change is not None:
        change(data)
    path.write_text(json.dumps(data))  # NaN is written as NaN, as a hand-edited or broken file may hold
    return path


@pytest.mark.parametrize("value,rule", [(float("nan"), "median_ms must be a finite number; got nan"),
                                        (-0.5, "median_ms must be >= 0"), ("fast", "median_ms must be a finite number"),
                                        (float("inf"), "must be a finite number")])
def test_latency_table_entry_is_validated_as_read_naming_file_and_entry(capsys, tmp_path, tiny_run, value, rule):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def change(data):
        data["entries"][7]["median_ms"] = value

    path = write_latency_table(run, change)
    err = refused(capsys, ["search", "--run", run, "--algo", "random", "--budget", "3", "--max-latency-ms", "100", "--quiet"],
                  rule, unchanged=run)
    assert f"{path}:entries[7] (layer" in err
    err = refused(capsys, ["export", "--run", run, "--top-k", "1", "--max-latency-ms", "100", "--quiet"], rule,
                  unchanged=run)


def test_good_hand_made_latency_table_is_read(tmp_path):
    from evonas.latency.table import LatencyTable

    from search_spaces import get_space

    table = LatencyTable.load(write_latency_table(tmp_path / "run"))
    assert table.min_latency() == pytest.approx(0.05 + 0.1 * len(get_space("macro-fmnist").dims))


def test_latency_table_predicting_a_negative_latency_is_refused(tmp_path):
    from evonas.errors import ConfigError
    from evonas.latency.table import LatencyTable

    def change(data):
        data["fit"] = {"used": True}
        data["overhead_ms"] = -50.0

    with pytest.raises(ConfigError, match="predicts a negative latency"):
        LatencyTable.load(write_latency_table(tmp_path / "run", change))


@pytest.mark.parametrize("command", [["profile", "--archs"], ["search", "--space", "macro-fmnist", "--target", "x", "--table"],
                                     ["predictor-bench", "--space", "macro-fmnist", "--target", "x", "--table"]])
def test_device_file_or_fifo_as_input_is_refused_at_once(capsys, tmp_path, command):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in ("/dev/zero", str(fifo)):
        start = time.monotonic()
        refused(capsys, command + [source], "not a regular file")
        assert time.monotonic() - start < 5


def test_input_over_the_size_limit_is_refused_before_it_is_read(capsys, tmp_path, monkeypatch):
    import evonas.jobs.archs as archs

    monkeypatch.setattr(archs, "MAX_ARCHS_BYTES", 1000)
    big = tmp_path / "archs.txt"
    big.write_text("01201200\n" * 200)
    refused(capsys, ["profile", "--archs", big], "1,800 bytes, over the limit of 1,000 bytes")


@pytest.mark.parametrize("value", ["-1.5", "inf"])
def test_latency_column_with_a_negative_or_infinite_time_is_refused(capsys, tmp_path, value):
    table = write_table(tmp_path / "table.csv", latency=False)
    lines = table.read_text().splitlines()
    archs = [line.split(",")[0] for line in lines[1:]]
    latency = tmp_path / "lat.csv"
    latency.write_text("arch,dev_ms\n" + "".join(f"{a},{value if i == 3 else 1.0}\n" for i, a in enumerate(archs)))
    err = refused(capsys, ["search", "--space", "macro-fmnist", "--table", table, "--target", "val_acc", "--latency-table",
                           latency, "--latency-column", "dev_ms", "--max-latency-ms", "100", "--budget", "3", "--quiet"],
                  "a latency must be a finite number >= 0")
    assert f"{latency}: column 'dev_ms', row of architecture" in err


def test_out_of_memory_in_a_training_step_names_the_batch_size(capsys, tmp_path, monkeypatch):
    from evonas.training import strategies

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                           "to allocate 9999999999 bytes")

    monkeypatch.setattr(strategies.Uniform, "step", no_memory)
    run = tmp_path / "run"
    refused(capsys, TRAIN + ["--run", run], "out of memory in training step 1 of epoch 1; lower --batch-size 64")
    assert not run.exists()


def test_eval_of_non_finite_weights_is_refused_not_scored(capsys, tmp_path, tiny_run):
    """Weights a diverged training wrote before this guard existed: eval said 10% and nothing else."""
    from evonas.run.run import RunLayout

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    weights = RunLayout(run).weights
    state = torch.load(weights, weights_only=False)
    for value in state["model"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    torch.save(state, weights)
    err = refused(capsys, ["eval", "--run", run, "--arch", "12012200", "--quiet"], "non-finite weights", unchanged=run)
    assert "diverged" in err and "--lr" in err


def test_export_folder_reached_through_a_link_out_of_the_run_is_refused(capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "exports").symlink_to(outside, target_is_directory=True)
    refused(capsys, ["export", "--run", run, "--arch", "12012200", "--quiet"], "lies outside the run directory",
            unchanged=tmp_path)
