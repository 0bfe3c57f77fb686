"""The evaluation store: every score and every search step, in one SQLite file per run.

``Store.open(run_dir)`` opens the run's store file, ``RUN/store.sqlite`` (the same file as
``RunLayout.store_file``; this module imports no run layout so that the layout may import
it); ``Store.memory()`` keeps the same tables in memory for table searches that have no run directory. Records are
keyed by (space, canonical arch, scorer, source key), so a score computed by one
searcher is reused by every other. Each write is its own short transaction and is
committed before the call returns; the file is in WAL mode with a busy timeout, so
two processes can search the same run directory at once. Only this module writes
records; everything else reads them.

Claims keep two processes from scoring the same architecture: before scoring, a
process claims the record's key (``claim``: a row of the ``claims`` table with its
owner, ``host:pid:random``, and the time); the other process sees the claim and waits
for the record instead (``score_cached`` in ``evonas.scorers.cached``). A claim whose
owner has died (same host, pid not alive or reused; :mod:`evonas.run.owners`) or that
is older than a timeout is taken over. The ``claims`` table was added without changing the schema version (still 1):
it is created with CREATE TABLE IF NOT EXISTS when a store is opened, records and
search tables are unchanged, and an evonas that knows no claims still reads and
writes the store correctly (it only scores without claiming).

A file that is not a readable SQLite database (garbage, truncated, corrupt) is
refused on open with :class:`RunDirError` (a schema read and ``PRAGMA quick_check``),
and a corruption found later by any method raises the same error, never a
``sqlite3.DatabaseError``.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from evonas.errors import ConfigError, RunDirError
from evonas.run.owners import new_owner, owner_alive
from evonas.run.records import Record, SearchRun, Step, canonical_json

SCHEMA_VERSION = 1
STORE_FILE = "store.sqlite"  # the store's file name inside a run directory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    space TEXT NOT NULL, arch TEXT NOT NULL, scorer TEXT NOT NULL, source_key TEXT NOT NULL,
    metrics TEXT NOT NULL, source TEXT NOT NULL, created REAL NOT NULL,
    UNIQUE (space, arch, scorer, source_key)
);
CREATE TABLE IF NOT EXISTS search_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE, algo TEXT NOT NULL, seed INTEGER NOT NULL,
    config TEXT NOT NULL, created REAL NOT NULL, finished REAL, summary TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id INTEGER NOT NULL REFERENCES search_runs(id), idx INTEGER NOT NULL,
    arch TEXT NOT NULL, value REAL, feasible INTEGER NOT NULL, record_id INTEGER REFERENCES records(id),
    created REAL NOT NULL, PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS search_owners (
    run_id INTEGER PRIMARY KEY REFERENCES search_runs(id), owner TEXT NOT NULL, since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    space TEXT NOT NULL, arch TEXT NOT NULL, scorer TEXT NOT NULL, source_key TEXT NOT NULL,
    owner TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (space, arch, scorer, source_key)
);
"""

CLAIM_TIMEOUT_S = 3600.0  # a claim older than this is taken over even when its owner looks alive


def _differences(saved: Any, given: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, saved, given) for every leaf where two nested dicts differ."""
    if isinstance(saved, dict) and isinstance(given, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(saved) | set(given), key=str):
            out += _differences(saved.get(key), given.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == given else [(prefix.rstrip("."), saved, given)]


class BudgetSpent(Exception):
    """A shared study has its budget of architectures: no new one may be claimed (``SharedStore.claim``).

    Not an error: the search driver ends the worker's search when it sees it.
    """

_F = TypeVar("_F", bound=Callable[..., Any])


def unreadable_store_error(path: str, exc: BaseException) -> RunDirError:
    """The error for a store file SQLite cannot read (garbage, truncated, corrupt)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return RunDirError(f"{path} is not a readable evonas store ({message}); move it aside to start a new store, "
                       "or restore it from a copy")


def _store_error(path: str, exc: sqlite3.DatabaseError) -> RunDirError:
    if isinstance(exc, sqlite3.OperationalError):
        # locked past the busy timeout, disk full, read-only, I/O error: the file may be fine, so no advice to move it
        message = " ".join(str(exc).split())
        if "no such table" in message or "no such column" in message:
            return unreadable_store_error(path, exc)  # an SQLite file, but not an evonas store
        return RunDirError(f"cannot use the evaluation store {path} ({message}); check the disk, the file's "
                           "permissions and the processes using it, then retry")
    return unreadable_store_error(path, exc)


def _translated(method: _F) -> _F:
    """Turn a ``sqlite3.DatabaseError`` raised by a Store method into a one-line RunDirError.

    Misuse errors (``ProgrammingError``: a closed store; ``IntegrityError``) are bugs and stay as they are.
    """
    @functools.wraps(method)
    def wrapper(self: "Store", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.ProgrammingError, sqlite3.IntegrityError):
            raise
        except sqlite3.DatabaseError as exc:
            raise _store_error(self.path, exc) from None
    return wrapper  # type: ignore[return-value]


class Store:
    """A connection to an evaluation store (a file, or memory)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = str(path)
        self.owner = new_owner()  # this connection's id in the claims table
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, one short transaction per write
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise RunDirError(f"cannot open the evaluation store {self.path}: {exc}") from None
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._check_readable()  # before anything may write to the file
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across a process kill
            self._init_schema()
        except (sqlite3.DatabaseError, RunDirError) as exc:
            self._db.close()
            if isinstance(exc, RunDirError):
                raise
            raise _store_error(self.path, exc) from None

    # --- construction -------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: str | Path) -> "Store":
        """The store of a run directory (created on first use); same as ``RunLayout(run_dir).store()``."""
        path = Path(getattr(run_dir, "path", run_dir))  # a path, or a RunLayout / Run
        if path.exists() and not path.is_dir():
            raise RunDirError(f"The 'run_dir' parameter must be a run directory; got {str(path)!r}, a file")
        path.mkdir(parents=True, exist_ok=True)
        return cls(path / STORE_FILE)

    @classmethod
    def memory(cls) -> "Store":
        """A store that lives as long as this object (no run directory)."""
        return cls(":memory:")

    def _check_readable(self) -> None:
        """Refuse a file SQLite cannot read: a read of the schema, then ``PRAGMA quick_check``."""
        self._db.execute("SELECT name, sql FROM sqlite_master").fetchall()
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            problem = "; ".join(str(r[0]) for r in rows[:3]) + ("; ..." if len(rows) > 3 else "")
            raise unreadable_store_error(self.path, sqlite3.DatabaseError(problem))

    def _init_schema(self) -> None:
        with self._write() as db:
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    db.execute(stmt)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RunDirError(f"{self.path} has store schema version {row[0]}; this evonas reads version {SCHEMA_VERSION}")

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")  # take the write lock now (waits up to busy_timeout)
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            if exc_type is None:
                self.db.execute("COMMIT")
                return
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite may have rolled back already (corruption, disk full): keep the first error

    def _write(self) -> "Store._Tx":
        return Store._Tx(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- records --------------------------------------------------------------------------
    @staticmethod
    def _record(row: tuple) -> Record:
        rid, space, arch, scorer, source_key, metrics, source, created = row
        return Record(id=rid, space=space, arch=arch, scorer=scorer, source_key=source_key,
                      metrics=json.loads(metrics), source=json.loads(source), created=created)

    _RECORD_COLS = "id, space, arch, scorer, source_key, metrics, source, created"

    @_translated
    def get(self, space: str, arch: str, scorer: str, source_key: str) -> Record | None:
        """The stored record for this key, or None."""
        row = self._db.execute(
            f"SELECT {self._RECORD_COLS} FROM records WHERE space=? AND arch=? AND scorer=? AND source_key=?",
            (space, arch, scorer, source_key),
        ).fetchone()
        return None if row is None else self._record(row)

    @_translated
    def put(self, *, space: str, arch: str, scorer: str, source_key: str, metrics: Mapping[str, float],
            source: Mapping[str, Any]) -> Record:
        """Store a score and commit; returns the stored record.

        If another process stored the same key first, its record wins and is returned,
        so every reader sees one number per key.
        """
        metrics_json = json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True)
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO records (space, arch, scorer, source_key, metrics, source, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (space, arch, scorer, source_key, metrics_json, canonical_json(dict(source)), time.time()),
            )
        record = self.get(space, arch, scorer, source_key)
        assert record is not None
        return record

    @_translated
    def records(self, *, space: str | None = None, scorer: str | None = None,
                source_key: str | None = None) -> list[Record]:
        """Records matching the given fields, oldest first."""
        where, args = [], []
        for col, value in (("space", space), ("scorer", scorer), ("source_key", source_key)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = f"SELECT {self._RECORD_COLS} FROM records" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [self._record(r) for r in self._db.execute(sql, args)]

    @_translated
    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    # --- search runs and steps --------------------------------------------------------------
    @staticmethod
    def _search_run(row: tuple) -> SearchRun:
        rid, name, algo, seed, config, created, finished, summary = row
        return SearchRun(id=rid, name=name, algo=algo, seed=seed, config=json.loads(config), created=created,
                         finished=finished, summary=json.loads(summary) if summary else {})

    _RUN_COLS = "id, name, algo, seed, config, created, finished, summary"

    @_translated
    def search_runs(self) -> list[SearchRun]:
        return [self._search_run(r) for r in self._db.execute(f"SELECT {self._RUN_COLS} FROM search_runs ORDER BY id")]

    @_translated
    def search_run(self, name: str) -> SearchRun | None:
        row = self._db.execute(f"SELECT {self._RUN_COLS} FROM search_runs WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._search_run(row)

    @_translated
    def begin_search(self, *, algo: str, seed: int, config: Mapping[str, Any], name: str | None = None,
                     resume: bool = False, budget: int | None = None) -> tuple[SearchRun, bool]:
        """Register a search run; returns (run, resumed).

        With ``resume``, the newest run of the same algorithm, seed and configuration
        (``name`` too, when given) is continued: its steps are replayed and rewritten in
        place. Given the ``budget`` (the search job always gives it), a finished one is
        continued only to a larger budget than it scored (never replaced by a smaller
        result); no earlier run, or only runs with
        other options, is refused with what differs. Without it, a new run is created;
        ``name`` defaults to ``{algo}-s{seed}`` and gets a ``-2``, ``-3``... suffix when taken.
        """
        config_json = canonical_json(dict(config))
        if resume:
            sql = f"SELECT {self._RUN_COLS} FROM search_runs WHERE algo = ? AND seed = ? AND config = ?"
            args: list[Any] = [algo, seed, config_json]
            if name is not None:
                sql += " AND name = ?"
                args.append(name)
            row = self._db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
            if row is not None:
                self._check_extendable(self._search_run(row), budget)
                with self._write() as db:
                    db.execute("UPDATE search_runs SET finished = NULL, summary = NULL WHERE id = ?", (row[0],))
                    self._own(db, row[0])
                return self._search_run(row), True
            self._refuse_resume(algo=algo, seed=seed, config=dict(config), name=name)
        base = name or f"{algo}-s{seed}"
        with self._write() as db:
            taken = {r[0] for r in db.execute("SELECT name FROM search_runs WHERE name = ? OR name LIKE ?", (base, base + "-%"))}
            if name is not None and name in taken:
                raise ConfigError(f"The 'name' parameter ({name}) is already a search run in {self.path}; pick another "
                                  "or set the 'resume' parameter", param="name")
            final, n = base, 2
            while final in taken:
                final, n = f"{base}-{n}", n + 1
            cur = db.execute(
                "INSERT INTO search_runs (name, algo, seed, config, created) VALUES (?, ?, ?, ?, ?)",
                (final, algo, seed, config_json, time.time()),
            )
            run_id = cur.lastrowid
            self._own(db, run_id)
            self._supersede(db, algo, seed, config_json, run_id, final)
        run = self.search_run(final)
        assert run is not None and run.id == run_id
        return run, False

    @staticmethod
    def _check_extendable(run: SearchRun, budget: int | None) -> None:
        """A finished search is resumed only to a larger budget than it scored (its result is never made smaller)."""
        if run.finished is None or run.summary.get("abandoned") or budget is None:
            return  # interrupted (or replaced): continue it; without a budget the caller replays it as it asks
        done = run.summary.get("evaluations")
        if run.summary.get("exhausted"):
            raise ConfigError(f"The 'resume' parameter continues an interrupted search, but search run {run.name!r} "
                              f"finished: it scored {done} architectures and stopped before its budget, having nothing "
                              "new to propose; its result stands; drop --resume to start a new search", param="resume")
        if not isinstance(done, int) or budget <= done:
            raise ConfigError(f"The 'resume' parameter continues an interrupted search, but search run {run.name!r} "
                              f"finished with {done} architectures scored; the 'budget' parameter ({budget}) would "
                              f"replace its result with a smaller search; give a budget above {done} to extend it, or "
                              "drop --resume to start a new search", param="resume")

    def _refuse_resume(self, *, algo: str, seed: int, config: dict, name: str | None) -> None:
        """Raise why there is nothing to resume: no earlier search, or one with other options (saying what differs)."""
        if name is not None:
            earlier = self.search_run(name)
        else:
            row = self._db.execute(f"SELECT {self._RUN_COLS} FROM search_runs WHERE algo = ? AND seed = ? "
                                   "ORDER BY id DESC LIMIT 1", (algo, seed)).fetchone()
            earlier = None if row is None else self._search_run(row)
        if earlier is None:
            what = f"named {name!r}" if name is not None else f"of searcher {algo!r} with the 'seed' parameter ({seed})"
            raise ConfigError(f"The 'resume' parameter continues an interrupted search, but there is no search run "
                              f"{what} in {self.path}; drop --resume to start one", param="resume")
        given = {"algo": algo, "seed": seed, **json.loads(canonical_json(config))}
        saved = {"algo": earlier.algo, "seed": earlier.seed, **earlier.config}
        differ = "; ".join(f"{k}: {saved_v!r} -> {given_v!r}" for k, saved_v, given_v in _differences(saved, given))
        raise ConfigError(f"The 'resume' parameter cannot replay search run {earlier.name!r}: it exists with another "
                          f"algorithm, seed or configuration (saved -> given: {differ or 'none'}); give the same options "
                          "as the interrupted search, or drop --resume (or give a new 'name' parameter) to start a new "
                          "one", param="resume")

    def _own(self, db: sqlite3.Connection, run_id: int) -> None:
        """Record this process as the one running search ``run_id`` (what tells running from interrupted)."""
        db.execute("INSERT OR REPLACE INTO search_owners (run_id, owner, since) VALUES (?, ?, ?)",
                   (run_id, self.owner, time.time()))

    def _supersede(self, db: sqlite3.Connection, algo: str, seed: int, config_json: str, new_id: int, new_name: str) -> None:
        """Close the interrupted runs that a new search with the same options replaces.

        Without this, a search killed and then started again without ``--resume``
        would stay "interrupted" forever beside its replacement. It is marked
        abandoned instead, naming the run that replaced it (``--resume --name``
        still continues it, if wanted).
        """
        rows = db.execute(
            "SELECT r.id, o.owner, o.since FROM search_runs r LEFT JOIN search_owners o ON o.run_id = r.id "
            "WHERE r.algo = ? AND r.seed = ? AND r.config = ? AND r.finished IS NULL AND r.id != ?",
            (algo, seed, config_json, new_id)).fetchall()
        for rid, owner, since in rows:
            if owner is None or not owner_alive(owner, since):
                db.execute("UPDATE search_runs SET finished = ?, summary = ? WHERE id = ?",
                           (time.time(), canonical_json({"abandoned": True, "superseded_by": new_name}), rid))

    @_translated
    def search_state(self, run: SearchRun) -> str:
        """'finished', 'running' (its process is alive), 'interrupted' (killed, resumable) or 'abandoned'."""
        if run.finished is not None:
            return "abandoned" if run.summary.get("abandoned") else "finished"
        row = self._db.execute("SELECT owner, since FROM search_owners WHERE run_id = ?", (run.id,)).fetchone()
        return "running" if row is not None and owner_alive(row[0], row[1]) else "interrupted"

    @_translated
    def add_step(self, step: Step) -> None:
        """Record (or, on a replay, rewrite) one step of a search run; committed at once."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO steps (run_id, idx, arch, value, feasible, record_id, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (step.run_id, step.index, step.arch, step.value, int(step.feasible), step.record_id, step.created),
            )

    @_translated
    def steps(self, run_id: int) -> list[Step]:
        rows = self._db.execute(
            "SELECT run_id, idx, arch, value, feasible, record_id, created FROM steps WHERE run_id = ? ORDER BY idx", (run_id,)
        )
        return [Step(run_id=r[0], index=r[1], arch=r[2], value=r[3], feasible=bool(r[4]), record_id=r[5], created=r[6]) for r in rows]

    @_translated
    def finish_search(self, run_id: int, summary: Mapping[str, Any], *, keep_steps: int | None = None) -> None:
        """Mark a search run finished with its result; drop steps past ``keep_steps`` (left from a longer run)."""
        with self._write() as db:
            db.execute("UPDATE search_runs SET finished = ?, summary = ? WHERE id = ?",
                       (time.time(), json.dumps(dict(summary), default=str), run_id))
            if keep_steps is not None:
                db.execute("DELETE FROM steps WHERE run_id = ? AND idx >= ?", (run_id, keep_steps))

    def iter_steps(self) -> Iterator[tuple[SearchRun, list[Step]]]:
        for run in self.search_runs():
            yield run, self.steps(run.id)

    @_translated
    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # --- claims -------------------------------------------------------------------------------
    @_translated
    def claim_holder(self, space: str, arch: str, scorer: str, source_key: str) -> tuple[str, float] | None:
        """The (owner, time) of the claim on this key, or None."""
        row = self._db.execute(
            "SELECT owner, created FROM claims WHERE space=? AND arch=? AND scorer=? AND source_key=?",
            (space, arch, scorer, source_key),
        ).fetchone()
        return None if row is None else (row[0], float(row[1]))

    def _claim_is_live(self, holder: tuple[str, float] | None, timeout_s: float) -> bool:
        if holder is None or holder[0] == self.owner:
            return False
        owner, since = holder
        return time.time() - since < timeout_s and owner_alive(owner, since)

    @_translated
    def claim(self, space: str, arch: str, scorer: str, source_key: str, *,
              timeout_s: float = CLAIM_TIMEOUT_S) -> bool:
        """Claim this key for scoring; False while another live owner holds a claim younger than ``timeout_s``.

        A claim of a dead owner (same host, pid gone or reused) or an older one is taken
        over. The caller scores, ``put``s the record and then ``release``s the claim.
        """
        if self._claim_is_live(self.claim_holder(space, arch, scorer, source_key), timeout_s):
            return False  # checked without the write lock first: waiting processes poll here
        with self._write() as db:
            row = db.execute(
                "SELECT owner, created FROM claims WHERE space=? AND arch=? AND scorer=? AND source_key=?",
                (space, arch, scorer, source_key),
            ).fetchone()
            if self._claim_is_live(None if row is None else (row[0], float(row[1])), timeout_s):
                return False
            db.execute("INSERT OR REPLACE INTO claims (space, arch, scorer, source_key, owner, created) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (space, arch, scorer, source_key, self.owner, time.time()))
        return True

    @_translated
    def release(self, space: str, arch: str, scorer: str, source_key: str) -> None:
        """Drop this connection's claim on the key (a claim taken over by another owner stays)."""
        with self._write() as db:
            db.execute("DELETE FROM claims WHERE space=? AND arch=? AND scorer=? AND source_key=? AND owner=?",
                       (space, arch, scorer, source_key, self.owner))

    @_translated
    def claims(self) -> list[tuple[str, str, str, str, str, float]]:
        """Every open claim: (space, arch, scorer, source_key, owner, created)."""
        return [tuple(r) for r in self._db.execute(
            "SELECT space, arch, scorer, source_key, owner, created FROM claims ORDER BY created")]
