"""How the command line shows the library's messages: each record of the "evonas" logger as one plain line.

Library code logs through module loggers (``logging.getLogger(__name__)``) and prints
nothing itself; the package adds only a ``NullHandler``, so a script calling
:mod:`evonas.api` sees no message unless it configures logging. The ``evonas`` command
runs inside :func:`shown`, which puts an :class:`EchoHandler` on the "evonas" logger at
INFO: every message is written as it is (format ``%(message)s``) to stdout, or to
stderr inside :func:`to_stderr` (a command whose stdout is JSON), through
``tqdm.write`` so that a progress bar on the terminal is not broken by it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

LOGGER = "evonas"


class EchoHandler(logging.Handler):
    """Writes each record's message, one line, to the current ``sys.stdout`` (or ``sys.stderr``) via ``tqdm.write``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.err = False  # True: to stderr

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            # the stream is looked up now, not when the handler was made: a caller may have replaced it since
            stream = sys.stderr if self.err else sys.stdout
            tqdm.write(self.format(record), file=stream)
            stream.flush()  # each line as it happens, also into a pipe (as click.echo did)
        except Exception:  # a closed or broken stream: logging's own report, never an exception in the caller
            self.handleError(record)


@contextlib.contextmanager
def shown() -> Iterator[EchoHandler]:
    """Within the block, the "evonas" logger's INFO messages are printed on stdout; afterwards it is as it was."""
    logger = logging.getLogger(LOGGER)
    handler, level = EchoHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def to_stderr() -> Iterator[None]:
    """Within the block, the messages :func:`shown` prints go to stderr (stdout carries the command's JSON)."""
    handlers = [h for h in logging.getLogger(LOGGER).handlers if isinstance(h, EchoHandler)]
    before = [h.err for h in handlers]
    for h in handlers:
        h.err = True
    try:
        yield
    finally:
        for h, err in zip(handlers, before):
            h.err = err
