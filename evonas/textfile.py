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
