"""Architecture lists given to jobs: strings, and files with one string per line."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from search_spaces import Arch, Space

from evonas.errors import ConfigError
from evonas.textfile import InputTooLarge, decode_text, read_limited

MAX_ARCHS_BYTES = 64 * 1024 * 1024  # a list of architectures: about a million lines


def read_archs(space: Space, archs: Sequence[str], archs_file: str | Path | None = None, *,
               param: str = "archs_file") -> list[Arch]:
    """Parse ``archs`` and the lines of ``archs_file`` (``#`` starts a comment) in ``space``.

    ``param`` names the option the file came from (``archs_file``, ``anchors_file``) in errors.
    """
    out = [space.parse(a) if isinstance(a, str) else space.coerce(a) for a in archs]
    if archs_file:
        for lineno, line in enumerate(read_text_lines(archs_file, param), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                out.append(space.parse(line))
            except ValueError as exc:
                raise ConfigError(f"{archs_file}:{lineno}: {exc}", param=param) from None
    return out


def read_text_lines(file: str | Path, param: str) -> list[str]:
    """The lines of a small text file; a ConfigError naming ``param`` when it is missing, unreadable or binary."""
    path = Path(file)
    if not path.exists():
        raise ConfigError(f"The '{param}' parameter names {str(file)!r}, which does not exist", param=param)
    if path.is_dir():
        raise ConfigError(f"The '{param}' parameter names {str(file)!r}, a directory; give a text file with one "
                          "architecture per line", param=param)
    try:
        data = read_limited(path, MAX_ARCHS_BYTES)
    except InputTooLarge as exc:
        raise ConfigError(f"The '{param}' parameter names {str(file)!r}, which is {exc.reason}; give a text file "
                          "with one architecture per line", param=param) from None
    except OSError as exc:
        raise ConfigError(f"The '{param}' parameter names {str(file)!r}, which cannot be read "
                          f"({exc.strerror or exc})", param=param) from None
    text, bad = decode_text(data)
    if bad is not None:
        line, col, byte = bad
        raise ConfigError(f"{file}:{line}:{col}: not a text file (byte 0x{byte:02x}); give a text file with one "
                          "architecture per line", param=param)
    return text.splitlines()
