"""The evaluation store: records keyed for reuse, search history, WAL concurrency between processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from evonas.errors import ConfigError, cli_message
from evonas.run.records import Record, Step
from evonas.run.store import Store


def _put(store, arch, acc=1.0, source_key="k1"):
    return store.put(space="macro-fmnist", arch=arch, scorer="table", source_key=source_key,
                     metrics={"acc": acc}, source={"table": "t.csv"})


def test_records_are_immutable_values():
    r = Record(space="s", arch="a", scorer="table", source_key="k", metrics={"acc": 1.0}, source={}, created=0.0)
    with pytest.raises(Exception):
        r.arch = "b"
    with pytest.raises(TypeError):
        r.metrics["acc"] = 2.0  # a read-only mapping
    assert r.metric("missing") != r.metric("missing")  # NaN


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_put_get_and_first_writer_wins(tmp_path, kind):
    store = Store.open(tmp_path / "run") if kind == "file" else Store.memory()
    first = _put(store, "00000000", 1.0)
    again = _put(store, "00000000", 2.0)  # same key: the stored record is returned unchanged
    assert again.id == first.id and again.metric("acc") == 1.0
    other = _put(store, "00000000", 3.0, source_key="k2")  # another source is another record
    assert other.id != first.id
    assert store.get("macro-fmnist", "00000000", "table", "k1").metric("acc") == 1.0
    assert store.get("macro-fmnist", "11111111", "table", "k1") is None
    assert [r.id for r in store.records(source_key="k1")] == [first.id]
    assert store.count() == 2


def test_records_survive_reopening(tmp_path):
    with Store.open(tmp_path / "run") as store:
        _put(store, "01201201", 5.0)
    with Store.open(tmp_path / "run") as store:
        assert store.get("macro-fmnist", "01201201", "table", "k1").metric("acc") == 5.0
        assert store.integrity_ok()


def test_open_uses_the_run_layouts_file_and_refuses_a_file(tmp_path):
    from evonas.errors import RunDirError
    from evonas.run.run import RunLayout

    layout = RunLayout.of(tmp_path / "run")
    with Store.open(tmp_path / "run") as store, Store.open(layout) as same, layout.store() as third:
        assert store.path == same.path == third.path == str(layout.store_file)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match="The 'run_dir' parameter must be a run directory") as info:
        Store.open(tmp_path / "file")
    assert cli_message(info.value).startswith("--run must be a run directory")


def test_search_runs_steps_and_resume_lookup(tmp_path):
    store = Store.open(tmp_path / "run")
    cfg = {"constraints": {"max_flops": 3e6}}
    run, resumed = store.begin_search(algo="evolution", seed=0, config=cfg)
    assert (run.name, resumed) == ("evolution-s0", False)
    second, _ = store.begin_search(algo="evolution", seed=0, config=cfg)
    assert second.name == "evolution-s0-2"
    rec = _put(store, "00000000")
    store.add_step(Step(run_id=run.id, index=0, arch="00000000", value=1.0, feasible=True, record_id=rec.id, created=0))
    store.add_step(Step(run_id=run.id, index=1, arch="11111111", value=None, feasible=False, record_id=None, created=0))
    store.add_step(Step(run_id=run.id, index=1, arch="11111112", value=None, feasible=False, record_id=None, created=0))
    assert [s.arch for s in store.steps(run.id)] == ["00000000", "11111112"]  # a replay rewrites in place
    again, resumed = store.begin_search(algo="evolution", seed=0, config=cfg, resume=True)
    assert resumed and again.id == second.id  # the newest matching run
    with pytest.raises(ConfigError, match=r"cannot replay search run 'evolution-s0-2'.*constraints: \{'max_flops'"):
        store.begin_search(algo="evolution", seed=0, config={"other": 1}, resume=True)  # other options: refused
    with pytest.raises(ConfigError, match=r"there is no search run of searcher 'rea' with the 'seed' parameter \(0\)"):
        store.begin_search(algo="rea", seed=0, config=cfg, resume=True)
    fresh, resumed = store.begin_search(algo="evolution", seed=0, config={"other": 1})
    assert not resumed and fresh.name == "evolution-s0-3"
    store.finish_search(run.id, {"best": None}, keep_steps=1)
    assert len(store.steps(run.id)) == 1 and store.search_run("evolution-s0").finished
    with pytest.raises(ConfigError, match=r"The 'name' parameter \(evolution-s0\) is already a search run") as info:
        store.begin_search(algo="rea", seed=1, config={}, name="evolution-s0")
    assert info.value.param == "name" and cli_message(info.value).startswith("--name evolution-s0 is already")
    with pytest.raises(ConfigError, match="The 'resume' parameter cannot replay search run 'evolution-s0'"):
        store.begin_search(algo="rea", seed=1, config={}, name="evolution-s0", resume=True)


WRITER = textwrap.dedent("""
    import sys
    from evonas.run.store import Store
    store = Store.open(sys.argv[1])
    run, _ = store.begin_search(algo="random", seed=0, config={})
    for i in range(300):
        arch = f"{i % 150:08d}"  # both writers insert the same keys
        rec = store.put(space="s", arch=arch, scorer="table", source_key="k", metrics={"v": i % 150}, source={})
        from evonas.run.records import Step
        store.add_step(Step(run_id=run.id, index=i, arch=arch, value=rec.metric("v"), feasible=True,
                            record_id=rec.id, created=0.0))
""")


def test_two_processes_write_one_store_without_corruption(tmp_path):
    run = tmp_path / "run"
    Store.open(run).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(run)], stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with Store.open(run) as store:
        assert store.integrity_ok()
        assert store.count() == 150  # one record per key, whoever wrote first
        runs = store.search_runs()
        assert sorted(r.name for r in runs) == ["random-s0", "random-s0-2"]
        assert all(len(store.steps(r.id)) == 300 for r in runs)
