"""The stand-alone scorer: train an architecture from scratch and report its validation accuracy.

This is the ground truth the gap corrector learns from. Each result is a store
record (scorer ``standalone``, with the epochs and seed in its source), so
anchor training resumes architecture by architecture and nothing is trained twice
for the same settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces import Arch

from evonas.errors import ConfigError
from evonas.evaluation.costs import CostModel
from evonas.scorers.base import Scorer


class StandaloneScorer(Scorer):
    """Trains an architecture alone for ``epochs`` and reports its validation accuracy."""

    name = "standalone"

    def __init__(self, run, *, epochs: int, seed: int = 0, progress: bool = True, device: str = "cpu") -> None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"The 'epochs' option of scorer 'standalone' must be an integer >= 1; got {epochs!r}",
                              param="epochs")
        self.run = run
        self.space = run.space
        self.target = "accuracy"
        self.cost_model = CostModel(self.space)
        self.epochs = epochs
        self.seed = seed
        self.progress = progress
        from evonas.device import resolve_device

        self.device = resolve_device(device)  # where each network trains (its result does not depend on it)
        # the run's own data split (its seed), a new init/data order (this seed)
        self.config = run.config.replace(epochs=epochs, seed=seed)

    def score(self, arch: Arch) -> dict[str, float]:
        from evonas.training.train import train_standalone

        metrics = train_standalone(arch, self.config, self.run.splits(), progress=self.progress, device=self.device)
        metrics.update(self.costs(arch))
        return metrics

    def provenance(self) -> dict[str, Any]:
        c = self.run.config
        return {
            "space": c.space,
            "dataset": c.dataset,
            "split_seed": c.seed,
            "val_size": c.val_size,
            "train_limit": c.train_limit,
            "epochs": self.epochs,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "weight_decay": c.weight_decay,
            "schedule": c.schedule,
            "seed": self.seed,
            # only when set, so that anchors trained before these options existed keep their records
            **({"augment": c.augment} if c.augment != "none" else {}),
            **({"image_size": c.image_size} if c.image_size else {}),
            **({"precision": c.precision} if c.precision != "fp32" else {}),
        }

    @classmethod
    def from_options(cls, *, run_dir: str | Path, epochs: int = 3, seed: int = 0, progress: bool = True,
                     device: str = "cpu") -> "StandaloneScorer":
        """Train with the run's config (data split, optimiser, augmentation, precision) for ``epochs`` with
        init/data-order ``seed``, on ``device``."""
        from evonas.run import Run

        return cls(Run.open(run_dir), epochs=epochs, seed=seed, progress=progress, device=device)
