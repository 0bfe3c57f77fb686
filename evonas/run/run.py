"""A run directory: the resolved config, the supernet weights, and what was derived from them.

Layout::

    RUN/config.json            resolved training config + package versions
    RUN/train_log.jsonl        one line per supernet epoch
    RUN/checkpoints/last.pt    resumable checkpoint (written atomically every epoch)
    RUN/supernet.pt            final supernet weights
    RUN/store.sqlite           every evaluation (architecture, scorer, metrics, source)
    RUN/exports/               standalone modules with inherited weights, reports
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from search_spaces import Space, get_space

from evonas.run.checkpoint import load_checkpoint
from evonas.run.config import TrainConfig
from evonas.data import Splits, load_splits
from evonas.errors import RunDirError


def load_run_splits(cfg: TrainConfig) -> Splits:
    space = get_space(cfg.space)
    net = getattr(space, "net", None)
    shape = (net.in_channels, net.image_size, net.image_size) if net else (1, 28, 28)
    return load_splits(
        cfg.dataset,
        root=cfg.data_root,
        val_size=cfg.val_size,
        seed=cfg.seed,
        train_limit=cfg.train_limit,
        image_shape=shape,
    )


class Run:
    """An opened run directory holding a trained (or training) supernet."""

    def __init__(self, path: Path, config: TrainConfig) -> None:
        self.path = path
        self.config = config

    @staticmethod
    def weights_file(path: Path) -> Path:
        return Path(path) / "supernet.pt"

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        path = Path(path)
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise RunDirError(
                f"{path} is not an evonas run directory (no config.json); create one with "
                f"`evonas train-supernet --run {path}`"
            )
        try:
            data = json.loads(cfg_file.read_text())
            config = TrainConfig.from_dict(data["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RunDirError(f"{cfg_file} is unreadable ({exc}); it was not written by evonas") from None
        return cls(path, config)

    @cached_property
    def space(self) -> Space:
        return get_space(self.config.space)

    @property
    def weights_path(self) -> Path:
        final = self.weights_file(self.path)
        if final.is_file():
            return final
        last = self.path / "checkpoints" / "last.pt"
        if last.is_file():
            raise RunDirError(
                f"the supernet in {self.path} has not finished training (only {last}); finish it "
                f"with `evonas train-supernet --run {self.path} --resume`"
            )
        raise RunDirError(f"{self.path} has no supernet weights; train them with `evonas train-supernet --run {self.path}`")

    def load_supernet(self):
        from evonas.supernet import build_supernet

        state = load_checkpoint(self.weights_path, kind="weights", config=self.config.to_dict())
        model = build_supernet(self.space, config=self.config)
        model.load_state_dict(state["model"])
        return model

    def splits(self) -> Splits:
        cached = self.__dict__.get("_splits")
        if cached is None:
            cached = self.__dict__["_splits"] = load_run_splits(self.config)
        return cached

    def weights_sha256(self) -> str:
        cached = self.__dict__.get("_sha")
        if cached is None:
            from evonas.evaluation.scoring import file_sha256

            cached = self.__dict__["_sha"] = file_sha256(self.weights_path)
        return cached
