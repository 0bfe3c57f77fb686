"""Latency you can trust: a per-layer lookup table, its device, its noise, and its check.

A chain network's latency is predicted as the sum of its searchable layers' times plus
a fixed part::

    predict(arch) = sum_i table[i, arch[i]] + overhead_ms

:func:`build_latency_table` times each (layer position, option) of a chain space once,
the layer's module alone at its input shape ``(batch, cin, size, size)`` (built with
``make_op``, eval mode, channels_last, ``torch.inference_mode``, ``threads`` torch
threads), or, with ``backend="onnxruntime"``, that module exported to ONNX and run in an
onnxruntime session with ``intra_op_num_threads=threads``. Identity layers that vanish
from an exported network (``nn.Identity`` where the shape does not change) cost 0 and
are not timed. With onnxruntime each isolated layer pays the session's per-call cost
(the empty model's time) that a whole network pays once, so that cost is subtracted from
every layer and charged once to the fixed part.

The fixed part (stem, head, per-call framework cost) is measured two ways, both kept in
``LatencyTable.overhead``:

* ``"residual"`` (the default): the end-to-end time of the fastest network the table
  knows (each layer's fastest option) minus that network's table sum. It folds in
  everything the layers do not see alone (the stem and head, call and dispatch costs,
  cache effects of a chain) where it matters most, at the cheap end of the space.
* ``"components"``: the stem and the head timed alone plus the cost of one call of an
  empty module.

The residual estimate predicted end-to-end time better in every setting tried on this
project's 2-core machine (1 thread, CPU clock, 25 repeats, beside a training job; MAPE
over 8-20 random networks, residual versus components): macro-fmnist eager batch 1
11.8% vs 13.4%, batch 32 21.8% vs 22.9%, onnxruntime batch 1 4.3% vs 6.7%,
mobilenet-fmnist eager batch 1 34.1% vs 37.4%. The components sum misses what the
modules cost each other in a chain. ``benchmarks/latency.py`` measures both at scale.

A deep chain runs slower than its layers timed alone (each layer alone keeps its
weights and activations in cache): on mobilenet-fmnist the table underestimated by a
third, with the ranking intact (Kendall tau 0.96). ``validate_latency(...,
calibrate=k)`` fits ``measured = a * predicted + b`` on ``k`` networks and reports it
only as an improvement when it lowers held-out MAPE (there: 34% to 4.4% with k = 5);
``LatencyTable.with_correction(a, b)`` applies it.

``clock="cpu"`` times with the process's CPU clock instead of the wall clock: on a busy
machine a call of several milliseconds is often descheduled, so wall-clock medians of
whole networks came out 3-5 times their layer sums while CPU time did not (single
thread only).

Timings are noisy on a shared machine: every entry keeps its 10th/90th percentiles and
relative spread ``(p90 - p10) / median``; entries above ``noise_threshold`` are listed
in ``noisy_entries``, and a table whose noisy share exceeds ``max_noisy_share`` carries
the warning "the machine is too busy to measure" (it is returned, not raised).

A table belongs to the device that built it: ``describe_device`` digests the CPU model,
threads, batch size and backend into a ``device_key``, and ``check_device`` refuses a
table built under another key unless told to allow it. :func:`validate_latency` times
whole networks and reports how well the table predicts them (MAPE, share within 10%,
Kendall tau), with an optional linear correction fitted on a few of them.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from search_spaces import Arch, ChainSpace, Space, get_space

from evonas.errors import ConfigError

__all__ = [
    "BACKENDS", "CLOCKS", "OVERHEAD_METHODS", "LatencyEntry", "LatencyTable", "build_latency_table", "describe_device",
    "device_key", "load_or_build_table", "table_path", "time_callable", "validate_latency",
]

BACKENDS = ("eager", "onnxruntime")
OVERHEAD_METHODS = ("residual", "components")
CLOCKS = ("wall", "cpu")
FORMAT = "evonas-latency-table"
FORMAT_VERSION = 1
# the fields of describe_device() that decide timings; their digest is the device_key
KEY_FIELDS = ("cpu_model", "threads", "batch_size", "backend")
REBUILD_HINT = "rebuild it on this device with `evonas latency build --run RUN --rebuild`"


# --- parameter checks --------------------------------------------------------------------------
def _int_param(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"The '{name}' parameter must be an integer >= {minimum}; got {value!r}.", param=name)
    return int(value)


def _float_param(name: str, value: Any, low: float, high: float | None = None, *, open_low: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        rule = f"a number {'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"The '{name}' parameter must be {rule}; got {value!r}.", param=name)
    return float(value)


def _choice_param(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"The '{name}' parameter must be one of {', '.join(allowed)}; got {value!r}.", param=name)
    return value


def _check_clock(clock: Any, threads: int) -> str:
    clock = _choice_param("clock", clock, CLOCKS)
    if clock == "cpu" and threads != 1:
        raise ConfigError(
            f"The 'clock' parameter 'cpu' adds up the CPU time of every thread, so it needs threads=1; got threads={threads}.",
            param="clock",
        )
    return clock


def _chain_space(space: Space | str) -> ChainSpace:
    space = get_space(space) if isinstance(space, str) else space
    if not isinstance(space, ChainSpace):
        raise ConfigError(
            f"The 'space' parameter must be a chain space (macro-*, mobilenet-*) for a latency table; "
            f"got {getattr(space, 'name', space)!r}.",
            param="space",
        )
    return space


# --- the device ----------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ort_version() -> str | None:
    from importlib import metadata

    try:  # the installed version, without importing onnxruntime
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return None


def describe_device(threads: int, batch_size: int, backend: str) -> dict:
    """What decides a timing here: the CPU, threads, batch size and backend, with their digest.

    ``device_key`` is a short digest of ``cpu_model``, ``threads``, ``batch_size`` and
    ``backend`` only; the package versions and core count are recorded for the reader.
    """
    threads = _int_param("threads", threads, 1)
    batch_size = _int_param("batch_size", batch_size, 1)
    backend = _choice_param("backend", backend, BACKENDS)
    info = {
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "threads": threads,
        "batch_size": batch_size,
        "backend": backend,
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "python": platform.python_version(),
    }
    info["device_key"] = device_key(info)
    return info


def device_key(description: dict) -> str:
    """The 12-hex-digit digest of the timing-deciding fields of a device description."""
    fields = {k: description.get(k) for k in KEY_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _device_line(d: dict) -> str:
    return (
        f"{d.get('device_key')} ({d.get('cpu_model')}, {d.get('threads')} thread(s), "
        f"batch {d.get('batch_size')}, {d.get('backend')})"
    )


# --- timing --------------------------------------------------------------------------------------
def time_callable(
    fn: Callable[[], Any],
    *,
    warmup: int = 10,
    repeats: int = 50,
    number: int | None = None,
    min_repeat_ms: float = 0.2,
    clock: str = "wall",
) -> dict:
    """Time ``fn()``: median and 10th/90th percentiles of ``repeats`` timed repeats, in ms per call.

    Each repeat calls ``fn`` ``number`` times (None: enough calls for ``min_repeat_ms``,
    so microsecond calls are not lost in the timer's resolution) with the garbage
    collector paused. ``spread`` is ``(p90 - p10) / median``. The caller pins the torch
    threads (``torch.set_num_threads``) and enters ``torch.inference_mode``.

    ``clock="wall"`` measures elapsed time (what a user waits). ``clock="cpu"`` measures
    the process's CPU time, which leaves out the time the scheduler gives to other
    processes: on a busy machine it is what the wall time would be on an idle one, but
    only for single-threaded work (with more threads it adds the threads' times up).
    """
    clock = _choice_param("clock", clock, CLOCKS)
    now = time.perf_counter_ns if clock == "wall" else time.process_time_ns
    warmup = _int_param("warmup", warmup, 0)
    repeats = _int_param("repeats", repeats, 1)
    if number is not None:
        number = _int_param("number", number, 1)
    for _ in range(warmup):
        fn()
    if number is None:
        start = time.perf_counter()
        fn()
        one = time.perf_counter() - start  # wall time: the CPU clock may tick coarsely
        number = max(1, min(1000, math.ceil(min_repeat_ms / 1000 / max(one, 1e-9))))
    times = np.empty(repeats)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            start = now()
            for _ in range(number):
                fn()
            times[r] = (now() - start) / number / 1e6
    finally:
        if gc_was_enabled:
            gc.enable()
    p10, median, p90 = (float(v) for v in np.percentile(times, [10, 50, 90]))
    return {
        "median_ms": median,
        "p10_ms": p10,
        "p90_ms": p90,
        "min_ms": float(times.min()),
        "mean_ms": float(times.mean()),
        "spread": (p90 - p10) / median if median > 0 else 0.0,
        "repeats": repeats,
        "number": number,
        "warmup": warmup,
        "clock": clock,
    }


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(before)


class _Runner:
    """Turns a module and an input batch into a timed callable for one backend."""

    def __init__(self, backend: str, threads: int, workdir: Path, clock: str = "wall") -> None:
        self.backend = backend
        self.clock = clock
        self.threads = threads
        self.workdir = workdir
        self._n = 0

    def callable(self, module: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
        module = module.eval()
        if self.backend == "eager":
            module = module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
            return lambda: module(x)
        from evonas.export.onnx import INPUT_NAME, export_onnx, onnx_session

        self._n += 1
        path = self.workdir / f"m{self._n}.onnx"
        if isinstance(module, nn.Identity):
            _identity_onnx(tuple(x.shape[1:]), path)  # the empty model, without the exporter's seconds
        else:
            export_onnx(module, x, path)
        session = onnx_session(path, self.threads)
        feed = {INPUT_NAME: np.ascontiguousarray(x.numpy())}
        return lambda: session.run(None, feed)

    def time(self, module: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> dict:
        return time_callable(self.callable(module, x), warmup=warmup, repeats=repeats, clock=self.clock)


def _identity_onnx(shape: tuple[int, ...], path: Path) -> None:
    """An ONNX model whose one node copies ``input`` (batch, *shape) to ``logits``."""
    import onnx
    from onnx import TensorProto, helper

    from evonas.export.onnx import INPUT_NAME, OUTPUT_NAME

    dims = ["batch", *shape]
    graph = helper.make_graph(
        [helper.make_node("Identity", [INPUT_NAME], [OUTPUT_NAME])],
        "empty",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), str(path))


# --- the table -----------------------------------------------------------------------------------
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
            "warnings": self.warnings, "correction": self.correction, "source": self.source,
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
            source=source,
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON, atomically (a temporary file in the same folder, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        """Read a table written by ``save``; a missing, corrupt or foreign file raises ConfigError."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"No latency table at {path}; {REBUILD_HINT}.")
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"not an evonas latency table (format {data.get('format') if isinstance(data, dict) else None!r})")
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('version')!r}, this evonas reads {FORMAT_VERSION}")
            table = cls.from_dict(data, source=str(path))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise ConfigError(f"The latency table {path} is unreadable ({exc}); delete it and {REBUILD_HINT}.") from None
        get_space(table.space)  # an unknown space names the valid ones
        return table


# --- building ------------------------------------------------------------------------------------
def _identity_vanishes(module: nn.Module) -> bool:
    return isinstance(module, nn.Identity)


def _stem_and_head(space: ChainSpace) -> tuple[nn.Module, nn.Module]:
    from evonas.supernet.ops import ConvBNAct, Head

    net = space.net
    stem = ConvBNAct(net.in_channels, net.stem_channels, 3)
    head = Head(net.stages[-1].width, net.head_channels, net.num_classes)
    return stem, head


def build_latency_table(
    space: ChainSpace | str,
    *,
    batch_size: int = 1,
    threads: int = 1,
    backend: str = "eager",
    warmup: int = 10,
    repeats: int = 50,
    progress: bool = True,
    layers: Iterable[int] | None = None,
    overhead: str = "residual",
    noise_threshold: float = 0.25,
    max_noisy_share: float = 0.2,
    clock: str = "wall",
    seed: int = 0,
) -> LatencyTable:
    """Time every (layer, option) of a chain space once, and the fixed part; returns the table.

    ``layers`` restricts the table to some layer positions, for quick checks of the
    entries: such a table has no fixed part (``overhead["method"] == "none"``) and
    ``predict`` refuses architectures, since it lacks the other layers. The
    result's ``warnings`` say "the machine is too busy to measure" when more than
    ``max_noisy_share`` of the measured entries have a spread above ``noise_threshold``.
    """
    from evonas.supernet.chain import build_standalone, make_op

    started = time.perf_counter()
    space = _chain_space(space)
    batch_size = _int_param("batch_size", batch_size, 1)
    threads = _int_param("threads", threads, 1)
    backend = _choice_param("backend", backend, BACKENDS)
    warmup = _int_param("warmup", warmup, 0)
    repeats = _int_param("repeats", repeats, 3)
    overhead = _choice_param("overhead", overhead, OVERHEAD_METHODS)
    noise_threshold = _float_param("noise_threshold", noise_threshold, 0.0, open_low=True)
    max_noisy_share = _float_param("max_noisy_share", max_noisy_share, 0.0, 1.0)
    clock = _check_clock(clock, threads)
    all_layers = range(len(space.slots))
    if layers is None:
        positions = list(all_layers)
    else:
        positions = sorted(set(layers))
        bad = [i for i in positions if isinstance(i, bool) or not isinstance(i, int) or i not in all_layers]
        if bad or not positions:
            raise ConfigError(
                f"The 'layers' parameter must list layer positions in [0, {len(space.slots) - 1}]; got {list(layers)!r}.",
                param="layers",
            )
    if backend == "onnxruntime":
        from evonas.export.onnx import _import_ort

        _import_ort()  # fail before timing anything when onnxruntime is missing
    full = positions == list(all_layers)
    device = describe_device(threads, batch_size, backend)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # initial weights (latency does not depend on them, but reproducible)
    net = space.net

    def batch(c: int, size: int) -> torch.Tensor:  # (B, C, H, W)
        return torch.randn(batch_size, c, size, size, generator=generator)

    jobs = [(i, code) for i in positions for code in space.dims[i].options]
    raw: dict[tuple[int, int], tuple[tuple[int, ...], dict | None]] = {}
    with _torch_threads(threads), tempfile.TemporaryDirectory(prefix="evonas-latency-") as tmp:
        runner = _Runner(backend, threads, Path(tmp), clock)
        # the cost of one call of an empty module: charged once per network
        call = runner.time(nn.Identity(), batch(net.in_channels, net.image_size), warmup, repeats)
        bar = tqdm(total=len(jobs) + (3 if full else 0), desc=f"latency {space.name} {backend} b{batch_size}", disable=not progress)
        for i, code in jobs:
            slot = space.slots[i]
            module = make_op(space, i, code, nn.BatchNorm2d)
            shape = (batch_size, slot.cin, slot.size_in, slot.size_in)
            if _identity_vanishes(module):
                raw[(i, code)] = (shape, None)
            else:
                raw[(i, code)] = (shape, runner.time(module, batch(slot.cin, slot.size_in), warmup, repeats))
            bar.update(1)

        # onnxruntime: each isolated layer pays the session's per-call cost that a network pays once
        per_call = call["median_ms"] if backend == "onnxruntime" else 0.0
        entries = []
        for (i, code), (shape, t) in raw.items():
            if t is None:
                entries.append(LatencyEntry(i, code, shape, 0.0, 0.0, 0.0, 0.0, 0.0, measured=False))
            else:
                entries.append(
                    LatencyEntry(
                        i, code, shape, max(t["median_ms"] - per_call, 0.0), t["p10_ms"], t["p90_ms"], t["spread"],
                        t["median_ms"],
                    )
                )
        info: dict[str, Any] = {"method": overhead if full else "none", "call_ms": call["median_ms"]}
        if full:
            # the components estimate: stem and head alone, plus one empty call
            stem, head = _stem_and_head(space)
            stem_t = runner.time(stem, batch(net.in_channels, net.image_size), warmup, repeats)
            bar.update(1)
            head_t = runner.time(head, batch(net.stages[-1].width, space.final_size), warmup, repeats)
            bar.update(1)
            stem_ms = max(stem_t["median_ms"] - per_call, 0.0)
            head_ms = max(head_t["median_ms"] - per_call, 0.0)
            info.update(components_ms=stem_ms + head_ms + call["median_ms"], stem_ms=stem_ms, head_ms=head_ms)
            # the residual estimate: the fastest network by the table, end to end, minus its table sum
            by_layer: dict[int, list[LatencyEntry]] = {}
            for e in entries:
                by_layer.setdefault(e.layer, []).append(e)
            fastest = tuple(min(by_layer[i], key=lambda e: e.median_ms).code for i in all_layers)
            ref = space.make(fastest)
            e2e = runner.time(build_standalone(space, ref), batch(net.in_channels, net.image_size), warmup, repeats)
            chosen = set(enumerate(fastest))
            layer_sum = sum(e.median_ms for e in entries if (e.layer, e.code) in chosen)
            info.update(
                residual_ms=e2e["median_ms"] - layer_sum,
                reference_arch=space.format(ref),
                reference_e2e_ms=e2e["median_ms"],
                reference_spread=e2e["spread"],
            )
            bar.update(1)
        bar.close()

    warnings: list[str] = []
    if full:
        overhead_ms = info["residual_ms"] if overhead == "residual" else info["components_ms"]
    else:
        overhead_ms = 0.0
        warnings.append(
            f"the table covers layers {positions} only: it has no fixed part and cannot predict whole networks"
        )
    measured = [e for e in entries if e.measured]
    noisy = [e for e in measured if e.spread > noise_threshold]
    if measured and len(noisy) / len(measured) > max_noisy_share:
        warnings.append(
            f"the machine is too busy to measure: {len(noisy)} of {len(measured)} entries have a relative "
            f"spread (p90 - p10) / median above {noise_threshold:g}; rebuild the table on an idle machine"
        )
    if overhead_ms < 0:
        warnings.append(f"the fixed part is negative ({overhead_ms:.4f} ms): the layers timed alone are slower than in a network")
    settings = {
        "backend": backend, "batch_size": batch_size, "threads": threads, "warmup": warmup, "repeats": repeats,
        "overhead": info["method"], "noise_threshold": noise_threshold, "max_noisy_share": max_noisy_share,
        "layers": positions, "clock": clock, "seed": seed,
    }
    return LatencyTable(
        space=space.name,
        entries=tuple(entries),
        overhead_ms=float(overhead_ms),
        overhead=info,
        device=device,
        settings=settings,
        build_seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
    )


# --- validation ----------------------------------------------------------------------------------
def _rank_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict:
    if len(measured) == 0:
        return {"mape": math.nan, "within_10pct": math.nan, "kendall_tau": math.nan, "samples": 0}
    error = np.abs(predicted - measured) / measured
    tau = math.nan
    if len(measured) >= 2 and np.ptp(predicted) > 0 and np.ptp(measured) > 0:
        from scipy.stats import kendalltau

        tau = float(kendalltau(predicted, measured).statistic)
    return {
        "mape": float(100 * error.mean()),
        "within_10pct": float((error <= 0.10).mean()),
        "kendall_tau": tau,
        "samples": int(len(measured)),
    }


def validate_latency(
    space: ChainSpace | str,
    table: LatencyTable,
    archs: Sequence[Arch | str],
    *,
    backend: str | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    module_factory: Callable[[Arch], nn.Module] | None = None,
    calibrate: int = 0,
    min_gain: float = 1.0,
    allow_foreign: bool = False,
    clock: str | None = None,
    progress: bool = False,
    seed: int = 0,
) -> dict:
    """Time ``archs`` end to end and compare with ``table.predict``; returns the metrics.

    Each network comes from ``module_factory(arch)`` (default ``build_standalone(space,
    arch)``; ``supernet.extract`` works too) and runs as ``backend`` (default: the
    table's) at the table's batch size and threads. The result has ``archs`` (per
    architecture ``predicted_ms``, ``measured_ms``, ``error_pct``, ``spread``, ``role``),
    ``mape`` (percent), ``within_10pct`` (fraction), ``kendall_tau`` and ``samples``,
    computed on the held-out architectures.

    With ``calibrate=k`` the first ``k`` architectures fit ``measured = a * predicted +
    b`` (least squares) and are left out of the metrics; ``correction`` reports the fit
    and its metrics on the rest, and ``correction["improves"]`` is True only when it
    lowers held-out MAPE by at least ``min_gain`` points (then use
    ``table.with_correction(a, b)``).
    """
    space = _chain_space(space)
    if table.space != space.name:
        raise ConfigError(f"The 'table' parameter was built for space {table.space!r}, not {space.name!r}.", param="table")
    settings = table.settings
    backend = _choice_param("backend", settings["backend"] if backend is None else backend, BACKENDS)
    batch_size = _int_param("batch_size", settings["batch_size"] if batch_size is None else batch_size, 1)
    threads = _int_param("threads", settings["threads"] if threads is None else threads, 1)
    warmup = _int_param("warmup", warmup, 0)
    repeats = _int_param("repeats", repeats, 3)
    calibrate = _int_param("calibrate", calibrate, 0)
    clock = _check_clock(settings.get("clock", "wall") if clock is None else clock, threads)
    min_gain = _float_param("min_gain", min_gain, 0.0)
    archs = [space.coerce(a) for a in archs]
    if not archs:
        raise ConfigError("The 'archs' parameter must hold at least one architecture; got none.", param="archs")
    if calibrate and len(archs) - calibrate < 2:
        raise ConfigError(
            f"The 'calibrate' parameter must leave at least 2 of the {len(archs)} architectures held out; got {calibrate}.",
            param="calibrate",
        )
    table.check_device(describe_device(threads, batch_size, backend), allow_foreign=allow_foreign)
    if module_factory is None:
        from evonas.supernet.chain import build_standalone

        def module_factory(arch: Arch) -> nn.Module:
            return build_standalone(space, arch)

    predicted = [table.predict(a) for a in archs]  # fails early on an incomplete table
    net = space.net
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, net.in_channels, net.image_size, net.image_size, generator=generator)  # (B, C, H, W)
    timings = []
    with _torch_threads(threads), tempfile.TemporaryDirectory(prefix="evonas-latency-") as tmp:
        runner = _Runner(backend, threads, Path(tmp), clock)
        for arch in tqdm(archs, desc=f"validate {space.name} {backend} b{batch_size}", disable=not progress):
            timings.append(runner.time(module_factory(arch), x, warmup, repeats))
    rows = []
    for k, (arch, pred, t) in enumerate(zip(archs, predicted, timings)):
        rows.append({
            "arch": space.format(arch),
            "predicted_ms": pred,
            "measured_ms": t["median_ms"],
            "error_pct": 100 * (pred - t["median_ms"]) / t["median_ms"],
            "spread": t["spread"],
            "role": "calibration" if k < calibrate else "test",
        })
    pred = np.array(predicted)
    meas = np.array([t["median_ms"] for t in timings])
    result: dict[str, Any] = {
        "space": space.name,
        "backend": backend,
        "batch_size": batch_size,
        "threads": threads,
        "clock": clock,
        **_rank_metrics(pred[calibrate:], meas[calibrate:]),
        "noisy": int(sum(t["spread"] > settings.get("noise_threshold", math.inf) for t in timings)),
        "archs": rows,
        "correction": None,
    }
    if calibrate:
        if calibrate >= 2 and np.ptp(pred[:calibrate]) > 0:
            a, b = (float(v) for v in np.polyfit(pred[:calibrate], meas[:calibrate], 1))
        else:  # one point (or no spread): a scale only
            a, b = float(meas[:calibrate].sum() / pred[:calibrate].sum()), 0.0
        corrected = _rank_metrics(a * pred[calibrate:] + b, meas[calibrate:])
        result["correction"] = {
            "a": a,
            "b": b,
            "calibration_samples": calibrate,
            **corrected,
            "improves": bool(corrected["mape"] <= result["mape"] - min_gain),
        }
    return result


# --- tables of a run directory -------------------------------------------------------------------
def table_path(run: Any, space: Space | str, *, backend: str = "eager", batch_size: int = 1, threads: int = 1) -> Path:
    """Where a run keeps the table of one setting: ``RUN/latency/SPACE-BACKEND-bB-tT.json``.

    ``run`` is an opened :class:`evonas.run.Run` or a run directory path.
    """
    from evonas.run.run import RunLayout

    name = space if isinstance(space, str) else space.name
    return RunLayout.of(getattr(run, "path", run)).latency_table_file(name, backend, batch_size, threads)


def load_or_build_table(
    run: Any,
    space: ChainSpace | str,
    *,
    backend: str = "eager",
    batch_size: int = 1,
    threads: int = 1,
    rebuild: bool = False,
    allow_foreign: bool = False,
    **build_options: Any,
) -> LatencyTable:
    """The run's table for this setting: loaded and checked against this device, or built and saved.

    ``rebuild`` builds a fresh table even when one is saved; ``build_options`` go to
    :func:`build_latency_table` (``warmup``, ``repeats``, ``progress``, ``clock``, ...).
    """
    space = _chain_space(space)
    path = table_path(run, space, backend=backend, batch_size=batch_size, threads=threads)
    if path.is_file() and not rebuild:
        table = LatencyTable.load(path)
        if table.space != space.name:
            raise ConfigError(f"The latency table {path} is for space {table.space!r}, not {space.name!r}; {REBUILD_HINT}.")
        table.check_device(describe_device(threads, batch_size, backend), allow_foreign=allow_foreign)
        return table
    table = build_latency_table(space, backend=backend, batch_size=batch_size, threads=threads, **build_options)
    table.save(path)
    return replace(table, source=str(path))
