"""The latency table: its entries, its predictions, its device check and its file.

Timings are noisy on a shared machine: every entry keeps its 10th/90th percentiles and
relative spread ``(p90 - p10) / median``; entries above the build's ``noise_threshold``
are listed in ``noisy_entries``, and a table built while the machine was too busy
carries a warning saying so (``busy``).

A table is saved as JSON (``FORMAT``, ``FORMAT_VERSION``) and checked as read
(:func:`check_table_data`): a missing, corrupt or foreign file raises ConfigError.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from search_spaces import Arch, get_space

from evonas.errors import ConfigError
from evonas.latency.device import _device_line
from evonas.textfile import InputTooLarge, read_limited

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_TABLE_BYTES", "REBUILD_HINT", "LatencyEntry", "LatencyTable", "check_table_data"]

FORMAT = "evonas-latency-table"
FORMAT_VERSION = 1
REBUILD_HINT = "rebuild it on this device with `evonas latency build --run RUN --rebuild`"


@dataclass(frozen=True)
class LatencyEntry:
    """The time of one option at one layer position, measured alone at its input shape."""

    layer: int  # searchable layer position (0-based)
    code: int  # option code of the space's op table
    input_shape: tuple[int, ...]  # (batch, cin, size, size)
    median_ms: float  # time charged to this layer in predictions (the median, net of per-call cost)
    p10_ms: float  # 10th percentile of the raw timing
    p90_ms: float  # 90th percentile of the raw timing
    spread: float  # (p90 - p10) / median of the raw timing
    raw_ms: float  # median as timed alone, per-call cost included
    measured: bool = True  # False: an identity that vanishes from the network, charged 0
    isolated_ms: float | None = None  # the isolated time net of per-call cost (None: tables from before fitting)

    def to_dict(self) -> dict:
        return {**self.__dict__, "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, data: dict) -> "LatencyEntry":
        return cls(**{**data, "input_shape": tuple(data["input_shape"])})


@dataclass(frozen=True)
class LatencyTable:
    """Per-layer latencies of a chain space on one device, and the fixed part; ``predict`` sums them."""

    space: str  # the search space the entries belong to
    entries: tuple[LatencyEntry, ...]  # one per (layer, option code) measured
    overhead_ms: float  # the fixed part charged once per network (stem, head, call costs)
    overhead: dict  # how the fixed part was measured: method, both estimates and their parts
    device: dict  # describe_device() where the table was built
    settings: dict  # build settings: backend, batch_size, threads, warmup, repeats, noise_threshold, ...
    build_seconds: float  # wall time of the build
    warnings: tuple[str, ...] = ()  # e.g. "the machine is too busy to measure: ..."
    correction: tuple[float, float] | None = None  # (a, b): predict = a * (sum + overhead) + b when set
    fit: dict | None = None  # how the entries were fitted to whole networks (method, samples, errors); None: isolated
    source: str | None = field(default=None, compare=False)  # the file it was loaded from

    @cached_property
    def _lookup(self) -> dict[tuple[int, int], LatencyEntry]:
        return {(e.layer, e.code): e for e in self.entries}

    def entry(self, layer: int, code: int) -> LatencyEntry:
        """The entry of option ``code`` at layer ``layer``."""
        try:
            return self._lookup[(layer, code)]
        except KeyError:
            raise ConfigError(
                f"The latency table of {self.space!r} has no entry for option {code} at layer {layer}; "
                f"it was built for layers {sorted({e.layer for e in self.entries})}. Build it over every layer."
            ) from None

    def _codes(self, arch: Arch | str | Sequence[int]) -> tuple[int, ...]:
        return get_space(self.space).coerce(arch).choices

    def layer_sum(self, arch: Arch | str | Sequence[int]) -> float:
        """The sum of ``arch``'s layer entries, in ms (no fixed part, no correction)."""
        return float(sum(self.entry(i, c).median_ms for i, c in enumerate(self._codes(arch))))

    def predict(self, arch: Arch | str | Sequence[int]) -> float:
        """Predicted end-to-end latency of ``arch`` in ms: the layer sum plus the fixed part."""
        raw = self.layer_sum(arch) + self.overhead_ms
        if self.correction is not None:
            a, b = self.correction
            raw = a * raw + b
        return float(raw)

    def min_latency(self) -> float:
        """The smallest predicted latency over the whole space (exact: predictions add up per layer)."""
        space = get_space(self.space)
        best = [min(self.entry(i, c).median_ms for c in dim.options) for i, dim in enumerate(space.dims)]
        raw = float(sum(best)) + self.overhead_ms
        if self.correction is not None:
            a, b = self.correction
            raw = a * raw + b  # a > 0: validate_latency fits the correction on measured times
        return float(raw)

    @property
    def method(self) -> str:
        """How the entries were made: "fitted" (each fitted to whole networks), "scaled" (the isolated ones times
        ``fit["scaled_a"]``, the fixed part ``a * isolated + b``) or "isolated" (each layer timed alone)."""
        if self.fit is None or not self.fit.get("used"):
            return "isolated"
        return self.fit.get("kind") or "fitted"  # tables from before the scaled candidate have no kind

    def isolated(self) -> "LatencyTable":
        """This table with the isolated timings as entries and their fixed part (itself when isolated)."""
        if self.method == "isolated":
            return self
        entries = tuple(replace(e, median_ms=e.isolated_ms if e.isolated_ms is not None else e.median_ms)
                        for e in self.entries)
        return LatencyTable(**{**self._fields(), "entries": entries, "overhead_ms": float(self.fit["isolated_overhead_ms"]),
                               "fit": {**self.fit, "used": False, "kind": None}, "correction": None})

    def with_correction(self, a: float, b: float) -> "LatencyTable":
        """A copy whose predictions are ``a * (sum + overhead) + b`` (see ``validate_latency``)."""
        return LatencyTable(**{**self._fields(), "correction": (float(a), float(b))})

    @property
    def noisy_entries(self) -> tuple[LatencyEntry, ...]:
        """Measured entries whose relative spread exceeds the build's ``noise_threshold``."""
        limit = self.settings.get("noise_threshold", math.inf)
        return tuple(e for e in self.entries if e.measured and e.spread > limit)

    @property
    def busy(self) -> bool:
        """True when the machine was too busy to measure (too many noisy entries)."""
        return any(w.startswith("the machine is too busy") for w in self.warnings)

    def check_device(self, current_description: dict, allow_foreign: bool = False) -> bool:
        """Refuse a table built on another device (another ``device_key``) unless ``allow_foreign``.

        Returns True when the devices match, False when they differ and that is allowed.
        """
        mine, theirs = self.device.get("device_key"), current_description.get("device_key")
        if mine == theirs:
            return True
        if allow_foreign:
            return False
        where = f" in {self.source}" if self.source else ""
        raise ConfigError(
            f"The latency table{where} was built on device {_device_line(self.device)}, but this is device "
            f"{_device_line(current_description)}; {REBUILD_HINT}, or set the 'allow_foreign' "
            "parameter to use it anyway."
        )

    # --- persistence --------------------------------------------------------------------------
    def _fields(self) -> dict:
        return {
            "space": self.space, "entries": self.entries, "overhead_ms": self.overhead_ms, "overhead": self.overhead,
            "device": self.device, "settings": self.settings, "build_seconds": self.build_seconds,
            "warnings": self.warnings, "correction": self.correction, "fit": self.fit, "source": self.source,
        }

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "space": self.space,
            "overhead_ms": self.overhead_ms,
            "overhead": self.overhead,
            "device": self.device,
            "settings": self.settings,
            "build_seconds": self.build_seconds,
            "warnings": list(self.warnings),
            "correction": list(self.correction) if self.correction is not None else None,
            "fit": self.fit,
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "LatencyTable":
        correction = data.get("correction")
        return cls(
            space=data["space"],
            entries=tuple(LatencyEntry.from_dict(e) for e in data["entries"]),
            overhead_ms=float(data["overhead_ms"]),
            overhead=dict(data["overhead"]),
            device=dict(data["device"]),
            settings=dict(data["settings"]),
            build_seconds=float(data["build_seconds"]),
            warnings=tuple(data.get("warnings", ())),
            correction=tuple(correction) if correction is not None else None,
            fit=data.get("fit"),
            source=source,
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON, atomically (a temporary file in the same folder, then a rename)."""
        from evonas.run.atomic import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        """Read a table written by ``save``; a missing, corrupt or foreign file raises ConfigError."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"No latency table at {path}; {REBUILD_HINT}.")
        try:
            data = json.loads(read_limited(path, MAX_TABLE_BYTES).decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"not an evonas latency table (format {data.get('format') if isinstance(data, dict) else None!r})")
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('version')!r}, this evonas reads {FORMAT_VERSION}")
            check_table_data(data, path)  # finite, non-negative, the right types: file:entry in the error
            table = cls.from_dict(data, source=str(path))
        except InputTooLarge as exc:
            raise ConfigError(f"The latency table {path} is {exc.reason}; delete it and {REBUILD_HINT}.") from None
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise ConfigError(f"The latency table {path} is unreadable ({exc}); delete it and {REBUILD_HINT}.") from None
        get_space(table.space)  # an unknown space names the valid ones
        try:
            fastest = table.min_latency()
        except ConfigError:  # a partial table (some layers only): its predictions are refused where made
            fastest = 0.0
        if fastest < 0:
            raise ConfigError(f"The latency table {path} predicts a negative latency ({table.min_latency():.4g} ms) for "
                              f"the fastest architecture of {table.space}; delete it and {REBUILD_HINT}.")
        return table


MAX_TABLE_BYTES = 64 * 1024 * 1024  # a latency table is a few hundred kB
_TIMES = ("p10_ms", "p90_ms", "raw_ms", "spread")  # measured: finite and >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_table_data(data: dict, path: str | Path) -> None:
    """Raise ValueError naming ``path:entries[i]`` (layer, code) and the field when a latency table holds a bad value.

    Every time is a finite number; measured times are >= 0, and so is every entry's charged
    time unless the table was fitted to whole networks (a fit may charge an option slightly
    below zero), in which case the smallest prediction of the space must still be >= 0.
    """
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}:entries: must be a non-empty list; got {type(entries).__name__}")
    fitted = isinstance(data.get("fit"), dict) and bool(data["fit"].get("used"))
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"{path}:entries[{i}]: must be an object; got {e!r}")
        where = f"{path}:entries[{i}] (layer {e.get('layer')!r}, code {e.get('code')!r})"
        for key in ("layer", "code"):
            if not isinstance(e.get(key), int) or isinstance(e.get(key), bool) or e[key] < 0:
                raise ValueError(f"{where}: {key} must be an integer >= 0; got {e.get(key)!r}")
        shape = e.get("input_shape")
        if not isinstance(shape, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
            raise ValueError(f"{where}: input_shape must be a list of integers > 0; got {shape!r}")
        optional = {"isolated_ms": e.get("isolated_ms")} if e.get("isolated_ms") is not None else {}
        for key, value in {"median_ms": e.get("median_ms"), **{k: e.get(k) for k in _TIMES}, **optional}.items():
            if not _number(value):
                raise ValueError(f"{where}: {key} must be a finite number; got {value!r}")
            if value < 0 and not (key == "median_ms" and fitted):
                raise ValueError(f"{where}: {key} must be >= 0 (a time); got {value!r}")
    if not _number(data.get("overhead_ms")):
        raise ValueError(f"{path}:overhead_ms must be a finite number; got {data.get('overhead_ms')!r}")
    correction = data.get("correction")
    if correction is not None and not (isinstance(correction, list) and len(correction) == 2
                                       and all(_number(v) for v in correction) and correction[0] > 0):
        raise ValueError(f"{path}:correction must be two finite numbers [a, b] with a > 0; got {correction!r}")
