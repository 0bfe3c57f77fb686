"""A garbage, truncated or corrupt store.sqlite is refused with one line, and never changed."""

from __future__ import annotations

import json
import sqlite3

import pytest
from tests.conftest import tiny_config
from tests.synthetic_tables import write_table

from evonas.cli.main import main
from evonas.errors import RunDirError
from evonas.run.store import STORE_FILE, Store


def garbage_store(run):
    run.mkdir(parents=True, exist_ok=True)
    (run / STORE_FILE).write_bytes(b"this is not an SQLite database\n" * 200)
    return run / STORE_FILE


def truncated_store(run):
    with Store.open(run) as store:
        for i in range(300):
            store.put(space="macro-fmnist", arch=f"{i:08d}", scorer="table", source_key="k",
                      metrics={"accuracy": float(i)}, source={"pad": "x" * 200})
    path = run / STORE_FILE
    data = path.read_bytes()
    assert len(data) > 16 * 4096  # closed: the WAL is checkpointed into the file
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_STORES = {"garbage": garbage_store, "truncated": truncated_store}


@pytest.mark.parametrize("kind", sorted(BAD_STORES))
def test_store_open_refuses_an_unreadable_file(tmp_path, kind):
    path = BAD_STORES[kind](tmp_path / "run")
    before = path.read_bytes()
    with pytest.raises(RunDirError) as exc:
        Store.open(tmp_path / "run")
    message = str(exc.value)
    assert message.startswith(f"{path} is not a readable evonas store (")
    assert "move it aside to start a new store, or restore it from a copy" in message and "\n" not in message
    assert path.read_bytes() == before


def test_a_later_database_error_becomes_run_dir_error(tmp_path):
    class Corrupt:
        def execute(self, *args):
            raise sqlite3.DatabaseError("database disk image is malformed")

        def close(self):
            pass

    store = Store.open(tmp_path)
    real, store._db = store._db, Corrupt()
    try:
        for call in (lambda: store.get("s", "a", "t", "k"), store.count, store.search_runs,
                     lambda: store.put(space="s", arch="a", scorer="t", source_key="k", metrics={}, source={}),
                     lambda: store.claim("s", "a", "t", "k")):
            with pytest.raises(RunDirError, match="is not a readable evonas store \\(database disk image is malformed\\)"):
                call()
    finally:
        real.close()


def cli_error(capsys, args) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("kind", sorted(BAD_STORES))
def test_search_and_export_exit_2_with_one_line(tmp_path, capsys, kind):
    run = tmp_path / "run"
    path = BAD_STORES[kind](run)
    (run / "config.json").write_text(json.dumps({"config": tiny_config().to_dict()}))  # a run for export
    before = path.read_bytes()
    table = write_table(tmp_path / "macro.csv")
    line = cli_error(capsys, ["search", "--run", str(run), "--table", str(table), "--target", "val_acc",
                              "--algo", "random", "--budget", "3"])
    assert line.startswith(f"error: {path} is not a readable evonas store")
    line = cli_error(capsys, ["export", "--run", str(run), "--top-k", "1"])
    assert line.startswith(f"error: {path} is not a readable evonas store")
    assert path.read_bytes() == before
