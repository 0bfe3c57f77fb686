"""Architecture lists given to jobs: strings, and files with one string per line."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from search_spaces import Arch, Space

from evonas.errors import ConfigError


def read_archs(space: Space, archs: Sequence[str], archs_file: str | Path | None = None) -> list[Arch]:
    """Parse ``archs`` and the lines of ``archs_file`` (``#`` starts a comment) in ``space``."""
    out = [space.parse(a) if isinstance(a, str) else space.coerce(a) for a in archs]
    if archs_file:
        path = Path(archs_file)
        if not path.is_file():
            raise ConfigError(f"The 'archs_file' parameter names {str(archs_file)!r}, which does not exist",
                              param="archs_file")
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                out.append(space.parse(line))
            except ValueError as exc:
                raise ConfigError(f"{archs_file}:{lineno}: {exc}") from None
    return out
