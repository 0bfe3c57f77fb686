"""The eval job: score sub-networks with the supernet's inherited weights."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evonas.errors import ConfigError
from evonas.device import check_device_and_precision
from evonas.jobs.archs import read_archs
from evonas.jobs.threads import check_threads, use_threads
from evonas.progress import progress_enabled
from evonas.run.run import Run
from evonas.run.config import FINETUNE_LR, SPACE_DEFAULT, check_finetune, scoring_defaults_text  # noqa: F401  (re-exported for the CLI)

SPLITS = ("val", "test")


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """Which sub-networks to score, and how."""

    archs: tuple[str, ...] = ()  # architecture strings
    archs_file: str | Path | None = None  # file with one architecture string per line
    sample: int = 0  # also score this many uniformly sampled architectures
    seed: int = 0  # seed of the sample and of the recalibration subset
    recalibrate: bool = True  # reset and recalibrate BN statistics per architecture
    recalib_images: int | None = None  # training images used to recalibrate BN; None: the space's default
    # the first this many images of the validation split are scored; None: all of them; SPACE_DEFAULT: the space's
    val_images: int | None | str = SPACE_DEFAULT
    split: str = "val"  # evaluation split: val, or test when asked for
    finetune_steps: int = 0  # > 0: train each path alone this many SGD steps from its inherited weights first
    finetune_lr: float = FINETUNE_LR  # peak learning rate of those steps
    quiet: bool = False  # no progress bar
    threads: int | None = None  # CPU threads for torch
    device: str = "cpu"  # where the supernet runs: cpu, cuda, cuda:N or auto
    precision: str = "fp32"  # fp32, bf16 or fp16 (autocast; fp16 on a GPU only)

    def __post_init__(self) -> None:
        object.__setattr__(self, "archs", tuple(self.archs))
        check_device_and_precision(self.device, self.precision)
        if self.sample < 0:
            raise ConfigError(f"The 'sample' parameter must be an integer >= 0; got {self.sample!r}", param="sample")
        if self.recalib_images is not None and (not isinstance(self.recalib_images, int) or self.recalib_images < 1):
            raise ConfigError(f"The 'recalib_images' parameter must be >= 1; got {self.recalib_images!r}", param="recalib_images")
        if self.val_images not in (None, SPACE_DEFAULT) and (not isinstance(self.val_images, int) or self.val_images < 1):
            raise ConfigError(f"The 'val_images' parameter must be an integer >= 1 or None (the whole split); got "
                              f"{self.val_images!r}", param="val_images")
        check_finetune(self.finetune_steps, self.finetune_lr)  # before the supernet loads
        if self.split not in SPLITS:
            raise ConfigError(f"The 'split' parameter must be one of {', '.join(SPLITS)}; got {self.split!r}", param="split")
        check_threads(self.threads)


@dataclass(frozen=True, kw_only=True)
class EvalResult:
    """One row per architecture: arch, canonical, accuracy, loss, flops, params, split, recalibrated."""

    rows: list[dict[str, Any]]


def evaluate(run: Run | str | Path, options: EvalOptions, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> EvalResult:
    """Score every architecture of ``options`` on the run's supernet; ``on_row`` sees each row as it is ready."""
    from tqdm.auto import tqdm

    from evonas.evaluation.scoring import SupernetEvaluator

    run = Run.open(run)
    space = run.space
    archs = read_archs(space, options.archs, options.archs_file)
    rng = random.Random(options.seed)
    archs += [space.sample(rng) for _ in range(options.sample)]
    if not archs:
        raise ConfigError("nothing to score: give --arch STRING, --archs FILE or --sample N")
    use_threads(options.threads)
    ev = SupernetEvaluator(run, recalibrate=options.recalibrate, recalib_images=options.recalib_images,
                           val_images=options.val_images, seed=options.seed, split=options.split,
                           finetune_steps=options.finetune_steps, finetune_lr=options.finetune_lr,
                           device=options.device, precision=options.precision)
    rows = []
    show = progress_enabled(options.quiet) and len(archs) >= 3
    for arch in tqdm(archs, desc="scoring", unit="arch", disable=not show, file=sys.stderr):
        metrics = ev.evaluate(arch)
        cost = space.cost(arch)
        row = {
            "arch": str(arch),
            "canonical": str(space.canonical(arch)),
            "accuracy": round(metrics["accuracy"], 4),
            "loss": round(metrics["loss"], 5),
            "flops": cost.flops,
            "params": cost.params,
            "split": options.split,
            "recalibrated": options.recalibrate,
            **({"finetune_steps": options.finetune_steps} if options.finetune_steps else {}),
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return EvalResult(rows=rows)
