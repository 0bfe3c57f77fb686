"""Tabular benchmarks: CSV files whose ``arch`` column holds a space's strings.

A table maps each architecture to measured numbers (accuracies, latencies, ...).
Searchers and predictors are benchmarked against tables without training anything.
Rows are keyed by the canonical architecture string, so equal networks share a row.
Extra tables (for example device latencies) join on the ``arch`` column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search_spaces import Arch, Space, SpaceError

from evonas.errors import ConfigError
from evonas.textfile import InputTooLarge, decode_text, read_limited

SHARED_NB201 = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "nas-bench-201"


@dataclass
class Table:
    """A loaded table: architectures in file order and their numeric columns."""

    space: Space
    path: Path
    archs: list[Arch]
    columns: dict[str, np.ndarray]  # column name -> float64 values aligned with archs
    index: dict[str, int] = field(default_factory=dict)  # canonical string -> row
    text_columns: dict[str, str] = field(default_factory=dict)  # non-numeric column -> where (for messages)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            why = (f"is a text column of table {self.path} ({self.text_columns[name]}), not a numeric one"
                   if name in self.text_columns else f"is not in table {self.path}")
            raise ConfigError(f"column {name!r} {why}; its numeric columns are: {', '.join(self.columns)}")
        return self.columns[name]

    def row_of(self, arch: Arch) -> int:
        key = str(self.space.canonical(arch))
        try:
            return self.index[key]
        except KeyError:
            raise ConfigError(f"architecture {key!r} is not in table {self.path}") from None

    def value(self, arch: Arch, column: str) -> float:
        return float(self.column(column)[self.row_of(arch)])

    def check_times(self, values: np.ndarray, name: str, source: str | Path, *, param: str) -> None:
        """A ConfigError naming ``source``, the column and the architecture at the first negative or infinite time."""
        bad = np.flatnonzero(np.isinf(values) | (values < 0))  # NaN: a missing value (an empty cell)
        if bad.size:
            i = int(bad[0])
            raise ConfigError(f"{source}: column {name!r}, row of architecture {self.space.format(self.archs[i])!r}: a "
                              f"latency must be a finite number >= 0 (ms); got {values[i]:g}; correct the cell, or leave "
                              "it empty for a missing value", param=param)

    def join(self, other_path: str | Path, *, param: str = "latency_table") -> "Table":
        """Add the numeric columns of another table of the same space, by ``arch``."""
        other = load_table(other_path, self.space, param=param)
        for name, values in other.columns.items():
            if name in self.columns:
                continue
            col = np.full(len(self.archs), math.nan)
            for i, arch in enumerate(other.archs):
                j = self.index.get(str(self.space.canonical(arch)))
                if j is not None:
                    col[j] = values[i]
            self.columns[name] = col
        return self


def load_table(path: str | Path, space: Space, *, param: str = "table") -> Table:
    """Read a CSV with an ``arch`` column; every other numeric column is kept.

    The file is checked as it is read, and every defect is one :class:`ConfigError`
    (``param`` names the option the path came from, ``table`` or ``latency_table``)
    that points at ``path:line:column`` (the column is the 1-based field number):
    an unreadable, binary or empty file, a header without ``arch``, a row with too
    few or too many fields, an architecture the space cannot parse, a non-numeric
    cell in a numeric column (an empty cell is NaN), and two rows of one network
    (canonical form) with different values. A column is numeric when most of its
    non-empty cells are numbers; other columns are text and are not kept.
    """
    path = Path(path)
    text = _read_text(path, param)
    key = (hashlib.blake2b(text.encode(), digest_size=16).hexdigest(), id(space))
    cached = _LOADED.get(key)
    if cached is None or cached.space is not space:
        header_line, header, body = _header_and_body(path, text, param)
        arch_col = header.index("arch")
        archs = _parse_archs(path, space, header, body, arch_col, param)
        columns, text_columns = _numeric_columns(path, header, body, arch_col, param)
        index = _index_rows(path, space, archs, columns, header, body, arch_col, param)
        for values in columns.values():
            values.flags.writeable = False  # shared by every copy handed out below
        cached = _LOADED[key] = Table(space=space, path=path, archs=archs, columns=columns, index=index,
                                      text_columns=text_columns)
        while len(_LOADED) > _KEEP:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    return Table(space=space, path=path, archs=list(cached.archs), columns=dict(cached.columns),
                 index=dict(cached.index), text_columns=dict(cached.text_columns))


# The tables this process parsed last, by their text and space, so that commands run in one process (the Python
# API, a notebook) parse a 15,625-row table once; the file is still read, so an edited file is parsed again.
_LOADED: OrderedDict[tuple[str, int], Table] = OrderedDict()
_KEEP = 8


def _header_and_body(path: Path, text: str, param: str) -> tuple[int, list[str], list[tuple[int, list[str]]]]:
    """(header line number, the column names, the (line number, fields) of every non-blank row after it), checked."""
    try:
        rows = [(reader_line, row) for reader_line, row in _csv_rows(text)]
    except csv.Error as exc:
        line, message = exc.args if len(exc.args) == 2 else (None, str(exc))
        raise ConfigError(f"{path}:{line}: not a valid CSV row ({message}); {_FIX}", param=param) from None
    rows = [(line, row) for line, row in rows if row and row != [""] and not (len(row) == 1 and not row[0].strip())]
    # (blank lines are skipped)
    if not rows:
        raise ConfigError(f"{path}: the table is empty (no header line); {_FIX}", param=param)
    header_line, header = rows[0]
    header = [name.strip() for name in header]
    if "arch" not in header:
        raise ConfigError(f"{path}:{header_line}: the header has no 'arch' column (header: {','.join(header)[:200]!r}); "
                          f"{_FIX}", param=param)
    seen_names: dict[str, int] = {}
    for col, name in enumerate(header, start=1):
        if name in seen_names:
            raise ConfigError(f"{path}:{header_line}:{col}: column {name!r} repeats column {seen_names[name]}; "
                              "give every column its own name", param=param)
        seen_names[name] = col
    body = rows[1:]
    if not body:
        raise ConfigError(f"{path}: the table has a header but no rows; {_FIX}", param=param)
    return header_line, header, body


def _parse_archs(path: Path, space: Space, header: list[str], body: list[tuple[int, list[str]]], arch_col: int,
                 param: str) -> list[Arch]:
    """Each row's architecture, in file order; every row must have one field per column."""
    width = len(header)
    archs: list[Arch] = []
    for line, row in body:
        if len(row) != width:
            col = min(len(row), width) + 1
            what = (f"field {col} ({header[col - 1]!r}) is missing" if len(row) < width
                    else f"field {col} is beyond the header's last column ({header[-1]!r})")
            raise ConfigError(f"{path}:{line}:{col}: the row has {len(row)} field(s), the header {width}: {what} "
                              f"(row: {','.join(row)[:80]!r}); every row needs one value per column", param=param)
        cell = row[arch_col].strip()
        try:
            archs.append(space.parse(cell))
        except (ValueError, SpaceError) as exc:
            raise ConfigError(f"{path}:{line}:{arch_col + 1}: the 'arch' cell {cell[:80]!r} is not an architecture of "
                              f"space {space.name!r}: {' '.join(str(exc).split())}", param=param) from None
    return archs


def _numeric_columns(path: Path, header: list[str], body: list[tuple[int, list[str]]], arch_col: int,
                     param: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The numeric columns' values (an empty cell is NaN), and where each text column shows it is text."""
    columns: dict[str, np.ndarray] = {}
    text_columns: dict[str, str] = {}
    for col, name in enumerate(header):
        if col == arch_col:
            continue
        values, bad = [], []
        for line, row in body:
            cell = row[col].strip()
            if cell == "":
                values.append(math.nan)
                continue
            try:
                values.append(float(cell))
            except ValueError:
                values.append(math.nan)
                bad.append((line, cell))
        filled = sum(1 for _, row in body if row[col].strip() != "")
        if bad and 2 * len(bad) >= filled:  # mostly text: a text column, not kept
            text_columns[name] = f"line {bad[0][0]} holds {bad[0][1][:40]!r}"
            continue
        if bad:
            line, cell = bad[0]
            raise ConfigError(f"{path}:{line}:{col + 1}: column {name!r} is numeric but this cell is {cell[:40]!r}; "
                              "write a number, or leave the cell empty for a missing value", param=param)
        columns[name] = np.array(values, dtype=float)
    return columns, text_columns


def _index_rows(path: Path, space: Space, archs: list[Arch], columns: dict[str, np.ndarray], header: list[str],
                body: list[tuple[int, list[str]]], arch_col: int, param: str) -> dict[str, int]:
    """Canonical string -> first row of that network; two rows of one network must agree on every column."""
    index: dict[str, int] = {}
    compared = [name for name in columns if name != "index"]  # a row number differs between copies anyway
    for i, arch in enumerate(archs):
        key = str(space.canonical(arch))
        j = index.setdefault(key, i)
        if j == i:
            continue
        for name in compared:
            a, b = columns[name][j], columns[name][i]
            if a != b and not (math.isnan(a) and math.isnan(b)):
                raise ConfigError(
                    f"{path}:{body[i][0]}:{header.index(name) + 1}: architecture {body[i][1][arch_col].strip()!r} is "
                    f"the network of line {body[j][0]} (canonical {key!r}) but its {name} differs ({b:g} here, "
                    f"{a:g} there); keep one row per network", param=param)
    return index


_FIX = "a table is a plain-text CSV: a header line with an 'arch' column, then one row per architecture"

# Leading bytes of compressed or binary files a table is sometimes confused with.
_MAGIC = {b"\x1f\x8b": "gzip-compressed (gunzip it first)", b"PK\x03\x04": "a zip archive (unzip it first)",
          b"BZh": "bzip2-compressed (bunzip2 it first)", b"\xfd7zXZ\x00": "xz-compressed (unxz it first)",
          b"(\xb5/\xfd": "zstd-compressed (unzstd it first)", b"SQLite format 3\x00": "an SQLite database",
          b"\x80": "a Python pickle or PyTorch file", b"\x93NUMPY": "a NumPy array file",
          b"PAR1": "a Parquet file (export it to CSV first)"}


def _read_text(path: Path, param: str) -> str:
    """The file's text; a ConfigError when it is missing, unreadable, binary or not UTF-8."""
    if not path.exists():
        raise ConfigError(f"The '{param}' parameter names a file that does not exist; got {str(path)!r} (the "
                          f"NAS-Bench-201 tables live in {SHARED_NB201})", param=param)
    if path.is_dir():
        raise ConfigError(f"The '{param}' parameter names a directory, not a CSV file; got {str(path)!r}", param=param)
    try:
        data = read_limited(path)
    except InputTooLarge as exc:
        raise ConfigError(f"The '{param}' parameter names {str(path)!r}, which is {exc.reason}; {_FIX}",
                          param=param) from None
    except OSError as exc:
        raise ConfigError(f"{path}: the table cannot be read ({exc.strerror or exc}); check its permissions",
                          param=param) from None
    if not data.strip():
        raise ConfigError(f"{path}: the table is empty (0 rows, no header); {_FIX}", param=param)
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            raise ConfigError(f"{path}:1:1: the table is a binary file, {kind}; {_FIX}", param=param)
    text, bad = decode_text(data)
    if bad is not None:
        line, col, byte = bad
        raise ConfigError(f"{path}:{line}:{col}: the table is a binary file or not UTF-8 text (byte "
                          f"0x{byte:02x}); {_FIX}", param=param)
    return text


def _csv_rows(text: str):
    """(line number, fields) of every CSV record; the line is where the record starts."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise csv.Error(reader.line_num, str(exc)) from None
        yield line, row
        line = reader.line_num + 1
