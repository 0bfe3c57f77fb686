"""Atomic file writes that leave nothing behind, even when the writer is killed.

Every file evonas rewrites in place (checkpoints, ``config.json``, latency tables)
is written to a hidden temporary file in the same folder and renamed over the
target, so a reader sees the old file or the new one, never half of one. The
temporary name carries the writer's process id: two processes writing one target
at once never share a temporary file, and a temporary file whose writer is gone
(killed with SIGKILL mid-write, the one case no ``finally`` can clean up) is
recognised and deleted by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path


def _tmp_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]+\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's process counts; so does any doubt)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by someone else
        return True
    return True


def stale_temporaries(target: Path) -> list[Path]:
    """Temporary files of ``target`` left by writers that no longer run."""
    pattern = _tmp_pattern(target)
    if not target.parent.is_dir():
        return []
    out = []
    for entry in target.parent.iterdir():
        m = pattern.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            out.append(entry)
    return sorted(out)


def sweep(target: Path) -> int:
    """Delete the stale temporaries of ``target``; returns how many were removed."""
    n = 0
    for path in stale_temporaries(target):
        with contextlib.suppress(OSError):
            path.unlink()
            n += 1
    return n


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_target(path) as tmp:
        tmp.write_text(text)
    return path
