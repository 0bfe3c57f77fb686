"""Training entry points, kept here so existing imports work.

The loop (optimizer, schedule, epochs) is in :mod:`evonas.training.loop`, supernet
training in :mod:`evonas.training.supernet`, its strategies in
:mod:`evonas.training.strategies`, and stand-alone training in
:mod:`evonas.training.standalone`.
"""

from __future__ import annotations

from evonas.training.loop import epoch_generator, make_optimizer, train_epoch
from evonas.training.standalone import train_standalone
from evonas.training.supernet import train_supernet

__all__ = ["epoch_generator", "make_optimizer", "train_epoch", "train_standalone", "train_supernet"]
