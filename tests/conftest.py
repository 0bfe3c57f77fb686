"""Shared fixtures: a tiny trained supernet on synthetic data, and the shared benchmark tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evonas.run.config import TrainConfig
from evonas.scorers.tables import SHARED_NB201

torch.set_num_threads(2)

NB201_CSV = SHARED_NB201 / "nb201.csv"
needs_nb201 = pytest.mark.skipif(not NB201_CSV.is_file(), reason=f"NAS-Bench-201 table not at {NB201_CSV}")


def tiny_config(**changes) -> TrainConfig:
    """A supernet config that trains in about a second on synthetic 28x28 images."""
    base = dict(space="macro-fmnist", dataset="synthetic", val_size=200, epochs=2, batch_size=64, lr=0.05, seed=0)
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with a trained tiny supernet (shared by the tests that only read it)."""
    from evonas.training.train import train_supernet

    run = tmp_path_factory.mktemp("tiny_run")
    train_supernet(run, tiny_config(), progress=False)
    return run
