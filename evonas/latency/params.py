"""The checks of a latency table's parameters: integers, numbers, choices, clock, device, precision and space.

Each raises :class:`~evonas.errors.ConfigError` naming the parameter; the build, the
timing and the validation share them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from search_spaces import ChainSpace, Space, get_space

from evonas.errors import ConfigError

__all__ = ["BACKENDS", "CLOCKS"]

BACKENDS = ("eager", "onnxruntime")
CLOCKS = ("wall", "cpu")


def _int_param(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"The '{name}' parameter must be an integer >= {minimum}; got {value!r}.", param=name)
    return int(value)


def _float_param(name: str, value: Any, low: float, high: float | None = None, *, open_low: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        rule = f"a number {'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"The '{name}' parameter must be {rule}; got {value!r}.", param=name)
    return float(value)


def _choice_param(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"The '{name}' parameter must be one of {', '.join(allowed)}; got {value!r}.", param=name)
    return value


def _check_clock(clock: Any, threads: int) -> str:
    clock = _choice_param("clock", clock, CLOCKS)
    if clock == "cpu" and threads != 1:
        raise ConfigError(
            f"The 'clock' parameter 'cpu' adds up the CPU time of every thread, so it needs threads=1; got threads={threads}.",
            param="clock",
        )
    return clock


def _check_timing_device(device: str, backend: str, clock: str) -> torch.device:
    """The device a table is timed on: a GPU only with the eager backend and the wall clock."""
    from evonas.device import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and backend != "eager":
        raise ConfigError(f"The 'device' parameter {device!r} needs the eager backend (onnxruntime tables are timed on "
                          f"the CPU); got backend {backend!r}.", param="device")
    if resolved.type == "cuda" and clock != "wall":
        raise ConfigError("The 'clock' parameter must be 'wall' on a GPU (the CPU clock does not see GPU time); "
                          f"got {clock!r}.", param="clock")
    return resolved


def _check_timing_precision(precision: str, device: torch.device, backend: str) -> str:
    """The precision a table is timed in: mixed precision (autocast) with the eager backend only."""
    from evonas.device import check_precision

    check_precision(precision, device)
    if precision != "fp32" and backend != "eager":
        raise ConfigError(f"The 'precision' parameter {precision!r} needs the eager backend (onnxruntime runs the exported "
                          f"fp32 graph); got backend {backend!r}.", param="precision")
    return precision


def _chain_space(space: Space | str) -> Space:
    """The space of a latency table: a chain preset or a user's model (a ModelSpace); others are refused."""
    from evonas.supernet.model_space import ModelSpace

    space = get_space(space) if isinstance(space, str) else space
    if not isinstance(space, (ChainSpace, ModelSpace)):
        raise ConfigError(
            f"The 'space' parameter must be a chain space (macro-*, mobilenet-*) or your own model for a latency "
            f"table; got {getattr(space, 'name', space)!r}.",
            param="space",
        )
    return space
