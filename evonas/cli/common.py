"""Helpers shared by the CLI modules: architecture lists, number parsing, output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import click

from search_spaces import Arch, Space

from evonas.errors import ConfigError


def read_archs(space: Space, arch_opts: Sequence[str], archs_file: str | None) -> list[Arch]:
    """Architectures from repeated ``--arch`` options and a ``--archs FILE`` (one per line)."""
    archs = [space.parse(a) for a in arch_opts]
    if archs_file:
        path = Path(archs_file)
        if not path.is_file():
            raise ConfigError(f"--archs file {archs_file!r} does not exist")
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                archs.append(space.parse(line))
            except ValueError as exc:
                raise ConfigError(f"{archs_file}:{lineno}: {exc}") from None
    return archs


class SciNumber(click.ParamType):
    """A number that may be written 3e6 or 100e3 (limits are large)."""

    name = "number"

    def convert(self, value: Any, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value).replace("_", ""))
        except ValueError:
            self.fail(f"{value!r} is not a number (write e.g. 3e6 or 3000000)", param, ctx)


SCI = SciNumber()


def json_safe(data: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def echo_json_lines(rows: Iterable[dict]) -> None:
    for row in rows:
        click.echo(json.dumps(json_safe(row), sort_keys=False))


def echo_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print rows as an aligned text table; columns are (key, header, format)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([format(row[k], fmt) if row.get(k) is not None else "-" for k, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for j, r in enumerate(cells):
        click.echo("  ".join(c.rjust(w) if j and i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
