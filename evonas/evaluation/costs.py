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
LIMIT_PARAM = {"flops": "max_flops", "params": "max_params", "latency_ms": "max_latency_ms"}  # the Constraints field of each


def fmt(value: float) -> str:
    """Large counts with thousands separators, small values (latency) with 6 significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"


class CostModel:
    """What an architecture costs (flops, params, latency_ms), known before it is scored.

    ``columns`` maps a cost metric to a numeric array aligned with ``index`` (canonical
    string -> row) of a table; metrics without a column are computed from the space.
    Latency comes from a column, or from ``latency``: a latency table measured on this
    device (:class:`evonas.latency.table.LatencyTable`), whose prediction is
    additive over layers like FLOPs, so the fastest network is known exactly.
    """

    def __init__(self, space: Space, *, columns: Mapping[str, np.ndarray] | None = None,
                 index: Mapping[str, int] | None = None, origin: str = "", latency=None) -> None:
        self.space = space
        self.latency = latency  # a LatencyTable (predict, min_latency), or None
        if latency is not None and columns and "latency_ms" in columns:
            raise ConfigError("The 'latency' parameter of CostModel cannot be combined with a latency_ms column; "
                              "give one latency source", param="latency")
        self.columns = dict(columns or {})
        unknown = set(self.columns) - set(METRICS)
        if unknown:
            raise ConfigError(f"The 'columns' parameter of CostModel must name only {', '.join(METRICS)}; "
                              f"got {sorted(unknown)}", param="columns")
        if self.columns and index is None:
            raise ConfigError("The 'index' parameter of CostModel is required with table columns; got None",
                              param="index")
        self.index = dict(index or {})
        self.origin = origin  # where the columns come from, for messages

    def has(self, metric: str) -> bool:
        return metric in ("flops", "params") or metric in self.columns or (metric == "latency_ms" and self.latency is not None)

    def costs(self, arch: Arch) -> dict[str, float]:
        """Every cost metric this model knows for ``arch`` (NaN when a table lacks the row)."""
        cost = self.space.cost(arch)
        out: dict[str, float] = {"flops": float(cost.flops), "params": float(cost.params)}
        if self.columns:
            row = self.index.get(str(self.space.canonical(arch)))
            for metric, col in self.columns.items():
                out[metric] = math.nan if row is None else float(col[row])
        if self.latency is not None:
            out["latency_ms"] = float(self.latency.predict(arch))
        return out

    def smallest(self, metric: str) -> float:
        """The smallest value of ``metric`` over the space (or over the table rows)."""
        if metric == "latency_ms" and self.latency is not None:
            return float(self.latency.min_latency())
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
                    f"The '{LIMIT_PARAM[metric]}' parameter needs a latency source: build one for this device "
                    "(`evonas latency build --run RUN`), or give the 'latency_table' parameter and the "
                    "'latency_column' parameter (e.g. nb201_latency.csv with pixel3_ms), or a table with a "
                    f"latency_ms column; space {self.space.name!r} has no latency yet",
                    param=LIMIT_PARAM[metric],
                )
            smallest = self.smallest(metric)
            if math.isnan(smallest):
                raise ConfigError(f"the {metric} column{self.origin and ' of ' + self.origin} has no values")
            if limit < smallest:
                raise InfeasibleConstraintError(
                    f"The '{LIMIT_PARAM[metric]}' parameter ({fmt(limit)}) is infeasible for space {self.space.name!r}: the smallest "
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


def latency_provenance(table) -> dict:
    """What identifies a device latency table in a score's source: its content and its device."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(table.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"latency_table_digest": digest, "latency_device": table.device.get("device_key")}
