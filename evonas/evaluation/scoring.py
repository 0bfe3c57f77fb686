"""Scoring networks: evaluation, BN recalibration, and the supernet evaluator.

A sub-network that inherits supernet weights also inherits batch-norm statistics
that were averaged over every path trained. Recalibration resets the running
statistics of the BN layers on the chosen path and re-estimates them on a fixed set
of training images before measuring validation accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces import Arch

from evonas.data import Normalizer, Splits, batches
from evonas.run.config import SPACE_DEFAULT, scoring_defaults

Forward = Callable[[torch.Tensor], torch.Tensor]


@torch.inference_mode()
def evaluate_module(forward: Forward, x: torch.Tensor, y: torch.Tensor, norm: Normalizer | None, batch_size: int = 256) -> dict[str, float]:
    """Accuracy (percent) and mean cross-entropy of ``forward`` on (x, y); ``norm=None``: x is ready."""
    correct, loss_sum = 0, 0.0
    for xb, yb in batches(x, y, batch_size):
        logits = forward(norm(xb) if norm else xb)  # (B, classes)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    n = max(len(x), 1)
    return {"accuracy": 100.0 * correct / n, "loss": loss_sum / n}


def batchnorms(modules: Iterable[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for mod in modules for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    forward: Forward, bns: list[nn.modules.batchnorm._BatchNorm], x: torch.Tensor, norm: Normalizer | None, batch_size: int = 256
) -> None:
    """Reset ``bns`` and re-estimate their statistics as an exact average over ``x``."""
    saved = []
    for bn in bns:
        saved.append((bn.momentum, bn.training))
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all recalibration batches
        bn.train()
    try:
        for xb, _ in batches(x, torch.zeros(len(x), dtype=torch.long), batch_size):
            forward(norm(xb) if norm else xb)
    finally:
        for bn, (momentum, training) in zip(bns, saved):
            bn.momentum = momentum
            bn.train(training)


def recalibration_images(splits: Splits, n: int, seed: int) -> torch.Tensor:
    """A fixed, seeded subset of the train split used to recalibrate every sub-network."""
    n = min(n, len(splits.train_x))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(splits.train_x), generator=g)[:n]
    return splits.train_x[idx]


class SupernetEvaluator:
    """Scores sub-networks of a trained supernet with inherited weights."""

    def __init__(
        self,
        run,  # evonas.run.run.Run
        *,
        recalibrate: bool = True,
        recalib_images: int | None = None,  # None: the space's default (evonas.run.config.scoring_defaults)
        val_images: int | None | str = SPACE_DEFAULT,  # None: the whole split; SPACE_DEFAULT: the space's default
        batch_size: int = 128,  # fastest on CPU (activations stay in cache); see benchmarks
        seed: int = 0,
        split: str = "val",
    ) -> None:
        from evonas.errors import ConfigError

        default_recalib, default_val = scoring_defaults(run.space.name)
        recalib_images = default_recalib if recalib_images is None else recalib_images
        val_images = default_val if val_images == SPACE_DEFAULT else val_images
        if not isinstance(recalib_images, int) or isinstance(recalib_images, bool) or recalib_images < 1:
            raise ConfigError(f"The 'recalib_images' parameter must be an integer >= 1; got {recalib_images!r}.", param="recalib_images")
        self.run = run
        self.space = run.space
        self.recalibrate = recalibrate
        self.recalib_images = recalib_images
        self.batch_size = batch_size
        self.seed = seed
        self.split = split
        self.model = run.load_supernet().eval()
        self.splits = run.splits()
        self.norm = Normalizer(self.splits.mean, self.splits.std)
        x, y = self.splits.split(split)
        if val_images is not None and split == "val":  # the test split is scored whole: it is the final word
            x, y = x[:val_images], y[:val_images]
        # normalised once: every sub-network sees the same float tensors
        self.x, self.y = self.norm(x), y  # (N, C, H, W) float32
        self.val_images = len(x)
        self.calib_x = self.norm(recalibration_images(self.splits, recalib_images, seed)) if recalibrate else None

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs) -> "SupernetEvaluator":
        from evonas.run.run import Run

        return cls(Run.open(run_dir), **kwargs)

    def canonical(self, arch: Arch) -> Arch:
        """The path that is scored for ``arch``: always its canonical form.

        Two strings of one network (identity layers moved to a stage's end) are the
        same network stand-alone, but different paths through the supernet's shared
        weights. Scoring, recalibrating and exporting the canonical path everywhere
        gives every spelling of a network one score, the one its store record holds.
        """
        return self.space.canonical(self.space.validate(arch))

    def prepare(self, arch: Arch) -> None:
        """Put the supernet's BN statistics in the state ``evaluate`` measures ``arch`` in.

        Recalibration is skipped when ``arch`` was the last one prepared (its statistics
        are still in place), so evaluating and then exporting one arch recalibrates once.
        """
        arch = self.canonical(arch)
        if self.recalibrate and self.__dict__.get("_prepared") != arch:
            path = self.model.path_modules(arch)
            self.model.train()
            recalibrate_bn(lambda x: self.model(x, arch), batchnorms(path), self.calib_x, None, self.batch_size)
            self.model.eval()
            self._prepared = arch

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Accuracy (percent) and loss of ``arch`` on the evaluation split (its canonical path)."""
        arch = self.canonical(arch)
        self.prepare(arch)
        return evaluate_module(lambda x: self.model(x, arch), self.x, self.y, None, self.batch_size)

    def provenance(self) -> dict:
        # keyed by what the weights are, never by where they are: the same supernet reached
        # through another spelling of the run path must find its stored scores
        return {
            "sha256": self.run.weights_sha256(),
            "recalibrate": self.recalibrate,
            "recalib_images": self.recalib_images if self.recalibrate else 0,
            "split": self.split,
            "batch_size": self.batch_size,  # recalibrated statistics depend on it
            "eval_images": self.val_images,
            "seed": self.seed,
        }
