"""Supernets: one set of shared weights holding every choice of every layer.

``build_supernet(space, config)`` returns the supernet of a registered space; its
``forward(x, arch)`` runs exactly the path ``arch`` names, and ``extract(arch)``
returns a standalone module of that path with the weights copied in.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces import Arch, ChainSpace, Space

from evonas.errors import ConfigError
from evonas.supernet.chain import ChainSubnet, ChainSupernet
from evonas.supernet.chain import build_standalone as build_chain_standalone
from evonas.supernet.few_shot import FewShotSupernet, default_split_layer
from evonas.supernet.model import ModelSupernet, build_model_standalone
from evonas.supernet.model_space import ModelSpace


def build_one_shot(space: Space, config=None) -> ChainSupernet | ModelSupernet:
    """The one-shot supernet of ``space`` (chain spaces and users' models), freshly initialised.

    With a ``config`` whose ``zero_init_residual`` is set, every residual block's last
    BN of a chain space starts at gamma = 0; without a config the module keeps PyTorch's
    default init. A user's model is initialised as its factory does it.
    """
    if isinstance(space, ModelSpace):
        return ModelSupernet(space)
    if isinstance(space, ChainSpace):
        zero = bool(getattr(config, "zero_init_residual", False))
        # channels-last runs the depthwise convolutions 2-3x faster on CPU
        return ChainSupernet(space, zero_init_residual=zero).to(memory_format=torch.channels_last)
    raise ConfigError(
        f"space {space.name!r} has no supernet in evonas (it is scored from tables: use "
        "`evonas search --space nb201 --table FILE`); supernets exist for chain spaces and for your own model (--space PATH.py:FACTORY)"
    )


def build_standalone(space: Space, arch: Arch) -> nn.Module:
    """A freshly initialised network of ``arch`` alone (stand-alone training, --check counts)."""
    if isinstance(space, ModelSpace):
        return build_model_standalone(space, arch)
    if isinstance(space, ChainSpace):
        return build_chain_standalone(space, arch)
    raise ConfigError(f"space {space.name!r} has no networks in evonas (it is scored from tables)")


def input_shape(space: Space) -> tuple[int, int, int]:
    """One image's (C, H, W) for the networks of ``space``."""
    if isinstance(space, ModelSpace):
        return space.input_shape
    if isinstance(space, ChainSpace):
        net = space.net
        return (net.in_channels, net.image_size, net.image_size)
    raise ConfigError(f"space {space.name!r} has no networks in evonas (it is scored from tables), so no input shape")


def split_layer(space: Space, config) -> int:
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


__all__ = ["ChainSubnet", "ChainSupernet", "FewShotSupernet", "ModelSpace", "ModelSupernet", "build_one_shot",
           "build_standalone", "build_supernet", "input_shape", "split_layer"]
