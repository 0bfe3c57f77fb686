"""Owners of claims and search runs: who holds one, and whether that process may still be running.

A store connection writes its owner id, ``host:pid:random``, beside each claim it
takes and each search run it runs (:mod:`evonas.run.store`, and the shared study's
ledger in :mod:`evonas.run.shared_store`). Another process reads the id back to tell
a live holder from a dead one: a claim or search of a dead owner is taken over or
reported as interrupted.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from evonas.run.atomic import pid_alive

__all__ = ["new_owner", "owner_alive"]


def new_owner() -> str:
    """A claim owner id: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _process_start(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), from /proc; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            return float("inf")  # a zombie: finished, not yet reaped
        ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return None


def owner_alive(owner: str, since: float) -> bool:
    """Whether the process of claim ``owner``, claiming at ``since``, may still be running.

    Only a process on this host can be checked: its pid must exist and must not have
    started after the claim (a reused pid). Owners on other hosts count as alive (the
    claim timeout covers them).
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if not pid_alive(pid):
        return False
    started = _process_start(pid)
    return started is None or started <= since + 1.0  # 1 s: /proc's start time is rounded to clock ticks
