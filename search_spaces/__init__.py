"""Search-space descriptions for evonas. Importing this package never imports torch.

>>> from search_spaces import get_space
>>> space = get_space("macro-cifar10")
>>> arch = space.parse("02012100")
>>> space.cost(arch).params
890666
"""

from __future__ import annotations

from .base import Arch, Cost, Dim, Space
from .chain import MACRO_CIFAR10, MACRO_FMNIST, MOBILENET_FMNIST, ChainSpace
from .errors import ArchStringError, InfeasibleConstraintError, SpaceError, UnknownNameError
from .nb201 import NB201, NB201Space
from .registry import DEFAULT_SPACE, get_space, list_spaces, register_space

for _space in (MACRO_FMNIST, MACRO_CIFAR10, MOBILENET_FMNIST, NB201):
    register_space(_space)

__all__ = [
    "Arch",
    "ArchStringError",
    "ChainSpace",
    "Cost",
    "DEFAULT_SPACE",
    "Dim",
    "InfeasibleConstraintError",
    "NB201Space",
    "Space",
    "SpaceError",
    "UnknownNameError",
    "get_space",
    "list_spaces",
    "register_space",
]
