"""Supernets: one set of shared weights holding every choice of every layer.

``build_supernet(space)`` returns the supernet of a registered space; its
``forward(x, arch)`` runs exactly the path ``arch`` names, and ``extract(arch)``
returns a standalone module of that path with the weights copied in.
"""

from __future__ import annotations

import torch

from search_spaces import ChainSpace, Space

from evonas.errors import ConfigError
from evonas.supernet.chain import ChainSubnet, ChainSupernet


def build_supernet(space: Space, config=None) -> ChainSupernet:
    """The supernet of ``space`` (chain spaces: macro-*, mobilenet-*).

    ``config`` (a :class:`evonas.run.config.TrainConfig`, optional) carries the
    choices that change the module itself (initialisation, training strategy).
    """
    if isinstance(space, ChainSpace):
        # channels-last runs the depthwise convolutions 2-3x faster on CPU
        return ChainSupernet(space).to(memory_format=torch.channels_last)
    raise ConfigError(
        f"space {space.name!r} has no supernet in evonas (it is scored from tables: use "
        "`evonas search --space nb201 --table FILE`); supernets exist for chain spaces"
    )


__all__ = ["ChainSubnet", "ChainSupernet", "build_supernet"]
