"""The latency tables of a run directory: where each setting's table lives, loaded or built there."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from search_spaces import ChainSpace, Space

from evonas.errors import ConfigError
from evonas.latency.build import build_latency_table
from evonas.latency.device import describe_device
from evonas.latency.params import _chain_space
from evonas.latency.table import REBUILD_HINT, LatencyTable

__all__ = ["load_or_build_table", "table_path"]


def table_path(run: Any, space: Space | str, *, backend: str = "eager", batch_size: int = 1, threads: int = 1,
               device: str = "cpu", precision: str = "fp32") -> Path:
    """Where a run keeps the table of one setting: ``RUN/latency/SPACE-BACKEND-bB-tT.json``.

    ``run`` is an opened :class:`evonas.run.Run` or a run directory path.
    """
    from evonas.run.run import RunLayout

    name = space if isinstance(space, str) else space.name
    return RunLayout.of(getattr(run, "path", run)).latency_table_file(name, backend, batch_size, threads, device, precision)


def load_or_build_table(
    run: Any,
    space: ChainSpace | str,
    *,
    backend: str = "eager",
    batch_size: int = 1,
    threads: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    rebuild: bool = False,
    allow_foreign: bool = False,
    **build_options: Any,
) -> LatencyTable:
    """The run's table for this setting: loaded and checked against this device, or built and saved.

    ``rebuild`` builds a fresh table even when one is saved; ``build_options`` go to
    :func:`build_latency_table` (``warmup``, ``repeats``, ``progress``, ``clock``, ...).
    """
    space = _chain_space(space)
    path = table_path(run, space, backend=backend, batch_size=batch_size, threads=threads, device=device,
                      precision=precision)
    if path.is_file() and not rebuild:
        table = LatencyTable.load(path)
        if table.space != space.name:
            raise ConfigError(f"The latency table {path} is for space {table.space!r}, not {space.name!r}; {REBUILD_HINT}.")
        table.check_device(describe_device(threads, batch_size, backend, device, precision), allow_foreign=allow_foreign)
        return table
    table = build_latency_table(space, backend=backend, batch_size=batch_size, threads=threads, device=device,
                                precision=precision,
                                **build_options)
    table.save(path)
    return replace(table, source=str(path))
