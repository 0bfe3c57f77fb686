"""Atomic, self-describing checkpoints.

A checkpoint is a dict saved with ``torch.save`` holding a format tag, the training
config, model/optimizer/scheduler state, the path-sampling RNG state, the epoch and
the step. Files are written to a temporary name and renamed, so a killed process
leaves the previous checkpoint intact. Loading checks the tag and the config, so a
corrupt or foreign file is a clear ``CheckpointError``, not a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from evonas.errors import CheckpointError
from evonas.run.atomic import atomic_target
from evonas.run.config import comparable_config

FORMAT = "evonas-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_target(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)


def load_checkpoint(path: Path, *, kind: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load and check a checkpoint of ``kind`` ('supernet', 'weights'); compare configs."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {str(exc)[:120]}); "
            "it may be truncated or corrupt. Delete it to start over, or restore a copy."
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an evonas checkpoint (no '{FORMAT}' tag)")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')}; this evonas reads {VERSION}")
    if data.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {data.get('kind')!r} checkpoint, expected {kind!r}")
    if config is not None and comparable_config(data.get("config")) != comparable_config(config):
        saved, config = comparable_config(data.get("config")), comparable_config(config)
        diff = {k: (saved.get(k), config.get(k)) for k in set(saved) | set(config) if saved.get(k) != config.get(k)}
        raise CheckpointError(
            f"{path} belongs to a run with another config; differing (checkpoint, now): {diff}. "
            "Resume with the run's own settings, or use a new 'run_dir' parameter."
        )
    bad, total = _non_finite(data.get("model"))
    if bad:
        raise CheckpointError(f"{path} holds {bad:,} non-finite weights of {total:,} (the training that wrote them "
                              "diverged; scores of these weights would mean nothing); train again in a new run "
                              "directory with a lower --lr")
    return data


def _non_finite(state: Any) -> tuple[int, int]:
    """(non-finite values, values) over the floating-point tensors of a state dict (0, 0 when it is none)."""
    if not isinstance(state, dict):
        return 0, 0
    tensors = [t for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors)
    return bad, sum(t.numel() for t in tensors)
