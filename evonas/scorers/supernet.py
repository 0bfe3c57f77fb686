"""The supernet scorer: accuracy of a sub-network with inherited, BN-recalibrated weights.

It wraps :class:`evonas.evaluation.scoring.SupernetEvaluator` (which loads the run's supernet)
and adds the architecture's FLOPs and params from the space description, and its
latency when a latency table is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces import Arch

from evonas.evaluation.costs import CostModel
from evonas.errors import ConfigError
from evonas.scorers.base import Scorer


class SupernetScorer(Scorer):
    """Scores with a trained supernet; ``target`` is ``accuracy`` (percent, validation split)."""

    name = "supernet"

    def __init__(self, evaluator, *, latency_table: str | Path | None = None, latency_column: str | None = None,
                 device_latency=None) -> None:
        self.evaluator = evaluator
        self.space = evaluator.space
        self.target = "accuracy"
        self.report = None
        columns, index = {}, None
        self._latency: dict[str, Any] = {}
        if latency_table or latency_column:
            if not (latency_table and latency_column):
                raise ConfigError(
                    "The 'latency_table' option and the 'latency_column' option of scorer 'supernet' go together; "
                    f"got latency_table={latency_table!r}, latency_column={latency_column!r}",
                    param="latency_column" if latency_table else "latency_table",
                )
            from evonas.scorers.tables import load_table
            from evonas.scorers.table import file_digest

            lat = load_table(latency_table, self.space, param="latency_table")
            columns["latency_ms"] = lat.column(latency_column)
            index = lat.index
            self._latency = {"latency_table": str(Path(latency_table).resolve()), "latency_column": latency_column,
                             "latency_sha256": file_digest(latency_table)}
        if device_latency is not None:  # a table measured on this device (evonas latency build)
            if columns:
                raise ConfigError("The 'device_latency' option of scorer 'supernet' cannot be combined with "
                                  "'latency_table'; give one latency source", param="device_latency")
            from evonas.evaluation.costs import latency_provenance

            self._latency = latency_provenance(device_latency)
        self.cost_model = CostModel(self.space, columns=columns, index=index, origin=str(latency_table or ""),
                                    latency=device_latency)

    @classmethod
    def from_options(cls, *, run_dir: str | Path, latency_table: str | Path | None = None,
                     latency_column: str | None = None, recalibrate: bool = True, recalib_images: int | None = None,
                     batch_size: int = 128, seed: int = 0, device_latency=None, finetune_steps: int = 0,
                     finetune_lr: float | None = None, device: str = "cpu", precision: str = "fp32") -> "SupernetScorer":
        """Load the run's supernet and score with BN recalibration on ``recalib_images`` images
        (and ``finetune_steps`` of training of each path first, when > 0)."""
        from evonas.evaluation.scoring import SupernetEvaluator
        from evonas.run.config import FINETUNE_LR

        ev = SupernetEvaluator.from_run(run_dir, recalibrate=recalibrate, recalib_images=recalib_images,
                                        batch_size=batch_size, seed=seed, finetune_steps=finetune_steps,
                                        finetune_lr=FINETUNE_LR if finetune_lr is None else finetune_lr,
                                        device=device, precision=precision)
        return cls(ev, latency_table=latency_table, latency_column=latency_column, device_latency=device_latency)

    def score(self, arch: Arch) -> dict[str, float]:
        metrics = {k: float(v) for k, v in self.evaluator.evaluate(arch).items()}
        metrics.update({k: v for k, v in self.costs(arch).items() if v == v})  # drop NaN latency
        return metrics

    def provenance(self) -> dict[str, Any]:
        return {**self.evaluator.provenance(), **self._latency}
