"""Scoring networks: evaluation, BN recalibration, and the supernet evaluator.

A sub-network that inherits supernet weights also inherits batch-norm statistics
that were averaged over every path trained. Recalibration resets the running
statistics of the BN layers on the chosen path and re-estimates them on a fixed set
of training images before measuring validation accuracy.

Optionally (``finetune_steps``), each path is first trained alone for a few SGD steps
from its inherited weights, on the same seeded batches for every architecture, and
scored in that state; the shared weights are restored before the next path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces import Arch

from evonas.data import Normalizer, Splits, batches
from evonas.device import autocast, grad_scaler
from evonas.streaming import gather, is_lazy, memory_budget
from evonas.run.config import FINETUNE_BATCH, FINETUNE_LR, SPACE_DEFAULT, check_finetune, scoring_defaults

Forward = Callable[[torch.Tensor], torch.Tensor]


@torch.inference_mode()
def evaluate_module(forward: Forward, x: torch.Tensor, y: torch.Tensor, norm: Normalizer | None, batch_size: int = 256) -> dict[str, float]:
    """Accuracy (percent) and mean cross-entropy of ``forward`` on (x, y); ``norm=None``: x is ready.

    The sums stay on the device of the logits and are read once at the end (no sync per batch).
    """
    correct, loss_sum = 0, 0.0
    for xb, yb in batches(x, y, batch_size):
        logits = forward(norm(xb) if norm else xb).float()  # (B, classes)
        yb = yb.to(logits.device, non_blocking=True)
        loss_sum = loss_sum + F.cross_entropy(logits, yb, reduction="sum")
        correct = correct + (logits.argmax(1) == yb).sum()
    n = max(len(x), 1)
    return {"accuracy": 100.0 * float(correct) / n, "loss": float(loss_sum) / n}


def batchnorms(modules: Iterable[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for mod in modules for m in mod.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    forward: Forward, bns: list[nn.modules.batchnorm._BatchNorm], x: torch.Tensor, norm: Normalizer | None, batch_size: int = 256
) -> None:
    """Reset ``bns`` and re-estimate their statistics as an exact average over ``x``."""
    saved = []
    for bn in bns:
        saved.append((bn.momentum, bn.training))
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all recalibration batches
        bn.train()
    try:
        for xb, _ in batches(x, torch.zeros(len(x), dtype=torch.long), batch_size):
            forward(norm(xb) if norm else xb)
    finally:
        for bn, (momentum, training) in zip(bns, saved):
            bn.momentum = momentum
            bn.train(training)


def finetune_path(forward: Forward, params: list[nn.Parameter], x: torch.Tensor, y: torch.Tensor, batches_idx: torch.Tensor,
                  norm: Normalizer | None, *, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4,
                  scaler: torch.amp.GradScaler | None = None) -> None:
    """Train ``params`` for ``len(batches_idx)`` SGD steps (Nesterov, cosine-decayed from ``lr`` to 0).

    ``batches_idx`` (steps, batch) indexes ``x``/``y``: the same batches for every
    architecture, so that scores differ by architecture and not by data draw.
    """
    steps = len(batches_idx)
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    with torch.enable_grad():
        for step, idx in enumerate(batches_idx):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
            xb = x[idx]
            logits = forward(norm(xb) if norm else xb).float()
            loss = F.cross_entropy(logits, y[idx].to(logits.device, non_blocking=True))
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:  # fp16: scaled gradients, unscaled before the step
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()


def recalibration_images(splits: Splits, n: int, seed: int) -> torch.Tensor:
    """A fixed, seeded subset of the train split used to recalibrate every sub-network (decoded if lazy)."""
    n = min(n, len(splits.train_x))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(splits.train_x), generator=g)[:n]
    return gather(splits.train_x, idx)


class SupernetEvaluator:
    """Scores sub-networks of a trained supernet with inherited weights."""

    def __init__(
        self,
        run,  # evonas.run.run.Run
        *,
        recalibrate: bool = True,
        recalib_images: int | None = None,  # None: the space's default (evonas.run.config.scoring_defaults)
        val_images: int | None | str = SPACE_DEFAULT,  # None: the whole split; SPACE_DEFAULT: the space's default
        batch_size: int = 128,  # fastest on CPU (activations stay in cache); see benchmarks
        seed: int = 0,
        split: str = "val",
        finetune_steps: int = 0,  # > 0: train each path alone this many SGD steps before scoring it
        finetune_lr: float = FINETUNE_LR,  # peak learning rate of those steps (cosine-decayed to 0)
        device: str | torch.device = "cpu",  # where the supernet runs (cpu, cuda, cuda:N)
        precision: str = "fp32",  # fp32, bf16 or fp16 (autocast) for recalibration, fine-tuning and evaluation
    ) -> None:
        from evonas.device import check_precision, resolve_device
        from evonas.errors import ConfigError

        default_recalib, default_val = scoring_defaults(run.space.name)
        recalib_images = default_recalib if recalib_images is None else recalib_images
        val_images = default_val if val_images == SPACE_DEFAULT else val_images
        if not isinstance(recalib_images, int) or isinstance(recalib_images, bool) or recalib_images < 1:
            raise ConfigError(f"The 'recalib_images' parameter must be an integer >= 1; got {recalib_images!r}.", param="recalib_images")
        check_finetune(finetune_steps, finetune_lr)
        self.run = run
        self.space = run.space
        self.recalibrate = recalibrate
        self.recalib_images = recalib_images
        self.batch_size = batch_size
        self.seed = seed
        self.split = split
        self.device = resolve_device(device)
        self.precision = check_precision(precision, self.device)
        self.model = run.load_supernet().to(self.device).eval()
        self.splits = run.splits()
        self.norm = Normalizer(self.splits.mean, self.splits.std)
        x, y = self.splits.split(split)
        if val_images is not None and split == "val":  # the test split is scored whole: it is the final word
            x, y = (x.subset(slice(val_images)) if is_lazy(x) else x[:val_images]), y[:val_images]
        self.val_images = len(x)
        # normalised once: every sub-network sees the same float tensors; a lazy split too
        # large for that (float32 over the memory budget) streams, normalised batch by batch
        self._stream_eval = is_lazy(x) and 4 * x.numel() > memory_budget()
        self.x = x if self._stream_eval else self.norm(gather(x, torch.arange(len(x))) if is_lazy(x) else x).to(self.device)
        self.y = y
        self.calib_x = (self.norm(recalibration_images(self.splits, recalib_images, seed)).to(self.device)
                        if recalibrate else None)
        self.finetune_steps, self.finetune_lr = finetune_steps, float(finetune_lr)
        # the fine-tuning batches, drawn once: every architecture trains on the same images in the same order
        self._finetune_batches = torch.randint(len(self.splits.train_x), (finetune_steps, FINETUNE_BATCH),
                                               generator=torch.Generator().manual_seed(seed + 1)) if finetune_steps else None
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []  # the shared weights a fine-tuned path changed

    @classmethod
    def from_run(cls, run_dir: str | Path, **kwargs) -> "SupernetEvaluator":
        from evonas.run.run import Run

        return cls(Run.open(run_dir), **kwargs)

    def canonical(self, arch: Arch) -> Arch:
        """The path that is scored for ``arch``: always its canonical form.

        Two strings of one network (identity layers moved to a stage's end) are the
        same network stand-alone, but different paths through the supernet's shared
        weights. Scoring, recalibrating and exporting the canonical path everywhere
        gives every spelling of a network one score, the one its store record holds.
        """
        return self.space.canonical(self.space.validate(arch))

    def prepare(self, arch: Arch) -> None:
        """Put the supernet's BN statistics in the state ``evaluate`` measures ``arch`` in.

        Recalibration is skipped when ``arch`` was the last one prepared (its statistics
        are still in place), so evaluating and then exporting one arch recalibrates once.
        """
        arch = self.canonical(arch)
        if not (self.recalibrate or self.finetune_steps) or self.__dict__.get("_prepared") == arch:
            return
        self._restore()
        path = self.model.path_modules(arch)
        forward = self._forward(arch)
        self.model.train()
        if self.finetune_steps:
            state = {id(t): t for m in path for t in (*m.parameters(), *m.buffers())}
            self._saved = [(t, t.detach().clone()) for t in state.values()]
            params = list({id(p): p for m in path for p in m.parameters()}.values())
            finetune_path(forward, params, self.splits.train_x, self.splits.train_y, self._finetune_batches, self.norm,
                          lr=self.finetune_lr, scaler=grad_scaler(self.device, self.precision)
                          if self.precision == "fp16" else None)
        if self.recalibrate:
            recalibrate_bn(forward, batchnorms(path), self.calib_x, None, self.batch_size)
        self.model.eval()
        self._prepared = arch

    @torch.no_grad()
    def _restore(self) -> None:
        """Put back the shared weights (and BN statistics) the last fine-tuned path changed."""
        for tensor, saved in self._saved:
            tensor.copy_(saved)
        self._saved = []
        self.__dict__.pop("_prepared", None)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Accuracy (percent) and loss of ``arch`` on the evaluation split (its canonical path)."""
        arch = self.canonical(arch)
        self.prepare(arch)
        return evaluate_module(self._forward(arch), self.x, self.y, self.norm if self._stream_eval else None,
                               self.batch_size)

    def _forward(self, arch: Arch) -> Forward:
        """The path's forward on the evaluator's device, in its precision (inputs moved there first)."""
        def forward(x: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.precision):
                return self.model(x.to(self.device, non_blocking=True), arch)

        return forward

    def provenance(self) -> dict:
        # keyed by what the weights are, never by where they are: the same supernet reached
        # through another spelling of the run path must find its stored scores
        return {
            "sha256": self.run.weights_sha256(),
            "recalibrate": self.recalibrate,
            "recalib_images": self.recalib_images if self.recalibrate else 0,
            "split": self.split,
            "batch_size": self.batch_size,  # recalibrated statistics depend on it
            "eval_images": self.val_images,
            "seed": self.seed,
            # only when used, so that scores without fine-tuning keep the records they already have
            **({"finetune_steps": self.finetune_steps, "finetune_lr": self.finetune_lr, "finetune_batch": FINETUNE_BATCH}
               if self.finetune_steps else {}),
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }
