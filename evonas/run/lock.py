"""One writer per run: the lock that a command rewriting a run's config, checkpoint or weights holds.

The lock is an exclusive ``flock`` on the run directory itself, so taking it writes
nothing, and the kernel drops it when its process dies (a killed training leaves no
stale lock). While it is held, ``RUN/.writer.json`` names the holder (command, pid,
host, since) so that a second writer is refused with one line saying who holds the
run; the holder removes it before letting go. Searches do not take it: they share a
run through the store, whose claims serialise scoring.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from evonas.errors import RunLockedError

__all__ = ["HOLDER_FILE", "run_lock"]

HOLDER_FILE = ".writer.json"  # who holds the run's lock; present only while it is held

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (evonas runs on Linux and macOS)
    fcntl = None  # type: ignore[assignment]


def _holder_text(folder: Path) -> str:
    try:
        info = json.loads((folder / HOLDER_FILE).read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"'evonas {info['command']}' (pid {info['pid']} on {info['host']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_lock(run_dir: str | Path, command: str) -> Iterator[None]:
    """Hold the write lock of the existing directory ``run_dir`` while the block runs; RunLockedError when taken."""
    folder = Path(run_dir)
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"run {str(folder)!r} is being written by {_holder_text(folder)}; one command at a "
                                 "time may rewrite a run's config, checkpoint or weights: wait for it to finish, or "
                                 "use another directory for the 'run_dir' parameter") from None
        holder = folder / HOLDER_FILE
        tmp = folder / f"{HOLDER_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                                   "since": time.time()}) + "\n")
        os.replace(tmp, holder)
        try:
            yield
        finally:
            holder.unlink(missing_ok=True)
    finally:
        os.close(fd)  # drops the flock
