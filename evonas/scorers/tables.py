"""Tabular benchmarks: CSV files whose ``arch`` column holds a space's strings.

A table maps each architecture to measured numbers (accuracies, latencies, ...).
Searchers and predictors are benchmarked against tables without training anything.
Rows are keyed by the canonical architecture string, so equal networks share a row.
Extra tables (for example device latencies) join on the ``arch`` column.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search_spaces import Arch, Space

from evonas.errors import ConfigError

SHARED_NB201 = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "nas-bench-201"


@dataclass
class Table:
    """A loaded table: architectures in file order and their numeric columns."""

    space: Space
    path: Path
    archs: list[Arch]
    columns: dict[str, np.ndarray]  # column name -> float64 values aligned with archs
    index: dict[str, int] = field(default_factory=dict)  # canonical string -> row

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise ConfigError(
                f"column {name!r} is not in table {self.path}; its numeric columns are: "
                f"{', '.join(self.columns)}"
            )
        return self.columns[name]

    def row_of(self, arch: Arch) -> int:
        key = str(self.space.canonical(arch))
        try:
            return self.index[key]
        except KeyError:
            raise ConfigError(f"architecture {key!r} is not in table {self.path}") from None

    def value(self, arch: Arch, column: str) -> float:
        return float(self.column(column)[self.row_of(arch)])

    def join(self, other_path: str | Path) -> "Table":
        """Add the numeric columns of another table of the same space, by ``arch``."""
        other = load_table(other_path, self.space)
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


def load_table(path: str | Path, space: Space) -> Table:
    """Read a CSV with an ``arch`` column; every other numeric column is kept."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"The 'table' parameter names a file that does not exist; got {str(path)!r} (the NAS-Bench-201 "
            f"tables live in {SHARED_NB201})", param="table"
        )
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "arch" not in reader.fieldnames:
            raise ConfigError(f"table {path} has no 'arch' column (header: {reader.fieldnames})")
        rows = list(reader)
    archs = []
    for lineno, row in enumerate(rows, start=2):
        try:
            archs.append(space.parse(row["arch"]))
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}") from None
    columns: dict[str, np.ndarray] = {}
    for name in reader.fieldnames:
        if name == "arch":
            continue
        try:
            columns[name] = np.array([float(r[name]) if r[name] != "" else math.nan for r in rows])
        except ValueError:
            continue  # a text column
    index: dict[str, int] = {}
    for i, arch in enumerate(archs):
        index.setdefault(str(space.canonical(arch)), i)
    return Table(space=space, path=path, archs=archs, columns=columns, index=index)
