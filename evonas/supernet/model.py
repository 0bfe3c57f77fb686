"""The supernet of a user's model (a :class:`~evonas.supernet.model_space.ModelSpace`) and its exports.

:class:`ModelSupernet` wraps the model the factory returned: ``forward(x, arch)``
selects every choice's option and runs the model; ``path_modules(arch)`` lists the
modules that path runs (for BN recalibration and fine-tuning); ``extract(arch)``
returns a plain copy of the model with every Choice replaced by its chosen module, so
that it runs, saves and exports with no evonas import.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from search_spaces import Arch

from evonas.nn import Choice
from evonas.supernet.model_space import ModelSpace


class _Direct(nn.Module):
    """The parameters and buffers a module holds itself (not in its children), for a path's list of modules."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._parameters = module._parameters  # the same tensors: training and recalibration act on the model's own
        self._buffers = module._buffers


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule at ``path`` is (``a.b.3`` -> attribute ``3`` of ``a.b``)."""
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    parent._modules[leaf] = new


def collapse(model: nn.Module, space: ModelSpace, codes: Sequence[int]) -> nn.Module:
    """``model`` with every Choice replaced by the option ``codes`` names (in place; returns the model)."""
    for path, dim, code in zip(space.choice_paths, space.dims, codes):
        choice = model.get_submodule(path)
        option = choice.options[dim.names[dim.options.index(code)]]
        if not path:  # the model is itself the choice (the only one: choices in choices are refused)
            return option
        _replace(model, path, option)
    return model


class ModelSupernet(nn.Module):
    """A user's model with Choice points as a supernet: ``forward(x, arch)`` runs the path ``arch`` names."""

    def __init__(self, space: ModelSpace, model: nn.Module | None = None) -> None:
        super().__init__()
        self.space = space
        self.model = space.new_model() if model is None else model
        self._choice_list = [self.model.get_submodule(p) for p in space.choice_paths]  # not registered twice
        self._fixed = self._fixed_modules(self.model)

    def _fixed_modules(self, module: nn.Module) -> list[nn.Module]:
        """The modules outside every Choice, as few as cover them (whole subtrees without a Choice)."""
        if isinstance(module, Choice):  # the model itself is the choice: nothing is fixed
            return []
        if not any(isinstance(m, Choice) for m in module.modules()):
            return [module]
        out: list[nn.Module] = []
        if module._parameters or module._buffers:
            out.append(_Direct(module))
        for child in module.children():
            if not isinstance(child, Choice):
                out.extend(self._fixed_modules(child))
        return out

    @property
    def choices(self) -> list[Choice]:
        """The Choice modules, one per dimension, in order."""
        return self._choice_list

    def _codes(self, arch: Arch | Sequence[int]) -> tuple[int, ...]:
        codes = arch.choices if isinstance(arch, Arch) else tuple(arch)
        if len(codes) != len(self._choice_list):
            raise ValueError(f"expected {len(self._choice_list)} choices for {self.space.name}, got {codes}")
        return codes

    def _names(self, arch: Arch | Sequence[int]) -> list[str]:
        return [d.names[d.options.index(c)] for d, c in zip(self.space.dims, self._codes(arch))]

    def select(self, arch: Arch | Sequence[int]) -> None:
        """Make ``arch``'s options the ones that run."""
        for choice, name in zip(self._choice_list, self._names(arch)):
            choice.active = name

    def path_modules(self, arch: Arch | Sequence[int]) -> list[nn.Module]:
        """The modules ``arch`` runs: the fixed part and the chosen options."""
        return [*self._fixed, *(c.options[n] for c, n in zip(self._choice_list, self._names(arch)))]

    def forward(self, x: torch.Tensor, arch: Arch | Sequence[int]) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        self.select(arch)
        return self.model(x)

    def keep_only(self, layer: int, code: int) -> None:
        """Drop every option of choice ``layer`` but ``code`` (a few-shot sub-supernet's own)."""
        choice = self._choice_list[layer]
        name = self._names([*(d.options[0] for d in self.space.dims[:layer]), code,
                            *(d.options[0] for d in self.space.dims[layer + 1:])])[layer]
        choice.options = nn.ModuleDict({name: choice.options[name]})
        choice.active = name

    def extract(self, arch: Arch | Sequence[int]) -> nn.Module:
        """A standalone copy of the model with ``arch``'s options in place of the choices (weights and BN stats copied)."""
        codes = self._codes(arch)
        self.select(codes)
        return collapse(copy.deepcopy(self.model), self.space, codes)


def build_model_standalone(space: ModelSpace, arch: Arch) -> nn.Module:
    """A freshly initialised network of ``arch`` alone: a new model from the factory, collapsed."""
    return collapse(space.new_model(), space, space.validate(arch).choices)
