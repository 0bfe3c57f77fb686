"""The table scorer: look architectures up in a CSV (NAS-Bench-201 style) instead of training.

Every numeric column of the architecture's row becomes a metric, so one record
serves searches on any ``--target``. Cost metrics come from ``flops``/``params``
columns when the table has them (else from the space), and latency from the column
named by ``latency_column`` (for example ``pixel3_ms`` of a joined latency table).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from search_spaces import Arch, Space, get_space

from evonas.evaluation.costs import CostModel
from evonas.errors import ConfigError
from evonas.scorers.tables import Table, load_table
from evonas.run.digest import file_sha256 as file_digest  # a table edited in place is a new source
from evonas.scorers.base import Scorer


class TableScorer(Scorer):
    """Scores by looking up a table row; ``target`` is the column searches maximise."""

    name = "table"

    def __init__(self, table: Table, *, target: str, report: str | None = None,
                 latency_table: str | Path | None = None, latency_column: str | None = None) -> None:
        self.table = table
        self.space = table.space
        self._latency_table = str(latency_table) if latency_table else None
        if latency_table:
            table.join(latency_table)
        table.column(target)  # raise, listing the columns, when absent
        if report:
            table.column(report)
        self.target, self.report = target, report
        columns = {m: table.columns[m] for m in ("flops", "params", "latency_ms") if m in table.columns}
        if latency_column:
            columns["latency_ms"] = table.column(latency_column)
        elif latency_table and "latency_ms" not in columns:
            raise ConfigError(
                f"The 'latency_column' option is required with the 'latency_table' option ({latency_table}): it "
                f"says which device column is the latency; got None; columns: {', '.join(c for c in table.columns)}",
                param="latency_column",
            )
        self.latency_column = latency_column or ("latency_ms" if "latency_ms" in columns else None)
        if self.latency_column is not None:  # a time: finite and >= 0 where given (an empty cell is missing)
            table.check_times(columns["latency_ms"], self.latency_column, self._latency_table or table.path,
                              param="latency_table" if latency_table else "table")
        self.cost_model = CostModel(self.space, columns=columns, index=table.index, origin=str(table.path))
        self._digests = {"table": file_digest(table.path)}
        if latency_table:
            self._digests["latency_table"] = file_digest(latency_table)

    @classmethod
    def from_options(cls, *, space: Space | str, table: str | Path, target: str, report: str | None = None,
                     latency_table: str | Path | None = None, latency_column: str | None = None) -> "TableScorer":
        """Load ``table`` (a CSV whose arch column holds ``space``'s strings) and maximise column ``target``."""
        space = get_space(space) if isinstance(space, str) else space
        if not table:
            raise ConfigError("The 'table' option of scorer 'table' must be a CSV file whose arch column holds the "
                              f"space's strings; got {table!r}", param="table")
        if not target:
            raise ConfigError("The 'target' option of scorer 'table' must name the column to maximise (e.g. "
                              f"cifar10_valid_acc); got {target!r}", param="target")
        return cls(load_table(table, space), target=target, report=report,
                   latency_table=latency_table, latency_column=latency_column)

    def knows(self, arch: Arch) -> bool:
        """A row for ``arch`` with a value in the target column (an empty cell is no score)."""
        row = self.table.index.get(str(self.space.canonical(arch)))
        return row is not None and not math.isnan(float(self.table.columns[self.target][row]))

    def score(self, arch: Arch) -> dict[str, float]:
        row = self.table.row_of(arch)
        metrics = {name: float(col[row]) for name, col in self.table.columns.items() if not math.isnan(col[row])}
        metrics.update({k: v for k, v in self.costs(arch).items() if not math.isnan(v)})
        if self.target not in metrics:
            raise ConfigError(f"table {self.table.path} has no {self.target} value for {arch}")
        return metrics

    def provenance(self) -> dict[str, Any]:
        return {
            "table": str(Path(self.table.path).resolve()),
            **{f"{k}_sha256": v for k, v in self._digests.items()},
            **({"latency_table": str(Path(self._latency_table).resolve())} if self._latency_table else {}),
            **({"latency_column": self.latency_column} if self.latency_column else {}),
        }
