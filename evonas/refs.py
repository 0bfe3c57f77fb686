"""References to a user's Python objects: ``PATH.py:NAME`` or ``package.module:NAME``.

A search-space factory (``--space``) and a data function (``--data``) are given by
reference. :func:`load_object` imports the file or module and returns the attribute;
every way this can fail (no such file, a syntax error, an import that raises, no such
attribute) is one :class:`~evonas.errors.ConfigError` naming the reference and the fix.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from evonas.errors import ConfigError

_MODULE_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def is_reference(text: str) -> bool:
    """Whether ``text`` has the shape of a reference (``something:NAME``), not a plain name."""
    if not isinstance(text, str) or ":" not in text:
        return False
    target, _, attr = text.rpartition(":")
    return bool(target) and bool(_ATTR.match(attr))


def split_reference(ref: str, param: str) -> tuple[str, str]:
    """(file or module, attribute) of ``ref``; a ConfigError when it has no ``:NAME``."""
    target, sep, attr = str(ref).rpartition(":")
    if not sep or not target or not _ATTR.match(attr):
        raise ConfigError(f"The '{param}' parameter must be PATH.py:NAME or package.module:NAME; got {ref!r}.",
                          param=param)
    return target, attr


def is_file_reference(ref: str) -> bool:
    target = str(ref).rpartition(":")[0]
    return target.endswith(".py") or "/" in target or "\\" in target


def absolute_reference(ref: str) -> str:
    """``ref`` with a file path made absolute, so that another process in another folder finds it."""
    if not is_file_reference(ref):
        return ref
    target, attr = ref.rpartition(":")[0], ref.rpartition(":")[2]
    return f"{Path(target).expanduser().resolve()}:{attr}"


def _import_file(path: Path, ref: str, param: str):
    if not path.is_file():
        raise ConfigError(f"The '{param}' parameter names {str(path)!r}, which is not a file; give the path of a "
                          f"Python file and a name in it, e.g. my_model.py:build (got {ref!r}).", param=param)
    # one module name per file path: two files named model.py do not overwrite each other
    name = "evonas_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"The '{param}' parameter names {str(path)!r}, which Python cannot import; got {ref!r}.",
                          param=param)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # the file may import modules next to it, as when run as a script (last: no shadowing)
        sys.path.append(folder)
    try:
        # compiled from the file as it is now: no bytecode cache read (a cached .pyc of an edit within the same
        # second and of the same size would run the old code) nor written next to the user's file
        exec(compile(path.read_bytes(), str(path), "exec", dont_inherit=True), module.__dict__)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"The '{param}' parameter names {str(path)!r}, which has a syntax error at line "
                          f"{exc.lineno}: {exc.msg}; fix the file.", param=param) from None
    except Exception as exc:  # the user's code raised while importing
        sys.modules.pop(name, None)
        raise ConfigError(f"The '{param}' parameter names {str(path)!r}, whose import raised "
                          f"{type(exc).__name__}: {exc}; fix the file.", param=param) from None
    return module


def _import_module(target: str, ref: str, param: str):
    if not _MODULE_REF.match(target):
        raise ConfigError(f"The '{param}' parameter must be PATH.py:NAME or package.module:NAME; got {ref!r}.",
                          param=param)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"The '{param}' parameter names module {target!r}, which cannot be imported ({exc}); "
                          "install it, or give a file as PATH.py:NAME.", param=param) from None
    except Exception as exc:
        raise ConfigError(f"The '{param}' parameter names module {target!r}, whose import raised "
                          f"{type(exc).__name__}: {exc}; fix the module.", param=param) from None


def load_object(ref: str, *, param: str = "space") -> Any:
    """The object ``ref`` names: ``PATH.py:NAME`` (a file) or ``package.module:NAME`` (importable).

    ``NAME`` may be dotted (``module:Class.method``). Raises one ConfigError naming
    ``param`` for every failure.
    """
    target, attr = split_reference(ref, param)
    if is_file_reference(ref):
        module = _import_file(Path(target).expanduser(), ref, param)
    else:
        module = _import_module(target, ref, param)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"The '{param}' parameter names {attr!r} in {target!r}, which has no such attribute; "
                              f"got {ref!r}.", param=param)
        obj = getattr(obj, part)
    return obj
