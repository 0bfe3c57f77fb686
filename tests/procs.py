"""Worker processes for the tests that run several at once, forked from a server that imported evonas once.

A ``spawn`` child imports torch, evonas, Optuna and SQLAlchemy again (about 3 s of CPU
each here); a ``forkserver`` child is a fork of one clean, single-threaded server
process that imported them when it started, so it begins at once and still shares no
state with the test: each child patches, opens and dies on its own.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

PRELOAD = ["torch", "optuna", "sqlalchemy", "deap", "evonas.cli.main", "evonas.run.store", "evonas.scorers.table",
           "evonas.search", "evonas.search.optuna_search", "tests.synthetic_tables"]


def worker_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context the tests start their worker processes with."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # read when the server starts: the first Process of this test process
    return ctx


def _evonas(argv: list[str], out: str, err: str) -> None:
    """The ``evonas`` command with ``argv`` in this (worker) process, printing to the files ``out`` and ``err``."""
    import sys

    from evonas.cli.main import main

    sys.stdout, sys.stderr = open(out, "w", buffering=1), open(err, "w", buffering=1)
    main(argv)


class EvonasProcess:
    """``evonas ARGV`` in a worker process, what it prints kept in files: the parts of ``subprocess.Popen`` that
    the kill tests use (``pid``, ``poll()``, ``returncode``, ``communicate()``), and ``errors()`` printed so far."""

    def __init__(self, argv: list[str], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, out = tempfile.mkstemp(suffix=".out", dir=folder)
        os.close(fd)
        self._out, self._err = Path(out), Path(out).with_suffix(".err")
        self._proc = worker_context().Process(target=_evonas, args=([str(a) for a in argv], str(self._out),
                                                                     str(self._err)))
        self._proc.start()
        self.pid = self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    def poll(self) -> int | None:
        return self._proc.exitcode

    def errors(self) -> str:
        return self._err.read_text() if self._err.exists() else ""

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise TimeoutError(f"evonas did not finish in {timeout} s")
        return (self._out.read_text() if self._out.exists() else ""), self.errors()
