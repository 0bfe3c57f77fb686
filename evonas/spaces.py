"""Search spaces by reference: a user's factory (``PATH.py:FACTORY``, ``package.module:FACTORY``) or an entry point.

``get_space(name)`` (``search_spaces``) finds the built-in presets; for any other name
it asks :func:`resolve_name`, which evonas installs: a reference is imported, its
factory called with the data's ``in_channels``, ``num_classes`` and ``image_size``,
and the model turned into a :class:`~evonas.supernet.model_space.ModelSpace`,
registered under the reference (file paths made absolute, so that a run reopens it
from any folder). Installed packages can name factories under the entry-point group
``evonas.spaces``; ``evonas spaces`` lists them.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from search_spaces.base import SPACES, Space

from evonas.errors import ConfigError, RunDirError
from evonas.refs import absolute_reference, is_file_reference, is_reference, load_object, split_reference

ENTRY_POINT_GROUP = "evonas.spaces"

_RESOLVED: dict[tuple, Space] = {}  # (name, kwargs, file stamp) -> the space built from it


@functools.lru_cache(maxsize=1)
def entry_point_spaces() -> dict[str, str]:
    """Spaces installed packages register: entry-point name -> ``module:factory`` (read once per process)."""
    try:
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken installed distribution must not break evonas
        return {}
    return {ep.name: ep.value for ep in points}


def is_user_space(name: str) -> bool:
    """Whether ``name`` names a user's factory (a reference or an entry point) rather than a preset."""
    return isinstance(name, str) and name not in SPACES_BUILTIN and (is_reference(name) or name in entry_point_spaces())


def canonical_name(name: str) -> str:
    """The name a user space is stored under: file paths absolute, module references and entry points as given."""
    return absolute_reference(name) if is_reference(name) else name


def _stamp(ref: str) -> tuple:
    if not is_file_reference(ref):
        return ()
    path = Path(split_reference(ref, "space")[0])
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_mtime_ns, st.st_size)


def resolve_space(name: str, kwargs: dict[str, Any] | None = None) -> Space:
    """The space of a user's factory called with ``kwargs`` (the data's), built once per process and file version."""
    from evonas.supernet.model_space import ModelSpace

    name = canonical_name(name)
    ref = entry_point_spaces().get(name, name)
    if not is_reference(ref):
        raise ConfigError(f"The 'space' parameter must be a preset ({', '.join(sorted(SPACES_BUILTIN))}), "
                          f"PATH.py:FACTORY or package.module:FACTORY; got {name!r}.", param="space")
    if kwargs is None and isinstance(SPACES.get(name), ModelSpace) and SPACES[name].__dict__.get("_stamp") == _stamp(ref):
        return SPACES[name]  # opened with the data's arguments earlier in this process
    key = (name, json.dumps(kwargs, sort_keys=True, default=str), _stamp(ref))
    space = _RESOLVED.get(key)
    if space is None:
        factory = load_object(ref, param="space")
        if not callable(factory):
            raise ConfigError(f"The 'space' parameter names {ref!r}, a {type(factory).__name__}; it must be a "
                              "function or class that returns the model.", param="space")
        space = ModelSpace(name=name, factory=factory, kwargs=kwargs)
        space.__dict__["_stamp"] = _stamp(ref)
        _RESOLVED[key] = space
    SPACES[name] = space  # architectures of this space print and parse through it
    return space


def resolve_name(name: str) -> Space | None:
    """The resolver ``search_spaces.get_space`` asks for names that are not presets (None: not a user space)."""
    if not isinstance(name, str) or not (is_reference(name) or name in entry_point_spaces()):
        return None
    return resolve_space(name)


def check_stored(space: Space, stored: dict | None, run_path: Path) -> None:
    """Refuse in one line when a run's stored space description no longer matches the factory's model."""
    difference = getattr(space, "difference", None)
    if stored is None or difference is None:
        return
    what = difference(stored)
    if what is not None:
        raise RunDirError(f"the space of run {run_path} has changed since it was trained: {what}. Restore "
                          f"{space.name.rpartition(':')[0]} as it was, or train a new run.")


SPACES_BUILTIN: frozenset[str] = frozenset()  # filled by evonas/__init__ with the presets' names


def install() -> None:
    """Make ``search_spaces.get_space`` resolve references and entry points (idempotent)."""
    global SPACES_BUILTIN
    from search_spaces import registry

    SPACES_BUILTIN = frozenset(SPACES)
    registry.add_resolver(resolve_name)
