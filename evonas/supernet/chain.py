"""The supernet of a chain space (macro-*, mobilenet-*) and its exported sub-networks."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from search_spaces import Arch, ChainSpace

from evonas.supernet.ops import ConvBNAct, Head, InvertedResidual, NormLayer


def make_op(space: ChainSpace, slot_index: int, code: int, norm_layer: NormLayer) -> nn.Module:
    """The module of option ``code`` at searchable layer ``slot_index``."""
    slot = space.slots[slot_index]
    op = space.ops[code]
    if op.is_identity:
        if slot.changes_shape:  # an identity where the shape changes is a 1x1 projection
            return ConvBNAct(slot.cin, slot.cout, 1, slot.stride, act=False, norm_layer=norm_layer)
        return nn.Identity()
    return InvertedResidual(slot.cin, slot.cout, op.expansion, op.kernel, slot.stride, norm_layer)


class ChainSupernet(nn.Module):
    """Every option of every layer, with shared stem and head; ``forward(x, arch)`` runs one path."""

    def __init__(self, space: ChainSpace, norm_layer: NormLayer = nn.BatchNorm2d, *, zero_init_residual: bool = False) -> None:
        super().__init__()
        self.space = space
        net = space.net
        self.stem = ConvBNAct(net.in_channels, net.stem_channels, 3, norm_layer=norm_layer)
        self.choices = nn.ModuleList(
            nn.ModuleDict({str(code): make_op(space, i, code, norm_layer) for code in dim.options})
            for i, dim in enumerate(space.dims)
        )
        self.head = Head(net.stages[-1].width, net.head_channels, net.num_classes, norm_layer)
        if zero_init_residual:  # after every random init, so the draws do not depend on it
            for m in self.modules():
                if isinstance(m, InvertedResidual) and m.use_residual:
                    m.zero_init_last_bn()

    def _codes(self, arch: Arch | Sequence[int]) -> tuple[int, ...]:
        codes = arch.choices if isinstance(arch, Arch) else tuple(arch)
        if len(codes) != len(self.choices):
            raise ValueError(f"expected {len(self.choices)} choices for {self.space.name}, got {codes}")
        return codes

    def path_modules(self, arch: Arch | Sequence[int]) -> list[nn.Module]:
        """The modules ``arch`` runs, in order (stem, chosen ops, head)."""
        ops = [layer[str(c)] for layer, c in zip(self.choices, self._codes(arch))]
        return [self.stem, *ops, self.head]

    def forward(self, x: torch.Tensor, arch: Arch | Sequence[int]) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        for module in self.path_modules(arch):
            x = module(x)
        return x

    def keep_only(self, layer: int, code: int) -> None:
        """Drop every option of layer ``layer`` but ``code`` (a few-shot sub-supernet's own)."""
        self.choices[layer] = nn.ModuleDict({str(code): self.choices[layer][str(code)]})

    def extract(self, arch: Arch | Sequence[int]) -> "ChainSubnet":
        """A standalone module of ``arch`` with copies of the inherited weights and BN stats."""
        codes = self._codes(arch)
        ops = [copy.deepcopy(layer[str(c)]) for layer, c in zip(self.choices, codes)]
        # drop identities: they hold no weights and change nothing
        ops = [m for m in ops if not isinstance(m, nn.Identity)]
        return ChainSubnet(copy.deepcopy(self.stem), nn.Sequential(*ops), copy.deepcopy(self.head))


class ChainSubnet(nn.Module):
    """One path of a chain supernet as a plain network (stem, layers, head)."""

    def __init__(self, stem: nn.Module, layers: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.layers = layers
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.head(self.layers(self.stem(x)))


def build_standalone(space: ChainSpace, arch: Arch, norm_layer: NormLayer = nn.BatchNorm2d) -> ChainSubnet:
    """A freshly initialised network of ``arch`` alone (for stand-alone training)."""
    net = space.net
    ops = [make_op(space, i, c, norm_layer) for i, c in enumerate(arch.choices)]
    ops = [m for m in ops if not isinstance(m, nn.Identity)]
    model = ChainSubnet(
        ConvBNAct(net.in_channels, net.stem_channels, 3, norm_layer=norm_layer),
        nn.Sequential(*ops),
        Head(net.stages[-1].width, net.head_channels, net.num_classes, norm_layer),
    )
    return model.to(memory_format=torch.channels_last)  # faster depthwise convs on CPU
