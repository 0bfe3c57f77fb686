"""The supernet schedule a user gets without --epochs follows the space (the deep space needs more)."""

from __future__ import annotations

from evonas.jobs.train import TrainOptions, resolve_config
from evonas.run.run import RunLayout


def test_default_epochs_follow_the_space_and_an_explicit_value_wins(tmp_path):
    layout = RunLayout(tmp_path / "r")
    assert resolve_config(layout, TrainOptions(settings={})).epochs == 18  # macro-fmnist, the default space
    assert resolve_config(layout, TrainOptions(settings={"space": "macro-fmnist"})).epochs == 18
    assert resolve_config(layout, TrainOptions(settings={"space": "macro-cifar10"})).epochs == 10
    assert resolve_config(layout, TrainOptions(settings={"space": "mobilenet-fmnist"})).epochs == 12
    assert resolve_config(layout, TrainOptions(settings={"space": "mobilenet-fmnist", "epochs": 3})).epochs == 3
