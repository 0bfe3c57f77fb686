"""A learning rate and a momentum per path size (``TrainConfig.lr_by_size``).

Our own version of the complexity-aware training of Jeon et al. (CVPR 2025), which
gives sub-networks of different sizes their own learning-rate schedules and
separates their momentum:

* a path's relative size ``r`` in [0, 1] places its FLOPs between the space's
  smallest and largest path (``space.cost(arch).flops`` against ``min_cost`` and
  ``max_cost``, which are exact: costs add up over the choices);
* at step ``t`` of ``T`` the step's learning rate follows the run's cosine schedule
  compressed in time: ``p = min(1, t / (T * (0.5 + 0.5 * r)))``,
  ``lr = cfg.lr * 0.5 * (1 + cos(pi * p))``. The largest path keeps the run's own
  schedule, the smallest reaches its minimum at half the run: small sub-networks,
  which converge first, stop being pushed earlier;
* momentum separation: the sizes fall into ``size_groups`` equal-width bins of
  ``r``, and each bin keeps its own SGD momentum buffers. Around the optimizer step
  the bin's buffer of every parameter with a gradient is swapped in as SGD's
  ``momentum_buffer`` and moved back out after it (parameters off the path have no
  gradient and SGD leaves them alone). The buffers live in the optimizer's state
  under ``momentum_buffer_size{g}``, so the checkpoint saves them with the
  optimizer and few-shot's split copies them with the rest of the state.

The step's size is that of the first path the strategy drew from the sampler
(:attr:`evonas.training.sampling.Sampler.step_paths`): uniform and few-shot train
that one path; landmark also forwards landmark pairs, whose ranking gradients take
the step's learning rate. Strategies that train paths of several sizes in one update
(fair, sandwich) cannot have one size per step and are refused by the config. Only
with the cosine schedule; the scheduler keeps running and is what the log reports
(the largest path's rate).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch

from search_spaces import Arch, Space

if TYPE_CHECKING:
    from evonas.run.config import TrainConfig

__all__ = ["SIZE_STRATEGIES", "SizeLR"]

SIZE_STRATEGIES = ("uniform", "few-shot", "landmark")  # one label-trained path a step: one size a step
BUFFER = "momentum_buffer"


class SizeLR:
    """Each step's learning rate and momentum buffers from its path's relative size (see the module doc)."""

    def __init__(self, space: Space, cfg: TrainConfig, total_steps: int) -> None:
        self.space = space
        self.lr = cfg.lr
        self.groups = cfg.size_groups
        self.total_steps = max(total_steps, 1)
        self.smallest, self.largest = space.min_cost("flops"), space.max_cost("flops")
        self._swapped: list[torch.Tensor] = []
        self._group = 0

    def relative_size(self, arch: Arch) -> float:
        """``r`` in [0, 1]: 0 for the fewest FLOPs of the space, 1 for the most (0 when all paths cost the same)."""
        span = self.largest - self.smallest
        return (self.space.cost(arch).flops - self.smallest) / span if span > 0 else 0.0

    def group(self, r: float) -> int:
        """The momentum group of size ``r``: equal-width bins, the top one closed."""
        return min(int(r * self.groups), self.groups - 1)

    def rate(self, step: int, r: float) -> float:
        """The learning rate at ``step`` (0-based) of a path of size ``r``."""
        progress = min(1.0, step / (self.total_steps * (0.5 + 0.5 * r)))
        return self.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def before_update(self, opt: torch.optim.Optimizer, paths: Sequence[Arch], step: int) -> None:
        """Set the step's learning rate and swap in its group's momentum buffers (after backward, before ``opt.step``)."""
        if not paths:
            raise RuntimeError("lr_by_size: the strategy drew no path from the sampler this step")
        r = self.relative_size(paths[0])
        self._group = self.group(r)
        key = f"{BUFFER}_size{self._group}"
        lr = self.rate(step, r)
        self._swapped = []
        for group in opt.param_groups:
            group["lr"] = lr
            if group["momentum"] == 0:  # no buffers to keep apart
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = opt.state[p]
                state.pop(BUFFER, None)
                if key in state:
                    state[BUFFER] = state.pop(key)
                self._swapped.append(p)

    def after_update(self, opt: torch.optim.Optimizer) -> None:
        """Move the updated buffers back into the step's group (after ``opt.step``, before the scheduler's step)."""
        key = f"{BUFFER}_size{self._group}"
        for p in self._swapped:
            state = opt.state[p]
            if BUFFER in state:
                state[key] = state.pop(BUFFER)
        self._swapped = []
