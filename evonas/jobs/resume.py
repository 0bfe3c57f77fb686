"""After an interruption: whether a command's run directory holds what ``--resume`` continues."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["something_to_resume"]


def something_to_resume(command: str, args: Sequence[str]) -> bool:
    """True when ``evonas COMMAND ARGS --resume`` would continue something (True when unsure).

    train-supernet resumes once an epoch's checkpoint is written; a search once the run
    has its evaluation store (a search without a run directory keeps nothing).
    """
    from evonas.run.run import RunLayout

    run = next((a.split("=", 1)[1] for a in args if a.startswith(("--run=", "--run-dir="))), None)
    for flag, value in zip(args, args[1:]):
        if flag in ("--run", "--run-dir"):
            run = value
    if run is None:
        return command != "search"
    layout = RunLayout(Path(run))
    if command == "train-supernet":
        return layout.checkpoint.is_file()
    if command == "search":
        return layout.store_file.is_file()
    return True
