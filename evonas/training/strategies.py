"""Supernet training strategies, registered by name (``TrainConfig.strategy``).

A strategy decides which paths one SGD step trains and how: ``step(model, x, y, rng)``
runs the forward passes, back-propagates (gradients of several paths accumulate) and
returns a :class:`~evonas.training.loop.StepResult`; the loop makes one optimizer
update per step. Every random draw comes from ``rng``, the run's path RNG, whose
state the checkpoint saves; random paths are drawn through ``self.sampler``
(:mod:`evonas.training.sampling`: uniform, or importance sampling with ``pada``). A strategy may also change the model between epochs
(``phase``, ``build_model``, ``enter_phase``); the checkpoint records the phase.

* ``uniform``: SPOS (Guo et al., 2020), one uniformly sampled path per step.
* ``fair``: FairNAS strict fairness (Chu et al., 2021), ``m`` paths per step that
  together use every option of every layer; gradients summed, one update.
* ``sandwich``: the largest path (most FLOPs) on labels, the smallest and
  ``sandwich_random`` random paths distilled in place from it (BigNAS,
  Yu et al., 2020); one update.
* ``few-shot``: uniform, then split into one sub-supernet per option of one layer
  (Zhao et al., 2021) after ``few_shot_fraction`` of the epochs.
* ``landmark``: uniform plus a ranking loss on pairs of architectures whose
  stand-alone accuracy is known (Yu et al., 2021), in :mod:`evonas.training.landmark`;
  :func:`landmark_archs` names them, to leave out of any measurement of ranking.

``StepResult.images`` counts forward passes times batch size, the cost to compare
strategies at: uniform and few-shot see B images a step, fair ``m * B``, sandwich
``(2 + sandwich_random) * B``, landmark ``(1 + 2 * landmark_pairs) * B``.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces import Arch, ChainSpace

from evonas.errors import ConfigError
from evonas.supernet import FewShotSupernet, build_one_shot, split_layer
from evonas.training.loop import StepResult, backward, make_optimizer, supervised_step
from evonas.training.sampling import make_sampler

if TYPE_CHECKING:  # annotations only: the config validates strategy names through this package
    from evonas.run.config import TrainConfig

ONE_SHOT = "one-shot"
FEW_SHOT = "few-shot"


class Strategy:
    """How the supernet of ``space`` is trained; one instance per training run."""

    name: ClassVar[str]

    def __init__(self, space: ChainSpace, cfg: TrainConfig) -> None:
        self.space = space
        self.cfg = cfg
        self.sampler = make_sampler(space, cfg)  # draws the random paths (uniform, or pada: see sampling)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> StepResult:
        """Forward and back-propagate one step on the batch (x normalised (B, C, H, W), y (B,))."""
        raise NotImplementedError

    def start(self, step: int, total_steps: int) -> None:
        """Called once before training: ``step`` steps of ``total_steps`` are done (more than 0 on resume)."""

    def phase(self, epochs_done: int) -> str:
        """Which model the run holds after ``epochs_done`` epochs."""
        return ONE_SHOT

    def build_model(self, phase: str) -> nn.Module:
        """A freshly initialised model of ``phase`` (weights are loaded over it on resume)."""
        return build_one_shot(self.space, self.cfg)

    def enter_phase(self, phase: str, model: nn.Module, opt: torch.optim.Optimizer, sched, total_steps: int):
        """Turn the trained ``model`` (and its optimizer, schedule) into ``phase``'s."""
        raise NotImplementedError(f"strategy {self.name!r} has no phase {phase!r}")


_STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Register a Strategy subclass under ``cls.name`` (usable as a class decorator)."""
    if cls.name in _STRATEGIES and _STRATEGIES[cls.name] is not cls:
        raise ValueError(f"a training strategy named {cls.name!r} is already registered")
    _STRATEGIES[cls.name] = cls
    return cls


def list_strategies() -> list[str]:
    return sorted(_STRATEGIES)


def get_strategy(name: str) -> type[Strategy]:
    try:
        return _STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"The 'strategy' parameter must be one of {', '.join(list_strategies())}; got {name!r}.", param="strategy"
        ) from None


def make_strategy(space: ChainSpace, cfg: TrainConfig) -> Strategy:
    """The strategy ``cfg.strategy`` names, for ``space``."""
    return get_strategy(cfg.strategy)(space, cfg)


def _merge(results: list[StepResult]) -> StepResult:
    """One step's report from several label-trained paths (first path's logits)."""
    count = sum(r.count for r in results)
    return StepResult(
        results[0].logits,
        sum(r.loss * r.count for r in results) / count,
        sum(r.correct for r in results),
        count,
        sum(r.images for r in results),
    )


def _path(model: nn.Module, arch: Arch) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x, arch)


@register_strategy
class Uniform(Strategy):
    """SPOS: one uniformly sampled path per step."""

    name = "uniform"

    def step(self, model, x, y, rng):
        return supervised_step(_path(model, self.sampler.sample(rng)), x, y, self.cfg)


def fair_paths(space: ChainSpace, rng: random.Random) -> list[Arch]:
    """The ``m`` paths of one strictly fair step, ``m`` = the most options of any layer.

    Each layer's column of the ``m`` paths is a random permutation of its options
    repeated ``m // k`` times (``k`` = its option count) plus ``m % k`` of them drawn
    without replacement: every option is used ``floor(m / k)`` or ``ceil(m / k)``
    times, so exactly once when ``k == m`` and at least once otherwise (as evenly as
    possible). On macro-* every layer has 3 options; on mobilenet-fmnist ``m = 7``
    and a 6-option layer (no skip) uses one random option twice.
    """
    m = max(len(d.options) for d in space.dims)
    columns = []
    for dim in space.dims:
        options = list(dim.options)
        column = options * (m // len(options)) + rng.sample(options, m % len(options))
        rng.shuffle(column)
        columns.append(column)
    return [Arch(space.name, tuple(col[j] for col in columns)) for j in range(m)]


@register_strategy
class Fair(Strategy):
    """FairNAS strict fairness: ``m`` paths covering every option, summed gradients, one update."""

    name = "fair"

    def step(self, model, x, y, rng):
        return _merge([supervised_step(_path(model, arch), x, y, self.cfg) for arch in fair_paths(self.space, rng)])


def extreme_arch(space: ChainSpace, metric: str = "flops", *, largest: bool) -> Arch:
    """The path with the most (or fewest) ``metric``: per layer, the option that costs most (least).

    Costs are additive over layers, so the per-layer choice is exact; ties go to the
    first option in the layer's order.
    """
    choices = [d.options[0] for d in space.dims]
    for i, dim in enumerate(space.dims):
        def cost(code: int) -> int:
            return space.cost(Arch(space.name, tuple(choices[:i] + [code] + choices[i + 1 :]))).get(metric)

        costs = [cost(c) for c in dim.options]
        best = max(costs) if largest else min(costs)
        choices[i] = dim.options[costs.index(best)]
    return Arch(space.name, tuple(choices))


@register_strategy
class Sandwich(Strategy):
    """The largest path on labels, the smallest and ``n`` random paths distilled from it in place.

    The students' loss is ``T**2 * KL(softmax(teacher / T) || softmax(student / T))``
    with the teacher's logits detached and ``T = distill_temperature`` (1 by default,
    as in BigNAS); every path's gradients accumulate into one update. The logged loss
    and accuracy are the largest path's on labels.
    """

    name = "sandwich"

    def __init__(self, space: ChainSpace, cfg: TrainConfig) -> None:
        super().__init__(space, cfg)
        self.largest = extreme_arch(space, largest=True)
        self.smallest = extreme_arch(space, largest=False)

    def step(self, model, x, y, rng):
        students = [self.smallest] + [self.sampler.sample(rng) for _ in range(self.cfg.sandwich_random)]
        teacher = supervised_step(_path(model, self.largest), x, y, self.cfg)
        t = self.cfg.distill_temperature
        target = F.log_softmax(teacher.logits / t, dim=1)  # (B, classes), detached
        for arch in students:
            logits = model(x, arch)  # (B, classes)
            loss = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean", log_target=True) * t * t
            backward(loss)
        return StepResult(teacher.logits, teacher.loss, teacher.correct, teacher.count, teacher.images * (1 + len(students)))


@register_strategy
class FewShot(Strategy):
    """Uniform sampling, one-shot for ``few_shot_fraction`` of the epochs, then split on one layer.

    The split happens after epoch ``split_epoch = clip(round(fraction * epochs), 1,
    epochs)``; the checkpoint of that epoch already holds the split model. Each
    sub-supernet starts as a copy of the one-shot weights (BN statistics included)
    and the optimizer is rebuilt deterministically: same hyper-parameters and
    schedule position, and each copy of a parameter starts with a copy of its
    one-shot momentum buffer. Paths keep being drawn uniformly, so each
    sub-supernet trains in proportion to its option's share.
    """

    name = "few-shot"

    def __init__(self, space: ChainSpace, cfg: TrainConfig) -> None:
        super().__init__(space, cfg)
        self.layer = split_layer(space, cfg)
        self.split_epoch = min(max(math.floor(cfg.few_shot_fraction * cfg.epochs + 0.5), 1), cfg.epochs)

    def step(self, model, x, y, rng):
        return supervised_step(_path(model, self.sampler.sample(rng)), x, y, self.cfg)

    def phase(self, epochs_done: int) -> str:
        return FEW_SHOT if epochs_done >= self.split_epoch else ONE_SHOT

    def build_model(self, phase: str) -> nn.Module:
        model = build_one_shot(self.space, self.cfg)
        return FewShotSupernet.split(model, self.layer) if phase == FEW_SHOT else model

    def enter_phase(self, phase, model, opt, sched, total_steps):
        if phase != FEW_SHOT:
            return super().enter_phase(phase, model, opt, sched, total_steps)
        few = FewShotSupernet.split(model, self.layer)
        new_opt, new_sched = make_optimizer(few, self.cfg, total_steps)
        new_sched.load_state_dict(sched.state_dict())
        for new_group, old_group in zip(new_opt.param_groups, opt.param_groups):
            new_group.update({k: v for k, v in old_group.items() if k != "params"})
        source = dict(model.named_parameters())
        for name, param in few.named_parameters():
            old = source[name.split(".", 2)[2]]  # parts.<code>.<name in the one-shot model>
            if opt.state.get(old):
                new_opt.state[param] = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[old].items()}
        return few, new_opt, new_sched


def landmark_archs(config: "TrainConfig | Mapping[str, Any] | None") -> set[str]:
    """The canonical architecture strings a run was trained to rank (empty for every other strategy).

    ``config`` is a :class:`~evonas.run.config.TrainConfig` or its dict (``config.json``'s
    ``config``). Leave these out of any measurement of the run's ranking quality.
    """
    if config is None:
        return set()
    stored = config.get("landmark_archs") if isinstance(config, Mapping) else getattr(config, "landmark_archs", None)
    return {str(pair[0]) for pair in stored or ()}

