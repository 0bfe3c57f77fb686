"""Tables are checked as they are read: one ConfigError naming path:line:column per defect.

Each test writes one broken table (or file) and asserts the error names the option
(``table`` or ``latency_table``), the place and the rule. The last tests check that a
search over a partial table says why it stopped before its budget.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random

import pytest
from tests.synthetic_tables import write_table

from evonas.cli.main import main
from evonas.errors import ConfigError
from evonas.scorers.tables import load_table
from search_spaces import get_space

SPACE = get_space("macro-fmnist")
HEADER = "arch,val_acc,test_acc\n"


def write(tmp_path, text: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_table(path, SPACE, **kw)
    assert "\n" not in str(exc.value)
    return exc.value


def test_a_non_numeric_cell_in_a_numeric_column_names_line_and_column(tmp_path):
    path = write(tmp_path, HEADER + "00000000,70.1,70.0\n00000001,abc,69.0\n00000002,71.2,70.3\n")
    err = load_error(path)
    assert err.param == "table"
    assert f"{path}:3:2:" in str(err) and "'val_acc'" in str(err) and "'abc'" in str(err)


def test_empty_cells_are_missing_values_and_text_columns_are_named(tmp_path):
    path = write(tmp_path, "arch,val_acc,note\n00000000,,a\n00000001,72.5,b\n")
    table = load_table(path, SPACE)
    assert math.isnan(table.columns["val_acc"][0]) and table.columns["val_acc"][1] == 72.5
    with pytest.raises(ConfigError, match="'note' is a text column .*line 2 holds 'a'"):
        table.column("note")


def test_a_short_row_names_the_missing_column(tmp_path):
    path = write(tmp_path, HEADER + "00000000,70.1,70.0\n00000001,69.0\n")
    err = load_error(path)
    assert f"{path}:3:3:" in str(err) and "has 2 field(s), the header 3" in str(err) and "'test_acc'" in str(err)


def test_an_over_long_row_names_the_extra_field(tmp_path):
    path = write(tmp_path, HEADER + "00000000,70.1,70.0,5\n")
    err = load_error(path)
    assert f"{path}:2:4:" in str(err) and "has 4 field(s), the header 3" in str(err)


def test_a_garbage_row_is_refused_where_it_is(tmp_path):
    path = write(tmp_path, HEADER + "00000000,70.1,70.0\n\n@@@ not a row ###\n00000001,69,68\n")
    err = load_error(path)
    assert f"{path}:4:2:" in str(err) and "@@@ not a row ###" in str(err)
    quoted = write(tmp_path, HEADER + '00000000,70.1,"70.0"x\n', "q.csv")  # broken quoting
    assert f"{quoted}:2:" in str(load_error(quoted))


def test_an_architecture_the_space_cannot_parse(tmp_path):
    path = write(tmp_path, HEADER + "00000000,70.1,70.0\n0000000x,69,68\n")
    err = load_error(path)
    assert f"{path}:3:1:" in str(err) and "'0000000x' is not an architecture of space 'macro-fmnist'" in str(err)


def test_duplicate_networks_with_conflicting_values_are_refused(tmp_path):
    # 01010000 and 01001000 are one network (an identity moved to the stage end)
    assert SPACE.canonical(SPACE.parse("01001000")) == SPACE.canonical(SPACE.parse("01010000"))
    same = write(tmp_path, HEADER + "01010000,70.1,70.0\n01001000,70.1,70.0\n", "same.csv")
    assert len(load_table(same, SPACE).index) == 1  # agreeing copies are fine
    path = write(tmp_path, HEADER + "01010000,70.1,70.0\n00000000,1,2\n01001000,75.0,70.0\n")
    err = load_error(path)
    assert f"{path}:4:2:" in str(err) and "line 2" in str(err) and "val_acc differs" in str(err)


@pytest.mark.parametrize("text, what", [("", "empty"), ("   \n\n", "empty"), (HEADER, "header but no rows")])
def test_an_empty_table_is_refused(tmp_path, text, what):
    err = load_error(write(tmp_path, text))
    assert what in str(err) and err.param == "table"


def test_a_header_without_arch(tmp_path):
    path = write(tmp_path, "name,val_acc\n00000000,1\n")
    assert f"{path}:1:" in str(load_error(path)) and "no 'arch' column" in str(load_error(path))


def test_binary_files_are_refused(tmp_path):
    noise = tmp_path / "noise.csv"
    noise.write_bytes(random.Random(0).randbytes(4096))
    err = load_error(noise)
    assert f"{noise}:" in str(err) and "binary" in str(err)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress((HEADER + "00000000,1,2\n").encode()))
    assert "gzip" in str(load_error(gz))
    nul = tmp_path / "nul.csv"
    nul.write_bytes((HEADER + "00000000,1,2\n0000\x000001,1,2\n").encode())
    assert f"{nul}:3:5:" in str(load_error(nul))


def test_an_unreadable_file_is_refused(tmp_path, monkeypatch):
    path = write(tmp_path, HEADER + "00000000,1,2\n")
    if os.geteuid() == 0:  # root reads every file: make reading fail as it would without permission
        import evonas.scorers.tables as tables

        def denied(file, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(file))

        monkeypatch.setattr(tables, "read_limited", denied)  # the bounded reader the table is read with
    else:
        path.chmod(0)
    err = load_error(path)
    assert f"{path}:" in str(err) and "cannot be read" in str(err)
    monkeypatch.undo()
    assert "a directory" in str(load_error(tmp_path))
    assert "does not exist" in str(load_error(tmp_path / "missing.csv"))


def test_a_latency_table_names_its_own_option(tmp_path):
    table = load_table(write_table(tmp_path / "t.csv"), SPACE)
    lat = write(tmp_path, "arch,dev_ms\n00000000,oops\n00000001,1.0\n00000002,2.0\n", "lat.csv")
    with pytest.raises(ConfigError) as exc:
        table.join(lat)
    assert exc.value.param == "latency_table" and f"{lat}:2:2:" in str(exc.value)


# --- a search over a partial table says why it stopped -----------------------------------------


def partial_table(tmp_path, rows: int = 40):
    lines = write_table(tmp_path / "full.csv").read_text().splitlines()
    path = tmp_path / "partial.csv"
    path.write_text("\n".join(lines[: rows + 1]) + "\n")
    return path


def test_a_search_over_a_partial_table_reports_exhaustion(tmp_path, capsys):
    path = partial_table(tmp_path)
    args = ["search", "--space", "macro-fmnist", "--table", str(path), "--target", "val_acc", "--budget", "100"]
    main(args + ["--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["exhausted"] and out["evaluations"] < 100
    assert out["feasible_rows"] == 40 and "rows that meet the limits" in out["exhausted_reason"]
    main(args)
    text = capsys.readouterr().out
    assert "note: stopped before the budget:" in text
    assert "of the table's 40 rows" in text or "the table ran out" in text


def test_a_search_that_scores_every_row_says_the_table_ran_out(tmp_path, capsys):
    path = partial_table(tmp_path, rows=6)
    main(["search", "--space", "macro-fmnist", "--table", str(path), "--target", "val_acc", "--budget", "50",
          "--algo", "evolution"])
    text = capsys.readouterr().out
    assert "the table ran out: all 6 of its rows that meet the limits were scored" in text


def test_a_table_read_again_is_parsed_once_and_an_edited_one_again(tmp_path):
    path = write(tmp_path, HEADER + "00000000,80,79\n11111111,81,80\n")
    latency = write(tmp_path, "arch,latency_ms\n00000000,1.5\n", name="lat.csv")
    first = load_table(path, SPACE).join(latency)  # a join adds a column to this copy only
    second = load_table(path, SPACE)
    assert "latency_ms" in first.columns and "latency_ms" not in second.columns
    assert list(second.column("val_acc")) == [80.0, 81.0] and second.path == path
    with pytest.raises(ValueError):
        second.column("val_acc")[0] = 0.0  # the parsed values are shared: nobody writes into them
    write(tmp_path, HEADER + "00000000,70,79\n11111111,81,80\n")  # same size, edited at once
    assert list(load_table(path, SPACE).column("val_acc")) == [70.0, 81.0]
    write(tmp_path, HEADER + "00000000,7x,79\n11111111,81,80\n22222222,82,81\n")
    assert "t.csv:2:2" in str(load_error(path))  # an edit that breaks it is refused, not served from before
