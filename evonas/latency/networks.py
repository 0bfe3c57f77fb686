"""A table fitted to whole networks: which networks, timed how, and which table their times choose.

Timed alone, the layers of the small fmnist spaces mislead: at batch 1 an eager layer
costs 0.10-0.15 ms whichever option it is (mb3_k3 vs mb6_k5 at one position differ by
~15%), i.e. it is mostly per-operator dispatch, and the same layers in onnxruntime cost
a tenth of that; summed, the isolated times were 20-36% off end to end (eager over-,
onnxruntime under-estimating) on this project's busy 2-core machine, while two timings
of the same networks agreed within 4-6%. So the build also times a few hundred random
whole networks (:func:`~evonas.latency.build.fit_sample_size`; about a millisecond each
at batch 1) in interleaved rounds (:func:`~evonas.latency.timing.time_interleaved`) and
fits the entries and the fixed part to them by ridge regression shrunk toward the
isolated table (:mod:`evonas.latency.fit`). A simpler candidate sits between the two:
the isolated table scaled, ``a * isolated + b`` (entries ``a * isolated_ms``, fixed
part ``a * isolated_overhead + b``; method "scaled"), fitted to the same networks by
relative least squares. A scale with ``a > 0`` keeps the isolated table's ranking and
fixes only its level, while the per-entry fit also moves the ranking, and at batch 1
mostly by noise: on 30 held-out networks (benchmarks/results/latency.md; MAPE / share
within 10% / Kendall tau) mobilenet-fmnist eager batch 1 went from isolated 25.2% /
0.00 / 0.931 to 2.5% / 1.00 / 0.931 scaled but 4.4% / 1.00 / 0.890 fitted, and
macro-fmnist onnxruntime batch 1 to 4.3% / 0.90 / 0.903 scaled but 4.9% / 0.90 / 0.880
fitted, whereas on mobilenet-fmnist onnxruntime batch 1 only the fit met the targets
(4.8% / 0.93 fitted, 12.7% / 0.43 scaled). So the choice is nested by complexity
(:func:`~evonas.latency.fit.choose_table`): the scaled table replaces the isolated one
only when its cross-validated MAPE beats the isolated table's on the same networks by
``min_gain`` points, and the fit replaces whichever of those was chosen only when its
cross-validated MAPE beats that one's by ``min_gain`` points too, or when its held-out
predictions rank the fitting networks better (Kendall tau, by ``fit.TAU_GAIN``) at no
higher MAPE: whether the fit's ranking is signal or noise differs from build to build
(a later run of the same benchmark ranked mobilenet-fmnist eager batch 1 with tau 0.899
fitted against 0.784 scaled), so each build decides on its own held-out networks;
``table.fit`` records the networks, every error, the noise, ``kind`` ("scaled",
"fitted" or None) and the verdict, ``table.isolated()`` gives the isolated table back,
and ``validate_latency`` flags any network the table was fitted to (``fit_overlap``).
With onnxruntime the fitting networks chain the layers' exported ONNX models
(:func:`evonas.export.onnx._compose_onnx`) instead of exporting each network (seconds
each with the dynamo exporter); validation still times real exports.

The networks are timed in groups of at most ``FIT_GROUP``. Timed among 288 more, the
same 35 networks (mobilenet-fmnist, eager, batch 32) ran 5% slower at the median (up to
24%) than among themselves, and ranked with Kendall tau 0.84 against that timing (0.95
for 7 rounds in a group; benchmarks/results/latency_context.md). A fit to networks timed
all at once learned that setting: the isolated table was 21.8% off them and the fit kept
validated at 26.8% MAPE; timed in these groups, the isolated table was 3.0% off them and
validated at 1.6% (benchmarks/results/latency.md). Groups about as large as `latency
validate` times together (40 networks by default, its samples and the 10 drift networks;
45 in benchmarks/latency.py) give the fit, the check on fresh networks and the
validation one setting. The price: groups are timed one after another, so a burst of
load moves one group's networks together rather than every network alike. Not solved
here: the process's memory history moves single networks too (right after 288 networks
were let go, the 35 timed erratically, retest tau 0.44; at the end of the process a
tenth of them ran 30% faster than at its start).

The fitting rounds: at least ``fit_rounds``, more while they take about ``FIT_SECONDS``
in all (warm-up apart). At batch 1, up to 50 rounds let the fitting networks' medians
rank themselves (even against odd rounds) with 0.92-0.95
(benchmarks/results/latency.md); with 7 rounds a run of ``benchmarks/latency.py
--fit-seconds 0`` gave 0.81-0.86. Rounds of cheap networks cost little: the build's time
goes to preparing the networks.

On the fresh networks a candidate must only do no worse than the one below it
(``CONFIRM_MARGIN``): the margin (``min_gain``) was already required by cross-validation
on hundreds of networks, and asking for it again on ten threw away tables that held out
well (benchmarks/latency.py, macro-fmnist eager batch 1: the scaled table 13.7% vs
isolated 14.1% on the ten, rejected; 1.7% vs 23.5% on the 30 validation networks).
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from search_spaces import Arch, ChainSpace

from evonas.latency.params import _int_param
from evonas.latency.table import LatencyEntry
from evonas.latency.timing import _piece_key, _Runner, time_interleaved
from evonas.latency.validate import retest_tau

__all__ = ["CONFIRM_MARGIN", "FIT_GROUP", "FIT_SECONDS", "MAX_FIT_ROUNDS", "sample_archs"]

# How many networks the build times together: about as many as `latency validate` times at once, so the fit and the
# validation time networks in one setting (figures in the module docstring; benchmarks/results/latency_context.md).
FIT_GROUP = 45
# The fitting rounds: at least `fit_rounds`, more while they take about FIT_SECONDS in all, up to MAX_FIT_ROUNDS: cheap
# rounds make the fitting networks' medians repeatable (module docstring; benchmarks/results/latency.md).
FIT_SECONDS = 20.0
MAX_FIT_ROUNDS = 50


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

    from evonas.latency.fit import KINDS, choose_table, confirm_choice

    started = time.perf_counter()
    archs = sample_archs(space, n, random.Random(f"latency-fit-{seed}"))
    # the fresh networks of the confirmation, whole (a real export with onnxruntime), as `latency validate` builds
    # them, but timed in the same rounds as the fitting networks: timed apart, ten networks at a time, they ran up to
    # a third faster than among many (caches stay warm), and the check rejected tables that validated well
    fresh = sample_archs(space, confirm_samples, random.Random(f"latency-confirm-{seed}"),
                         exclude=set(map(space.format, archs))) if confirm_samples > 0 else []
    make = _network_maker(space, runner, x, archs, fresh, {(e.layer, e.code) for e in entries if e.measured})
    timed_all = _time_in_groups(make, len(archs) + len(fresh), warmup=warmup, rounds=fit_rounds, clock=runner.clock,
                                seed=seed, seconds=fit_seconds, max_rounds=MAX_FIT_ROUNDS)
    stats, fresh_ms = timed_all[:len(archs)], np.array([t["median_ms"] for t in timed_all[len(archs):]])
    y = np.array([t["median_ms"] for t in stats])
    columns = [e for e in entries if e.measured]
    index = {(e.layer, e.code): j for j, e in enumerate(columns)}
    prior = np.array([e.median_ms for e in columns])
    choice = choose_table(_one_hot(archs, index), y, prior, isolated_overhead, min_gain=min_gain, seed=seed, model=model)
    scaled_ok = "scaled" in choice.cv_mape
    path = [choice.kind]
    confirm = None
    if choice.kind != "isolated" and fresh:
        confirm = _confirm_fit(space, fresh, fresh_ms, index, prior, isolated_overhead, choice.fitted,
                               scaled=(choice.scaled.a_, choice.scaled.b_) if scaled_ok else None)
        path = confirm_choice(choice, {k: confirm.get(f"{k}_mape") for k in KINDS}, CONFIRM_MARGIN)
    info = _fit_record(space, choice, path, confirm, archs, fresh, fresh_ms, stats, timed_all, columns,
                       fit_rounds=fit_rounds, min_gain=min_gain, noise_threshold=noise_threshold, started=started)
    return info, _kept_entries(path[-1], entries, index, choice.fitted, choice.scaled)


def _network_maker(space: ChainSpace, runner: _Runner, x: torch.Tensor, archs: Sequence[Arch], fresh: Sequence[Arch],
                   timed: set[tuple[int, int]]) -> Callable[[int], Callable[[], Any]]:
    """``make(k)``: the timed callable of fitting network ``k`` (then of fresh network ``k - len(archs)``).

    A fresh network is always built whole; with onnxruntime a fitting network chains the
    layers' exported ONNX models (its ``timed`` (layer, code) pieces between stem and head).
    """
    from evonas.supernet import build_standalone

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

    return make


def _one_hot(archs: Sequence[Arch], index: dict[tuple[int, int], int]) -> np.ndarray:
    """Row r has a 1 in the column ``index[(layer, code)]`` of each of ``archs[r]``'s indexed options."""
    X = np.zeros((len(archs), len(index)))
    for r, arch in enumerate(archs):
        for i, c in enumerate(arch.choices):
            if (i, c) in index:
                X[r, index[(i, c)]] = 1.0
    return X


def _fit_record(space: ChainSpace, choice: Any, path: list[str], confirm: dict | None, archs: Sequence[Arch],
                fresh: Sequence[Arch], fresh_ms: np.ndarray, stats: list[dict], timed_all: list[dict],
                columns: list[LatencyEntry], *, fit_rounds: int, min_gain: float, noise_threshold: float,
                started: float) -> dict:
    """``table.fit``: the table kept (``path[-1]``), every candidate's errors, the networks, the noise and the verdict."""
    kept = path[-1]
    fitted, scaled = choice.fitted, choice.scaled
    scaled_ok = "scaled" in choice.cv_mape
    spreads = np.array([t["spread"] for t in stats])
    return {
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


def _kept_entries(kept: str, entries: list[LatencyEntry], index: dict[tuple[int, int], int], fitted: Any,
                  scaled: Any) -> list[LatencyEntry]:
    """The entries of the table kept: the fit's coefficients, the isolated ones scaled by ``scaled.a_``, or as they are."""
    if kept == "fitted":
        coef = dict(zip(index, fitted.coef_))
        entries = [replace(e, median_ms=float(coef[(e.layer, e.code)])) if e.measured else e for e in entries]
    elif kept == "scaled":
        entries = [replace(e, median_ms=float(scaled.a_ * e.median_ms)) if e.measured else e for e in entries]
    return entries


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
    # The objects that existed before are not the groups' garbage: freezing them keeps each collection below
    # to what the groups made (a full collection of a large process took 0.4 s). A caller's own freeze is kept.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        for g in range(count):
            ks = list(range(g, total, count))
            fns = [make(k) for k in ks]
            for k, t in zip(ks, time_interleaved(fns, seed=seed + g, budget_s=seconds / count, **timing)):
                out[k] = t
            del fns
            gc.collect()
    finally:
        if freeze:
            gc.unfreeze()
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
    X = _one_hot(archs, index)
    iso = X @ prior + isolated_overhead
    fit = X @ np.asarray(fitted.coef_, dtype=float) + float(fitted.intercept_)

    def mape(pred: np.ndarray) -> float:
        return float(100 * np.mean(np.abs(pred - y) / y))

    return {"samples": len(archs), "isolated_mape": mape(iso),
            "scaled_mape": mape(scaled[0] * iso + scaled[1]) if scaled is not None else None,
            "fitted_mape": mape(fit), "archs": [space.format(a) for a in archs]}




_NAMES = {"isolated": "the isolated table", "scaled": "the scaled table", "fitted": "the fit"}
_FRESH = "fresh networks, whole as `latency validate` builds them, timed in the same rounds"
# On the fresh networks a candidate must only do no worse than the one below it: cross-validation already asked for
# the margin, and asking it again of ten networks threw away tables that held out well (module docstring;
# benchmarks/results/latency.md).
CONFIRM_MARGIN = 0.0


def _verdict(choice: Any, path: list[str], confirm: dict | None, min_gain: float) -> str:
    """One plain sentence: which table was kept, and the errors that decided it (see ``choose_table``)."""
    from evonas.latency.fit import TAU_GAIN

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
