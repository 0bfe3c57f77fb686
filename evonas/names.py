"""Names a user gives (a search run's ``--name``, a study's ``--study-name``) and the paths made of them.

A name becomes a folder of the run (``RUN/searches/NAME``), so it is a name and never a
path: no separators, no ``..``, no control characters. Whatever a command writes is
checked to lie inside its run directory (:func:`check_inside`), symbolic links resolved.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from evonas.errors import ConfigError, RunDirError

__all__ = ["MAX_NAME_LENGTH", "check_inside", "check_name"]

MAX_NAME_LENGTH = 200  # a folder name; file systems allow 255 bytes


def check_name(value: str | None, param: str) -> None:
    """``value`` (None: not given) is a plain name; a ConfigError naming ``param`` otherwise."""
    if value is None:
        return
    rule = (f"The '{param}' parameter must be a plain name (letters, digits, '-', '_', '.'; no path separators, "
            f"'..' or control characters, at most {MAX_NAME_LENGTH} characters)")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{rule}; got {value!r}", param=param)
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    bad = next((c for c in value if c in separators), None)
    if bad is not None:
        raise ConfigError(f"{rule}; got {value!r}, which holds the path separator {bad!r}; drop it, e.g. "
                          f"{value.replace(bad, '-').strip('-.') or 'run1'!r}", param=param)
    if ".." in value:
        raise ConfigError(f"{rule}; got {value!r}, which holds '..'", param=param)
    if value in (".", "~") or value.startswith("~"):
        raise ConfigError(f"{rule}; got {value!r}", param=param)
    control = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
    if control is not None:
        raise ConfigError(f"{rule}; got {value!r}, which holds the control character {control!r}", param=param)
    if len(value) > MAX_NAME_LENGTH:
        raise ConfigError(f"{rule}; got a name of {len(value)} characters", param=param)


def check_inside(root: Path, path: Path) -> Path:
    """``path`` when it lies inside the directory ``root`` (links resolved); a RunDirError otherwise."""
    base = Path(root).resolve()
    target = Path(path).resolve()
    if target != base and base not in target.parents:
        raise RunDirError(f"refusing to write {str(path)!r}: it lies outside the run directory {str(root)!r} "
                          f"(it resolves to {str(target)!r}); remove the link that leads out of the run")
    return Path(path)
