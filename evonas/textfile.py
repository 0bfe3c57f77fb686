"""Reading a user's text file: UTF-8 (with or without BOM), and where it stops being text."""

from __future__ import annotations


def decode_text(data: bytes) -> tuple[str | None, tuple[int, int, int] | None]:
    """``(text, None)`` for UTF-8 text; ``(None, (line, column, byte))`` at the first NUL or undecodable byte."""
    bad = data.find(b"\x00")
    text = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = exc.start if bad < 0 else min(bad, exc.start)
    if bad < 0:
        return text, None
    line = data.count(b"\n", 0, bad) + 1
    col = bad - (data.rfind(b"\n", 0, bad) + 1) + 1
    return None, (line, col, data[bad])


MAX_INPUT_BYTES = 256 * 1024 * 1024  # a table or list a user names: NAS-Bench-201's whole table is 2.5 MB


class InputTooLarge(Exception):
    """``read_limited`` refused a file: ``reason`` says why (not a regular file, or over the limit)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_limited(path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file ``path``, read up to ``limit``; InputTooLarge for a device, pipe or bigger file.

    A character device such as /dev/zero, a FIFO or a file over the limit is refused before
    (or, for a file growing while read, as soon as) more than ``limit`` bytes are read.
    OSError propagates (missing, permissions).
    """
    import os
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO without a writer: no wait
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd)
        if not stat.S_ISREG(mode.st_mode):
            raise InputTooLarge("not a regular file (a device, pipe or socket)")
        if mode.st_size > limit:
            raise InputTooLarge(f"{mode.st_size:,} bytes, over the limit of {limit:,} bytes")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge(f"more than the limit of {limit:,} bytes")
    return data
