"""What the CLI modules share: parsing of lists and numbers, and printing of tables and JSON."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

import click

from evonas.errors import ConfigError


def int_list(option: str, text: str) -> list[int]:
    """A comma-separated list of integers such as ``10,20,50``."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{option} must be a comma-separated list of integers such as 10,20,50; got {text!r}") from None
    if not values:
        raise ConfigError(f"{option} needs at least one integer; got {text!r}")
    return values


def name_list(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated list of names (None when not given)."""
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else None


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


def device_option(what: str):
    """``--device`` of a command that runs networks (checked by the job: a missing GPU is one line)."""
    return click.option("--device", default="cpu", show_default=True,
                        help=f"Where {what}: cpu, cuda, cuda:N (the N-th GPU) or auto (a GPU when there is one).")


def precision_option(what: str):
    """``--precision`` of a command that runs networks."""
    return click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "fp16"]),
                        help=f"Precision of {what}: fp32, or mixed precision bf16 / fp16 (autocast; fp16 needs a GPU).")


class SpaceName(click.ParamType):
    """A preset's name, an installed space (entry point) or your model's factory as PATH.py:FACTORY."""

    name = "space"

    def convert(self, value: Any, param, ctx) -> str:
        from search_spaces import list_spaces

        from evonas.refs import is_reference
        from evonas.spaces import entry_point_spaces

        if value in list_spaces() or is_reference(value) or value in entry_point_spaces():
            return value
        self.fail(f"{value!r} is not a search space; choose one of {', '.join(list_spaces() + sorted(entry_point_spaces()))}, "
                  "or give your model's factory as PATH.py:FACTORY or package.module:FACTORY", param, ctx)


SPACE = SpaceName()


class Number(click.ParamType):
    """An integer, or a share written as a float in (0, 1) (``--val-size 5000`` or ``--val-size 0.1``)."""

    name = "number"

    def convert(self, value: Any, param, ctx) -> int | float:
        if isinstance(value, (int, float)):
            return value
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                self.fail(f"{value!r} is not a number (write e.g. 5000, or 0.1 for a share)", param, ctx)


NUMBER = Number()


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
