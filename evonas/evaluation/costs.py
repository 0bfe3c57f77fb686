"""What an architecture costs (FLOPs, params, latency), known before it is scored.

:class:`CostModel` computes FLOPs and params from the space's description (or reads
them from table columns when a table has them) and latency from a table column (for
example ``pixel3_ms`` of ``nb201_latency.csv``). It also checks limits against the
cheapest architecture, so an infeasible limit is an immediate error that states the
smallest feasible value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

import numpy as np

from search_spaces import Arch, InfeasibleConstraintError, Space

from evonas.errors import ConfigError

if TYPE_CHECKING:  # only for annotations: constraints import this module
    from evonas.search.constraints import Constraints

METRICS = ("flops", "params", "latency_ms")  # the cost metrics a constraint or objective may name
OPTION = {"flops": "--max-flops", "params": "--max-params", "latency_ms": "--max-latency-ms"}


def fmt(value: float) -> str:
    """Large counts with thousands separators, small values (latency) with 6 significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"


class CostModel:
    """What an architecture costs (flops, params, latency_ms), known before it is scored.

    ``columns`` maps a cost metric to a numeric array aligned with ``index`` (canonical
    string -> row) of a table; metrics without a column are computed from the space.
    Latency has no computed fallback: it needs a column.
    """

    def __init__(self, space: Space, *, columns: Mapping[str, np.ndarray] | None = None,
                 index: Mapping[str, int] | None = None, origin: str = "") -> None:
        self.space = space
        self.columns = dict(columns or {})
        unknown = set(self.columns) - set(METRICS)
        if unknown:
            raise ConfigError(f"cost columns must be named after {', '.join(METRICS)}; got {sorted(unknown)}")
        if self.columns and index is None:
            raise ConfigError("a CostModel with table columns needs the table's index")
        self.index = dict(index or {})
        self.origin = origin  # where the columns come from, for messages

    def has(self, metric: str) -> bool:
        return metric in ("flops", "params") or metric in self.columns

    def costs(self, arch: Arch) -> dict[str, float]:
        """Every cost metric this model knows for ``arch`` (NaN when a table lacks the row)."""
        cost = self.space.cost(arch)
        out: dict[str, float] = {"flops": float(cost.flops), "params": float(cost.params)}
        if self.columns:
            row = self.index.get(str(self.space.canonical(arch)))
            for metric, col in self.columns.items():
                out[metric] = math.nan if row is None else float(col[row])
        return out

    def smallest(self, metric: str) -> float:
        """The smallest value of ``metric`` over the space (or over the table rows)."""
        if metric in self.columns:
            col = self.columns[metric]
            finite = col[~np.isnan(col)]
            return float(finite.min()) if len(finite) else math.nan
        return float(self.space.min_cost(metric))

    def check(self, constraints: Constraints) -> None:
        """Raise at once when a limit is tighter than the cheapest architecture allows."""
        for metric, limit in constraints.limits.items():
            if not self.has(metric):
                raise ConfigError(
                    f"{OPTION[metric]} needs a latency source: give --latency-table CSV and "
                    f"--latency-column NAME (e.g. nb201_latency.csv with pixel3_ms), or a --table with a "
                    f"latency_ms column; space {self.space.name!r} has no computed latency"
                )
            smallest = self.smallest(metric)
            if math.isnan(smallest):
                raise ConfigError(f"the {metric} column{self.origin and ' of ' + self.origin} has no values")
            if limit < smallest:
                raise InfeasibleConstraintError(
                    f"{OPTION[metric]} {fmt(limit)} is infeasible for space {self.space.name!r}: the smallest "
                    f"network has {metric} = {fmt(smallest)}. Raise the limit to at least {fmt(smallest)}."
                )
        if len(constraints.limits) > 1 and self.columns:
            self._check_jointly(constraints)

    def _check_jointly(self, constraints: Constraints) -> None:
        """With table columns every row is known: check that one row meets all limits at once."""
        space = self.space
        for text in self.index:
            if constraints.satisfied(self.costs(space.parse(text))):
                return
        raise InfeasibleConstraintError(
            f"no architecture of the table meets all limits at once ({constraints.limits}); each limit alone "
            f"is feasible (smallest: " + ", ".join(f"{m} = {fmt(self.smallest(m))}" for m in constraints.limits)
            + "). Loosen one of them."
        )
