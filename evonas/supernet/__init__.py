"""Supernets: one set of shared weights holding every choice of every layer.

``build_supernet(space, config)`` returns the supernet of a registered space; its
``forward(x, arch)`` runs exactly the path ``arch`` names, and ``extract(arch)``
returns a standalone module of that path with the weights copied in.
"""

from __future__ import annotations

import torch

from search_spaces import ChainSpace, Space

from evonas.errors import ConfigError
from evonas.supernet.chain import ChainSubnet, ChainSupernet
from evonas.supernet.few_shot import FewShotSupernet, default_split_layer


def build_one_shot(space: Space, config=None) -> ChainSupernet:
    """The one-shot supernet of ``space`` (chain spaces: macro-*, mobilenet-*), freshly initialised.

    With a ``config`` whose ``zero_init_residual`` is set, every residual block's last
    BN starts at gamma = 0; without a config the module keeps PyTorch's default init.
    """
    if isinstance(space, ChainSpace):
        zero = bool(getattr(config, "zero_init_residual", False))
        # channels-last runs the depthwise convolutions 2-3x faster on CPU
        return ChainSupernet(space, zero_init_residual=zero).to(memory_format=torch.channels_last)
    raise ConfigError(
        f"space {space.name!r} has no supernet in evonas (it is scored from tables: use "
        "`evonas search --space nb201 --table FILE`); supernets exist for chain spaces"
    )


def split_layer(space: ChainSpace, config) -> int:
    """The layer a few-shot run splits on: ``config.few_shot_layer`` or the default rule."""
    layer = getattr(config, "few_shot_layer", None)
    return default_split_layer(space) if layer is None else layer


def build_supernet(space: Space, config=None) -> ChainSupernet | FewShotSupernet:
    """The module that holds the finished supernet of a run with ``config``.

    ``config`` (a :class:`evonas.run.config.TrainConfig`, optional) carries the
    choices that change the module itself: initialisation, and the training
    strategy (a ``few-shot`` run ends as a :class:`FewShotSupernet`).
    """
    model = build_one_shot(space, config)
    if getattr(config, "strategy", None) == "few-shot":
        return FewShotSupernet.split(model, split_layer(space, config))
    return model


__all__ = ["ChainSubnet", "ChainSupernet", "FewShotSupernet", "build_one_shot", "build_supernet", "split_layer"]
