"""Optuna samplers as searchers: TPE, NSGA-II and random, over the space's labelled dimensions.

Optuna's GPSampler handles categorical parameters but costs 1-3 s per trial here (more
with constraints), as much as a supernet scoring, so it is not registered; QMC and
CMA-ES fall back to independent random sampling on categorical parameters.

Each dimension becomes a categorical parameter named by its label (``e10``,
``s0_b1_op``) with the option names as choices, so optuna-dashboard shows readable
trials. Constraints go through Optuna's constraint support (``Trial.set_constraint``,
which replaced ``constraints_func`` in Optuna 5): each trial carries one value per
limit, ``cost - limit`` (<= 0 is feasible), that TPE, NSGA-II and GP all honour.
Infeasible proposals are told to Optuna (with the worst value seen so far) but are
never scored.

The study lives in the run's Optuna database (``RunLayout.optuna_url``) when the search has a run directory
(``--storage URL`` overrides it; no run directory means memory). Its name is the
search run's name. ``--resume`` replays the search, so the study is recreated and
refilled from the store's cached scores.

Optuna creates its tables on first use, and two processes doing that at once on one
SQLite file fail (``table alembic_version already exists``), so the storage and the
study are created under an exclusive ``fcntl.flock`` on a lock file beside the
database (``RunLayout.optuna_lock``, ``RUN/optuna.db.lock``), and, on PostgreSQL,
where workers on several machines share no file, under an advisory lock of the
database (:func:`database_lock`). SQLite storages also wait up to
``SQLITE_TIMEOUT_S`` for a lock held by a concurrent search instead of Optuna's
default 5 s.

A shared study (``--study-name NAME``, ``SearchContext.shared``) is joined when it
exists and never deleted; its workers share the budget and the scores through the
study's ledger in the same database (:mod:`evonas.run.shared_store`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from search_spaces import Arch

from evonas.errors import ConfigError, RunDirError
from evonas.search.base import Evaluation, Searcher, check_min

SQLITE_TIMEOUT_S = 60.0  # how long an SQLite Optuna storage waits for another process's write lock
LOCK_WAIT_S = 300.0  # how long a search waits for another one to finish creating the Optuna storage


def storage_url(run_dir, storage: str | None) -> str | None:
    """The study's storage: the explicit URL, else the run's Optuna database, else None (memory)."""
    if storage:
        return storage
    if run_dir:
        from evonas.run.run import RunLayout

        return RunLayout.of(run_dir).optuna_url
    return None


def storage_lock_file(run_dir, url: str | None) -> Path | None:
    """The lock file that serialises creating the storage at ``url``: the run's for its own
    database (or any non-file URL of a search with a run directory), else one beside an
    SQLite file; None for memory."""
    if not url:
        return None
    if run_dir:
        from evonas.run.run import RunLayout

        layout = RunLayout.of(run_dir)
        if url == layout.optuna_url or not url.startswith("sqlite:"):
            return layout.optuna_lock
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        return Path(url[len(prefix):] + ".lock")
    return None


@contextlib.contextmanager
def exclusive_lock(path: Path | None, *, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if missing); nothing for None.

    The lock goes with the process, so a killed search never leaves it held.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunDirError(
                        f"{path} has been locked by another process for {wait_s:.0f} s while it creates the Optuna "
                        "storage; wait for that search to start, or stop it and retry"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


PG_LOCK_KEY = 0x6F707475  # advisory lock key that serialises creating Optuna's tables on PostgreSQL ("optu")


@contextlib.contextmanager
def database_lock(url: str | None) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock ``PG_LOCK_KEY`` on the database at ``url``; nothing for others.

    Workers on several machines share no lock file, so the database itself
    serialises their first use of it (Optuna creates its tables then).
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    if not url or make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({PG_LOCK_KEY})")
            conn.commit()
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
                conn.commit()
    finally:
        engine.dispose()


def open_storage(optuna, url: str):
    """Optuna's storage for ``url``; SQLite files wait ``SQLITE_TIMEOUT_S`` for a concurrent writer."""
    if url.startswith("sqlite:"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_S}})
    return url


@dataclass(frozen=True, kw_only=True)
class OptunaConfig:
    """Searchers built on an Optuna sampler with no options of their own."""


class OptunaSearcher(Searcher):
    """Base class: one study, ask a trial, decode its parameters, tell values and violations."""

    multi_objective = True

    def sampler(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __init__(self, problem, *, seed, config=None, context=None) -> None:
        super().__init__(problem, seed=seed, config=config, context=context)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        dist = optuna.distributions.CategoricalDistribution
        self.dists = {d.label: dist(d.names) for d in self.space.dims}
        self.has_constraints = bool(problem.constraints)
        ctx = self.context
        url = storage_url(ctx.run_dir, ctx.storage)
        directions = ["maximize" if o.maximize else "minimize" for o in problem.objectives]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self.sampler()
        # Optuna's schema creation is not concurrent-safe: a file lock on one machine, an advisory lock on PostgreSQL
        with exclusive_lock(storage_lock_file(ctx.run_dir, url)), database_lock(url):
            storage = open_storage(optuna, url) if url else None
            if storage is not None and ctx.resume and not ctx.shared:
                try:
                    optuna.delete_study(study_name=ctx.study_name, storage=storage)  # the replay refills it
                except KeyError:
                    pass
            try:
                self.study = optuna.create_study(storage=storage, sampler=sampler, study_name=ctx.study_name,
                                                 directions=directions, load_if_exists=ctx.shared)
            except optuna.exceptions.DuplicatedStudyError:
                raise ConfigError(
                    f"The 'storage' parameter ({url}) already holds a study named {ctx.study_name!r}; replay it with "
                    "the 'resume' parameter, choose another 'name' parameter, or join it with the 'study_name' "
                    "parameter"
                ) from None
            if ctx.shared and list(self.study.directions) != [getattr(optuna.study.StudyDirection, d.upper())
                                                               for d in directions]:
                raise ConfigError(
                    f"The 'study_name' parameter names study {ctx.study_name!r} in {url}, whose directions are "
                    f"{[d.name.lower() for d in self.study.directions]}; this search's objectives give {directions}; "
                    "give the same objectives as its other workers, or another study name", param="study_name"
                )
        self.study.set_user_attr("space", self.space.name)
        self.pending: deque = deque()  # asked trials not yet told, in ask order (a batch)
        self.worst: float | None = None

    def independent_asks(self) -> int:
        """How many trials from now the sampler draws without looking at results still to be told."""
        return 1

    def ask_batch(self, limit: int) -> list[Arch]:
        """Optuna's batch: trials asked together before any is told, as many as the sampler allows."""
        return self._ask_independent(max(1, min(limit, self.independent_asks())))

    def ask(self) -> Arch:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask(self.dists)
        self.pending.append(trial)
        params = trial.params
        codes = tuple(d.options[d.names.index(params[d.label])] for d in self.space.dims)
        return Arch(self.space.name, codes)

    def tell(self, evaluation: Evaluation) -> None:
        if not self.pending:
            return
        trial = self.pending.popleft()
        values = list(evaluation.objectives)
        if evaluation.feasible:
            self.worst = evaluation.value if self.worst is None else min(self.worst, evaluation.value)
        else:
            values[0] = self.worst if self.worst is not None else 0.0
            values = [v if math.isfinite(v) else 0.0 for v in values]
        if self.has_constraints:
            violations = [v if math.isfinite(v) else 1e30 for v in evaluation.violations]
            if not evaluation.feasible and all(v <= 0 for v in violations):
                violations = [1.0] * len(violations)  # unknown architecture (e.g. not in the table)
            for metric, v in zip(self.problem.constraints.limits, violations):
                trial.set_constraint(metric, v)
        trial.set_user_attr("arch", str(evaluation.arch))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self._optuna.exceptions.ExperimentalWarning)
            self.study.tell(trial, values)

    def close(self) -> None:
        while self.pending:  # asked but never told (an error mid-step, or the end of the budget mid-batch)
            self.study.tell(self.pending.popleft(), state=self._optuna.trial.TrialState.FAIL)


@dataclass(frozen=True, kw_only=True)
class TPEConfig:
    """Options of the TPE searcher."""

    startup_trials: int = 10  # random trials before the density model is used
    multivariate: bool = True  # model dimensions jointly (Optuna's multivariate TPE)

    def __post_init__(self) -> None:
        check_min("startup_trials", self.startup_trials, 1)


class TPESearch(OptunaSearcher):
    name = "tpe"
    Config = TPEConfig
    summary = "Optuna TPE (multivariate); MOTPE with several objectives"

    def sampler(self):
        return self._optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.config.startup_trials,
                                                multivariate=self.config.multivariate)

    def independent_asks(self) -> int:
        """The random start-up trials still to come (TPE counts finished trials); then one at a time."""
        return max(1, self.config.startup_trials - len(self.study.get_trials(deepcopy=False)))


@dataclass(frozen=True, kw_only=True)
class OptunaNSGA2Config:
    """Options of Optuna's NSGA-II."""

    population: int = 20  # Optuna's population_size

    def __post_init__(self) -> None:
        check_min("population", self.population, 2)


class OptunaNSGA2(OptunaSearcher):
    name = "optuna-nsga2"
    Config = OptunaNSGA2Config
    summary = "Optuna NSGA-II sampler with constraint-dominance"

    def sampler(self):
        return self._optuna.samplers.NSGAIISampler(population_size=self.config.population, seed=self.seed)


class OptunaRandom(OptunaSearcher):
    name = "optuna-random"
    Config = OptunaConfig
    summary = "Optuna RandomSampler (repeats allowed; they cost no budget)"

    def sampler(self):
        return self._optuna.samplers.RandomSampler(seed=self.seed)

    def independent_asks(self) -> int:
        return 1 << 30  # random draws never look at results


def optuna_searchers() -> list[type[Searcher]]:
    return [TPESearch, OptunaNSGA2, OptunaRandom]


__all__: list[Any] = ["OptunaSearcher", "TPESearch", "OptunaNSGA2", "OptunaRandom", "database_lock", "exclusive_lock",
                      "open_storage", "storage_lock_file", "storage_url"]
