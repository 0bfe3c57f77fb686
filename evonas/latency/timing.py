"""Timing: callables timed alone or in interleaved rounds, and modules turned into callables per backend.

``clock="cpu"`` times with the process's CPU clock instead of the wall clock: on a busy
machine a call of several milliseconds is often descheduled, so wall-clock medians of
whole networks came out 3-5 times their layer sums while CPU time did not (single
thread only).

With ``backend="onnxruntime"`` a module is exported to ONNX and run in an onnxruntime
session with ``intra_op_num_threads=threads``; :meth:`_Runner.composed` chains the
layers' exported models into one network (:func:`evonas.export.onnx._compose_onnx`)
instead of exporting each network (seconds each with the dynamo exporter).
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from search_spaces import ChainSpace

from evonas.device import autocast
from evonas.export.onnx import _compose_onnx, _identity_onnx
from evonas.latency.params import CLOCKS, _choice_param, _float_param, _int_param

__all__ = ["time_callable", "time_interleaved"]


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


def _piece_key(space: ChainSpace, part: str) -> str:
    return f"{space.name}-{part}"
