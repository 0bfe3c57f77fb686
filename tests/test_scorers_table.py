"""The table scorer and the scorer registry; scoring through the store (the cache)."""

from __future__ import annotations

import pytest
from synthetic_tables import write_table

from evonas.errors import ConfigError
from evonas.scorers import score_cached, get_scorer, list_scorers, make_scorer, register_scorer
from evonas.scorers.table import TableScorer
from evonas.run.store import Store
from evonas.scorers.tables import load_table
from search_spaces import UnknownNameError, get_space


@pytest.fixture()
def table_path(tmp_path):
    return write_table(tmp_path / "macro.csv")


def test_registry_has_builtins_and_takes_new_scorers():
    assert {"supernet", "table"} <= set(list_scorers())
    with pytest.raises(UnknownNameError, match="unknown scorer 'bogus'; choose one of: .*supernet, table"):
        get_scorer("bogus")
    factory = lambda **o: None  # noqa: E731
    register_scorer("predictor-test", factory)
    assert get_scorer("predictor-test") is factory
    with pytest.raises(ValueError, match="already registered"):
        register_scorer("predictor-test", lambda **o: None)


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
    with pytest.raises(ConfigError, match="needs --target"):
        make_scorer("table", space="macro-fmnist", table=table_path, target=None)
    with pytest.raises(ConfigError, match="does not exist"):
        make_scorer("table", space="macro-fmnist", table=table_path.with_name("missing.csv"), target="val_acc")


def test_latency_table_join_needs_a_column(tmp_path, table_path):
    space = get_space("macro-fmnist")
    lat = tmp_path / "lat.csv"
    lat.write_text("arch,dev_ms\n" + "".join(f"{space.format(a)},{i * 0.01 + 1}\n"
                                             for i, a in enumerate(space.enumerate())))
    no_lat = write_table(tmp_path / "plain.csv", latency=False)
    with pytest.raises(ConfigError, match="needs --latency-column"):
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
