"""Building a latency table: each (layer, option) of a chain space timed alone, and the fixed part.

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

With ``method="fitted"`` (the default of a full build) the entries and the fixed part
are then fitted to whole networks (:mod:`evonas.latency.networks`).

Entries whose relative spread exceeds ``noise_threshold`` are noisy; a table whose
noisy share exceeds ``max_noisy_share`` carries the warning "the machine is too busy
to measure" (it is returned, not raised).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from search_spaces import ChainSpace, Space

from evonas.errors import ConfigError
from evonas.latency.device import describe_device
from evonas.latency.networks import FIT_SECONDS, _fit_to_networks
from evonas.latency.params import (BACKENDS, _chain_space, _check_clock, _check_timing_device, _check_timing_precision,
                                   _choice_param, _float_param, _int_param)
from evonas.latency.table import LatencyEntry, LatencyTable
from evonas.latency.timing import _piece_key, _Runner, _torch_threads

__all__ = ["METHODS", "MIN_FIT_NETWORKS", "OVERHEAD_METHODS", "build_latency_table", "fit_sample_size"]

OVERHEAD_METHODS = ("residual", "components")
METHODS = ("fitted", "isolated")
MIN_FIT_NETWORKS = 30  # a space with fewer distinct networks keeps its isolated table (nothing to fit it to)


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
    started = time.perf_counter()
    space = _chain_space(space)
    plan = _plan(space, batch_size=batch_size, threads=threads, backend=backend, warmup=warmup, repeats=repeats,
                 progress=progress, layers=layers, overhead=overhead, method=method, fit_samples=fit_samples,
                 fit_rounds=fit_rounds, fit_seconds=fit_seconds, min_gain=min_gain, noise_threshold=noise_threshold,
                 max_noisy_share=max_noisy_share, clock=clock, seed=seed, export_dir=export_dir, device=device,
                 precision=precision)
    device = describe_device(plan.threads, plan.batch_size, plan.backend, plan.timing_device, plan.precision)
    entries, info, fit_info, isolated_overhead = _measure(space, plan)
    overhead_ms = _fixed_part(isolated_overhead, fit_info) if plan.full else 0.0
    warnings = _build_warnings(plan.positions, plan.full, entries, fit_info, overhead_ms, plan.noise_threshold,
                               plan.max_noisy_share)
    return LatencyTable(
        space=space.name,
        entries=tuple(entries),
        overhead_ms=float(overhead_ms),
        overhead=info,
        device=device,
        settings=plan.settings(),
        build_seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        fit=fit_info,
    )


@dataclass(frozen=True)
class _Plan:
    """A build's checked options and what they imply: the layers timed, whether the table is full and fitted."""

    batch_size: int
    threads: int
    backend: str
    warmup: int
    repeats: int
    overhead: str
    fit_rounds: int
    fit_seconds: float
    min_gain: float
    noise_threshold: float
    max_noisy_share: float
    clock: str
    timing_device: Any
    precision: str
    seed: int
    progress: bool
    export_dir: str | Path | None
    positions: list[int]
    full: bool  # every layer timed: the table has a fixed part and predicts whole networks
    fitting: bool  # the entries are then fitted to whole networks
    n_fit: int  # how many networks they are fitted to (0 when not fitting)

    def settings(self) -> dict[str, Any]:
        """The settings a table records."""
        return {
            "backend": self.backend, "batch_size": self.batch_size, "threads": self.threads, "warmup": self.warmup,
            "repeats": self.repeats, "overhead": self.overhead if self.full else "none",
            "noise_threshold": self.noise_threshold, "max_noisy_share": self.max_noisy_share,
            "layers": self.positions, "clock": self.clock, "seed": self.seed,
            "method": "fitted" if self.fitting else "isolated", "fit_samples": self.n_fit,
            "fit_rounds": self.fit_rounds if self.fitting else 0, "fit_seconds": self.fit_seconds if self.fitting else 0,
            "min_gain": self.min_gain, "device": str(self.timing_device), "precision": self.precision,
        }


def _plan(space: Space, *, batch_size: int, threads: int, backend: str, warmup: int, repeats: int,
          progress: bool, layers: Iterable[int] | None, overhead: str, method: str, fit_samples: int | None,
          fit_rounds: int, fit_seconds: float | None, min_gain: float, noise_threshold: float,
          max_noisy_share: float, clock: str, seed: int, export_dir: str | Path | None, device: str,
          precision: str) -> _Plan:
    """Check every option of :func:`build_latency_table` (before timing anything) and decide what the build does."""
    batch_size = _int_param("batch_size", batch_size, 1)
    threads = _int_param("threads", threads, 1)
    backend = _choice_param("backend", backend, BACKENDS)
    warmup = _int_param("warmup", warmup, 0)
    repeats = _int_param("repeats", repeats, 3)
    overhead = _choice_param("overhead", overhead, OVERHEAD_METHODS)
    method = _choice_param("method", method, METHODS)
    fit_samples, fit_rounds, fit_seconds, min_gain = _check_fit_options(fit_samples, fit_rounds, fit_seconds, min_gain)
    noise_threshold = _float_param("noise_threshold", noise_threshold, 0.0, open_low=True)
    max_noisy_share = _float_param("max_noisy_share", max_noisy_share, 0.0, 1.0)
    clock = _check_clock(clock, threads)
    timing_device = _check_timing_device(device, backend, clock)
    precision = _check_timing_precision(precision, timing_device, backend)
    positions = _layer_positions(space, layers)
    _check_backend(isinstance(space, ChainSpace), backend, overhead)
    full = positions == list(range(len(space.dims)))
    # a fit needs enough distinct networks for its cross-validation (5 folds of 2 at least, and fresh ones to confirm)
    fitting = full and method == "fitted" and space.num_strings >= MIN_FIT_NETWORKS
    n_fit = (fit_samples or fit_sample_size(space)) if fitting else 0
    return _Plan(batch_size=batch_size, threads=threads, backend=backend, warmup=warmup, repeats=repeats,
                 overhead=overhead, fit_rounds=fit_rounds, fit_seconds=fit_seconds, min_gain=min_gain,
                 noise_threshold=noise_threshold, max_noisy_share=max_noisy_share, clock=clock,
                 timing_device=timing_device, precision=precision, seed=seed, progress=progress,
                 export_dir=export_dir, positions=positions, full=full, fitting=fitting, n_fit=n_fit)


def _measure(space: Space, plan: _Plan) -> tuple[list[LatencyEntry], dict[str, Any], dict[str, Any] | None, float]:
    """Time what ``plan`` says: (the entries, the fixed part's estimates, the fit's record or None, the isolated fixed part)."""
    from evonas.latency.fit import AdditiveLatencyFit
    from evonas.supernet import input_shape

    generator = torch.Generator().manual_seed(plan.seed)
    torch.manual_seed(plan.seed)  # initial weights (latency does not depend on them, but reproducible)
    image = input_shape(space)
    warmup, repeats = plan.warmup, plan.repeats

    def batch(shape: tuple[int, ...]) -> torch.Tensor:  # (B, *shape)
        return torch.randn(plan.batch_size, *shape, generator=generator)

    jobs = [piece for piece in _pieces(space) if piece[0] in plan.positions]
    fit_info: dict[str, Any] | None = None
    isolated_overhead = 0.0
    with _torch_threads(plan.threads), tempfile.TemporaryDirectory(prefix="evonas-latency-") as tmp:
        if plan.export_dir is not None:
            Path(plan.export_dir).mkdir(parents=True, exist_ok=True)
        runner = _Runner(plan.backend, plan.threads, Path(tmp), plan.clock, export_dir=plan.export_dir,
                         device=plan.timing_device, precision=plan.precision)
        # the cost of one call of an empty module: charged once per network
        call = runner.time(nn.Identity(), batch(image), warmup, repeats)
        total = len(jobs) + (3 if plan.full else 0) + (1 if plan.fitting else 0)
        bar = tqdm(total=total, desc=f"latency {space.name} {plan.backend} b{plan.batch_size}", disable=not plan.progress)
        raw = _time_layers(space, jobs, runner, batch, plan.batch_size, warmup, repeats, bar)
        # onnxruntime: each isolated layer pays the session's per-call cost that a network pays once
        per_call = call["median_ms"] if plan.backend == "onnxruntime" else 0.0
        entries = _isolated_entries(raw, per_call)
        info: dict[str, Any] = {"method": plan.overhead if plan.full else "none", "call_ms": call["median_ms"]}
        if plan.full:
            info.update(_overhead_estimates(space, entries, runner, batch, image, warmup, repeats, per_call,
                                            call["median_ms"], bar))
            isolated_overhead = info["residual_ms"] if plan.overhead == "residual" else info["components_ms"]
            if plan.fitting:
                fit_info, entries = _fit_to_networks(
                    space, entries, isolated_overhead, runner, batch(image), plan.n_fit,
                    fit_rounds=plan.fit_rounds, fit_seconds=plan.fit_seconds, warmup=min(warmup, 2),
                    min_gain=plan.min_gain, seed=plan.seed, noise_threshold=plan.noise_threshold,
                    model=AdditiveLatencyFit,
                )
                bar.update(1)
        bar.close()
    return entries, info, fit_info, isolated_overhead


def _check_fit_options(fit_samples: int | None, fit_rounds: int, fit_seconds: float | None,
                       min_gain: float) -> tuple[int | None, int, float, float]:
    """The fit's options, checked; ``fit_seconds`` None becomes ``FIT_SECONDS``."""
    if fit_samples is not None:
        fit_samples = _int_param("fit_samples", fit_samples, 10)
    fit_rounds = _int_param("fit_rounds", fit_rounds, 1)
    fit_seconds = FIT_SECONDS if fit_seconds is None else _float_param("fit_seconds", fit_seconds, 0.0)
    min_gain = _float_param("min_gain", min_gain, -math.inf)  # < 0: keep a fit even when slightly worse
    return fit_samples, fit_rounds, fit_seconds, min_gain


def _layer_positions(space: Space, layers: Iterable[int] | None) -> list[int]:
    """The layer positions a build times: every one (``layers`` None) or the sorted, checked ``layers``."""
    all_layers = range(len(space.dims))
    if layers is None:
        return list(all_layers)
    positions = sorted(set(layers))
    bad = [i for i in positions if isinstance(i, bool) or not isinstance(i, int) or i not in all_layers]
    if bad or not positions:
        raise ConfigError(
            f"The 'layers' parameter must list layer positions in [0, {len(space.dims) - 1}]; got {list(layers)!r}.",
            param="layers",
        )
    return positions


def _check_backend(chain: bool, backend: str, overhead: str) -> None:
    """Refuse what only a chain preset can be timed with, and fail before timing anything without onnxruntime."""
    if not chain and backend == "onnxruntime":
        raise ConfigError("The 'backend' parameter must be 'eager' for your own model's latency table (onnxruntime "
                          "tables compose the chain presets' layers); got 'onnxruntime'.", param="backend")
    if not chain and overhead == "components":
        raise ConfigError("The 'overhead' parameter must be 'residual' for your own model's latency table (the "
                          "components are the chain presets' stem and head); got 'components'.", param="overhead")
    if backend == "onnxruntime":
        from evonas.export.onnx import _import_ort

        _import_ort()  # fail before timing anything when onnxruntime is missing


def _time_layers(space: Space, jobs: list, runner: _Runner, batch: Callable[[tuple[int, ...]], torch.Tensor],
                 batch_size: int, warmup: int, repeats: int,
                 bar: Any) -> dict[tuple[int, int], tuple[tuple[int, ...], dict | None]]:
    """Each job's (layer, code) -> (its input shape, its timing alone); None for an identity that vanishes."""
    raw: dict[tuple[int, int], tuple[tuple[int, ...], dict | None]] = {}
    for i, code, module, piece_shape in jobs:
        shape = (batch_size, *piece_shape)
        if _identity_vanishes(module):
            raw[(i, code)] = (shape, None)
        else:
            key = _piece_key(space, f"L{i}-c{code}")
            raw[(i, code)] = (shape, runner.time(module, batch(piece_shape), warmup, repeats, key))
        bar.update(1)
    return raw


def _isolated_entries(raw: dict[tuple[int, int], tuple[tuple[int, ...], dict | None]],
                      per_call: float) -> list[LatencyEntry]:
    """The entries as timed alone, each charged its median net of ``per_call`` (ms), the cost a network pays once."""
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
    return entries


def _overhead_estimates(space: Space, entries: list[LatencyEntry], runner: _Runner,
                        batch: Callable[[tuple[int, ...]], torch.Tensor], image: tuple[int, ...], warmup: int,
                        repeats: int, per_call: float, call_ms: float, bar: Any) -> dict:
    """Both estimates of a full table's fixed part: the components (chain presets only) and the residual."""
    info: dict[str, Any] = {}
    if isinstance(space, ChainSpace):
        info.update(_components(space, runner, batch, image, warmup, repeats, per_call, call_ms, bar))
    else:
        bar.update(2)  # a user's model has no separate stem and head: the residual is its fixed part
    info.update(_residual(space, entries, runner, batch(image), warmup, repeats))
    bar.update(1)
    return info


def _components(space: ChainSpace, runner: _Runner, batch: Callable[[tuple[int, ...]], torch.Tensor],
                image: tuple[int, ...], warmup: int, repeats: int, per_call: float, call_ms: float, bar: Any) -> dict:
    """The components estimate of the fixed part: the stem and the head timed alone, plus one empty call."""
    stem, head = _stem_and_head(space)
    stem_t = runner.time(stem, batch(image), warmup, repeats, _piece_key(space, "stem"))
    bar.update(1)
    net = space.net
    head_t = runner.time(head, batch((net.stages[-1].width, space.final_size, space.final_size)), warmup, repeats,
                         _piece_key(space, "head"))
    bar.update(1)
    stem_ms = max(stem_t["median_ms"] - per_call, 0.0)
    head_ms = max(head_t["median_ms"] - per_call, 0.0)
    return {"components_ms": stem_ms + head_ms + call_ms, "stem_ms": stem_ms, "head_ms": head_ms}


def _residual(space: Space, entries: list[LatencyEntry], runner: _Runner, x: torch.Tensor, warmup: int,
              repeats: int) -> dict:
    """The residual estimate of the fixed part: the fastest network by the table, end to end, minus its table sum."""
    from evonas.supernet import build_standalone

    by_layer: dict[int, list[LatencyEntry]] = {}
    for e in entries:
        by_layer.setdefault(e.layer, []).append(e)
    fastest = tuple(min(by_layer[i], key=lambda e: e.median_ms).code for i in range(len(space.dims)))
    ref = space.make(fastest)
    e2e = runner.time(build_standalone(space, ref), x, warmup, repeats)
    chosen = set(enumerate(fastest))
    layer_sum = sum(e.median_ms for e in entries if (e.layer, e.code) in chosen)
    return {
        "residual_ms": e2e["median_ms"] - layer_sum,
        "reference_arch": space.format(ref),
        "reference_e2e_ms": e2e["median_ms"],
        "reference_spread": e2e["spread"],
    }


def _fixed_part(isolated_overhead: float, fit_info: dict | None) -> float:
    """The fixed part of a full table: the isolated estimate, or the kept fit's (``fit_info`` records the former)."""
    if fit_info is None:
        return isolated_overhead
    fit_info["isolated_overhead_ms"] = float(isolated_overhead)
    if fit_info["kind"] == "fitted":
        return fit_info["intercept_ms"]
    if fit_info["kind"] == "scaled":
        return fit_info["scaled_a"] * isolated_overhead + fit_info["scaled_b"]
    return isolated_overhead


def _build_warnings(positions: list[int], full: bool, entries: list[LatencyEntry], fit_info: dict | None,
                    overhead_ms: float, noise_threshold: float, max_noisy_share: float) -> list[str]:
    """What a reader of the table must know: a partial table, a machine too busy to measure, a negative fixed part."""
    warnings: list[str] = []
    if not full:
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
    return warnings
