"""A study's shared ledger: the evaluation store of a search shared by several workers.

Several ``evonas search --study-name NAME`` workers, on one machine or several, join one
Optuna study in one SQL database (``--storage URL``: SQLite for one machine,
PostgreSQL or any SQLAlchemy URL for many; the run's ``optuna.db`` when no URL is
given). The same database holds the study's ledger, three tables of ours beside
Optuna's:

- ``evonas_studies``: the study's budget and its scoring settings (space, scorer,
  target, objectives, limits, and the scorer's source with file paths left out), set
  by the first worker; a worker whose settings differ is refused.
- ``evonas_study_workers``: one row per worker that joined, giving each its index
  (the Optuna sampler of worker ``i`` is seeded with ``seed + i``, so workers started
  with one seed do not propose the same architectures).
- ``evonas_evaluations``: one row per distinct architecture of the study, first
  claimed by the worker that scores it, then holding its metrics. The primary key
  (study, arch) makes every architecture scored at most once across workers, and a
  claim is taken only while the study has fewer rows than its budget, so the
  workers together score exactly ``--budget`` architectures. A worker that finds
  the study full while others still score waits for them before it stops, and takes
  the slot of one that died.

:class:`SharedStore` puts the ledger in front of a worker's own evaluation store
(:class:`evonas.run.store.Store`, its run directory's ``store.sqlite``), with the
methods that :func:`evonas.scorers.cached.score_cached` uses: ``get`` reads the ledger
(and copies a record another worker scored into the local store), ``claim`` takes a
ledger row (and raises :class:`~evonas.run.store.BudgetSpent` when the budget is
spent), ``put`` writes the local store and fills the row, ``release`` frees an
unfilled row after a failed scoring. Everything else goes to the local store. At the
end, :meth:`SharedStore.sync` copies every record of the study into the local store,
so each worker's store holds the union.

Claims are taken under a lock on the study's row (an ``UPDATE`` of it first in each
claim transaction: SQLite's write lock, PostgreSQL's row lock), so the budget check
and the insert are one step. A claim whose owner died (same host, pid gone) or that
is older than the claim timeout is taken over, as in the local store.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

from evonas.errors import ConfigError, RunDirError
from evonas.run.records import Record, canonical_json
from evonas.run.owners import owner_alive
from evonas.run.store import CLAIM_TIMEOUT_S, BudgetSpent, Store

SQLITE_TIMEOUT_S = 60.0  # how long a worker waits for another one's write lock on an SQLite storage
PG_LOCK_KEY = 0x65766F6E  # advisory lock that serialises creating the ledger tables on PostgreSQL ("evon")


def display_url(url: str) -> str:
    """``url`` with any password masked, for messages and results."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL was refused earlier; never fail while printing one
        return url


def portable_source(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A scorer's provenance less its absolute file paths: equal on every machine with the same sources."""
    return {k: v for k, v in provenance.items() if not (isinstance(v, str) and v.startswith("/"))}


def _tables():
    from sqlalchemy import Column, Float, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

    meta = MetaData()
    studies = Table(
        "evonas_studies", meta,
        Column("study", String(512), primary_key=True),
        Column("budget", Integer, nullable=False),
        Column("config", Text, nullable=False),
        Column("created", Float, nullable=False),
    )
    workers = Table(
        "evonas_study_workers", meta,
        Column("study", String(512), nullable=False),
        Column("idx", Integer, nullable=False),
        Column("owner", String(512), nullable=False),
        Column("joined", Float, nullable=False),
        PrimaryKeyConstraint("study", "idx"),
    )
    evaluations = Table(
        "evonas_evaluations", meta,
        Column("study", String(512), nullable=False),
        Column("arch", String(512), nullable=False),
        Column("owner", String(512), nullable=False),
        Column("claimed", Float, nullable=False),
        Column("metrics", Text, nullable=True),  # NULL while claimed, the metrics once scored
        Column("source", Text, nullable=True),
        Column("finished", Float, nullable=True),
        PrimaryKeyConstraint("study", "arch"),
    )
    return meta, studies, workers, evaluations


def _engine(url: str):
    from sqlalchemy import create_engine

    if url.startswith("sqlite:"):
        return create_engine(url, connect_args={"timeout": SQLITE_TIMEOUT_S})
    return create_engine(url, pool_pre_ping=True)


class SharedStore:
    """A worker's view of a shared study: the ledger in the storage database, in front of its local store."""

    def __init__(self, local: Store, url: str, study: str, *, budget: int, worker: int, engine, tables) -> None:
        self.local = local
        self.url = url
        self.study = study
        self.budget = budget
        self.worker = worker  # this worker's index in the study (0 for the first)
        self.owner = local.owner
        self._engine = engine
        _, self._studies, self._workers, self._evals = tables

    # --- joining ---------------------------------------------------------------------------
    @classmethod
    def join(cls, local: Store, url: str, study: str, *, budget: int, config: Mapping[str, Any]) -> "SharedStore":
        """Join study ``study`` in the database at ``url`` (creating its ledger on first use).

        The first worker sets the budget and the scoring settings ``config``; a later
        one with another budget or other settings gets a ConfigError naming the
        difference.
        """
        from sqlalchemy import func, insert, select
        from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

        engine = _engine(url)
        tables = _tables()
        meta, studies, workers, _ = tables
        config_json = canonical_json(dict(config))
        try:
            for attempt in range(20):
                try:
                    with engine.begin() as conn:
                        if conn.dialect.name == "postgresql":  # concurrent CREATE TABLE IF NOT EXISTS can fail there
                            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
                        meta.create_all(conn)
                    break
                except OperationalError as exc:
                    # SQLite: two workers both saw no table and both created it; the loser's next
                    # look finds it (seen in make test: "table evonas_evaluations already exists")
                    if "already exists" not in str(exc) or attempt == 19:
                        raise
                    time.sleep(0.05)
            for _attempt in range(20):
                try:
                    with engine.begin() as conn:
                        row = conn.execute(select(studies.c.budget, studies.c.config)
                                           .where(studies.c.study == study)).first()
                        if row is None:
                            conn.execute(insert(studies).values(study=study, budget=budget, config=config_json,
                                                                created=time.time()))
                        else:
                            _check_same(study, url, row.budget, json.loads(row.config), budget, dict(config))
                        n = conn.execute(select(func.count()).select_from(workers)
                                         .where(workers.c.study == study)).scalar_one()
                        conn.execute(insert(workers).values(study=study, idx=n, owner=local.owner, joined=time.time()))
                    break
                except IntegrityError:  # another worker joined at the same moment: read again
                    time.sleep(0.05)
            else:  # pragma: no cover - twenty collisions in a row
                raise RunDirError(f"could not join study {study!r} in {display_url(url)}: too many workers joined at "
                                  "once; retry")
        except SQLAlchemyError as exc:
            engine.dispose()
            raise _db_error(url, exc) from None
        except BaseException:
            engine.dispose()
            raise
        return cls(local, url, study, budget=budget, worker=n, engine=engine, tables=tables)

    # --- the methods score_cached uses ------------------------------------------------------
    def get(self, space: str, arch: str, scorer: str, source_key: str) -> Record | None:
        """The study's record of ``arch`` once some worker has scored it (copied into the local store), else None."""
        from sqlalchemy import select

        e = self._evals
        with self._connect() as conn:
            row = conn.execute(select(e.c.metrics, e.c.source).where(e.c.study == self.study, e.c.arch == arch,
                                                                    e.c.metrics.is_not(None))).first()
        if row is None:
            return None
        return self.local.put(space=space, arch=arch, scorer=scorer, source_key=source_key,
                              metrics=json.loads(row.metrics), source=json.loads(row.source))

    def claim(self, space: str, arch: str, scorer: str, source_key: str, *, timeout_s: float = CLAIM_TIMEOUT_S) -> bool:
        """Claim ``arch`` for scoring in the study; False while another live worker holds it.

        Raises BudgetSpent when ``arch`` is new to the study and the study already has
        its budget of architectures, all scored. While another worker still scores one of
        them it waits: should that worker die, its slot is taken here (so a worker killed
        holding the study's last claim does not leave the study short). An architecture
        this run directory's store already holds fills its row at once (no scoring).
        """
        if not self._claim_row(arch, timeout_s):
            return False
        if not self.local.claim(space, arch, scorer, source_key, timeout_s=timeout_s):
            self._release_row(arch)  # a search outside the study is scoring it in this run directory: wait for it
            return False
        found = self.local.get(space, arch, scorer, source_key)
        if found is not None:
            self._fill_row(arch, found.metrics, found.source)
        return True

    def put(self, *, space: str, arch: str, scorer: str, source_key: str, metrics: Mapping[str, float],
            source: Mapping[str, Any]) -> Record:
        """Store a score locally and in the study; returns the local record."""
        record = self.local.put(space=space, arch=arch, scorer=scorer, source_key=source_key, metrics=metrics,
                                source=source)
        self._fill_row(arch, record.metrics, record.source)
        return record

    def release(self, space: str, arch: str, scorer: str, source_key: str) -> None:
        """Drop this worker's claims on ``arch``; a row left unscored (a failed scoring) frees its budget slot."""
        self._release_row(arch)
        self.local.release(space, arch, scorer, source_key)

    # --- the study as a whole ---------------------------------------------------------------
    def scored(self) -> int:
        """Architectures of the study scored so far, by every worker."""
        from sqlalchemy import func, select

        e = self._evals
        with self._connect() as conn:
            return int(conn.execute(select(func.count()).select_from(e)
                                    .where(e.c.study == self.study, e.c.metrics.is_not(None))).scalar_one())

    def workers(self) -> int:
        """Workers that joined the study so far."""
        from sqlalchemy import func, select

        w = self._workers
        with self._connect() as conn:
            return int(conn.execute(select(func.count()).select_from(w).where(w.c.study == self.study)).scalar_one())

    def wait_for_claims(self, *, timeout_s: float = CLAIM_TIMEOUT_S, poll_s: float = 0.2) -> None:
        """Wait until no live worker holds an unscored claim of the study (dead ones' claims are dropped)."""
        from sqlalchemy import select

        e = self._evals
        while True:
            with self._connect() as conn:
                rows = conn.execute(select(e.c.arch, e.c.owner, e.c.claimed)
                                    .where(e.c.study == self.study, e.c.metrics.is_(None))).all()
            live = [r for r in rows if r.owner != self.owner and time.time() - r.claimed < timeout_s
                    and owner_alive(r.owner, r.claimed)]
            if len(live) < len(rows):
                with self._begin() as conn:
                    self._drop_dead_claims(conn, timeout_s)
            if not live:
                return
            time.sleep(poll_s)

    def sync(self, *, space: str, scorer: str, source_key: str) -> int:
        """Copy every scored record of the study into the local store; returns how many the study has."""
        from sqlalchemy import select

        e = self._evals
        with self._connect() as conn:
            rows = conn.execute(select(e.c.arch, e.c.metrics, e.c.source)
                                .where(e.c.study == self.study, e.c.metrics.is_not(None))).all()
        for r in rows:
            self.local.put(space=space, arch=r.arch, scorer=scorer, source_key=source_key,
                           metrics=json.loads(r.metrics), source=json.loads(r.source))
        return len(rows)

    def describe(self, target: str | None = None) -> dict[str, Any]:
        """The study's name, storage (password masked), budget, this worker's index, the study's progress and,
        given the ``target`` metric, its best architecture so far (``best``: arch and value; None before any)."""
        out = {"name": self.study, "storage": display_url(self.url), "budget": self.budget, "worker": self.worker,
               "workers": self.workers(), "scored": self.scored()}
        if target is not None:
            from sqlalchemy import select

            e = self._evals
            with self._connect() as conn:
                rows = conn.execute(select(e.c.arch, e.c.metrics)
                                    .where(e.c.study == self.study, e.c.metrics.is_not(None))).all()
            values = [(json.loads(r.metrics).get(target), r.arch) for r in rows]
            values = [(v, a) for v, a in values if isinstance(v, (int, float)) and not math.isnan(v)]
            best = max(values, default=None, key=lambda va: (va[0], va[1]))
            out["best"] = None if best is None else {"arch": best[1], "value": best[0]}
        return out

    def close(self) -> None:
        self._engine.dispose()
        self.local.close()

    def __getattr__(self, name: str) -> Any:  # add_step, finish_search, records, ...: the local store's
        return getattr(self.local, name)

    # --- ledger rows --------------------------------------------------------------------------
    def _connect(self):
        return _Guard(self, self._engine.connect())

    def _begin(self):
        return _Guard(self, self._engine.begin())

    def _lock_study(self, conn) -> None:
        """Take the study's lock for the rest of the transaction (a write to its row)."""
        from sqlalchemy import update

        s = self._studies
        conn.execute(update(s).where(s.c.study == self.study).values(budget=s.c.budget))

    def _drop_dead_claims(self, conn, timeout_s: float) -> int:
        from sqlalchemy import delete, select

        e = self._evals
        rows = conn.execute(select(e.c.arch, e.c.owner, e.c.claimed)
                            .where(e.c.study == self.study, e.c.metrics.is_(None))).all()
        dead = [r.arch for r in rows if r.owner != self.owner and (time.time() - r.claimed >= timeout_s
                                                                  or not owner_alive(r.owner, r.claimed))]
        for arch in dead:
            conn.execute(delete(e).where(e.c.study == self.study, e.c.arch == arch, e.c.metrics.is_(None)))
        return len(dead)

    def _claim_row(self, arch: str, timeout_s: float, poll_s: float = 0.2) -> bool:
        from sqlalchemy import func, insert, select, update

        e = self._evals
        while True:
            with self._begin() as conn:
                self._lock_study(conn)
                row = conn.execute(select(e.c.owner, e.c.claimed, e.c.metrics)
                                   .where(e.c.study == self.study, e.c.arch == arch)).first()
                if row is not None:
                    if row.metrics is not None or row.owner == self.owner:
                        return True
                    if time.time() - row.claimed < timeout_s and owner_alive(row.owner, row.claimed):
                        return False
                    conn.execute(update(e).where(e.c.study == self.study, e.c.arch == arch)
                                 .values(owner=self.owner, claimed=time.time()))  # its owner is gone: take it over
                    return True
                count = select(func.count()).select_from(e).where(e.c.study == self.study)
                if conn.execute(count).scalar_one() < self.budget or (
                        self._drop_dead_claims(conn, timeout_s) and conn.execute(count).scalar_one() < self.budget):
                    conn.execute(insert(e).values(study=self.study, arch=arch, owner=self.owner, claimed=time.time()))
                    return True
                others = conn.execute(select(func.count()).select_from(e).where(
                    e.c.study == self.study, e.c.metrics.is_(None), e.c.owner != self.owner)).scalar_one()
                if not others:  # every slot is scored (or this worker's own): the budget is spent
                    raise BudgetSpent(f"study {self.study!r} has its budget of {self.budget} architectures")
            # the study is full but other workers still score: wait, since a slot comes free if one of them dies
            time.sleep(poll_s)

    def _fill_row(self, arch: str, metrics: Mapping[str, float], source: Mapping[str, Any]) -> None:
        from sqlalchemy import update

        e = self._evals
        with self._begin() as conn:
            conn.execute(update(e).where(e.c.study == self.study, e.c.arch == arch, e.c.metrics.is_(None))
                         .values(metrics=json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True),
                                 source=canonical_json(dict(source)), finished=time.time()))

    def _release_row(self, arch: str) -> None:
        from sqlalchemy import delete

        e = self._evals
        with self._begin() as conn:
            conn.execute(delete(e).where(e.c.study == self.study, e.c.arch == arch, e.c.owner == self.owner,
                                         e.c.metrics.is_(None)))


class _Guard:
    """A connection context whose SQLAlchemy errors become one-line RunDirErrors naming the storage."""

    def __init__(self, store: SharedStore, ctx) -> None:
        self.store, self.ctx = store, ctx

    def __enter__(self):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return self.ctx.__enter__()
        except SQLAlchemyError as exc:
            raise _db_error(self.store.url, exc) from None

    def __exit__(self, exc_type, exc, tb):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            result = self.ctx.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as err:
            raise _db_error(self.store.url, err) from None
        if isinstance(exc, SQLAlchemyError):
            raise _db_error(self.store.url, exc) from None
        return result


def _db_error(url: str, exc: BaseException) -> RunDirError:
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
    return RunDirError(f"the study's storage {display_url(url)} failed ({reason}); check the database server and "
                       "retry: scored architectures are kept, and a worker started again continues the study")


def check_study(url: str, study: str, *, budget: int, config: Mapping[str, Any]) -> None:
    """Refuse, before any write, joining study ``study`` at ``url`` with another budget or other settings.

    Reads only (a study whose ledger does not exist yet is fine); :meth:`SharedStore.join`
    checks again when it joins.
    """
    from sqlalchemy import inspect, select
    from sqlalchemy.exc import SQLAlchemyError

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not os.path.exists(parsed.database):
        return  # no database yet, so no study: and nothing is created here
    engine = _engine(url)
    _, studies, _, _ = _tables()
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(studies.name):
                return
            row = conn.execute(select(studies.c.budget, studies.c.config).where(studies.c.study == study)).first()
    except SQLAlchemyError as exc:
        raise _db_error(url, exc) from None
    finally:
        engine.dispose()
    if row is not None:
        _check_same(study, url, row.budget, json.loads(row.config), budget, dict(config))


def _check_same(study: str, url: str, budget: int, config: dict[str, Any], new_budget: int,
                new_config: dict[str, Any]) -> None:
    where = f"study {study!r} in {display_url(url)}"
    if budget != new_budget:
        raise ConfigError(f"The 'budget' parameter is the whole study's: {where} has budget {budget}; got "
                          f"{new_budget}; give --budget {budget}, or another --study-name", param="budget")
    order = ["space", "scorer", "source", "target", "objectives", "constraints"]
    for key in sorted(set(config) | set(new_config), key=lambda k: (order.index(k) if k in order else len(order), k)):
        if config.get(key) != new_config.get(key):
            raise ConfigError(f"The 'study_name' parameter names {where}, which scores with {key} "
                              f"{json.dumps(config.get(key), sort_keys=True)}; this search has "
                              f"{json.dumps(new_config.get(key), sort_keys=True)}; give the same options as the "
                              "study's other workers, or another --study-name", param="study_name")


def study_config(*, space: str, scorer, constraints: Mapping[str, Any], objectives: list[str]) -> dict[str, Any]:
    """The settings every worker of a study must share: what is scored, by what, and under which limits."""
    return {"space": space, "scorer": scorer.name, "target": scorer.target,
            "source": portable_source(scorer.provenance()), "constraints": dict(constraints),
            "objectives": list(objectives)}


__all__ = ["SharedStore", "check_study", "display_url", "portable_source", "study_config"]
