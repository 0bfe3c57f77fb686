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

Fitted entries (``method="fitted"``, the default of a full build). Timed alone, the
layers of the small fmnist spaces mislead: at batch 1 an eager layer costs 0.10-0.15
ms whichever option it is (mb3_k3 vs mb6_k5 at one position differ by ~15%), i.e. it is
mostly per-operator dispatch, and the same layers in onnxruntime cost a tenth of that;
summed, the isolated times were 20-36% off end to end (eager over-, onnxruntime
under-estimating) on this project's busy 2-core machine, while two timings of the same
networks agreed within 4-6%. So the build also times a few hundred random whole
networks (:func:`fit_sample_size`; about a millisecond each at batch 1) in interleaved
rounds (:func:`time_interleaved`) and fits the entries and the fixed part to them by
ridge regression shrunk toward the isolated table (:mod:`evonas.evaluation.latency_fit`).
A simpler candidate sits between the two: the isolated table scaled, ``a * isolated +
b`` (entries ``a * isolated_ms``, fixed part ``a * isolated_overhead + b``; method
"scaled"), fitted to the same networks by relative least squares. A scale with ``a >
0`` keeps the isolated table's ranking and fixes only its level, while the per-entry
fit also moves the ranking, and at batch 1 mostly by noise: on 30 held-out networks
(benchmarks/results/latency.md; MAPE / share within 10% / Kendall tau) mobilenet-fmnist
eager batch 1 went from isolated 25.2% / 0.00 / 0.931 to 2.5% / 1.00 / 0.931 scaled
but 4.4% / 1.00 / 0.890 fitted, and macro-fmnist onnxruntime batch 1 to 4.3% / 0.90 /
0.903 scaled but 4.9% / 0.90 / 0.880 fitted, whereas on mobilenet-fmnist onnxruntime
batch 1 only the fit met the targets (4.8% / 0.93 fitted, 12.7% / 0.43 scaled). So the
choice is nested by complexity (:func:`~evonas.evaluation.latency_fit.choose_table`):
the scaled table replaces the isolated one only when its cross-validated MAPE beats
the isolated table's on the same networks by ``min_gain`` points, and the fit replaces
whichever of those was chosen only when its cross-validated MAPE beats that one's by
``min_gain`` points too, or when its held-out predictions rank the fitting networks
better (Kendall tau, by ``latency_fit.TAU_GAIN``) at no higher MAPE: whether the fit's
ranking is signal or noise differs from build to build (a later run of the same
benchmark ranked mobilenet-fmnist eager batch 1 with tau 0.899 fitted against 0.784
scaled), so each build decides on its own held-out networks; ``table.fit`` records the networks, every error, the noise,
``kind`` ("scaled", "fitted" or None) and the verdict, ``table.isolated()`` gives the
isolated table back, and ``validate_latency`` flags any network the table was fitted
to (``fit_overlap``). With
onnxruntime the fitting networks chain the layers' exported ONNX models
(:func:`_compose_onnx`) instead of exporting each network (seconds each with the
dynamo exporter); validation still times real exports.

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

from evonas.device import autocast

from search_spaces import Arch, ChainSpace, Space, get_space

from evonas.errors import ConfigError
from evonas.textfile import InputTooLarge, read_limited

__all__ = [
    "BACKENDS", "CLOCKS", "METHODS", "OVERHEAD_METHODS", "LatencyEntry", "LatencyTable", "build_latency_table", "describe_device",
    "device_key", "fit_sample_size", "load_or_build_table", "rank_metrics", "sample_archs", "table_path", "time_callable",
    "time_interleaved", "validate_latency", "networks_used",
]

BACKENDS = ("eager", "onnxruntime")
OVERHEAD_METHODS = ("residual", "components")
METHODS = ("fitted", "isolated")
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


def _check_timing_device(device: str, backend: str, clock: str) -> torch.device:
    """The device a table is timed on: a GPU only with the eager backend and the wall clock."""
    from evonas.device import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda" and backend != "eager":
        raise ConfigError(f"The 'device' parameter {device!r} needs the eager backend (onnxruntime tables are timed on "
                          f"the CPU); got backend {backend!r}.", param="device")
    if resolved.type == "cuda" and clock != "wall":
        raise ConfigError("The 'clock' parameter must be 'wall' on a GPU (the CPU clock does not see GPU time); "
                          f"got {clock!r}.", param="clock")
    return resolved


def _check_timing_precision(precision: str, device: torch.device, backend: str) -> str:
    """The precision a table is timed in: mixed precision (autocast) with the eager backend only."""
    from evonas.device import check_precision

    check_precision(precision, device)
    if precision != "fp32" and backend != "eager":
        raise ConfigError(f"The 'precision' parameter {precision!r} needs the eager backend (onnxruntime runs the exported "
                          f"fp32 graph); got backend {backend!r}.", param="precision")
    return precision


def _chain_space(space: Space | str) -> Space:
    """The space of a latency table: a chain preset or a user's model (a ModelSpace); others are refused."""
    from evonas.supernet.model_space import ModelSpace

    space = get_space(space) if isinstance(space, str) else space
    if not isinstance(space, (ChainSpace, ModelSpace)):
        raise ConfigError(
            f"The 'space' parameter must be a chain space (macro-*, mobilenet-*) or your own model for a latency "
            f"table; got {getattr(space, 'name', space)!r}.",
            param="space",
        )
    return space


def _pieces(space: Space) -> Iterator[tuple[int, int, nn.Module, tuple[int, ...]]]:
    """(dimension, option code, the option's module, one image's input shape) of every option of the space.

    A chain preset builds each layer's op at its slot; a user's model takes each
    choice's options from one fresh model, at the input shape its probe recorded.
    """
    from evonas.supernet.chain import make_op

    if isinstance(space, ChainSpace):
        for i, (slot, dim) in enumerate(zip(space.slots, space.dims)):
            for code in dim.options:
                yield i, code, make_op(space, i, code, nn.BatchNorm2d), (slot.cin, slot.size_in, slot.size_in)
        return
    model = space.new_model()
    for i, (path, dim, described) in enumerate(zip(space.choice_paths, space.dims, space.description["choices"])):
        shapes = described["input_shape"]
        if len(shapes) != 1 or not isinstance(shapes[0], (tuple, list)):
            raise ConfigError(f"choice {dim.label!r} of {space.name!r} takes {len(shapes)} inputs; latency tables time "
                              "choices of one tensor input", param="space")
        options = model.get_submodule(path).options
        for code, name in zip(dim.options, dim.names):
            yield i, code, options[name], tuple(int(v) for v in shapes[0][1:])


# --- the device ----------------------------------------------------------------------------------
def _cpu_model() -> str:
    from evonas.device import device_name

    return device_name("cpu")


def _ort_version() -> str | None:
    from importlib import metadata

    try:  # the installed version, without importing onnxruntime
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return None


def describe_device(threads: int, batch_size: int, backend: str, device: str = "cpu", precision: str = "fp32") -> dict:
    """What decides a timing here: the CPU (or GPU), threads, batch size and backend, with their digest.

    ``device_key`` is a short digest of ``cpu_model``, ``threads``, ``batch_size`` and
    ``backend`` (and ``gpu_model`` for a table timed on a GPU); the package versions and
    core count are recorded for the reader.
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
    if precision != "fp32":  # timed under autocast: a setting of its own (fp32 tables keep their keys)
        info["precision"] = precision
    if torch.device(device).type == "cuda":
        info.update(device=str(device), gpu_model=torch.cuda.get_device_name(torch.device(device)),
                    cuda=torch.version.cuda)
    info["device_key"] = device_key(info)
    return info


def device_key(description: dict) -> str:
    """The 12-hex-digit digest of the timing-deciding fields of a device description."""
    fields = {k: description.get(k) for k in KEY_FIELDS}
    for extra in ("gpu_model", "precision"):  # only when set: CPU fp32 tables keep the key they always had
        if description.get(extra):
            fields[extra] = description[extra]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _device_line(d: dict) -> str:
    where = f"{d['gpu_model']} GPU" if d.get("gpu_model") else d.get("cpu_model")
    return (
        f"{d.get('device_key')} ({where}, {d.get('threads')} thread(s), "
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


def time_interleaved(
    fns: Sequence[Callable[[], Any]],
    *,
    warmup: int = 2,
    rounds: int = 5,
    min_repeat_ms: float = 0.2,
    clock: str = "wall",
    seed: int = 0,
    budget_s: float = 0.0,
    max_rounds: int | None = None,
) -> list[dict]:
    """Time several callables in rounds, each round calling every one once in a fresh order.

    Returns per callable what :func:`time_callable` returns, over ``rounds`` repeats,
    plus ``half_medians_ms``: the medians of the even and of the odd rounds (two
    interleaved half-measurements whose agreement tells how repeatable the timing is).
    Timing network after network in turn would give each the load of its own few
    seconds; in rounds a burst of load from another process lands on every network
    alike, and the median over rounds drops it. Each repeat calls a callable enough
    times for ``min_repeat_ms`` (measured once, after its ``warmup`` calls).

    ``budget_s`` > 0 adds rounds while they fit in about that many seconds (estimated
    from those single calls), up to ``max_rounds`` (None: ``rounds``, so no more): cheap
    callables then get many rounds within that time, and ``rounds`` stays the least.
    """
    clock = _choice_param("clock", clock, CLOCKS)
    now = time.perf_counter_ns if clock == "wall" else time.process_time_ns
    warmup = _int_param("warmup", warmup, 0)
    rounds = _int_param("rounds", rounds, 1)
    budget_s = _float_param("budget_s", budget_s, 0.0)
    max_rounds = rounds if max_rounds is None else max(rounds, _int_param("max_rounds", max_rounds, 1))
    numbers = []
    per_round = 0.0  # seconds one round takes, from one call of each
    for fn in fns:
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        one = time.perf_counter() - start
        numbers.append(max(1, min(1000, math.ceil(min_repeat_ms / 1000 / max(one, 1e-9)))))
        per_round += one * numbers[-1]
    if budget_s > 0 and fns:
        rounds = max(rounds, min(max_rounds, int(budget_s / max(per_round, 1e-9))))
    times = np.empty((len(fns), rounds))
    rng = np.random.default_rng(seed)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for k in rng.permutation(len(fns)):
                fn, number = fns[k], numbers[k]
                start = now()
                for _ in range(number):
                    fn()
                times[k, r] = (now() - start) / number / 1e6
    finally:
        if gc_was_enabled:
            gc.enable()
    out = []
    for k in range(len(fns)):
        p10, median, p90 = (float(v) for v in np.percentile(times[k], [10, 50, 90]))
        out.append({
            "median_ms": median, "p10_ms": p10, "p90_ms": p90, "min_ms": float(times[k].min()),
            "mean_ms": float(times[k].mean()), "spread": (p90 - p10) / median if median > 0 else 0.0,
            "repeats": rounds, "number": numbers[k], "warmup": warmup, "clock": clock,
            "half_medians_ms": [float(np.median(times[k, 0::2])), float(np.median(times[k, 1::2]))] if rounds >= 2 else None,
        })
    return out


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
    """Turns a module and an input batch into a timed callable for one backend.

    With onnxruntime every module is exported once per ``key`` into ``export_dir``
    (the models have a dynamic batch axis, so one file serves every batch size), and
    :meth:`composed` chains exported pieces into one network without exporting it.
    """

    def __init__(self, backend: str, threads: int, workdir: Path, clock: str = "wall",
                 export_dir: Path | None = None, device: str = "cpu", precision: str = "fp32") -> None:
        self.backend = backend
        self.device = torch.device(device)
        self.precision = precision
        self.clock = clock
        self.threads = threads
        self.workdir = workdir
        self.export_dir = Path(export_dir) if export_dir is not None else workdir
        self._n = 0
        if backend == "onnxruntime":
            from evonas.export.onnx import require_onnx

            require_onnx()

    def onnx_file(self, module: nn.Module, x: torch.Tensor, key: str | None = None) -> Path:
        """The ONNX file of ``module`` (exported now unless ``key``'s file exists)."""
        from evonas.export.onnx import export_onnx

        if key is None:
            self._n += 1
            path = self.workdir / f"m{self._n}.onnx"
        else:
            path = self.export_dir / f"{key}.onnx"
            if path.is_file():
                return path
        if isinstance(module, nn.Identity):
            _identity_onnx(tuple(x.shape[1:]), path)  # the empty model, without the exporter's seconds
        else:
            export_onnx(module.eval(), x, path)
        return path

    def session_callable(self, path: Path, x: torch.Tensor) -> Callable[[], Any]:
        from evonas.export.onnx import INPUT_NAME, onnx_session

        session = onnx_session(path, self.threads)
        feed = {INPUT_NAME: np.ascontiguousarray(x.numpy())}
        return lambda: session.run(None, feed)

    def callable(self, module: nn.Module, x: torch.Tensor, key: str | None = None) -> Callable[[], Any]:
        module = module.eval()
        if self.backend == "eager" and self.device.type == "cuda":  # each call waits for the GPU to finish
            module, x, device, precision = module.to(self.device), x.to(self.device), self.device, self.precision

            def run_synchronised() -> None:
                with autocast(device, precision):
                    module(x)
                torch.cuda.synchronize(device)

            return run_synchronised
        if self.backend == "eager" and self.precision != "fp32":
            module = module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
            precision = self.precision

            def run_autocast() -> None:
                with autocast("cpu", precision):
                    module(x)

            return run_autocast
        if self.backend == "eager":
            module = module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
            return lambda: module(x)
        return self.session_callable(self.onnx_file(module, x, key), x)

    def composed(self, pieces: Sequence[Path], x: torch.Tensor) -> Callable[[], Any]:
        """onnxruntime: a callable of the network that chains the ONNX ``pieces`` in order."""
        self._n += 1
        path = self.workdir / f"c{self._n}.onnx"
        _compose_onnx(pieces, path)
        return self.session_callable(path, x)

    def time(self, module: nn.Module, x: torch.Tensor, warmup: int, repeats: int, key: str | None = None) -> dict:
        return time_callable(self.callable(module, x, key), warmup=warmup, repeats=repeats, clock=self.clock)


def _compose_onnx(pieces: Sequence[Path], path: Path) -> None:
    """Chain ONNX models with one input ``input`` and one output ``logits`` into one model at ``path``.

    Piece k's names get the prefix ``pK/``; its input is the previous piece's output. The
    chained graph holds the same operators as the network exported whole, so onnxruntime
    optimises it alike (checked end to end by ``validate_latency`` on real exports).
    """
    import onnx
    from onnx import helper

    from evonas.export.onnx import INPUT_NAME, OUTPUT_NAME

    models = [onnx.load(str(p)) for p in pieces]
    nodes, inits, infos, functions = [], [], [], {}
    previous = INPUT_NAME
    for k, m in enumerate(models):
        last = k == len(models) - 1
        out = OUTPUT_NAME if last else f"p{k}/{OUTPUT_NAME}"

        def rename(name: str, k: int = k, prev: str = previous, out: str = out) -> str:
            if not name:
                return name  # an omitted optional input
            if name == INPUT_NAME:
                return prev
            if name == OUTPUT_NAME:
                return out
            return f"p{k}/{name}"

        g = m.graph
        for node in g.node:
            node = onnx.NodeProto.FromString(node.SerializeToString())
            node.input[:] = [rename(n) for n in node.input]
            node.output[:] = [rename(n) for n in node.output]
            node.name = f"p{k}/{node.name}"
            nodes.append(node)
        for init in g.initializer:
            init = onnx.TensorProto.FromString(init.SerializeToString())
            init.name = rename(init.name)
            inits.append(init)
        for vi in g.value_info:
            vi = onnx.ValueInfoProto.FromString(vi.SerializeToString())
            vi.name = rename(vi.name)
            infos.append(vi)
        for f in m.functions:
            functions.setdefault((f.domain, f.name), f)
        previous = out
    graph = helper.make_graph(nodes, "composed", [models[0].graph.input[0]], [models[-1].graph.output[0]],
                              initializer=inits, value_info=infos)
    opsets: dict[str, int] = {}
    for m in models:
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              functions=list(functions.values()))
    model.ir_version = max(m.ir_version for m in models)
    onnx.save(model, str(path))


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


# --- building ------------------------------------------------------------------------------------
def _identity_vanishes(module: nn.Module) -> bool:
    return isinstance(module, nn.Identity)


def _stem_and_head(space: ChainSpace) -> tuple[nn.Module, nn.Module]:
    from evonas.supernet.ops import ConvBNAct, Head

    net = space.net
    stem = ConvBNAct(net.in_channels, net.stem_channels, 3)
    head = Head(net.stages[-1].width, net.head_channels, net.num_classes)
    return stem, head


def fit_sample_size(space: ChainSpace | str) -> int:
    """The default number of networks a fitted table is fitted to: 3 per fitted entry, 60 to 300."""
    space = _chain_space(space)
    columns = sum(1 for _, _, module, _ in _pieces(space) if not _identity_vanishes(module))
    return int(min(300, max(60, 3 * columns)))


def networks_used(fit: dict | None) -> tuple[str, ...]:
    """Every network a table's build timed whole (fitting and confirming): validation samples none of them."""
    fit = fit or {}
    return tuple(dict.fromkeys(tuple(fit.get("archs", ())) + tuple((fit.get("confirm") or {}).get("archs", ()))
                               + tuple((fit.get("fresh") or {}).get("archs", ()))))


def sample_archs(space: ChainSpace, n: int, rng: Any, exclude: Iterable[str] = ()) -> list[Arch]:
    """Up to ``n`` distinct canonical architectures drawn with ``rng`` (a ``random.Random``), none in ``exclude``."""
    seen: dict[str, Arch] = {}
    skip = set(exclude)
    for _ in range(100 * n):
        arch = space.canonical(space.sample(rng))
        key = space.format(arch)
        if key not in skip:
            seen.setdefault(key, arch)
        if len(seen) == n:
            break
    return list(seen.values())


def _piece_key(space: ChainSpace, part: str) -> str:
    return f"{space.name}-{part}"


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
    method: str = "fitted",
    fit_samples: int | None = None,
    fit_rounds: int = 7,
    fit_seconds: float | None = None,
    min_gain: float = 1.0,
    noise_threshold: float = 0.25,
    max_noisy_share: float = 0.2,
    clock: str = "wall",
    seed: int = 0,
    export_dir: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> LatencyTable:
    """Time every (layer, option) of a chain space, and the fixed part; with ``method="fitted"`` fit them to networks.

    ``layers`` restricts the table to some layer positions, for quick checks of the
    entries: such a table has no fixed part (``overhead["method"] == "none"``) and
    ``predict`` refuses architectures, since it lacks the other layers. The
    result's ``warnings`` say "the machine is too busy to measure" when more than
    ``max_noisy_share`` of the measured entries (or fitting networks) have a spread
    above ``noise_threshold``.

    ``method="fitted"`` (the default) then times ``fit_samples`` random whole networks
    (None: :func:`fit_sample_size`) in at least ``fit_rounds`` interleaved rounds (more
    while the rounds fit in ``fit_seconds``, None: ``FIT_SECONDS``, up to
    ``MAX_FIT_ROUNDS``), in groups of at most ``FIT_GROUP`` networks, and fits the
    entries and the fixed part to them (:class:`AdditiveLatencyFit`, shrunk toward the
    isolated timings), and the isolated table's predictions too (``a * isolated + b``,
    the "scaled" table). The scaled table replaces the isolated one only when its
    cross-validated MAPE beats the isolated table's MAPE on the same networks by
    ``min_gain`` points, and the fit replaces whichever was chosen only when it beats
    that one by ``min_gain`` points; the winner must also beat the candidate below it
    on a few fresh networks, or the build falls back. ``table.fit`` records the errors,
    the networks used, ``kind`` and the verdict, and ``table.isolated()`` gives the
    isolated table back. With onnxruntime the
    fitting networks chain the layers' exported ONNX models (no export per network).
    ``export_dir`` keeps the exported ONNX models for reuse (one file serves every
    batch size).
    """
    from evonas.evaluation.latency_fit import AdditiveLatencyFit
    from evonas.supernet import build_standalone, input_shape

    started = time.perf_counter()
    space = _chain_space(space)
    chain = isinstance(space, ChainSpace)
    batch_size = _int_param("batch_size", batch_size, 1)
    threads = _int_param("threads", threads, 1)
    backend = _choice_param("backend", backend, BACKENDS)
    warmup = _int_param("warmup", warmup, 0)
    repeats = _int_param("repeats", repeats, 3)
    overhead = _choice_param("overhead", overhead, OVERHEAD_METHODS)
    method = _choice_param("method", method, METHODS)
    if fit_samples is not None:
        fit_samples = _int_param("fit_samples", fit_samples, 10)
    fit_rounds = _int_param("fit_rounds", fit_rounds, 1)
    fit_seconds = FIT_SECONDS if fit_seconds is None else _float_param("fit_seconds", fit_seconds, 0.0)
    min_gain = _float_param("min_gain", min_gain, -math.inf)  # < 0: keep a fit even when slightly worse
    noise_threshold = _float_param("noise_threshold", noise_threshold, 0.0, open_low=True)
    max_noisy_share = _float_param("max_noisy_share", max_noisy_share, 0.0, 1.0)
    clock = _check_clock(clock, threads)
    device = _check_timing_device(device, backend, clock)
    precision = _check_timing_precision(precision, device, backend)
    all_layers = range(len(space.dims))
    if layers is None:
        positions = list(all_layers)
    else:
        positions = sorted(set(layers))
        bad = [i for i in positions if isinstance(i, bool) or not isinstance(i, int) or i not in all_layers]
        if bad or not positions:
            raise ConfigError(
                f"The 'layers' parameter must list layer positions in [0, {len(space.dims) - 1}]; got {list(layers)!r}.",
                param="layers",
            )
    if not chain and backend == "onnxruntime":
        raise ConfigError("The 'backend' parameter must be 'eager' for your own model's latency table (onnxruntime "
                          "tables compose the chain presets' layers); got 'onnxruntime'.", param="backend")
    if not chain and overhead == "components":
        raise ConfigError("The 'overhead' parameter must be 'residual' for your own model's latency table (the "
                          "components are the chain presets' stem and head); got 'components'.", param="overhead")
    if backend == "onnxruntime":
        from evonas.export.onnx import _import_ort

        _import_ort()  # fail before timing anything when onnxruntime is missing
    full = positions == list(all_layers)
    # a fit needs enough distinct networks for its cross-validation (5 folds of 2 at least, and fresh ones to confirm)
    fitting = full and method == "fitted" and space.num_strings >= MIN_FIT_NETWORKS
    n_fit = (fit_samples or fit_sample_size(space)) if fitting else 0
    timing_device = device
    device = describe_device(threads, batch_size, backend, timing_device, precision)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # initial weights (latency does not depend on them, but reproducible)
    image = input_shape(space)

    def batch(shape: tuple[int, ...]) -> torch.Tensor:  # (B, *shape)
        return torch.randn(batch_size, *shape, generator=generator)

    jobs = [piece for piece in _pieces(space) if piece[0] in positions]
    raw: dict[tuple[int, int], tuple[tuple[int, ...], dict | None]] = {}
    with _torch_threads(threads), tempfile.TemporaryDirectory(prefix="evonas-latency-") as tmp:
        if export_dir is not None:
            Path(export_dir).mkdir(parents=True, exist_ok=True)
        runner = _Runner(backend, threads, Path(tmp), clock, export_dir=export_dir, device=timing_device,
                         precision=precision)
        # the cost of one call of an empty module: charged once per network
        call = runner.time(nn.Identity(), batch(image), warmup, repeats)
        total = len(jobs) + (3 if full else 0) + (1 if fitting else 0)
        bar = tqdm(total=total, desc=f"latency {space.name} {backend} b{batch_size}", disable=not progress)
        for i, code, module, piece_shape in jobs:
            shape = (batch_size, *piece_shape)
            if _identity_vanishes(module):
                raw[(i, code)] = (shape, None)
            else:
                key = _piece_key(space, f"L{i}-c{code}")
                raw[(i, code)] = (shape, runner.time(module, batch(piece_shape), warmup, repeats, key))
            bar.update(1)

        # onnxruntime: each isolated layer pays the session's per-call cost that a network pays once
        per_call = call["median_ms"] if backend == "onnxruntime" else 0.0
        entries = []
        for (i, code), (shape, t) in raw.items():
            if t is None:
                entries.append(LatencyEntry(i, code, shape, 0.0, 0.0, 0.0, 0.0, 0.0, measured=False, isolated_ms=0.0))
            else:
                net_ms = max(t["median_ms"] - per_call, 0.0)
                entries.append(
                    LatencyEntry(
                        i, code, shape, net_ms, t["p10_ms"], t["p90_ms"], t["spread"], t["median_ms"], isolated_ms=net_ms,
                    )
                )
        info: dict[str, Any] = {"method": overhead if full else "none", "call_ms": call["median_ms"]}
        fit_info: dict[str, Any] | None = None
        if full and chain:
            # the components estimate: stem and head alone, plus one empty call
            stem, head = _stem_and_head(space)
            stem_t = runner.time(stem, batch(image), warmup, repeats, _piece_key(space, "stem"))
            bar.update(1)
            net = space.net
            head_t = runner.time(head, batch((net.stages[-1].width, space.final_size, space.final_size)), warmup, repeats,
                                 _piece_key(space, "head"))
            bar.update(1)
            stem_ms = max(stem_t["median_ms"] - per_call, 0.0)
            head_ms = max(head_t["median_ms"] - per_call, 0.0)
            info.update(components_ms=stem_ms + head_ms + call["median_ms"], stem_ms=stem_ms, head_ms=head_ms)
        elif full:
            bar.update(2)  # a user's model has no separate stem and head: the residual is its fixed part
        if full:
            # the residual estimate: the fastest network by the table, end to end, minus its table sum
            by_layer: dict[int, list[LatencyEntry]] = {}
            for e in entries:
                by_layer.setdefault(e.layer, []).append(e)
            fastest = tuple(min(by_layer[i], key=lambda e: e.median_ms).code for i in all_layers)
            ref = space.make(fastest)
            e2e = runner.time(build_standalone(space, ref), batch(image), warmup, repeats)
            chosen = set(enumerate(fastest))
            layer_sum = sum(e.median_ms for e in entries if (e.layer, e.code) in chosen)
            info.update(
                residual_ms=e2e["median_ms"] - layer_sum,
                reference_arch=space.format(ref),
                reference_e2e_ms=e2e["median_ms"],
                reference_spread=e2e["spread"],
            )
            bar.update(1)
            isolated_overhead = info["residual_ms"] if overhead == "residual" else info["components_ms"]
            if fitting:
                fit_info, entries = _fit_to_networks(
                    space, entries, isolated_overhead, runner, batch(image), n_fit,
                    fit_rounds=fit_rounds, fit_seconds=fit_seconds, warmup=min(warmup, 2), min_gain=min_gain, seed=seed,
                    noise_threshold=noise_threshold, model=AdditiveLatencyFit,
                )
                bar.update(1)
        bar.close()

    warnings: list[str] = []
    if full:
        overhead_ms = isolated_overhead
        if fit_info is not None:
            fit_info["isolated_overhead_ms"] = float(isolated_overhead)
            if fit_info["kind"] == "fitted":
                overhead_ms = fit_info["intercept_ms"]
            elif fit_info["kind"] == "scaled":
                overhead_ms = fit_info["scaled_a"] * isolated_overhead + fit_info["scaled_b"]
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
    if fit_info is not None and fit_info["noisy_share"] > max_noisy_share and not any("too busy" in w for w in warnings):
        warnings.append(
            f"the machine is too busy to measure: {fit_info['noisy_networks']} of {fit_info['samples']} fitting networks "
            f"have a relative spread above {noise_threshold:g}; rebuild the table on an idle machine"
        )
    if overhead_ms < 0:
        warnings.append(f"the fixed part is negative ({overhead_ms:.4f} ms): the layers timed alone are slower than in a network")
    settings = {
        "backend": backend, "batch_size": batch_size, "threads": threads, "warmup": warmup, "repeats": repeats,
        "overhead": info["method"], "noise_threshold": noise_threshold, "max_noisy_share": max_noisy_share,
        "layers": positions, "clock": clock, "seed": seed, "method": "fitted" if fitting else "isolated",
        "fit_samples": n_fit, "fit_rounds": fit_rounds if fitting else 0, "fit_seconds": fit_seconds if fitting else 0,
        "min_gain": min_gain, "device": str(timing_device), "precision": precision,
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
        fit=fit_info,
    )


def _fit_to_networks(
    space: ChainSpace,
    entries: list[LatencyEntry],
    isolated_overhead: float,
    runner: _Runner,
    x: torch.Tensor,
    n: int,
    *,
    fit_rounds: int,
    warmup: int,
    fit_seconds: float = 0.0,
    min_gain: float,
    seed: int,
    noise_threshold: float,
    model: Any,
    confirm_samples: int = 10,
) -> tuple[dict, list[LatencyEntry]]:
    """Time ``n`` random networks, fit the scaled and the per-entry table to them, and keep the simplest that wins.

    The decision is :func:`choose_table`'s on these networks, then :func:`confirm_choice`'s
    on fresh ones; this function times the networks and turns the winner into entries.
    """
    import random

    from evonas.evaluation.latency_fit import KINDS, choose_table, confirm_choice
    from evonas.supernet import build_standalone

    started = time.perf_counter()
    archs = sample_archs(space, n, random.Random(f"latency-fit-{seed}"))
    # the fresh networks of the confirmation, whole (a real export with onnxruntime), as `latency validate` builds
    # them, but timed in the same rounds as the fitting networks: timed apart, ten networks at a time, they ran up to
    # a third faster than among many (caches stay warm), and the check rejected tables that validated well
    fresh = sample_archs(space, confirm_samples, random.Random(f"latency-confirm-{seed}"),
                         exclude=set(map(space.format, archs))) if confirm_samples > 0 else []
    timed = {(e.layer, e.code) for e in entries if e.measured}

    def make(k: int) -> Callable[[], Any]:
        if k >= len(archs):
            return runner.callable(build_standalone(space, fresh[k - len(archs)]), x)
        arch = archs[k]
        if runner.backend == "eager":
            return runner.callable(build_standalone(space, arch), x)
        # chain the layers' ONNX models: exporting every network would take seconds each
        pieces = [runner.export_dir / f"{_piece_key(space, 'stem')}.onnx"]
        pieces += [runner.export_dir / f"{_piece_key(space, f'L{i}-c{c}')}.onnx"
                   for i, c in enumerate(arch.choices) if (i, c) in timed]
        pieces.append(runner.export_dir / f"{_piece_key(space, 'head')}.onnx")
        return runner.composed(pieces, x)

    timed_all = _time_in_groups(make, len(archs) + len(fresh), warmup=warmup, rounds=fit_rounds, clock=runner.clock,
                                seed=seed, seconds=fit_seconds, max_rounds=MAX_FIT_ROUNDS)
    stats, fresh_ms = timed_all[:len(archs)], np.array([t["median_ms"] for t in timed_all[len(archs):]])
    y = np.array([t["median_ms"] for t in stats])
    columns = [e for e in entries if e.measured]
    index = {(e.layer, e.code): j for j, e in enumerate(columns)}
    X = np.zeros((len(archs), len(columns)))
    for r, arch in enumerate(archs):
        for i, c in enumerate(arch.choices):
            if (i, c) in index:
                X[r, index[(i, c)]] = 1.0
    prior = np.array([e.median_ms for e in columns])
    choice = choose_table(X, y, prior, isolated_overhead, min_gain=min_gain, seed=seed, model=model)
    scaled_ok = "scaled" in choice.cv_mape
    path = [choice.kind]
    confirm = None
    if choice.kind != "isolated" and fresh:
        confirm = _confirm_fit(space, fresh, fresh_ms, index, prior, isolated_overhead, choice.fitted,
                               scaled=(choice.scaled.a_, choice.scaled.b_) if scaled_ok else None)
        path = confirm_choice(choice, {k: confirm.get(f"{k}_mape") for k in KINDS}, CONFIRM_MARGIN)
    kept = path[-1]
    fitted, scaled = choice.fitted, choice.scaled
    spreads = np.array([t["spread"] for t in stats])
    info = {
        "method": "isolated, scaled (a * isolated + b) or ridge toward the isolated table: the simplest that wins",
        "kind": None if kept == "isolated" else kept,
        "used": kept != "isolated",
        "samples": len(archs),
        "rounds": int(min((t["repeats"] for t in timed_all), default=fit_rounds)),  # the least of any group
        "rounds_max": int(max((t["repeats"] for t in timed_all), default=fit_rounds)),
        "group": FIT_GROUP,  # at most this many networks timed together (fitting and fresh ones alike)
        "groups": _group_count(len(timed_all)),
        "lambda": fitted.lambda_,
        "cv_mape": fitted.cv_mape_,
        "cv_mape_by_lambda": {str(k): v for k, v in fitted.cv_mape_by_lambda_.items()},
        "train_mape": fitted.train_mape_,
        "isolated_mape": choice.cv_mape["isolated"],
        "cv_kendall_tau": {k: _finite(v) for k, v in choice.cv_tau.items()},  # of the held-out predictions
        "fitted_for": choice.reason or None,  # why the fit won on these networks: "mape" or "tau" (None: it did not)
        # the per-entry fit, kept or not, so a benchmark can judge it on the networks it validates
        "fitted_coef": [[e.layer, e.code, float(w)] for e, w in zip(columns, fitted.coef_)],
        "isolated_within_10pct": choice.isolated_within_10pct,
        "intercept_ms": float(fitted.intercept_),
        "scaled_a": scaled.a_,
        "scaled_b": scaled.b_,
        "scaled_cv_mape": scaled.cv_mape_ if scaled_ok else None,  # None: a <= 0, not a candidate
        "scaled_train_mape": scaled.train_mape_,
        "median_spread": float(np.median(spreads)),
        # the fitting rounds against themselves (even vs odd rounds, as `validate_latency` reports its own): low, and
        # the fit learns the noise of these rounds (benchmarks/latency.py shows it per setting)
        "retest_kendall_tau": _finite(retest_tau(stats)),  # None: a single round
        "noisy_networks": int((spreads > noise_threshold).sum()),
        "noisy_share": float((spreads > noise_threshold).mean()),
        "seconds": time.perf_counter() - started,
        "archs": [space.format(a) for a in archs],
        # the fresh whole networks and their times in these rounds: `validate_latency` times them again to see
        # whether the machine has changed since (its drift)
        "fresh": {"archs": [space.format(a) for a in fresh], "times_ms": [float(v) for v in fresh_ms]} if fresh else None,
        "confirm": confirm,
        "verdict": _verdict(choice, path, confirm, min_gain),
    }
    if kept == "fitted":
        coef = dict(zip(index, fitted.coef_))
        entries = [replace(e, median_ms=float(coef[(e.layer, e.code)])) if e.measured else e for e in entries]
    elif kept == "scaled":
        entries = [replace(e, median_ms=float(scaled.a_ * e.median_ms)) if e.measured else e for e in entries]
    return info, entries


# How many networks the build times together. Timed among 288 more, the same 35 networks (mobilenet-fmnist, eager,
# batch 32) ran 5% slower at the median (up to 24%) than among themselves, and
# ranked with Kendall tau 0.84 against that timing (0.95 for 7 rounds in a group; benchmarks/results/
# latency_context.md). A fit to networks timed all at once learned that setting: the isolated table was 21.8% off
# them and the fit kept validated at 26.8% MAPE; timed in these groups, the isolated table was 3.0% off them and
# validated at 1.6% (benchmarks/results/latency.md). Groups about as large as `latency validate` times together (40
# networks by default, its samples and the 10 drift networks; 45 in benchmarks/latency.py) give the fit, the
# check on fresh networks and the validation one setting. The price: groups are timed one after another, so a
# burst of load moves one group's networks together rather than every network alike. Not solved here: the
# process's memory history moves single networks too (right after 288 networks were let go, the 35 timed
# erratically, retest tau 0.44; at the end of the process a tenth of them ran 30% faster than at its start).
FIT_GROUP = 45
MIN_FIT_NETWORKS = 30  # a space with fewer distinct networks keeps its isolated table (nothing to fit it to)
# The fitting rounds: at least `fit_rounds`, more while they take about FIT_SECONDS in all (warm-up apart). At
# batch 1, up to 50 rounds let the fitting networks' medians rank themselves (even against odd rounds) with
# 0.92-0.95 (benchmarks/results/latency.md); with 7 rounds a run of `benchmarks/latency.py --fit-seconds 0` gave
# 0.81-0.86 there. Rounds of cheap networks cost little: the build's time goes to preparing the networks.
FIT_SECONDS = 20.0
MAX_FIT_ROUNDS = 50


def _group_count(total: int, group: int | None = None) -> int:
    """How many groups of at most ``group`` (None: ``FIT_GROUP``) networks ``total`` networks make (at least one)."""
    group = _int_param("group", FIT_GROUP if group is None else group, 1)
    return max(1, math.ceil(total / group))


def _time_in_groups(make: Callable[[int], Callable[[], Any]], total: int, *, group: int | None = None,
                    seconds: float = 0.0, **timing: Any) -> list[dict]:
    """Time callables ``make(0..total-1)`` in groups of at most ``group`` (None: ``FIT_GROUP``) networks each.

    The networks are dealt out in turn (network ``k`` to group ``k mod groups``), so the
    fitting networks (first) and the fresh ones (last) are spread over the groups; each group is
    built, timed in interleaved rounds (:func:`time_interleaved`; ``timing``: its
    keywords, its seed plus the group's number) and let go before the next is built.
    ``seconds`` is shared among the groups as their ``budget_s``. Returns the timings in
    ``make``'s order.
    """
    count = _group_count(total, group)
    seed = timing.pop("seed", 0)
    out: list[dict | None] = [None] * total
    for g in range(count):
        ks = list(range(g, total, count))
        fns = [make(k) for k in ks]
        for k, t in zip(ks, time_interleaved(fns, seed=seed + g, budget_s=seconds / count, **timing)):
            out[k] = t
        del fns
        gc.collect()
    return out  # type: ignore[return-value]


def _finite(value: float) -> float | None:
    """``value``, or None for NaN: a table saved as JSON must load back equal (NaN never equals itself)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _confirm_fit(space: ChainSpace, archs: Sequence[Arch], y: np.ndarray, index: dict, prior: np.ndarray,
                 isolated_overhead: float, fitted: Any, scaled: tuple[float, float] | None = None) -> dict:
    """MAPE of the isolated, the scaled (``scaled = (a, b)``; None: no candidate) and the fitted table on fresh
    networks ``archs``, each timed whole (a real export with onnxruntime), as ``validate_latency`` builds them, in
    the fitting networks' rounds (``y``: their median times).

    With onnxruntime the fitting networks chain per-layer pieces, which can bias them
    against a whole network; a candidate is only kept when it does no worse than the one
    below it here (:func:`confirm_choice`, ``CONFIRM_MARGIN``).
    """
    X = np.zeros((len(archs), len(index)))
    for r, arch in enumerate(archs):
        for i, c in enumerate(arch.choices):
            if (i, c) in index:
                X[r, index[(i, c)]] = 1.0
    iso = X @ prior + isolated_overhead
    fit = X @ np.asarray(fitted.coef_, dtype=float) + float(fitted.intercept_)

    def mape(pred: np.ndarray) -> float:
        return float(100 * np.mean(np.abs(pred - y) / y))

    return {"samples": len(archs), "isolated_mape": mape(iso),
            "scaled_mape": mape(scaled[0] * iso + scaled[1]) if scaled is not None else None,
            "fitted_mape": mape(fit), "archs": [space.format(a) for a in archs]}


_NAMES = {"isolated": "the isolated table", "scaled": "the scaled table", "fitted": "the fit"}
_FRESH = "fresh networks, whole as `latency validate` builds them, timed in the same rounds"
# On the fresh networks a candidate must only do no worse than the one below it: the
# margin (min_gain) was already required by cross-validation on hundreds of networks,
# and asking for it again on ten threw away tables that held out well (benchmarks/
# latency.py, macro-fmnist eager batch 1: the scaled table 13.7% vs isolated 14.1% on
# the ten, rejected; 1.7% vs 23.5% on the 30 validation networks).
CONFIRM_MARGIN = 0.0


def _verdict(choice: Any, path: list[str], confirm: dict | None, min_gain: float) -> str:
    """One plain sentence: which table was kept, and the errors that decided it (see ``choose_table``)."""
    from evonas.evaluation.latency_fit import TAU_GAIN

    cv = choice.cv_mape
    kind = choice.kind
    if kind == "isolated":
        if "scaled" in cv:
            return (f"isolated kept: neither the fit's held-out MAPE {cv['fitted']:.1f}% nor the scaled table's "
                    f"{cv['scaled']:.1f}% beats the isolated table's {cv['isolated']:.1f}% by {min_gain:g} points")
        return (f"isolated kept: the fit's held-out MAPE {cv['fitted']:.1f}% does not beat the isolated table's "
                f"{cv['isolated']:.1f}% by {min_gain:g} points (no scaled table: its scale a = {choice.scaled.a_:.3g} "
                "is not positive)")

    def conf(k: str) -> str:
        return f"{confirm[f'{k}_mape']:.1f}%"

    if len(path) == 1:  # kept as chosen
        below = choice.below(kind)
        if kind == "scaled":
            text = (f"scaled: isolated times {choice.scaled.a_:.3f} plus {choice.scaled.b_:.4f} ms, held-out MAPE "
                    f"{cv['scaled']:.1f}% vs isolated {cv['isolated']:.1f}% on the same networks (the fit's "
                    f"{cv['fitted']:.1f}% does not beat it by {min_gain:g} points, nor does its tau "
                    f"{choice.cv_tau['fitted']:.3f} beat {choice.ranking_baseline:.3f} by {TAU_GAIN:g} at no higher "
                    "MAPE)")
        elif choice.reason == "tau":
            tau = choice.cv_tau
            text = (f"fitted: ranks the held-out networks with Kendall tau {tau['fitted']:.3f} vs {below} "
                    f"{choice.ranking_baseline:.3f} at MAPE {cv['fitted']:.1f}% vs {cv[below]:.1f}% on the same networks")
        else:
            text = (f"fitted: held-out MAPE {cv['fitted']:.1f}% vs {below} {cv[below]:.1f}%"
                    + (f" (isolated {cv['isolated']:.1f}%)" if below != "isolated" else "") + " on the same networks")
        if confirm is not None:
            text += f", and {conf(kind)} vs {below} {conf(below)} on {confirm['samples']} {_FRESH}"
        return text
    below = choice.below(kind)
    how = (f"tau {choice.cv_tau['fitted']:.3f} vs {choice.ranking_baseline:.3f}" if kind == "fitted" and choice.reason == "tau"
           else f"{cv[kind]:.1f}% vs {below} {cv[below]:.1f}%")
    text = (f"{path[-1]} kept: {_NAMES[kind]} won on its own networks ({how}) "
            f"but did worse on {confirm['samples']} {_FRESH} ({conf(kind)} vs {conf(below)})")
    for step in path[1:]:  # the candidates fallen back to
        if step == "isolated":
            break
        won = step == path[-1]
        text += (f"; {_NAMES[step]} {'held' if won else 'did worse too'} ({conf(step)} vs "
                 f"{choice.below(step)} {conf(choice.below(step))})")
    return text


# --- validation ----------------------------------------------------------------------------------
def rank_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """MAPE (percent), share within +-10% and Kendall tau of ``predicted`` against ``measured``, and ``samples``."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if len(measured) == 0:
        return {"mape": math.nan, "within_10pct": math.nan, "kendall_tau": math.nan, "samples": 0}
    error = np.abs(predicted - measured) / measured
    from evonas.evaluation.latency_fit import _tau

    tau = _tau(predicted, measured)  # NaN below 2 networks or without spread
    return {
        "mape": float(100 * error.mean()),
        "within_10pct": float((error <= 0.10).mean()),
        "kendall_tau": tau,
        "samples": int(len(measured)),
    }


def retest_tau(timings: Sequence[dict]) -> float:
    """Kendall tau between the two interleaved half-measurements of :func:`time_interleaved` (NaN without them).

    Each half has half the rounds, so this understates the repeatability of the full
    median a little; it is the ceiling a predicted-versus-measured tau is judged against.
    """
    halves = [t.get("half_medians_ms") for t in timings]
    if any(h is None for h in halves):
        return math.nan
    return rank_metrics([h[0] for h in halves], [h[1] for h in halves])["kendall_tau"]  # NaN below 2 or without spread


# The build's fresh networks this much slower or faster now: the machine has likely changed. Not less: they are
# timed among other networks, in other rounds, each time (benchmarks/latency.py: -6% to +5% on a quiet machine)
DRIFT_WARN_PCT = 10.0


def _drift_networks(table: LatencyTable) -> tuple[list[str], list[float]]:
    """The whole networks the build timed among its fitting networks, and their times then (none: empty)."""
    fresh = (table.fit or {}).get("fresh") or {}
    return list(fresh.get("archs", ())), list(fresh.get("times_ms", ()))


def _drift(space: ChainSpace, table: LatencyTable, runner: "_Runner", x: torch.Tensor,
           now: Sequence[dict] = ()) -> dict | None:
    """Has the machine's speed changed since the build? (+: slower now.)

    A table predicts the machine as it was while it was built; a laptop on battery, a
    throttled CPU or a neighbour on a shared VM can make every network 10% slower an hour
    later, and every prediction then misses by that much, whatever the table. ``now``
    holds the timings, in the validation's rounds, of the build's fresh networks
    (:func:`_drift_networks`): the drift is the median of their time ratios. A table
    without them (built before they were kept, or without a fit) times its reference
    network again as the build timed it, one network, alone: a rougher probe. None when
    the table has neither (a partial table).
    """
    from evonas.supernet import build_standalone

    archs, then = _drift_networks(table)
    if archs and len(now) == len(archs):
        ratios = np.array([t["median_ms"] for t in now]) / np.array(then)
        pct = 100 * (float(np.median(ratios)) - 1)
        return {"source": "fresh networks", "networks": len(archs), "pct": pct,
                "changed": bool(abs(pct) > DRIFT_WARN_PCT)}
    ref, built = table.overhead.get("reference_arch"), table.overhead.get("reference_e2e_ms")
    if not ref or not built:
        return None
    probe = runner.time(build_standalone(space, space.parse(ref)), x, table.settings.get("warmup", 10),
                        table.settings.get("repeats", 50))
    pct = 100 * (probe["median_ms"] / built - 1)
    return {"source": "reference network", "networks": 1, "reference_arch": ref, "built_ms": float(built),
            "now_ms": probe["median_ms"], "pct": pct, "spread": probe["spread"], "changed": bool(abs(pct) > DRIFT_WARN_PCT)}


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
    export_dir: str | Path | None = None,
    drift: bool = True,
    device: str | None = None,
    precision: str | None = None,
) -> dict:
    """Time ``archs`` end to end and compare with ``table.predict``; returns the metrics.

    Each network comes from ``module_factory(arch)`` (default ``build_standalone(space,
    arch)``; ``supernet.extract`` works too) and runs as ``backend`` (default: the
    table's) at the table's batch size and threads. The result has ``archs`` (per
    architecture ``predicted_ms``, ``measured_ms``, ``error_pct``, ``spread``, ``role``,
    ``in_fit_set``), ``mape`` (percent), ``within_10pct`` (fraction), ``kendall_tau`` and
    ``samples``, computed on the held-out architectures; ``fit_overlap`` counts those a
    fitted table was fitted to (an honest check samples others, see :func:`sample_archs`).
    ``drift`` (:func:`_drift`) times the build's fresh networks again with the others (left
    out of the metrics): ``drift["pct"]`` is how much slower (+) or faster the machine
    runs them now, and ``drift["changed"]`` is True beyond ``DRIFT_WARN_PCT``; None with
    ``drift=False`` (one exported module timed against its limit needs no such check), on
    a foreign device, or when the backend, batch size, threads or clock differ from the
    table's (then the times do not compare).

    The networks are timed in ``repeats`` interleaved rounds (:func:`time_interleaved`)
    after ``warmup`` calls each. With onnxruntime each network is exported; with
    ``export_dir`` the files are kept there by architecture and reused (the module
    factory must then give the same structure for the same architecture).

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
    device = _check_timing_device(settings.get("device", "cpu") if device is None else device, backend, clock)
    precision = _check_timing_precision(settings.get("precision", "fp32") if precision is None else precision, device,
                                        backend)
    min_gain = _float_param("min_gain", min_gain, 0.0)
    archs = [space.coerce(a) for a in archs]
    if not archs:
        raise ConfigError("The 'archs' parameter must hold at least one architecture; got none.", param="archs")
    if calibrate and len(archs) - calibrate < 2:
        raise ConfigError(
            f"The 'calibrate' parameter must leave at least 2 of the {len(archs)} architectures held out; got {calibrate}.",
            param="calibrate",
        )
    same_device = table.check_device(describe_device(threads, batch_size, backend, device, precision),
                                     allow_foreign=allow_foreign)
    comparable = drift and same_device and (backend, batch_size, threads, clock) == (
        settings.get("backend"), settings.get("batch_size"), settings.get("threads"), settings.get("clock", "wall"))
    from evonas.supernet import build_standalone

    if module_factory is None:

        def module_factory(arch: Arch) -> nn.Module:
            return build_standalone(space, arch)

    predicted = [table.predict(a) for a in archs]  # fails early on an incomplete table
    from evonas.supernet import input_shape

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *input_shape(space), generator=generator)  # (B, C, H, W)
    with _torch_threads(threads), tempfile.TemporaryDirectory(prefix="evonas-latency-") as tmp:
        if export_dir is not None:
            Path(export_dir).mkdir(parents=True, exist_ok=True)
        runner = _Runner(backend, threads, Path(tmp), clock, export_dir=export_dir, device=device, precision=precision)
        fns = []
        # the build's fresh networks, built as the build built them, timed with the others, left out of the metrics
        probes = [space.parse(a) for a in _drift_networks(table)[0]] if comparable else []
        for arch in tqdm(archs, desc=f"validate {space.name} {backend} b{batch_size}", disable=not progress):
            key = _piece_key(space, f"net-{space.format(arch)}") if export_dir is not None else None
            fns.append(runner.callable(module_factory(arch), x, key))
        fns += [runner.callable(build_standalone(space, arch), x) for arch in probes]
        timings = time_interleaved(fns, warmup=warmup, rounds=repeats, clock=clock, seed=seed)
        timings, probe_timings = timings[:len(archs)], timings[len(archs):]
        drift_report = _drift(space, table, runner, x, probe_timings) if comparable else None
    fitted_on = set(networks_used(table.fit))
    rows = []
    for k, (arch, pred, t) in enumerate(zip(archs, predicted, timings)):
        rows.append({
            "arch": space.format(arch),
            "predicted_ms": pred,
            "measured_ms": t["median_ms"],
            "error_pct": 100 * (pred - t["median_ms"]) / t["median_ms"],
            "spread": t["spread"],
            "role": "calibration" if k < calibrate else "test",
            "in_fit_set": space.format(arch) in fitted_on,
        })
    pred = np.array(predicted)
    meas = np.array([t["median_ms"] for t in timings])
    result: dict[str, Any] = {
        "space": space.name,
        "backend": backend,
        "batch_size": batch_size,
        "threads": threads,
        "clock": clock,
        **rank_metrics(pred[calibrate:], meas[calibrate:]),
        "noisy": int(sum(t["spread"] > settings.get("noise_threshold", math.inf) for t in timings)),
        "median_spread": float(np.median([t["spread"] for t in timings])),
        "method": table.method,
        # the measurement against itself: Kendall tau between the medians of the even and of the odd rounds. Below
        # the table's tau, timing noise, not the table, limits how well any prediction can be shown to rank.
        "retest_kendall_tau": retest_tau(timings[calibrate:]),
        "fit_overlap": int(sum(r["in_fit_set"] for r in rows[calibrate:])),
        "drift": drift_report,
        "archs": rows,
        "correction": None,
    }
    if calibrate:
        if calibrate >= 2 and np.ptp(pred[:calibrate]) > 0:
            a, b = (float(v) for v in np.polyfit(pred[:calibrate], meas[:calibrate], 1))
        else:  # one point (or no spread): a scale only
            a, b = float(meas[:calibrate].sum() / pred[:calibrate].sum()), 0.0
        corrected = rank_metrics(a * pred[calibrate:] + b, meas[calibrate:])
        result["correction"] = {
            "a": a,
            "b": b,
            "calibration_samples": calibrate,
            **corrected,
            "improves": bool(corrected["mape"] <= result["mape"] - min_gain),
        }
    return result


# --- tables of a run directory -------------------------------------------------------------------
def table_path(run: Any, space: Space | str, *, backend: str = "eager", batch_size: int = 1, threads: int = 1,
               device: str = "cpu", precision: str = "fp32") -> Path:
    """Where a run keeps the table of one setting: ``RUN/latency/SPACE-BACKEND-bB-tT.json``.

    ``run`` is an opened :class:`evonas.run.Run` or a run directory path.
    """
    from evonas.run.run import RunLayout

    name = space if isinstance(space, str) else space.name
    return RunLayout.of(getattr(run, "path", run)).latency_table_file(name, backend, batch_size, threads, device, precision)


def load_or_build_table(
    run: Any,
    space: ChainSpace | str,
    *,
    backend: str = "eager",
    batch_size: int = 1,
    threads: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    rebuild: bool = False,
    allow_foreign: bool = False,
    **build_options: Any,
) -> LatencyTable:
    """The run's table for this setting: loaded and checked against this device, or built and saved.

    ``rebuild`` builds a fresh table even when one is saved; ``build_options`` go to
    :func:`build_latency_table` (``warmup``, ``repeats``, ``progress``, ``clock``, ...).
    """
    space = _chain_space(space)
    path = table_path(run, space, backend=backend, batch_size=batch_size, threads=threads, device=device,
                      precision=precision)
    if path.is_file() and not rebuild:
        table = LatencyTable.load(path)
        if table.space != space.name:
            raise ConfigError(f"The latency table {path} is for space {table.space!r}, not {space.name!r}; {REBUILD_HINT}.")
        table.check_device(describe_device(threads, batch_size, backend, device, precision), allow_foreign=allow_foreign)
        return table
    table = build_latency_table(space, backend=backend, batch_size=batch_size, threads=threads, device=device,
                                precision=precision,
                                **build_options)
    table.save(path)
    return replace(table, source=str(path))
