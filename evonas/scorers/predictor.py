"""The predictor scorer: corrected stand-alone accuracy from architecture features alone.

It reads the run's fitted gap model (``evonas fit-predictor``) and scores with its
distilled architecture-only model, so a search can score tens of thousands of
candidates a minute. Its target, ``predicted``, is an estimate of stand-alone
accuracy in percent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces import Arch

from evonas.evaluation.costs import CostModel
from evonas.run.digest import file_sha256
from evonas.scorers.base import Scorer


class PredictorScorer(Scorer):
    name = "predictor"

    def __init__(self, run_dir, *, device_latency=None) -> None:
        """``run_dir``: a run directory or an opened :class:`~evonas.run.run.Run`."""
        from evonas.gap.corrector import load_gap_model
        from evonas.run.run import Run

        self.run = Run.open(run_dir)
        self.space = self.run.space
        self.gap = load_gap_model(self.run)
        self.target = "predicted"
        self.report = None
        self.cost_model = CostModel(self.space, latency=device_latency)  # latency: a table measured on this device
        self._latency: dict[str, Any] = {}
        if device_latency is not None:
            from evonas.evaluation.costs import latency_provenance

            self._latency = latency_provenance(device_latency)
        self._sha = file_sha256(self.run.predictor_model)

    @classmethod
    def from_options(cls, *, run_dir: str | Path, device_latency=None) -> "PredictorScorer":
        """Load the gap model fitted in ``run_dir`` (``evonas fit-predictor``)."""
        return cls(run_dir, device_latency=device_latency)

    def score(self, arch: Arch) -> dict[str, float]:
        value = float(self.gap.predict_arch_only([arch])[0])
        return {"predicted": value, **self.costs(arch)}

    def provenance(self) -> dict[str, Any]:
        return {"predictor_sha256": self._sha, "estimator": self.gap.report["search_model"]["estimator"],
                "supernet_source": self.gap.supernet_source, **self._latency}
