"""Scoring many architectures at once: in this process, or in a pool of worker processes.

The search driver hands each batch of new architectures (a DEAP generation, a batch
of Optuna trials) to a :class:`Scoring`, whose ``map`` returns one
:class:`~evonas.scorers.cached.Evaluated` per architecture, in order. Two are built in:

- :class:`SerialScoring` scores in this process (``score_cached``, one by one);
- :class:`PoolScoring` scores in ``workers`` processes of one machine. Each worker is
  started once (``spawn``) and builds its own scorer from a picklable factory in the
  pool initializer, so a supernet's weights are loaded once per worker, not per
  architecture. Each worker runs torch with ``threads_per_worker`` intra-op threads;
  by default the cores are divided among the workers (:func:`default_threads_per_worker`),
  so the workers never oversubscribe them (two 1-thread workers do 1.5x the work of one
  2-thread process on 2 cores; oversubscribing costs 1.7x).

With a store file, every worker opens its own connection and scores through
``score_cached``: it claims each key before scoring, so nothing is scored twice, and a
killed worker's claim is taken over later. An in-memory store cannot be shared, so
then the workers only compute metrics and this process stores the records.

The scores do not depend on the scoring: a worker runs the same scorer on the same
canonical architecture, so a search with ``--workers 2`` finds what the serial one finds
(bit for bit when the serial search runs torch with ``threads_per_worker`` threads; with
another thread count, float sums such as the loss differ in their last digits).
An error inside a worker comes back as one :class:`ScoringError` line naming the
architecture; a worker that dies (killed, out of memory) ends the search with one line too.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

from search_spaces import Arch

from evonas.errors import ConfigError, EvonasError
from evonas.run.records import Record
from evonas.run.store import Store
from evonas.scorers.base import Scorer
from evonas.scorers.cached import Evaluated, score_cached

ScorerFactory = Callable[[], Scorer]
PARENT_POLL_S = 1.0  # how often a worker checks that the search that started it is still alive


class ScoringError(EvonasError):
    """Scoring failed inside a worker process (the message names the architecture and the cause)."""


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads_per_worker(workers: int, cores: int | None = None) -> int:
    """The cores divided among the workers, at least 1: workers x threads <= cores."""
    return max(1, (cores or usable_cores()) // max(1, workers))


def check_pool(workers: int, threads_per_worker: int | None, *, cores: int | None = None) -> int:
    """Validate ``workers`` and ``threads_per_worker``; returns the threads each worker uses.

    More workers than cores, or more threads in all than cores, would oversubscribe
    the machine and only slow scoring down, so both are refused.
    """
    cores = cores or usable_cores()
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= cores:
        raise ConfigError(f"The 'workers' parameter must be an integer from 1 to {cores} (the CPU cores this process "
                          f"may use; more would oversubscribe them); got {workers!r}", param="workers")
    if threads_per_worker is None:
        return default_threads_per_worker(workers, cores)
    if not isinstance(threads_per_worker, int) or isinstance(threads_per_worker, bool) or threads_per_worker < 1:
        raise ConfigError(f"The 'threads_per_worker' parameter must be an integer >= 1; got {threads_per_worker!r}",
                          param="threads_per_worker")
    if workers * threads_per_worker > cores:
        raise ConfigError(f"The 'threads_per_worker' parameter times the 'workers' parameter must be at most the "
                          f"{cores} CPU cores this process may use (oversubscribed cores are slower); got "
                          f"{workers} x {threads_per_worker}; leave it out for {default_threads_per_worker(workers, cores)}",
                          param="threads_per_worker")
    return threads_per_worker


class Scoring(ABC):
    """Scores a batch of canonical architectures through the store; a context manager."""

    workers: int = 1

    @abstractmethod
    def map(self, archs: Sequence[Arch]) -> Iterator[Evaluated]:
        """One result per architecture, in order (distinct canonical architectures of one space)."""

    def close(self) -> None:
        """Stop any worker processes."""

    def __enter__(self) -> "Scoring":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialScoring(Scoring):
    """Scores in this process, one architecture after the other."""

    def __init__(self, scorer: Scorer, store: Store) -> None:
        self.scorer, self.store = scorer, store

    def map(self, archs: Sequence[Arch]) -> Iterator[Evaluated]:
        """Lazily: each architecture is scored when its result is taken (a caller may stop early)."""
        for arch in archs:
            yield score_cached(self.scorer, self.store, arch)


# --- the worker side (module globals of each worker process) ------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(factory: ScorerFactory, store_path: str | None, threads: int, devices=None, counter=None) -> None:
    """Pool initializer: fix the thread count, build the scorer once (on this worker's GPU), open the store."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    if devices:  # worker k scores on devices[k]: the workers are spread over the GPUs
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        _WORKER["scorer"] = factory(device=devices[index % len(devices)])
    else:
        _WORKER["scorer"] = factory()
    _WORKER["store"] = Store(store_path) if store_path else None
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="evonas-parent-watch", daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker once its parent is gone (a killed search must not leave idle workers behind).

    Every record is one SQLite transaction and a dead worker's claim is taken over, so
    exiting mid-score leaves the store consistent; ``--resume`` scores what is missing.
    """
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            os._exit(1)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def _score_in_worker(arch: Arch) -> tuple[str, Any, bool, float]:
    """Score one architecture: ("record", record dict, cached, seconds) or ("metrics", metrics, False, seconds)."""
    scorer, store = _WORKER["scorer"], _WORKER["store"]
    try:
        if store is not None:
            out = score_cached(scorer, store, arch)
            return "record", out.record.to_dict(), out.cached, out.seconds
        t0 = time.perf_counter()
        metrics = scorer.score(scorer.space.canonical(arch))
        return "metrics", {k: float(v) for k, v in metrics.items()}, False, time.perf_counter() - t0
    except ConfigError as exc:  # keeps its parameter name for the command line's wording
        raise ConfigError(f"{exc} (architecture {arch}, scoring worker {os.getpid()})", param=exc.param) from None
    except Exception as exc:  # a plain, picklable, one-line error for the parent
        raise ScoringError(f"scoring {arch} failed in worker process {os.getpid()}: {_one_line(exc)}") from None


class PoolScoring(Scoring):
    """Scores in ``workers`` processes; each builds its scorer with ``factory`` once (see the module docstring)."""

    def __init__(self, factory: ScorerFactory, scorer: Scorer, store: Store, *, workers: int,
                 threads_per_worker: int | None = None, devices: Sequence[str] | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.threads_per_worker = check_pool(workers, threads_per_worker)
        self.workers = workers
        self.scorer, self.store = scorer, store
        store_path = None if store.path == ":memory:" else str(store.path)
        self._shared = store_path is not None
        # spawn: a fresh interpreter, so no torch thread pool or open database is inherited across fork
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                         initargs=(factory, store_path, self.threads_per_worker, devices,
                                                   context.Value("i", 0) if devices else None))

    def map(self, archs: Sequence[Arch]) -> Iterator[Evaluated]:
        from concurrent.futures.process import BrokenProcessPool

        space = self.scorer.space
        todo: list[Arch] = []
        out: list[Evaluated | None] = []
        for arch in archs:
            found = None if self._shared else self._cached(space.canonical(arch))
            out.append(found)
            if found is None:
                todo.append(arch)
        try:
            futures = [self._pool.submit(_score_in_worker, arch) for arch in todo]
            results = [f.result() for f in futures]
        except BrokenProcessPool:
            raise ScoringError(f"a scoring worker process died (killed, or out of memory) while scoring {len(todo)} "
                               "architecture(s); the scores stored so far are kept: rerun with --resume") from None
        done = iter(zip(todo, results))
        for i, found in enumerate(out):
            if found is None:
                arch, (kind, payload, cached, seconds) = next(done)
                out[i] = self._evaluated(arch, kind, payload, cached, seconds)
        return iter(out)  # type: ignore[arg-type]

    def _key(self, arch: Arch) -> tuple[str, str, str, str]:
        return self.scorer.space.name, str(arch), self.scorer.name, self.scorer.source_key

    def _cached(self, arch: Arch) -> Evaluated | None:
        found = self.store.get(*self._key(arch))
        return Evaluated(found, True, 0.0) if found is not None else None

    def _evaluated(self, arch: Arch, kind: str, payload: Any, cached: bool, seconds: float) -> Evaluated:
        if kind == "record":
            return Evaluated(Record(**payload), cached, seconds)
        space, text, name, key = self._key(self.scorer.space.canonical(arch))
        record = self.store.put(space=space, arch=text, scorer=name, source_key=key, metrics=payload,
                                source=self.scorer.provenance())
        return Evaluated(record, False, seconds)

    def close(self) -> None:
        pool, self._pool = self.__dict__.get("_pool"), None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def make_scoring(scorer: Scorer, store: Store, *, workers: int = 1, threads_per_worker: int | None = None,
                 factory: ScorerFactory | None = None, devices: Sequence[str] | None = None) -> Scoring:
    """Serial scoring for one worker, else a pool of ``workers`` processes building scorers with ``factory``."""
    check_pool(workers, threads_per_worker)
    if workers == 1:
        return SerialScoring(scorer, store)
    if factory is None:
        raise ConfigError("The 'factory' parameter is required with 'workers' > 1: each worker process builds its own "
                          "scorer with it (a picklable callable, e.g. functools.partial(make_scorer, name, ...))",
                          param="factory")
    return PoolScoring(factory, scorer, store, workers=workers, threads_per_worker=threads_per_worker, devices=devices)
