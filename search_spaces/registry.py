"""The registry of search spaces: one name per preset."""

from __future__ import annotations

from typing import Callable

from .base import SPACES as _SPACES
from .base import Space
from .errors import SpaceError, UnknownNameError

DEFAULT_SPACE = "macro-fmnist"

# Functions asked, in order, for a name that is not registered (evonas adds one that
# builds a space from a user's model reference); each returns a Space or None.
_RESOLVERS: list[Callable[[str], "Space | None"]] = []


def add_resolver(resolver: Callable[[str], "Space | None"]) -> None:
    """Ask ``resolver`` for names that are not registered (once per function)."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def unregister_space(name: str) -> None:
    """Forget the space registered as ``name`` (tests, and user spaces rebuilt from a changed file)."""
    _SPACES.pop(name, None)


def register_space(space: Space) -> Space:
    """Register a space under ``space.name``; re-registering a name is an error."""
    if space.name in _SPACES and _SPACES[space.name] is not space:
        raise SpaceError(f"The 'space' parameter must have a new name; a space named {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def get_space(name: str) -> Space:
    """The space registered as ``name`` (or built by a resolver); an unknown name lists the valid ones."""
    space = _SPACES.get(name)
    if space is not None:
        return space
    for resolver in _RESOLVERS:
        space = resolver(name)
        if space is not None:
            return space
    raise UnknownNameError(
        f"unknown search space {name!r}; choose one of: {', '.join(sorted(_SPACES))}, or your own model as "
        "PATH.py:FACTORY or package.module:FACTORY"
    )


def list_spaces() -> list[str]:
    """The registered space names, sorted."""
    return sorted(_SPACES)
