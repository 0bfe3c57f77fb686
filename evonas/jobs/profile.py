"""The profile job: FLOPs and parameters from the space description, optionally checked with torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import DEFAULT_SPACE, get_space

from evonas.errors import ConfigError
from evonas.jobs.archs import read_archs
from evonas.spaces import is_user_space


@dataclass(frozen=True, kw_only=True)
class ProfileOptions:
    """Which architectures to count, in which space."""

    space: str | None = None  # a preset or your model's factory (PATH.py:FACTORY); None: the run's, else the default
    run_dir: str | Path | None = None  # profile the space of this run (your model as trained, with the data's shape)
    archs: tuple[str, ...] = ()  # architecture strings
    archs_file: str | Path | None = None  # file with one architecture string per line
    check: bool = False  # also build each network and count it with torch.utils.flop_counter
    dataset: str | None = None  # your model only: the data whose channels, classes and image size the factory gets
    data_root: str | None = None  # where that dataset lives (torchvision:NAME)
    image_size: int | None = None  # the resize the run would apply

    def __post_init__(self) -> None:
        if self.space is not None and self.run_dir is not None:
            raise ConfigError("The 'space' parameter and the 'run_dir' parameter are exclusive: a run knows its space; "
                              "drop one.", param="space")
        if self.run_dir is None and self.space is None:
            object.__setattr__(self, "space", DEFAULT_SPACE)
        if self.dataset is not None and not (self.space is not None and is_user_space(self.space)):
            raise ConfigError("The 'dataset' parameter gives your own model (--space PATH.py:FACTORY) the data's shape; "
                              "a preset or a run knows its own: drop it.", param="dataset")
        if self.space is not None:
            space = space_of(self)  # an unknown name lists the valid ones
            if self.check and getattr(space, "net", None) is None and not hasattr(space, "new_model"):
                raise ConfigError(f"The 'check' parameter builds each network and counts it with PyTorch, which evonas "
                                  f"does for chain spaces (macro-*, mobilenet-*) and your own model; space "
                                  f"{space.name!r} has no network to build; drop --check", param="check")
        object.__setattr__(self, "archs", tuple(self.archs))


@dataclass(frozen=True, kw_only=True)
class ProfileResult:
    """One row per architecture: arch, canonical, flops, params (and measured_* with check)."""

    rows: list[dict[str, Any]]
    checked: bool


def space_of(options: ProfileOptions):
    """The space to count: a preset, or your model built for ``options.dataset``'s shape (else its factory's defaults)."""
    if options.dataset is None or not is_user_space(options.space):
        return get_space(options.space)
    from evonas.data import factory_kwargs
    from evonas.jobs.train import USER_VAL_SHARE
    from evonas.run.config import absolute_data
    from evonas.run.run import load_config_splits
    from evonas.spaces import resolve_space

    splits = load_config_splits(options.space, absolute_data(options.dataset), data_root=options.data_root,
                                val_size=USER_VAL_SHARE, image_size=options.image_size)
    return resolve_space(options.space, factory_kwargs(splits))


def profile(options: ProfileOptions) -> ProfileResult:
    """Count FLOPs and parameters of ``options.archs`` (no training, no data)."""
    from evonas.evaluation.profile import count_module, describe_cost

    if options.run_dir is not None:
        from evonas.run.run import Run

        sp = Run.open(options.run_dir).space
    else:
        sp = space_of(options)
    archs = read_archs(sp, options.archs, options.archs_file)
    if not archs:
        raise ConfigError("nothing to profile: give --arch STRING or --archs FILE")
    rows = []
    for arch in archs:
        row = describe_cost(sp, arch)
        if options.check:
            from evonas.supernet import build_standalone, input_shape

            measured = count_module(build_standalone(sp, arch), input_shape(sp))
            row.update(measured_flops=measured["flops"], measured_params=measured["params"])
        rows.append(row)
    return ProfileResult(rows=rows, checked=options.check)
