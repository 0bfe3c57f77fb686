"""The table scorer and the scorer registry; scoring through the store (the cache)."""

from __future__ import annotations

import pytest
from tests.synthetic_tables import write_table

from evonas.errors import ConfigError
from evonas.scorers import (
    get_scorer,
    list_scorers,
    make_scorer,
    register_scorer,
    score_cached,
    scorer_options,
    select_options,
)
from evonas.scorers.table import TableScorer
from evonas.run.store import Store
from evonas.scorers.tables import load_table
from search_spaces import UnknownNameError, get_space


@pytest.fixture()
def table_path(tmp_path):
    return write_table(tmp_path / "macro.csv")


def test_registry_has_builtins_and_takes_new_scorers(monkeypatch):
    from evonas.scorers import registry

    assert {"predictor", "standalone", "supernet", "table"} <= set(list_scorers())
    monkeypatch.setattr(registry, "_SCORERS", dict(registry._SCORERS))  # registrations end with the test
    monkeypatch.setattr(registry, "_OPTIONS", dict(registry._OPTIONS))
    with pytest.raises(UnknownNameError, match="unknown scorer 'bogus'; choose one of: .*supernet, table"):
        get_scorer("bogus")

    def factory(*, run_dir, depth=2):
        return ("built", run_dir, depth)

    register_scorer("scorer-test", factory)
    assert get_scorer("scorer-test") is factory and scorer_options("scorer-test") == {"run_dir", "depth"}
    assert make_scorer("scorer-test", run_dir="r") == ("built", "r", 2)
    with pytest.raises(ConfigError, match="The 'run_dir' option is required by scorer 'scorer-test'"):
        make_scorer("scorer-test", depth=3)
    with pytest.raises(ConfigError, match="The 'width' option is not accepted by scorer 'scorer-test'; valid options: depth, run_dir"):
        make_scorer("scorer-test", run_dir="r", width=3)
    with pytest.raises(ConfigError, match="already registered"):
        register_scorer("scorer-test", lambda *, run_dir: None)
    with pytest.raises(ConfigError, match=r"The 'options' parameter is required .* takes \*\*o"):
        register_scorer("kwargs-test", lambda **o: None)
    register_scorer("kwargs-test", lambda **o: o, options=["a"])
    assert make_scorer("kwargs-test", a=1) == {"a": 1}
    with pytest.raises(ConfigError, match="The 'b' option is not accepted by scorer 'kwargs-test'; valid options: a"):
        make_scorer("kwargs-test", b=1)


def test_callers_with_a_superset_select_the_options_that_apply(table_path):
    shared = {"space": "macro-fmnist", "table": table_path, "target": "val_acc", "report": None,
              "latency_table": None, "latency_column": None, "run_dir": None}
    assert "run_dir" not in select_options("table", shared)
    scorer = make_scorer("table", **select_options("table", shared))
    assert scorer.target == "val_acc"
    assert select_options("supernet", shared) == {"latency_table": None, "latency_column": None, "run_dir": None}


def test_table_scorer_reports_every_column_and_costs(table_path):
    space = get_space("macro-fmnist")
    scorer = make_scorer("table", space="macro-fmnist", table=table_path, target="val_acc", report="test_acc")
    arch = space.parse("12012200")
    m = scorer.score(space.canonical(arch))
    table = load_table(table_path, space)
    assert m["val_acc"] == pytest.approx(table.value(arch, "val_acc"))
    assert m["test_acc"] == pytest.approx(table.value(arch, "test_acc"))
    assert m["flops"] == space.cost(arch).flops and m["params"] == space.cost(arch).params
    assert m["latency_ms"] == pytest.approx(table.value(arch, "latency_ms"))  # a latency_ms column is used as is
    assert scorer.knows(arch)


def test_table_scorer_errors_name_the_option(table_path):
    with pytest.raises(ConfigError, match="column 'nope' is not in table .* val_acc, test_acc"):
        make_scorer("table", space="macro-fmnist", table=table_path, target="nope")
    with pytest.raises(ConfigError, match="The 'target' option of scorer 'table' must name the column to maximise"):
        make_scorer("table", space="macro-fmnist", table=table_path, target=None)
    with pytest.raises(ConfigError, match="The 'table' option of scorer 'table' must be a CSV file"):
        make_scorer("table", space="macro-fmnist", table=None, target="val_acc")
    with pytest.raises(ConfigError, match="does not exist"):
        make_scorer("table", space="macro-fmnist", table=table_path.with_name("missing.csv"), target="val_acc")


def test_latency_table_join_needs_a_column(tmp_path, table_path):
    space = get_space("macro-fmnist")
    lat = tmp_path / "lat.csv"
    lat.write_text("arch,dev_ms\n" + "".join(f"{space.format(a)},{i * 0.01 + 1}\n"
                                             for i, a in enumerate(space.enumerate())))
    no_lat = write_table(tmp_path / "plain.csv", latency=False)
    with pytest.raises(ConfigError, match="The 'latency_column' option is required with the 'latency_table' option"):
        TableScorer(load_table(no_lat, space), target="val_acc", latency_table=lat)
    s = TableScorer(load_table(no_lat, space), target="val_acc", latency_table=lat, latency_column="dev_ms")
    arch = space.parse("00000000")
    assert s.costs(arch)["latency_ms"] == pytest.approx(1.0)
    assert s.provenance()["latency_column"] == "dev_ms"


def test_source_key_changes_with_the_table_contents(tmp_path, table_path):
    a = make_scorer("table", space="macro-fmnist", table=table_path, target="val_acc")
    b = make_scorer("table", space="macro-fmnist", table=table_path, target="test_acc")
    assert a.source_key == b.source_key  # one record serves every target
    edited = tmp_path / "edited.csv"
    lines = table_path.read_text().splitlines()
    arch, val, rest = lines[1].split(",", 2)
    lines[1] = f"{arch},{float(val) + 1},{rest}"
    edited.write_text("\n".join(lines) + "\n")
    c = make_scorer("table", space="macro-fmnist", table=edited, target="val_acc")
    assert c.source_key != a.source_key


def test_evaluate_reads_the_store_before_scoring(table_path):
    scorer = make_scorer("table", space="macro-fmnist", table=table_path, target="val_acc")
    calls = []
    original = scorer.score
    scorer.score = lambda arch: calls.append(arch) or original(arch)
    store = Store.memory()
    space = scorer.space
    first = score_cached(scorer, store, space.parse("10000000"))
    again = score_cached(scorer, store, space.parse("10000000"))
    same_net = score_cached(scorer, store, space.parse("10000000"))
    assert not first.cached and again.cached and same_net.cached and len(calls) == 1
    assert again.record == first.record
    # two strings of one network (identity moved to the stage end) share a record
    score_cached(scorer, store, space.parse("01010000"))
    assert score_cached(scorer, store, space.parse("01001000")).cached
