"""Which paths and which examples a supernet step trains on (``TrainConfig.sampling``).

A sampler sits under every strategy: the strategy asks it for its random paths
(``sampler.sample(rng)`` where SPOS draws ``space.sample(rng)``), the training loop
asks it for each epoch's order of training examples and tells it, after each step's
backward passes, what the step did. Two samplers are registered:

* ``uniform`` (the default): every option of a choice equally likely, each epoch a
  permutation of the training examples, exactly as before samplers existed.
* ``pada``: our own version of the path and data importance sampling of Lu et al.,
  "PA&DA: Jointly Sampling PAth and DAta for Consistent NAS" (CVPR 2023). Options
  and examples that produce large gradients are drawn more often, which lowers the
  variance of the shared weights' gradient:

  - *paths*: per choice and option, an exponential moving average (decay
    :data:`PADA_EMA`) of the L2 norm of the whole step's gradient (over every
    parameter that received one, after backward and before the optimizer step),
    updated for each option of every path the sampler gave out in that step. An
    option never trained yet counts as the mean of its choice's trained options
    (1 when none is). Option ``o`` of choice ``c`` is drawn with probability
    ``(1 - lam) / K_c + lam * m[c][o] / sum_o m[c][o]``;
  - *data*: per training example, the norm of ``softmax(logits) - onehot(y)`` of
    the step's first label-trained path the last time the example was trained on
    (1 before that; an example drawn twice in one batch keeps the larger score).
    Each epoch's order is ``len(train)`` indices drawn with replacement with
    probability ``(1 - lam) / N + lam * s_i / sum(s)``, from the epoch's data-order
    generator (:func:`~evonas.training.loop.epoch_generator`), so a resumed run
    draws the same order from the saved scores;
  - ``lam`` rises linearly from 0 at the first step to ``pada_mix`` at the last
    (the epoch order uses the value at the epoch's first step): training starts
    uniform. The loss is not reweighted.

  The averages and scores stay on the training device; the host reads the averages
  at every epoch's start and every ``LOG_EVERY`` steps (the draws in between use
  that copy), and the scores once an epoch. Both are saved in the checkpoint
  (:meth:`Sampler.state_dict`), so a resumed run is bit-identical to an
  uninterrupted one. With ``sandwich`` the step's gradient norm includes the
  largest and smallest paths' gradients and is credited to the random paths;
  with ``landmark`` it includes the ranking term's. ``pada`` needs the training
  images in memory and one process (the example scores are not gathered over
  ranks), and does not combine with ``fair``, whose paths are a permutation of
  every option rather than draws.
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch.nn import functional as F

from search_spaces import Arch, Space

from evonas.errors import ConfigError
from evonas.training.loop import LOG_EVERY, StepResult, epoch_generator

if TYPE_CHECKING:
    from evonas.run.config import TrainConfig

__all__ = ["PADA_EMA", "SAMPLINGS", "PadaSampler", "Sampler", "check_sampling_data", "check_sampling_world",
           "make_sampler"]

PADA_EMA = 0.9  # decay of each option's gradient-norm average (about its last ten trainings count)


class Sampler:
    """Uniform sampling: paths drawn as ``space.sample(rng)``, epochs in the loop's own permutation.

    It also records the paths it gave out since :meth:`begin_step` (``step_paths``),
    which the size-dependent learning rate reads.
    """

    name: ClassVar[str] = "uniform"
    weighs_data: ClassVar[bool] = False  # whether the loop must ask for the epoch order and report every step

    def __init__(self, space: Space, cfg: TrainConfig) -> None:
        self.space = space
        self.cfg = cfg
        self.step_paths: list[Arch] = []

    def start(self, step: int, total_steps: int, device: torch.device | str = "cpu") -> None:
        """Called once before training: ``step`` of ``total_steps`` are done; state moves to ``device``."""

    def begin_epoch(self, epoch: int, step: int, n_train: int) -> torch.Tensor | None:
        """The epoch's order of training indices (None: the loop's permutation); ``step`` is its first step."""
        return None

    def begin_step(self, step: int) -> None:
        """A new step (0-based over the run) starts: forget the last step's paths."""
        self.step_paths = []

    def sample(self, rng: random.Random) -> Arch:
        """One random path for the current step."""
        arch = self.space.sample(rng)
        self.step_paths.append(arch)
        return arch

    def observe(self, opt: torch.optim.Optimizer, result: StepResult, idx: torch.Tensor | None, y: torch.Tensor) -> None:
        """After the step's backward passes (gradients unscaled), before the update: what the step did."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must keep for an exact resume (tensors on the CPU)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (before :meth:`start`)."""


class PadaSampler(Sampler):
    """Path and data importance sampling (see the module doc)."""

    name = "pada"
    weighs_data = True

    def __init__(self, space: Space, cfg: TrainConfig) -> None:
        super().__init__(space, cfg)
        self.positions = [{code: j for j, code in enumerate(d.options)} for d in space.dims]
        width = max(len(d.options) for d in space.dims)
        self.norms = torch.ones(len(space.dims), width)  # (choices, most options): each option's gradient-norm average
        self.seen = torch.zeros(len(space.dims), width, dtype=torch.bool)  # whether the option was trained yet
        self.scores: torch.Tensor | None = None  # (N,): each training example's last error norm, made on the first epoch
        self.rows = torch.arange(len(space.dims))
        self.step = 0
        self.total_steps = 1
        self.weights: list[list[float]] = [[1.0] * len(d.options) for d in space.dims]  # host copy of the averages
        self._cumulative: tuple[int, list[list[float]]] | None = None  # (step, each choice's cumulative probabilities)

    def start(self, step, total_steps, device="cpu"):
        self.step, self.total_steps = step, max(total_steps, 1)
        self.norms, self.seen, self.rows = (t.to(device) for t in (self.norms, self.seen, self.rows))
        if self.scores is not None:
            self.scores = self.scores.to(device)

    def mix(self, step: int) -> float:
        """``lam`` at ``step`` (0-based): linear from 0 at the first step to ``pada_mix`` at the last."""
        return self.cfg.pada_mix * min(step, self.total_steps - 1) / max(self.total_steps - 1, 1)

    def begin_epoch(self, epoch, step, n_train):
        if self.scores is None:
            self.scores = torch.ones(n_train, device=self.norms.device)
        elif len(self.scores) != n_train:
            raise ConfigError(f"The 'sampling' parameter (pada) holds scores of {len(self.scores)} training examples, but "
                              f"the training split now has {n_train}; resume with the data the run was trained on.",
                              param="sampling")
        self.refresh()
        lam = self.mix(step)
        scores = self.scores.detach().to("cpu", torch.float64)
        total = float(scores.sum())
        probs = torch.full((n_train,), 1.0 / n_train, dtype=torch.float64)
        if lam > 0 and total > 0:
            probs = (1 - lam) * probs + lam * scores / total
        return torch.multinomial(probs, n_train, replacement=True, generator=epoch_generator(self.cfg.seed, epoch))

    def begin_step(self, step):
        super().begin_step(step)
        self.step = step
        if step % LOG_EVERY == 0:
            self.refresh()

    def refresh(self) -> None:
        """Read the option averages from the device into the host copy the draws use."""
        norms, seen = self.norms.tolist(), self.seen.tolist()
        weights = []
        for d, dim in enumerate(self.space.dims):
            k = len(dim.options)
            trained = [norms[d][j] for j in range(k) if seen[d][j]]
            fill = sum(trained) / len(trained) if trained else 1.0
            weights.append([norms[d][j] if seen[d][j] else fill for j in range(k)])
        self.weights = weights
        self._cumulative = None

    def probabilities(self, step: int | None = None) -> list[list[float]]:
        """Each choice's option probabilities at ``step`` (default: the current one), from the host copy."""
        lam = self.mix(self.step if step is None else step)
        out = []
        for values in self.weights:
            k, total = len(values), sum(values)
            out.append([(1 - lam) / k + (lam * v / total if total > 0 else lam / k) for v in values])
        return out

    def sample(self, rng):
        if self._cumulative is None or self._cumulative[0] != self.step:
            self._cumulative = (self.step, [list(itertools.accumulate(p)) for p in self.probabilities()])
        choices = []
        for dim, cumulative in zip(self.space.dims, self._cumulative[1]):
            j = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
            choices.append(dim.options[min(j, len(cumulative) - 1)])
        arch = Arch(self.space.name, tuple(choices))
        self.step_paths.append(arch)
        return arch

    def observe(self, opt, result, idx, y):
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads).float()  # 0-dim, on the device
            for arch in self.step_paths:
                self._update(arch, norm)
        if idx is not None and self.scores is not None:
            logits = result.logits.float()  # (B, classes)
            error = F.softmax(logits, dim=1) - F.one_hot(y, logits.shape[1]).float()  # (B, classes)
            self.scores.scatter_reduce_(0, idx.to(self.scores.device), error.norm(dim=1), "amax", include_self=False)

    def _update(self, arch: Arch, norm: torch.Tensor) -> None:
        cols = torch.tensor([pos[c] for pos, c in zip(self.positions, arch.choices)]).to(self.norms.device,
                                                                                           non_blocking=True)
        old, seen = self.norms[self.rows, cols], self.seen[self.rows, cols]
        ok = torch.isfinite(norm)  # an fp16 step that overflowed (and is skipped) teaches nothing
        new = torch.where(seen, PADA_EMA * old + (1 - PADA_EMA) * norm, norm.expand_as(old))
        self.norms[self.rows, cols] = torch.where(ok, new, old)
        self.seen[self.rows, cols] = seen | ok

    def state_dict(self):
        return {"name": self.name, "norms": self.norms.cpu(), "seen": self.seen.cpu(),
                "scores": None if self.scores is None else self.scores.cpu()}

    def load_state_dict(self, state):
        if not state:
            return
        self.norms, self.seen, self.scores = state["norms"].clone(), state["seen"].clone(), state["scores"]
        if self.scores is not None:
            self.scores = self.scores.clone()


SAMPLINGS: dict[str, type[Sampler]] = {cls.name: cls for cls in (Sampler, PadaSampler)}


def make_sampler(space: Space, cfg: TrainConfig) -> Sampler:
    """The sampler ``cfg.sampling`` names."""
    return SAMPLINGS[cfg.sampling](space, cfg)


def check_sampling_world(cfg: TrainConfig, world_size: int) -> None:
    """``pada`` trains in one process: its example scores would need gathering over the ranks."""
    if cfg.sampling == "pada" and world_size > 1:
        raise ConfigError(f"The 'sampling' parameter (pada) trains in one process (its example scores are not gathered "
                          f"over ranks); got {world_size} processes: train with one, or use the 'sampling' parameter "
                          "(uniform).", param="sampling")


def check_sampling_data(cfg: TrainConfig, train_x: Any) -> None:
    """``pada`` draws examples by index from images held in memory, never from a stream."""
    from evonas.streaming import is_lazy

    if cfg.sampling == "pada" and is_lazy(train_x):
        raise ConfigError(f"The 'sampling' parameter (pada) weighs each training example and needs the images in memory, "
                          f"but these {len(train_x):,} training images stream from disk (above the memory budget); set "
                          "the 'in_memory' parameter or use the 'sampling' parameter (uniform).", param="sampling")

