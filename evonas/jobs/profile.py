"""The profile job: FLOPs and parameters from the space description, optionally checked with torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import DEFAULT_SPACE, get_space

from evonas.errors import ConfigError
from evonas.jobs.archs import read_archs


@dataclass(frozen=True, kw_only=True)
class ProfileOptions:
    """Which architectures to count, in which space."""

    space: str = DEFAULT_SPACE  # registered search space
    archs: tuple[str, ...] = ()  # architecture strings
    archs_file: str | Path | None = None  # file with one architecture string per line
    check: bool = False  # also build each network and count it with torch.utils.flop_counter

    def __post_init__(self) -> None:
        space = get_space(self.space)  # an unknown name lists the valid ones
        if self.check and getattr(space, "net", None) is None:  # no network description: nothing to build and count
            raise ConfigError(f"The 'check' parameter builds each network and counts it with PyTorch, which evonas "
                              f"does for chain spaces (macro-*, mobilenet-*); space {space.name!r} has no network to "
                              "build; drop --check", param="check")
        object.__setattr__(self, "archs", tuple(self.archs))


@dataclass(frozen=True, kw_only=True)
class ProfileResult:
    """One row per architecture: arch, canonical, flops, params (and measured_* with check)."""

    rows: list[dict[str, Any]]
    checked: bool


def profile(options: ProfileOptions) -> ProfileResult:
    """Count FLOPs and parameters of ``options.archs`` (no training, no data)."""
    from evonas.evaluation.profile import count_module, describe_cost

    sp = get_space(options.space)
    archs = read_archs(sp, options.archs, options.archs_file)
    if not archs:
        raise ConfigError("nothing to profile: give --arch STRING or --archs FILE")
    rows = []
    for arch in archs:
        row = describe_cost(sp, arch)
        if options.check:
            from evonas.supernet.chain import build_standalone

            net = sp.net
            measured = count_module(build_standalone(sp, arch), (net.in_channels, net.image_size, net.image_size))
            row.update(measured_flops=measured["flops"], measured_params=measured["params"])
        rows.append(row)
    return ProfileResult(rows=rows, checked=options.check)
