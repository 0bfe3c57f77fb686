"""Training: the SPOS supernet (one uniformly sampled path per step) and stand-alone networks.

Both use SGD with Nesterov momentum and a per-step cosine or one-cycle schedule.
Supernet training checkpoints after every epoch (model, optimizer, scheduler,
path-sampling RNG, epoch, step) and resumes to the same final weights as an
uninterrupted run with the same seed: the data order of each epoch is drawn from
``seed`` and the epoch number, and the path sampler's state is saved.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from search_spaces import Arch, get_space

from evonas.run.checkpoint import load_checkpoint, save_checkpoint
from evonas.run.config import TrainConfig, environment, write_json_atomic
from evonas.data import Normalizer, Splits, batches
from evonas.evaluation.scoring import evaluate_module
from evonas.supernet import build_supernet
from evonas.supernet.chain import build_standalone

LOG = "train_log.jsonl"


def make_optimizer(model: nn.Module, cfg: TrainConfig, total_steps: int):
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay
    )
    if cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total_steps, 2))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
        )
    return opt, sched


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The data-order generator of one epoch (derived, so resuming needs no saved state)."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def train_epoch(
    step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    splits: Splits,
    cfg: TrainConfig,
    epoch: int,
    norm: Normalizer,
    opt: torch.optim.Optimizer,
    sched,
    desc: str,
    progress: bool,
) -> dict[str, float]:
    """One pass over the train split; ``step_fn(x, y)`` returns the logits of that step."""
    steps = len(splits.train_x) // cfg.batch_size or 1
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, unit="step", dynamic_ncols=True)
    loss_sum = correct = seen = 0
    for xb, yb in batches(
        splits.train_x, splits.train_y, cfg.batch_size, generator=epoch_generator(cfg.seed, epoch), drop_last=len(splits.train_x) >= cfg.batch_size
    ):
        logits = step_fn(norm(xb), yb)  # (B, classes)
        loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.item() * len(yb)
        correct += (logits.detach().argmax(1) == yb).sum().item()
        seen += len(yb)
        bar.update(1)
        if bar.n % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
    bar.close()
    return {"train_loss": loss_sum / max(seen, 1), "train_acc": 100.0 * correct / max(seen, 1)}


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def train_supernet(run_dir: Path, cfg: TrainConfig, *, resume: bool = False, progress: bool = True, splits: Splits | None = None, stop_after: int | None = None) -> Path:
    """Train (or resume) the supernet of ``cfg.space`` in ``run_dir``; returns the weights path.

    ``stop_after`` ends the process's work after that many epochs (as if killed),
    which the resume tests use.
    """
    from evonas.run.run import Run, load_run_splits

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    space = get_space(cfg.space)
    torch.manual_seed(cfg.seed)
    model = build_supernet(space, config=cfg)
    splits = splits or load_run_splits(cfg)
    norm = Normalizer(splits.mean, splits.std)
    steps_per_epoch = max(len(splits.train_x) // cfg.batch_size, 1)
    opt, sched = make_optimizer(model, cfg, steps_per_epoch * cfg.epochs)
    path_rng = random.Random(cfg.seed)
    start_epoch = 0
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, kind="supernet", config=cfg.to_dict())
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        path_rng.setstate(state["path_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"]
    elif ckpt_path.exists():
        from evonas.errors import RunDirError

        raise RunDirError(
            f"{run_dir} already holds a supernet checkpoint; pass --resume to continue it, or "
            "choose a new --run directory"
        )
    write_json_atomic(run_dir / "config.json", {"kind": "supernet", "config": cfg.to_dict(), "environment": environment()})

    model.train()
    step_fn = lambda x, y: model(x, space.sample(path_rng))  # noqa: E731 - one uniformly sampled path per step
    epochs_done = 0
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        stats = train_epoch(step_fn, splits, cfg, epoch, norm, opt, sched, f"supernet epoch {epoch + 1}/{cfg.epochs}", progress)
        stats.update(epoch=epoch + 1, seconds=round(time.perf_counter() - t0, 2), lr=sched.get_last_lr()[0])
        save_checkpoint(
            ckpt_path,
            {
                "kind": "supernet",
                "config": cfg.to_dict(),
                "epoch": epoch + 1,
                "step": (epoch + 1) * steps_per_epoch,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "path_rng": path_rng.getstate(),
                "torch_rng": torch.get_rng_state(),
            },
        )
        _append_log(run_dir / LOG, stats)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {stats['train_loss']:.3f}, train acc "
                f"{stats['train_acc']:.1f}% ({stats['seconds']:.0f}s)"
            )
        epochs_done += 1
        if stop_after is not None and epochs_done >= stop_after and epoch + 1 < cfg.epochs:
            return ckpt_path
    weights = Run.weights_file(run_dir)
    save_checkpoint(weights, {"kind": "weights", "config": cfg.to_dict(), "model": model.state_dict(), "epoch": cfg.epochs})
    return weights


def train_standalone(
    arch: Arch,
    cfg: TrainConfig,
    splits: Splits,
    *,
    progress: bool = True,
    eval_split: str = "val",
) -> dict[str, float]:
    """Train ``arch`` from scratch with ``cfg``'s schedule and score it on ``eval_split``.

    Returns accuracy (percent), loss, seconds of training, and epochs.
    """
    space = get_space(cfg.space)
    arch = space.validate(arch)
    torch.manual_seed(cfg.seed)
    model = build_standalone(space, arch)
    norm = Normalizer(splits.mean, splits.std)
    steps_per_epoch = max(len(splits.train_x) // cfg.batch_size, 1)
    opt, sched = make_optimizer(model, cfg, steps_per_epoch * cfg.epochs)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        train_epoch(lambda x, y: model(x), splits, cfg, epoch, norm, opt, sched, f"{arch} epoch {epoch + 1}/{cfg.epochs}", progress)
    seconds = time.perf_counter() - t0
    model.eval()
    x, y = splits.split(eval_split)
    metrics = evaluate_module(model, x, y, norm)
    metrics.update(seconds=round(seconds, 2), epochs=cfg.epochs)
    return metrics
