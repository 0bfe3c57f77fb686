"""evonas: weight-sharing neural architecture search on a laptop.

Train a supernet once (SPOS), search it under FLOPs/params/latency limits, correct
its optimization gap with predictors fitted on stand-alone anchors, and export the
best sub-networks as plain PyTorch modules.
"""

import logging as _logging

from evonas._version import __version__

# A library prints nothing of its own: its modules log on "evonas.*" loggers, silent until the application
# configures logging (the evonas command does, see evonas.cli.logs).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

from evonas import spaces as _spaces  # noqa: E402  (lets get_space open PATH.py:FACTORY references)

_spaces.install()

__all__ = ["__version__", "evaluate", "export", "fit_predictor", "open_run", "predict", "search", "train"]


def __getattr__(name: str):
    """``evonas.train``, ``evonas.search``, ...: the workflow functions of :mod:`evonas.api`, imported on first use."""
    if name in __all__ and name != "__version__":
        from evonas import api

        return getattr(api, name)
    raise AttributeError(f"module 'evonas' has no attribute {name!r}")
