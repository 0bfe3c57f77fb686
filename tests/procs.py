"""Worker processes for the tests that run several at once, forked from a server that imported evonas once.

A ``spawn`` child imports torch, evonas, Optuna and SQLAlchemy again (about 3 s of CPU
each here); a ``forkserver`` child is a fork of one clean, single-threaded server
process that imported them when it started, so it begins at once and still shares no
state with the test: each child patches, opens and dies on its own.
"""

from __future__ import annotations

import multiprocessing

PRELOAD = ["torch", "optuna", "sqlalchemy", "deap", "evonas.cli.main", "evonas.run.store", "evonas.scorers.table",
           "evonas.search", "evonas.search.optuna_search", "tests.synthetic_tables"]


def worker_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context the tests start their worker processes with."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # read when the server starts: the first Process of this test process
    return ctx
