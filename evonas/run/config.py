"""Training configuration: a frozen, keyword-only dataclass written next to every run."""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import get_space

from evonas.errors import ConfigError

SCHEDULES = ("cosine", "onecycle")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a supernet's (or a stand-alone network's) weights."""

    space: str = "macro-fmnist"  # registered search space (see `evonas spaces`)
    dataset: str = ""  # dataset name; empty means the space's default dataset
    data_root: str | None = None  # where the dataset lives; None = the packaged location
    val_size: int = 10_000  # training images held out for validation (seeded split)
    train_limit: int | None = None  # keep only this many train images (quick runs)
    epochs: int = 10  # passes over the train split
    batch_size: int = 128  # images per SGD step
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum (Nesterov)
    weight_decay: float = 1e-4  # L2 penalty on all weights
    schedule: str = "cosine"  # learning-rate schedule per step: cosine or onecycle
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    seed: int = 0  # seeds the split, the data order, the sampled paths and the init

    def __post_init__(self) -> None:
        space = get_space(self.space)  # raises with the list of valid names
        if not self.dataset:
            object.__setattr__(self, "dataset", getattr(getattr(space, "net", None), "dataset", ""))
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("lr", self.lr > 0, "a float > 0"),
            ("momentum", 0 <= self.momentum < 1, "a float in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "a float >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "a float in [0, 1)"),
            ("schedule", self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} must be {rule}; got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def environment() -> dict[str, str]:
    """Versions of what produced a run, written beside its config."""
    import numpy
    import torch

    from evonas import __version__

    versions = {"evonas": __version__, "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:  # optional at run time
        pass
    versions["platform"] = platform.platform()
    return versions


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
