"""The training loop shared by supernets and stand-alone networks: optimizer, schedule, epochs.

SGD with Nesterov momentum and a per-step cosine or one-cycle schedule. An epoch's
data order is drawn from ``seed`` and the epoch number, so resuming needs no saved
data state. A step is a function ``step_fn(x, y)`` that runs the forward passes,
back-propagates (accumulating gradients as it likes) and returns a
:class:`StepResult`; the loop zeroes the gradients before it and makes one
optimizer and one scheduler step after it.

On several ranks (see :mod:`evonas.training.distributed`) every rank draws the same
batch from the same permutation, keeps its shard of it, and the gradients are
averaged over the ranks before the optimizer step; the epoch's statistics are
summed over the ranks.

A step never waits for the device: its loss and correct count stay tensors, summed
on the device and read every ``LOG_EVERY`` steps (and at the end of the epoch), when
the first non-finite loss, if any, is reported with its step. Batches are copied to
the device as uint8 (non-blocking) and normalised there. ``cfg.precision`` runs the
step under autocast (bf16, fp16); fp16 scales the loss with a gradient scaler, which
strategies reach through :func:`backward`.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from evonas.progress import progress_enabled
from evonas.data import Normalizer, Splits, augment_batch, batches
from evonas.device import autocast, grad_scaler
from evonas.errors import ResourceError, TrainingDivergedError
from evonas.training.distributed import SINGLE, World, average_gradients, sum_over_ranks

if TYPE_CHECKING:  # annotations only: the config validates strategy names through this package
    from evonas.run.config import TrainConfig
    from evonas.training.sampling import Sampler
    from evonas.training.size_lr import SizeLR


@dataclass(frozen=True)
class StepResult:
    """What one training step reports to the loop.

    ``loss`` is the mean label loss over the ``count`` predictions that were trained
    on labels and ``correct`` how many of those were right; ``images`` is the cost of
    the step in images seen (forward passes times batch size, distilled ones too);
    ``logits`` are the label-trained logits of the step's first path (B, classes).
    ``loss`` and ``correct`` are 0-dimensional tensors on the step's device (reading
    them waits for the device: the loop does so every ``LOG_EVERY`` steps).
    """

    logits: torch.Tensor
    loss: torch.Tensor | float
    correct: torch.Tensor | int
    count: int
    images: int


LOG_EVERY = 20  # steps between reads of an epoch's running loss and accuracy (each read waits for the device)

_SCALER: contextvars.ContextVar = contextvars.ContextVar("evonas_grad_scaler", default=None)


def backward(loss: torch.Tensor) -> None:
    """Back-propagate ``loss``, scaled by the step's gradient scaler when it trains in fp16."""
    scaler = _SCALER.get()
    (scaler.scale(loss) if scaler is not None and scaler.is_enabled() else loss).backward()


def supervised_step(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> StepResult:
    """Cross-entropy of ``forward(x)`` on ``y``, back-propagated (gradients accumulate)."""
    logits = forward(x).float()  # (B, classes); fp32 for the loss under autocast
    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    backward(loss)
    logits = logits.detach()
    return StepResult(logits, loss.detach(), (logits.argmax(1) == y).sum(), len(y), len(y))


def data_on_device(splits: Splits, device: torch.device | str, share: float = 0.5) -> Splits:
    """``splits`` with its training images and labels on a GPU when they fit in ``share`` of its free memory.

    Batches are then drawn where the network runs, with no copy per step; the CPU,
    streamed data and data too large for the GPU keep the splits as they are.
    """
    device = torch.device(device)
    x = splits.train_x
    if device.type != "cuda" or not isinstance(x, torch.Tensor):
        return splits
    free, _ = torch.cuda.mem_get_info(device)
    if x.numel() * x.element_size() > share * free:
        return splits
    return replace(splits, train_x=x.to(device), train_y=splits.train_y.to(device))


def diverged_message(cfg: TrainConfig, epoch: int, step: int | None, what: str) -> str:
    """One line: where training diverged (1-based epoch and step), what was not finite, and the fix."""
    where = f"epoch {epoch + 1}" + (f", step {step + 1}" if step is not None else " (at its end)")
    return (f"training diverged at {where}: {what}; nothing of this epoch is saved; train again with a lower "
            f"value of the 'lr' parameter ({cfg.lr:g}) or of the 'weight_decay' parameter ({cfg.weight_decay:g})")


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation: CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())) or isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def weights_finite(model: nn.Module) -> bool:
    """Every parameter and buffer of ``model`` is finite (one host sync)."""
    tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point() and t.numel()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t.detach()).all() for t in tensors]).all().item())


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


def augment_generator(seed: int, epoch: int) -> torch.Generator:
    """The augmentation generator of one epoch (derived like the data order, so a resumed run draws the same crops)."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919)


def steps_per_epoch(splits: Splits, cfg: TrainConfig) -> int:
    return max(len(splits.train_x) // cfg.batch_size, 1)


def _epoch_batches(splits: Splits, cfg: TrainConfig, epoch: int, order: torch.Tensor | None, device: torch.device):
    """The epoch's (indices or None, uint8 images, labels) batches: the seeded permutation, or ``order`` when given.

    ``order`` (a sampler's draw of training indices, the images in memory) is cut into
    batches like the permutation: ``len(order) // batch_size`` of them when it holds a
    whole batch.
    """
    n = len(splits.train_x)
    drop_last = n >= cfg.batch_size
    if order is None:
        for xb, yb in batches(splits.train_x, splits.train_y, cfg.batch_size, generator=epoch_generator(cfg.seed, epoch),
                              drop_last=drop_last, pin_memory=device.type == "cuda"):  # streamed batches: pinned
            yield None, xb, yb
        return
    stop = len(order) - (len(order) % cfg.batch_size) if drop_last else len(order)
    for i in range(0, stop, cfg.batch_size):
        idx = order[i : i + cfg.batch_size]
        where = idx.to(splits.train_x.device)
        yield idx, splits.train_x[where], splits.train_y[where]


class _Tally:
    """An epoch's running label loss, correct count and images, and its first non-finite loss.

    The sums stay tensors on the device; only :meth:`check`, :meth:`postfix` (every
    ``LOG_EVERY`` steps) and :meth:`summary` (at the end) wait for it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # the step of the first non-finite loss
        self.bad_loss = torch.zeros((), device=device)
        self.count = self.images = 0

    def add(self, step: int, result: StepResult) -> None:
        loss = torch.as_tensor(result.loss, device=self.device, dtype=torch.float32)
        newly_bad = (self.first_bad < 0) & ~torch.isfinite(loss)  # kept on the device: no wait here
        self.first_bad = torch.where(newly_bad, torch.full_like(self.first_bad, step), self.first_bad)
        self.bad_loss = torch.where(newly_bad, loss, self.bad_loss)
        self.loss_sum = self.loss_sum + loss * result.count
        self.correct = self.correct + torch.as_tensor(result.correct, device=self.device)
        self.count += result.count
        self.images += result.images

    def check(self, cfg: TrainConfig, epoch: int) -> None:
        """Raise TrainingDivergedError at the first non-finite loss so far (one read of the device)."""
        step_bad = int(self.first_bad)
        if step_bad >= 0:
            raise TrainingDivergedError(diverged_message(cfg, epoch, step_bad, f"the loss is {float(self.bad_loss)}"))

    def postfix(self) -> dict[str, str]:
        """The progress bar's running loss and accuracy."""
        return {"loss": f"{float(self.loss_sum) / self.count:.3f}", "acc": f"{100 * int(self.correct) / self.count:.1f}"}

    def summary(self, world: World) -> dict[str, float]:
        """Mean label loss and accuracy and the images seen, over all ranks."""
        loss_sum, correct, count, images = sum_over_ranks([float(self.loss_sum), int(self.correct), self.count,
                                                           self.images], world, self.device)
        return {"train_loss": loss_sum / max(count, 1), "train_acc": 100.0 * correct / max(count, 1),
                "images_seen": int(images)}


def _forward_backward(step_fn: Callable[[torch.Tensor, torch.Tensor], StepResult], x: torch.Tensor, y: torch.Tensor,
                      cfg: TrainConfig, epoch: int, step: int, device: torch.device, precision: str) -> StepResult:
    """``step_fn(x, y)`` under the run's precision; running out of memory is a ResourceError naming the batch size."""
    try:
        with autocast(device, precision):
            return step_fn(x, y)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise ResourceError(f"out of memory in training step {step + 1} of epoch {epoch + 1}; lower the "
                            f"'batch_size' parameter ({cfg.batch_size})") from None


def _update(opt: torch.optim.Optimizer, sched, scaler, result: StepResult, idx: torch.Tensor | None, y: torch.Tensor,
            step: int, sampler: Sampler | None, sizes: SizeLR | None) -> None:
    """The step's optimizer update (gradients averaged over the ranks already), then the scheduler's step.

    The sampler sees the unscaled gradients first; ``sizes`` sets the learning rate and
    swaps the momentum buffers of the step's path size around the update. ``step``
    counts over the whole run.
    """
    if sampler is not None and sampler.weighs_data:
        if scaler.is_enabled():
            scaler.unscale_(opt)  # the sampler measures the true gradient norm
        sampler.observe(opt, result, idx, y)
    if sizes is not None:
        sizes.before_update(opt, sampler.step_paths if sampler is not None else (), step)
    if scaler.is_enabled():
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    if sizes is not None:
        sizes.after_update(opt)
    sched.step()


def train_epoch(
    step_fn: Callable[[torch.Tensor, torch.Tensor], StepResult],
    splits: Splits,
    cfg: TrainConfig,
    epoch: int,
    norm: Normalizer,
    opt: torch.optim.Optimizer,
    sched,
    desc: str,
    progress: bool,
    *,
    world: World = SINGLE,
    device: torch.device | str = "cpu",
    sampler: Sampler | None = None,
    sizes: SizeLR | None = None,
) -> dict[str, float]:
    """One pass over the train split; ``step_fn(x, y)`` back-propagates one step (see the module doc).

    With several ranks (``world``) each trains on its shard of every step's batch and
    the gradients are averaged before the update. A supernet's ``sampler``
    (:mod:`evonas.training.sampling`) may give the epoch's order and learn from each
    step; ``sizes`` (:mod:`evonas.training.size_lr`) sets each step's learning rate and
    momentum from its path's size. Returns the mean label loss and accuracy of the
    step results and the images seen, over all ranks.
    """
    device = torch.device(device)
    steps = len(splits.train_x) // cfg.batch_size or 1
    first = epoch * steps  # the run's step count at this epoch's start
    bar = tqdm(total=steps, desc=desc, disable=not (world.is_main and progress_enabled(not progress)), leave=False,
               unit="step", dynamic_ncols=True)
    precision = getattr(cfg, "precision", "fp32")
    scaler = grad_scaler(device, precision)
    token = _SCALER.set(scaler)
    tally = _Tally(device)
    augment = getattr(cfg, "augment", "none")
    aug_gen = augment_generator(cfg.seed, epoch) if augment != "none" else None
    order = sampler.begin_epoch(epoch, first, len(splits.train_x)) if sampler is not None else None
    try:
        for step, (idx, xb, yb) in enumerate(_epoch_batches(splits, cfg, epoch, order, device)):
            if sampler is not None:
                sampler.begin_step(first + step)
            step_images = len(yb)
            if aug_gen is not None:  # before sharding: every rank draws the same crops and flips of the whole batch
                xb = augment_batch(xb, aug_gen, augment)
            xb, yb = world.shard(xb, yb)
            opt.zero_grad(set_to_none=True)
            x = norm(xb.to(device, non_blocking=True))  # (b, C, H, W) uint8 copied, normalised on the device
            y = yb.to(device, non_blocking=True)  # (b,): this rank's shard
            result = _forward_backward(step_fn, x, y, cfg, epoch, step, device, precision)
            tally.add(step, result)
            average_gradients(opt, world, len(yb), step_images)
            _update(opt, sched, scaler, result, idx, y, first + step, sampler, sizes)
            bar.update(1)
            if (step + 1) % LOG_EVERY == 0:
                tally.check(cfg, epoch)
                if not bar.disable:
                    bar.set_postfix(**tally.postfix())
        tally.check(cfg, epoch)
    finally:
        _SCALER.reset(token)
        bar.close()
    return tally.summary(world)
