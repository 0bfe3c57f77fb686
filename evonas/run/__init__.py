"""A run directory and everything kept in it: its layout, config, checkpoints and evaluation store."""

from __future__ import annotations

from evonas.run.run import Run, load_run_splits

__all__ = ["Run", "load_run_splits"]
