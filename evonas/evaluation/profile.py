"""FLOPs and parameter counts: from the description (fast) and from a module (an independent check).

``describe_cost`` reads the space's additive cost model and needs no forward pass.
``count_module`` runs one forward pass under ``torch.utils.flop_counter`` and counts
parameters of a real module; the tests compare the two on exported sub-networks.
"""

from __future__ import annotations

import torch

from search_spaces import Arch, Space


def describe_cost(space: Space, arch: Arch) -> dict:
    """The JSON record `evonas profile` prints for one architecture."""
    cost = space.cost(arch)
    return {
        "arch": str(arch),
        "canonical": str(space.canonical(arch)),
        "flops": cost.flops,
        "params": cost.params,
    }


def count_module(module: torch.nn.Module, input_shape: tuple[int, ...]) -> dict:
    """Multiply-accumulates of one image and trainable parameters, measured on ``module``."""
    from torch.utils.flop_counter import FlopCounterMode

    module = module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, *input_shape))
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"flops": counter.get_total_flops() // 2, "params": params}  # the counter reports 2 FLOPs per MAC
