"""Supernet training with a registered strategy (uniform SPOS by default), checkpointed every epoch.

Every epoch ends with an atomic checkpoint of the model, optimizer, scheduler,
path-sampling RNG, the sampler's state (:mod:`evonas.training.sampling`), torch RNG,
the strategy's phase and the images seen so far; a resumed run reaches the same
final weights as an uninterrupted one with the same seed (the data order of each
epoch is derived from ``seed`` and the epoch number).

On several ranks (``world``, see :mod:`evonas.training.distributed`) rank 0 alone
reads the checkpoint (and sends it to the others) and writes the run directory; a
step's batch is split over the ranks, so the checkpoint holds nothing that depends
on their number and resumes on any number of ranks. ``config.json``, the log and
the weights record the world size that trained them.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search_spaces import get_space

from evonas.data import Normalizer, Splits
from evonas.errors import EvonasError, RunDirError, TrainingDivergedError
from evonas.run.checkpoint import load_checkpoint, save_checkpoint
from evonas.run.config import TrainConfig, environment, write_json_atomic
from evonas.run.run import RunLayout, load_run_splits
from evonas.training.distributed import SINGLE, World, average_buffers, broadcast_module, broadcast_object, check_batch
from evonas.training.loop import data_on_device, diverged_message, make_optimizer, steps_per_epoch, train_epoch, weights_finite
from evonas.training.sampling import check_sampling_data, check_sampling_world
from evonas.training.size_lr import SizeLR
from evonas.training.strategies import Strategy, make_strategy

logger = logging.getLogger(__name__)


@dataclass
class _Training:
    """A supernet training under way: what passes from one epoch to the next (a phase change swaps the model)."""

    cfg: TrainConfig
    layout: RunLayout
    world: World
    device: torch.device
    strategy: Strategy
    splits: Splits
    norm: Normalizer
    steps: int  # per epoch
    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    phase: str
    path_rng: random.Random
    sizes: SizeLR | None
    start_epoch: int = 0
    images_seen: int = 0

    @property
    def total_steps(self) -> int:
        return self.steps * self.cfg.epochs


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _read_checkpoint(layout: RunLayout, cfg: TrainConfig, resume: bool) -> dict | None:
    """The checkpoint to resume from (None to start afresh); refuses to overwrite one without ``resume``."""
    ckpt_path = layout.checkpoint
    if resume and ckpt_path.exists():
        return load_checkpoint(ckpt_path, kind="supernet", config=cfg.to_dict())
    if ckpt_path.exists():
        raise RunDirError(
            f"{layout.path} already holds a supernet checkpoint; set the 'resume' parameter to continue it, or "
            "choose a new 'run_dir' parameter"
        )
    return None


def _shared_checkpoint(layout: RunLayout, cfg: TrainConfig, resume: bool, world: World) -> dict | None:
    """Rank 0's checkpoint (or its error) on every rank: other machines need not see the run directory."""
    if world.size == 1:
        return _read_checkpoint(layout, cfg, resume)
    outcome: tuple[str, object] | None = None
    if world.is_main:
        try:
            outcome = ("state", _read_checkpoint(layout, cfg, resume))
        except EvonasError as exc:
            outcome = ("error", exc)
    kind, value = broadcast_object(outcome, world)
    if kind == "error":
        raise value
    return value


def train_supernet(
    run_dir: str | Path | RunLayout,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    splits: Splits | None = None,
    stop_after: int | None = None,
    device: torch.device | str = "cpu",
    world: World = SINGLE,
) -> Path:
    """Train (or resume) the supernet of ``cfg.space`` with ``cfg.strategy`` in ``run_dir``; returns the weights path.

    ``stop_after`` ends the process's work after that many epochs (as if killed),
    which the resume tests use; the checkpoint's path is returned then. ``train_log.jsonl``
    gets one line per epoch, with the images seen that epoch (forward passes times
    batch size, over all ranks) and in total; the final weights file and
    ``config.json`` carry the total. ``world`` is this process's place among the
    ranks of a distributed run (the process group must be initialised); ``device``
    is where this rank trains. With ``progress``, each epoch's summary is logged
    (INFO, this module's logger).
    """
    layout = RunLayout.of(run_dir)
    device = torch.device(device)
    space = get_space(cfg.space)
    strategy = make_strategy(space, cfg)
    splits = splits or load_run_splits(cfg)
    check_batch(world.size, min(cfg.batch_size, len(splits.train_x)))
    check_sampling_world(cfg, world.size)
    check_sampling_data(cfg, splits.train_x)
    state = _shared_checkpoint(layout, cfg, resume, world)
    if world.is_main:
        layout.path.mkdir(parents=True, exist_ok=True)
    run = _start(layout, cfg, strategy, splits, state, world, device)
    run_info = {"kind": "supernet", "config": cfg.to_dict(), "environment": environment(), "world_size": world.size,
                "device": device.type}
    if world.is_main:
        write_json_atomic(layout.config_file, run_info)
        if hasattr(space, "description"):  # a user's model: what the run was trained on, checked when it reopens
            write_json_atomic(layout.space_file, space.description)

    run.model.train()
    epochs_done = 0
    for epoch in range(run.start_epoch, cfg.epochs):
        stats = _train_one_epoch(run, epoch, progress)
        _end_epoch(run, epoch, stats, progress)
        epochs_done += 1
        if stop_after is not None and epochs_done >= stop_after and epoch + 1 < cfg.epochs:
            return layout.checkpoint
    weights = layout.weights
    if world.is_main:
        save_checkpoint(
            weights,
            {"kind": "weights", "config": cfg.to_dict(), "model": run.model.state_dict(), "epoch": cfg.epochs,
             "phase": run.phase, "images_seen": run.images_seen, "world_size": world.size},
        )
        write_json_atomic(layout.config_file, {**run_info, "images_seen": run.images_seen})
    return weights


def _start(layout: RunLayout, cfg: TrainConfig, strategy: Strategy, splits: Splits, state: dict | None, world: World,
           device: torch.device) -> _Training:
    """The model, optimizer and schedule of a new run (``state`` None) or of the checkpoint ``state``."""
    steps = steps_per_epoch(splits, cfg)
    total_steps = steps * cfg.epochs
    phase = strategy.phase(0) if state is None else state.get("phase", strategy.phase(state["epoch"]))
    torch.manual_seed(cfg.seed)
    model = strategy.build_model(phase).to(device)
    norm = Normalizer(splits.mean, splits.std)
    splits = data_on_device(splits, device)  # a GPU keeps the training images when they fit
    opt, sched = make_optimizer(model, cfg, total_steps)
    sizes = SizeLR(strategy.space, cfg, total_steps) if cfg.lr_by_size else None
    run = _Training(cfg=cfg, layout=layout, world=world, device=device, strategy=strategy, splits=splits, norm=norm,
                    steps=steps, model=model, opt=opt, sched=sched, phase=phase, path_rng=random.Random(cfg.seed),
                    sizes=sizes)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        run.path_rng.setstate(state["path_rng"])
        torch.set_rng_state(state["torch_rng"])
        strategy.sampler.load_state_dict(state.get("sampler") or {})
        run.start_epoch = state["epoch"]
        # checkpoints of an older evonas (uniform, one batch per step) lack the count
        run.images_seen = state.get("images_seen", run.start_epoch * steps * min(cfg.batch_size, len(splits.train_x)))
    broadcast_module(model, world)  # identical by construction; made certain, as DDP does
    strategy.start(run.start_epoch * steps, total_steps)
    strategy.sampler.start(run.start_epoch * steps, total_steps, device)
    return run


def _train_one_epoch(run: _Training, epoch: int, progress: bool) -> dict[str, Any]:
    """Train epoch ``epoch`` (0-based) and check the weights; its log record. Divergence names what is kept."""
    cfg, layout = run.cfg, run.layout
    t0 = time.perf_counter()
    step_fn = lambda x, y: run.strategy.step(run.model, x, y, run.path_rng)  # noqa: E731 - model changes at a phase change
    try:
        stats = train_epoch(step_fn, run.splits, cfg, epoch, run.norm, run.opt, run.sched,
                            f"supernet epoch {epoch + 1}/{cfg.epochs}", progress, world=run.world, device=run.device,
                            sampler=run.strategy.sampler, sizes=run.sizes)
        average_buffers(run.model, run.world)
        if not weights_finite(run.model):  # once an epoch: a last step that broke the weights
            raise TrainingDivergedError(diverged_message(cfg, epoch, None, "a weight is not finite"))
    except TrainingDivergedError as exc:
        kept = (f"the last good checkpoint (epoch {epoch}) is kept in {layout.checkpoint}" if epoch > 0
                else f"no checkpoint was written in {layout.path}")
        raise TrainingDivergedError(f"{exc}; {kept}") from None
    run.images_seen += stats["images_seen"]
    stats.update(epoch=epoch + 1, seconds=round(time.perf_counter() - t0, 2), lr=run.sched.get_last_lr()[0],
                 images_seen_total=run.images_seen, world_size=run.world.size)
    return stats


def _end_epoch(run: _Training, epoch: int, stats: dict[str, Any], progress: bool) -> None:
    """After epoch ``epoch``: enter the strategy's next phase if it changes, then checkpoint, log and report."""
    new_phase = run.strategy.phase(epoch + 1)
    if new_phase != run.phase:
        run.model, run.opt, run.sched = run.strategy.enter_phase(new_phase, run.model, run.opt, run.sched,
                                                                 run.total_steps)
        run.model.train()
        run.phase = new_phase
    stats["phase"] = run.phase
    if not run.world.is_main:
        return
    save_checkpoint(run.layout.checkpoint, _checkpoint(run, epoch + 1))
    _append_log(run.layout.train_log, stats)
    if progress:
        logger.info("epoch %d/%d: loss %.3f, train acc %.1f%% (%.0fs)", epoch + 1, run.cfg.epochs, stats["train_loss"],
                    stats["train_acc"], stats["seconds"])


def _checkpoint(run: _Training, epochs: int) -> dict[str, Any]:
    """The checkpoint after ``epochs`` epochs: everything a resume needs to continue bit-identically."""
    return {
        "kind": "supernet",
        "config": run.cfg.to_dict(),
        "epoch": epochs,
        "step": epochs * run.steps,
        "phase": run.phase,
        "images_seen": run.images_seen,
        "world_size": run.world.size,
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "path_rng": run.path_rng.getstate(),
        "sampler": run.strategy.sampler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
