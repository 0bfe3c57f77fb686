"""Where networks run and in which precision: ``--device`` and ``--precision`` of every command.

``resolve_device`` turns ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` into a torch device,
refusing in one line a GPU that is not there. ``autocast`` is the mixed-precision
context of a forward pass (``bf16`` or ``fp16``; ``fp32`` runs as it is), and
``grad_scaler`` the gradient scaler that ``fp16`` training needs (a disabled one
otherwise).
"""

from __future__ import annotations

import contextlib
import re
from typing import ContextManager

import torch

from evonas.errors import ConfigError

DEVICE_HELP = "cpu, cuda, cuda:N (the N-th GPU) or auto (a GPU when there is one)"
PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` names; a GPU that torch cannot see is a one-line ConfigError."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise ConfigError(f"The 'device' parameter must be {DEVICE_HELP}; got {name!r}.", param="device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"The 'device' parameter is {name!r} but torch sees no CUDA GPU here "
                              "(torch.cuda.is_available() is False); use --device cpu.", param="device")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"The 'device' parameter is {name!r} but there are {torch.cuda.device_count()} GPUs here "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}).", param="device")
    return torch.device(name)


def check_precision(precision: str, device: torch.device | str | None = None) -> str:
    """``precision`` when it is one of PRECISIONS and the device runs it; else a one-line ConfigError."""
    if precision not in PRECISIONS:
        raise ConfigError(f"The 'precision' parameter must be one of {', '.join(PRECISIONS)}; got {precision!r}.",
                          param="precision")
    kind = torch.device(device).type if device is not None else None
    if precision == "fp16" and kind == "cpu":
        raise ConfigError("The 'precision' parameter 'fp16' needs a GPU (--device cuda); on the CPU use bf16 or fp32.",
                          param="precision")
    return precision


def check_device_and_precision(device: str, precision: str) -> None:
    """Both settings of a job's options, checked before anything is loaded (one line each)."""
    check_precision(precision, resolve_device(device))


def autocast(device: torch.device | str, precision: str) -> ContextManager:
    """The autocast context of ``precision`` on ``device`` (nothing for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def device_name(device: torch.device | str) -> str:
    """A human name of the device: the GPU's model, or the CPU's."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    from pathlib import Path

    try:  # Linux names the CPU model in /proc/cpuinfo
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"
