"""The registry of search spaces: one name per preset."""

from __future__ import annotations

from .base import SPACES as _SPACES
from .base import Space
from .errors import SpaceError, UnknownNameError

DEFAULT_SPACE = "macro-fmnist"


def register_space(space: Space) -> Space:
    """Register a space under ``space.name``; re-registering a name is an error."""
    if space.name in _SPACES and _SPACES[space.name] is not space:
        raise SpaceError(f"The 'space' parameter must have a new name; a space named {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> Space:
    """The space registered as ``name``; an unknown name lists the valid ones."""
    try:
        return _SPACES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown search space {name!r}; choose one of: {', '.join(sorted(_SPACES))}"
        ) from None


def list_spaces() -> list[str]:
    """The registered space names, sorted."""
    return sorted(_SPACES)
