"""Stand-alone training: one architecture from scratch, with PyTorch's default init.

The stand-alone truth protocol (anchors, gap benchmarks) depends on this network's
initialisation and schedule; supernet-only choices (``zero_init_residual``,
``strategy``) do not apply here.
"""

from __future__ import annotations

import time

import torch

from search_spaces import Arch, get_space

from evonas.data import Normalizer, Splits
from evonas.evaluation.scoring import evaluate_module
from evonas.run.config import TrainConfig
from evonas.supernet import build_standalone
from evonas.device import autocast
from evonas.training.loop import data_on_device, make_optimizer, steps_per_epoch, supervised_step, train_epoch


def train_standalone(
    arch: Arch,
    cfg: TrainConfig,
    splits: Splits,
    *,
    progress: bool = True,
    eval_split: str = "val",
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Train ``arch`` from scratch with ``cfg``'s schedule and score it on ``eval_split``.

    Returns accuracy (percent), loss, seconds of training, and epochs. ``device`` is
    where the network trains and runs (a GPU keeps the training images when they fit),
    in ``cfg.precision``.
    """
    space = get_space(cfg.space)
    arch = space.validate(arch)
    torch.manual_seed(cfg.seed)
    device = torch.device(device)
    model = build_standalone(space, arch).to(device)
    norm = Normalizer(splits.mean, splits.std)
    train = data_on_device(splits, device)  # a GPU keeps the training images when they fit
    opt, sched = make_optimizer(model, cfg, steps_per_epoch(splits, cfg) * cfg.epochs)
    model.train()
    t0 = time.perf_counter()
    step = lambda x, y: supervised_step(model, x, y, cfg)  # noqa: E731
    for epoch in range(cfg.epochs):
        train_epoch(step, train, cfg, epoch, norm, opt, sched, f"{arch} epoch {epoch + 1}/{cfg.epochs}", progress,
                    device=device)
    seconds = time.perf_counter() - t0
    model.eval()
    x, y = splits.split(eval_split)
    with torch.inference_mode(), autocast(device, cfg.precision):
        metrics = evaluate_module(lambda xb: model(xb.to(device, non_blocking=True)), x, y, norm)  # (B, classes)
    metrics.update(seconds=round(seconds, 2), epochs=cfg.epochs)
    return metrics
