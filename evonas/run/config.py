"""Training configuration: a frozen, keyword-only dataclass written next to every run."""

from __future__ import annotations

import math

import dataclasses
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import get_space

from evonas.errors import ConfigError

SCHEDULES = ("cosine", "onecycle")

# What a config written before a field existed meant: an old run lacking these keys
# was trained (and must be rebuilt) with these values, not with today's defaults.
LEGACY_VALUES: dict[str, Any] = {"zero_init_residual": False, "strategy": "uniform"}


# How a sub-network is scored by default: BN recalibrated on RECALIB_IMAGES training
# images, accuracy on the first VAL_IMAGES images of the (seeded, shuffled) validation
# split, None meaning all of it; the test split is always scored whole.
# benchmarks/scoring_speed.py chose 250 / 5,000 over the former 2,000 / all 10,000:
# over ten macro-fmnist supernets Kendall tau against stand-alone truth moved by
# +0.005 +- 0.006 (no loss), and the `evonas eval` job ran 2.4x faster; its
# --deep-check repeats the comparison on the mobilenet-fmnist supernet, which keeps
# the former sizes (SPACE_SCORING below).
RECALIB_IMAGES = 250
VAL_IMAGES: int | None = 5000
# Spaces whose scores the faster setting does not keep, with the sizes they keep
# instead (scoring_speed.py --deep-check, results/scoring_speed_mobilenet.md): on the
# deep space, 250 / 5,000 ranks 30 architectures like 2,000 / 10,000 with tau 0.635,
# while another draw of 2,000 recalibration images does with 0.827.
SPACE_SCORING: dict[str, tuple[int, int | None]] = {"mobilenet-fmnist": (2000, None)}
# Optional fine-tuning before scoring (SupernetEvaluator(finetune_steps=N), `evonas eval
# --finetune-steps N`): each path trains alone for N steps of FINETUNE_BATCH images from
# its inherited weights, peak learning rate FINETUNE_LR, cosine-decayed.
# benchmarks/finetune_scoring.py measures what it changes; off by default.
FINETUNE_LR = 0.03
FINETUNE_BATCH = 128


def check_finetune(steps: Any, lr: Any) -> None:
    """A one-line ConfigError naming the bad fine-tuning setting (steps an integer >= 0, lr a float > 0)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ConfigError(f"The 'finetune_steps' parameter must be an integer >= 0 (0: score the inherited weights as "
                          f"they are); got {steps!r}.", param="finetune_steps")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"The 'finetune_lr' parameter must be a float > 0; got {lr!r}.", param="finetune_lr")

SPACE_DEFAULT = "space default"  # val_images meaning "the space's default" (None already means the whole split)


def scoring_defaults(space: str) -> tuple[int, int | None]:
    """(recalibration images, validation images or None for all) that score ``space`` by default."""
    return SPACE_SCORING.get(space, (RECALIB_IMAGES, VAL_IMAGES))


def scoring_defaults_text() -> str:
    """One phrase for help texts: the default sizes and the spaces that differ."""
    def sizes(r: int, v: int | None) -> str:
        return f"{r:,} (scoring {'all' if v is None else f'{v:,}'} validation images)"

    return "; ".join([sizes(RECALIB_IMAGES, VAL_IMAGES)]
                     + [f"{s}: {sizes(*rv)}" for s, rv in sorted(SPACE_SCORING.items())])

# Supernet epochs when the user gives none: the schedule each space's supernet needs to
# be worth scoring. benchmarks/mobilenet_supernet.py: the deep space's paths keep
# gaining accuracy until the end of a 12-epoch cosine schedule. benchmarks/
# gap_strategies.py: on macro-fmnist 18 epochs of uniform training rank 40 held-out
# architectures (mean of three stand-alone seeds) with Kendall tau 0.681 (seeds 0.645,
# 0.717) against 0.609 (0.580, 0.637) after 6 (+0.073, 90% bootstrap interval +0.008
# to +0.135), more than any training strategy changes at equal cost; 36 epochs 0.626.
SPACE_EPOCHS = {"mobilenet-fmnist": 12, "macro-fmnist": 18}
DEFAULT_EPOCHS = 10


def default_epochs(space: str) -> int:
    """Supernet epochs of ``space``'s default schedule."""
    return SPACE_EPOCHS.get(space, DEFAULT_EPOCHS)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a supernet's (or a stand-alone network's) weights."""

    space: str = "macro-fmnist"  # a preset (see `evonas spaces`) or your model's factory, PATH.py:FACTORY
    space_kwargs: dict | None = None  # your model only: in_channels, num_classes, image_size its factory got (the data's)
    dataset: str = ""  # fmnist, cifar10, synthetic, imagefolder:DIR, torchvision:NAME or PATH.py:FUNCTION; empty: the preset's
    data_root: str | None = None  # where the dataset lives; None = the packaged location
    image_size: int | None = None  # resize every image to this square side (None: keep the data's size)
    augment: str = "none"  # none, or standard (random crop with 4-pixel padding and horizontal flip)
    in_memory: bool | None = None  # hold the images in memory (True), stream them from disk (False); None: by size
    precision: str = "fp32"  # fp32, or mixed precision bf16 / fp16 (autocast; fp16 needs a GPU and uses a gradient scaler)
    val_size: int | float = 10_000  # training images held out for validation (seeded split); a float in (0, 1): a share
    train_limit: int | None = None  # keep only this many train images (quick runs)
    epochs: int = 10  # passes over the train split (the CLI and jobs use default_epochs(space) when not given)
    batch_size: int = 128  # images per SGD step
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum (Nesterov)
    weight_decay: float = 1e-4  # L2 penalty on all weights
    schedule: str = "cosine"  # learning-rate schedule per step: cosine or onecycle
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    seed: int = 0  # seeds the split, the data order, the sampled paths and the init
    zero_init_residual: bool = True  # supernet only: last BN of each residual block starts at gamma = 0
    strategy: str = "uniform"  # supernet training strategy (evonas.training.strategies): uniform, fair, sandwich, few-shot
    sandwich_random: int = 2  # sandwich: random paths per step besides the largest and the smallest
    distill_temperature: float = 1.0  # sandwich: softmax temperature of the in-place distillation
    few_shot_fraction: float = 0.5  # few-shot: share of the epochs trained one-shot before the split
    few_shot_layer: int | None = None  # few-shot: layer to split on; None = the default rule (see strategies)
    landmarks: str | None = None  # landmark: a run directory with stand-alone anchors, or a file of 'arch accuracy' lines
    landmark_archs: list | None = None  # landmark: the landmarks used, [[canonical arch, accuracy], ...] (resolved from landmarks)
    landmark_weight: float = 0.5  # landmark: weight of the pairwise ranking loss after the warm-up
    landmark_pairs: int = 1  # landmark: pairs of landmarks forwarded per step (2 forward passes each)
    landmark_warmup: float = 0.25  # landmark: share of the steps over which the weight rises linearly from 0
    sampling: str = "uniform"  # paths and examples of a step: uniform, or pada (by gradient norm and error; training.sampling)
    pada_mix: float = 0.5  # pada: share of the probabilities given by importance at the last step (rising from 0)
    lr_by_size: bool = False  # each step's learning rate and momentum buffers follow its path's FLOPs (training.size_lr)
    size_groups: int = 3  # lr_by_size: equal-width bins of relative path size, each with its own SGD momentum

    def __post_init__(self) -> None:
        from evonas.data import AUGMENTATIONS
        from evonas.device import PRECISIONS
        from evonas.spaces import canonical_name, is_user_space, resolve_space

        object.__setattr__(self, "dataset", absolute_data(self.dataset))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", str(Path(self.data_root).expanduser().resolve()))
        if is_user_space(self.space):  # a file path is stored absolute: the run reopens from any folder
            object.__setattr__(self, "space", canonical_name(self.space))
            space = resolve_space(self.space, self.space_kwargs)
            if not self.dataset:
                raise ConfigError("The 'dataset' parameter is required with your own model: imagefolder:DIR, "
                                  "torchvision:NAME (with data_root) or PATH.py:FUNCTION.", param="dataset")
        else:
            space = get_space(self.space)  # raises with the list of valid names
        if not self.dataset:
            object.__setattr__(self, "dataset", getattr(getattr(space, "net", None), "dataset", ""))
        size_ok = self.image_size is None or (isinstance(self.image_size, int) and not isinstance(self.image_size, bool)
                                              and self.image_size >= 1)
        checks = [
            ("augment", self.augment in AUGMENTATIONS, f"one of {', '.join(AUGMENTATIONS)}"),
            ("precision", self.precision in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
            ("image_size", size_ok, "None or an integer >= 1"),
            ("in_memory", self.in_memory in (None, True, False), "None (by size), True or False"),
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("lr", 0 < self.lr < math.inf, "a finite float > 0"),
            ("momentum", 0 <= self.momentum < 1, "a float in [0, 1)"),
            ("weight_decay", 0 <= self.weight_decay < math.inf, "a finite float >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "a float in [0, 1)"),
            ("schedule", self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"The {name!r} parameter must be {rule}; got {getattr(self, name)!r}.", param=name)
        self._check_strategy(space)
        self._check_sampling()

    def _check_strategy(self, space) -> None:
        """The supernet strategy and its knobs (the names come from the strategy registry)."""
        from evonas.training.strategies import list_strategies  # late: the registry imports torch

        names = list_strategies()
        layers = len(getattr(space, "dims", ()))
        layer = self.few_shot_layer
        checks = [
            ("strategy", self.strategy in names, f"one of {', '.join(names)}"),
            ("zero_init_residual", isinstance(self.zero_init_residual, bool), "a bool"),
            ("sandwich_random", isinstance(self.sandwich_random, int) and self.sandwich_random >= 0, "an integer >= 0"),
            ("distill_temperature", self.distill_temperature > 0, "a float > 0"),
            ("few_shot_fraction", 0 < self.few_shot_fraction < 1, "a float in (0, 1)"),
            (
                "few_shot_layer",
                layer is None or (isinstance(layer, int) and 0 <= layer < layers and len(space.dims[layer].options) > 1),
                f"None or the index (0 to {layers - 1}) of a layer with at least two options",
            ),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"The {name!r} parameter must be {rule}; got {getattr(self, name)!r}.", param=name)
        self._check_landmarks(space)

    def _check_landmarks(self, space) -> None:
        """Strategy landmark: its knobs, and the landmarks resolved (read once) and stored as JSON-friendly lists."""
        from evonas.training.landmark import check_landmark_archs, resolve_landmarks

        if self.strategy != "landmark":
            for name in ("landmarks", "landmark_archs"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"The {name!r} parameter is only for strategy 'landmark'; got it with strategy "
                                      f"{self.strategy!r}.", param=name)
            return
        weight, pairs, warmup = self.landmark_weight, self.landmark_pairs, self.landmark_warmup
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        checks = [
            ("landmark_weight", number(weight) and weight > 0, "a finite float > 0"),
            ("landmark_pairs", isinstance(pairs, int) and not isinstance(pairs, bool) and pairs >= 1, "an integer >= 1"),
            ("landmark_warmup", number(warmup) and 0 <= warmup <= 1,
             "a float in [0, 1] (the share of the steps over which the ranking weight rises from 0)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"The {name!r} parameter must be {rule}; got {getattr(self, name)!r}.", param=name)
        if self.landmarks is not None:
            object.__setattr__(self, "landmarks", str(Path(str(self.landmarks)).expanduser().resolve()))
        archs = self.landmark_archs
        if archs is None:
            if self.landmarks is None:
                raise ConfigError("The 'landmarks' parameter is required with strategy 'landmark': a run directory with "
                                  "stand-alone anchors, or a file of 'arch accuracy' lines.", param="landmarks")
            archs = resolve_landmarks(self.landmarks, space, self.space, self.space_kwargs)
        object.__setattr__(self, "landmark_archs", check_landmark_archs(archs, space))

    def _check_sampling(self) -> None:
        """``sampling`` and ``lr_by_size``: their knobs, and the strategies and data they combine with."""
        from evonas.training.sampling import SAMPLINGS
        from evonas.training.size_lr import SIZE_STRATEGIES

        mix, groups = self.pada_mix, self.size_groups
        checks = [
            ("sampling", self.sampling in SAMPLINGS, f"one of {', '.join(SAMPLINGS)}"),
            ("pada_mix", isinstance(mix, (int, float)) and not isinstance(mix, bool) and 0 <= mix < 1,
             "a float in [0, 1) (the share of the sampling probabilities given by importance at the last step)"),
            ("lr_by_size", isinstance(self.lr_by_size, bool), "a bool"),
            ("size_groups", isinstance(groups, int) and not isinstance(groups, bool) and groups >= 1,
             "an integer >= 1 (bins of path size, each with its own momentum)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"The {name!r} parameter must be {rule}; got {getattr(self, name)!r}.", param=name)
        if self.sampling == "pada" and self.strategy == "fair":
            raise ConfigError("The 'sampling' parameter (pada) does not combine with strategy 'fair', whose paths are a "
                              "permutation of every option, not draws; use the 'sampling' parameter (uniform) with it, "
                              "or another strategy.", param="sampling")
        if self.sampling == "pada" and self.in_memory is False:
            raise ConfigError("The 'sampling' parameter (pada) weighs each training example and needs the images in "
                              "memory, not streamed from disk; set the 'in_memory' parameter or use the 'sampling' "
                              "parameter (uniform).", param="sampling")
        if self.lr_by_size and self.schedule != "cosine":
            raise ConfigError(f"The 'lr_by_size' parameter compresses the cosine schedule per path size and needs the "
                              f"'schedule' parameter (cosine); got schedule {self.schedule!r}.", param="lr_by_size")
        if self.lr_by_size and self.strategy not in SIZE_STRATEGIES:
            raise ConfigError(f"The 'lr_by_size' parameter does not combine with strategy {self.strategy!r}, whose steps "
                              f"update paths of several sizes at once with one learning rate; use strategy "
                              f"{', '.join(SIZE_STRATEGIES)}, or drop the 'lr_by_size' parameter.", param="lr_by_size")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The config a run wrote; keys it lacks (an older evonas) take their legacy values."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"The 'data' parameter of TrainConfig.from_dict has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**with_legacy_values(data))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def absolute_data(spec: str) -> str:
    """A data spec with its folder or file made absolute (``imagefolder:DIR``, ``PATH.py:FUNCTION``)."""
    from evonas.refs import absolute_reference, is_reference

    if isinstance(spec, str) and spec.startswith("imagefolder:"):
        return "imagefolder:" + str(Path(spec[len("imagefolder:"):]).expanduser().resolve())
    if isinstance(spec, str) and not spec.startswith("torchvision:") and is_reference(spec):
        return absolute_reference(spec)
    return spec


def with_legacy_values(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the keys an older evonas did not write filled with what they meant then."""
    return {**LEGACY_VALUES, **data}


def comparable_config(data: dict[str, Any] | None) -> dict[str, Any]:
    """A config dict with every field present (legacy values, then defaults): compare these.

    A checkpoint written before a field existed equals today's dict of the same run.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    return {**defaults, **with_legacy_values(data or {})}


def environment() -> dict[str, str]:
    """Versions of what produced a run, written beside its config."""
    import numpy
    import torch

    from evonas._version import __version__

    versions = {"evonas": __version__, "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        import torchvision

        versions["torchvision"] = torchvision.__version__
    except ImportError:  # optional at run time
        pass
    versions["platform"] = platform.platform()
    return versions


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    from evonas.run.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
