"""Library messages go through logging: nothing under evonas/ prints, the API is quiet, the command line shows them.

The command line (evonas/cli/) is the only code that writes to the user; everything
else logs on an "evonas.*" logger, which has only a NullHandler until an application
configures logging.
"""

from __future__ import annotations

import ast
import io
import logging
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import evonas
from evonas.cli import logs

ROOT = Path(__file__).resolve().parents[1]

# Modules still allowed to write messages themselves, each with the reason; the test fails on any other, and on a
# listed one that no longer does (delete its entry then).
KNOWN_WRITERS: dict[str, str] = {}


def _writes(tree: ast.AST) -> list[int]:
    """Lines that print, pass ``print`` on as a callback, or call ``tqdm.write`` / ``click.echo``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "print":
            lines.append(node.lineno)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and (node.value.id, node.attr) in (("tqdm", "write"), ("click", "echo"), ("click", "secho"))):
            lines.append(node.lineno)
    return lines


def test_library_code_does_not_write_messages():
    found = {}
    for path in sorted((ROOT / "evonas").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("evonas/cli/"):
            continue
        lines = _writes(ast.parse(path.read_text(), filename=rel))
        if lines:
            found[rel] = lines
    unexpected = {k: v for k, v in found.items() if k not in KNOWN_WRITERS}
    assert not unexpected, f"library code writes to the user (log on logging.getLogger(__name__) instead): {unexpected}"
    gone = sorted(set(KNOWN_WRITERS) - set(found))
    assert not gone, f"these no longer write messages; delete their KNOWN_WRITERS entries: {gone}"


def test_the_library_is_quiet_until_logging_is_configured(capsys):
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger(evonas.__name__).handlers)
    logging.getLogger("evonas.gap.anchors").warning("a warning no one asked to see")
    logging.getLogger("evonas.gap.anchors").info("a message no one asked to see")
    assert capsys.readouterr() == ("", "")


def test_the_command_line_prints_plain_messages_to_stdout_or_stderr():
    logger = logging.getLogger("evonas.jobs.fit_predictor")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):  # the handler writes to the streams of the moment
        with logs.shown():
            logger.info("anchor %d/%d %s", 1, 4, "12012200")
            logger.debug("not shown")
            with logs.to_stderr():
                logger.warning("warning: %s", "to stderr")
            logger.info("stdout again")
        logger.info("after the command: quiet again")
    assert out.getvalue() == "anchor 1/4 12012200\nstdout again\n"
    assert err.getvalue() == "warning: to stderr\n"
    assert not any(isinstance(h, logs.EchoHandler) for h in logging.getLogger("evonas").handlers)
