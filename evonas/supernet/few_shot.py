"""A few-shot supernet: one chain supernet per option of one layer (Zhao et al., ICML 2021).

Few-shot NAS trains a one-shot supernet for a while, then splits it on the options
of one layer into sub-supernets, each a copy of the trained weights that only ever
runs its own option at that layer; training goes on with every sampled path routed
to the sub-supernet of its option there. ``FewShotSupernet`` is that split model,
with the interface of :class:`~evonas.supernet.chain.ChainSupernet`
(``forward(x, arch)``, ``path_modules(arch)``, ``extract(arch)``), so scoring and
export work on it unchanged.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from search_spaces import Arch, ChainSpace, Space

from evonas.supernet.chain import ChainSubnet, ChainSupernet


def default_split_layer(space: Space) -> int:
    """The layer a few-shot supernet splits on when the config names none.

    The first searchable layer none of whose options is a weight-free identity (a
    shape-changing "identity" is a 1x1 projection with weights, so it counts as an
    op): splitting there gives every sub-supernet a different trained module. Layer 0
    when every layer has a weight-free option. On macro-* and mobilenet-fmnist this
    is layer 0 (3 and 6 sub-supernets).
    """
    if not isinstance(space, ChainSpace):  # a user's model: options without parameters are the weight-free ones
        fixed, per_dim = space._cost_table()
        for i, (dim, table) in enumerate(zip(space.dims, per_dim)):
            if len(dim.options) > 1 and all(table[c].params > 0 for c in dim.options):
                return i
        return next((i for i, d in enumerate(space.dims) if len(d.options) > 1), 0)
    for i, (slot, dim) in enumerate(zip(space.slots, space.dims)):
        if len(dim.options) > 1 and (slot.changes_shape or not any(space.ops[c].is_identity for c in dim.options)):
            return i
    return 0


class FewShotSupernet(nn.Module):
    """Sub-supernets keyed by their option at layer ``layer``; a path runs in the one of its option.

    Each sub-supernet keeps only its own option at the split layer (the others would
    never be trained there), so its state dict holds no dead weights.
    """

    def __init__(self, space: Space, layer: int, parts: dict[int, nn.Module]) -> None:
        super().__init__()
        if sorted(parts) != sorted(space.dims[layer].options):
            raise ValueError(f"layer {layer} of {space.name} has options {space.dims[layer].options}; got parts {sorted(parts)}")
        self.space = space
        self.layer = layer
        self.parts = nn.ModuleDict({str(code): parts[code] for code in space.dims[layer].options})

    @classmethod
    def split(cls, one_shot: ChainSupernet, layer: int) -> "FewShotSupernet":
        """Split ``one_shot`` on ``layer``: one deep copy per option, pruned to that option there."""
        parts = {}
        for code in one_shot.space.dims[layer].options:
            part = copy.deepcopy(one_shot)
            part.zero_grad(set_to_none=True)  # a copy starts with no pending gradients
            part.keep_only(layer, code)
            parts[code] = part
        return cls(one_shot.space, layer, parts)

    def part_of(self, arch: Arch | Sequence[int]) -> ChainSupernet:
        """The sub-supernet that holds ``arch``."""
        codes = arch.choices if isinstance(arch, Arch) else tuple(arch)
        if len(codes) != len(self.space.dims):
            raise ValueError(f"expected {len(self.space.dims)} choices for {self.space.name}, got {codes}")
        return self.parts[str(codes[self.layer])]

    def path_modules(self, arch: Arch | Sequence[int]) -> list[nn.Module]:
        """The modules ``arch`` runs, in order, in its sub-supernet."""
        return self.part_of(arch).path_modules(arch)

    def forward(self, x: torch.Tensor, arch: Arch | Sequence[int]) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.part_of(arch)(x, arch)

    def extract(self, arch: Arch | Sequence[int]) -> ChainSubnet:
        """A standalone module of ``arch`` with the weights of its sub-supernet."""
        return self.part_of(arch).extract(arch)
