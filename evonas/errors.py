"""The few exception types evonas raises for bad input, and their command-line wording.

Engine messages follow scikit-learn: they name the parameter, the rule and the value
received ("The 'max_flops' parameter must be a finite number > 0; got -1."), never a
command-line flag. The CLI error boundary prints ``cli_message(exc)``, which turns
parameter names into the flags a user typed (``--max-flops``) and keeps it to one line.
"""

from __future__ import annotations

import re

__all__ = [
    "COMPONENT_FLAGS", "CheckpointError", "ConfigError", "DatasetMissingError", "EvonasError", "FLAG_NAMES", "ResourceError",
    "RunDirError", "RunLockedError", "TrainingDivergedError", "cli_message", "flag_name",
]


class EvonasError(Exception):
    """Base class of every user-facing evonas error."""


class ConfigError(EvonasError, ValueError):
    """A parameter value breaks a rule (range, type, combination).

    ``param`` names the offending parameter (as spelled in Python, ``max_flops``) when
    there is one, so a caller can point at it: the CLI shows it as ``--max-flops``.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class DatasetMissingError(EvonasError, FileNotFoundError):
    """A dataset is not where evonas looks; the message says how to install it."""


class CheckpointError(EvonasError):
    """A checkpoint or run directory is missing, corrupt, or from another run."""


class RunDirError(EvonasError):
    """A run directory is missing something a command needs."""


class RunLockedError(RunDirError):
    """Another process is writing the run directory (it holds the run's lock)."""


class TrainingDivergedError(EvonasError):
    """Training met a non-finite loss or weight; the last good checkpoint is kept."""


class ResourceError(EvonasError):
    """A setting asks for more memory than the machine has; the message names the setting to lower."""


# Parameters whose command-line flag is not ``--`` + the name with dashes.
FLAG_NAMES: dict[str, str] = {
    "n_anchors": "--anchors",
    "run_dir": "--run",
    "archs_file": "--archs",
    "arch_opts": "--arch",
    "as_json": "--json",
    "predictor_list": "--predictors",
    "table_path": "--table",
    "k": "--top-k",  # export_top_k
}

# "The 'max_flops' parameter", "the 'x' option" (scorer options are flags too), and
# "The 'max_flops' parameter (1e6)", which reads as the flag with its value: "--max-flops 1e6".
_PARAM_PHRASE = re.compile(r"\b[Tt]he '([A-Za-z_][A-Za-z0-9_]*)' (?:parameter|option)\b(?: \(([^()]*)\))?")


# Components chosen by name on the command line: "searcher 'tpe'" is what "--algo tpe" chose.
COMPONENT_FLAGS: dict[str, str] = {"searcher": "--algo", "scorer": "--scorer"}
_COMPONENT_PHRASE = re.compile(r"\b(" + "|".join(COMPONENT_FLAGS) + r") '([A-Za-z0-9_.-]+)'")


def flag_name(param: str) -> str:
    """The command-line flag of an engine parameter: ``max_flops`` -> ``--max-flops``."""
    return FLAG_NAMES.get(param, "--" + param.replace("_", "-"))


def _plain_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and type(exc).__str__ is KeyError.__str__ and len(exc.args) == 1:
        return str(exc.args[0])  # KeyError's str() would quote it
    return str(exc)


def _as_flag(match: re.Match[str]) -> str:
    flag = flag_name(match.group(1))
    return flag if match.group(2) is None else f"{flag} {match.group(2)}"


def cli_message(exc: BaseException) -> str:
    """The message of ``exc`` as the command line shows it: flags for parameters, one line.

    "The 'max_flops' parameter must be > 0; got -1." becomes "--max-flops must be > 0;
    got -1.", "The 'max_flops' parameter (1e6) is infeasible" "--max-flops 1e6 is
    infeasible", and "searcher 'tpe'" "--algo tpe". A ``param`` attribute that the message does not mention is prefixed
    (``--top-k: ...``). Newlines and runs of blanks collapse to single spaces.
    """
    message = " ".join(_plain_message(exc).split())
    message = _PARAM_PHRASE.sub(_as_flag, message)
    message = _COMPONENT_PHRASE.sub(lambda m: f"{COMPONENT_FLAGS[m.group(1)]} {m.group(2)}", message)
    param = getattr(exc, "param", None)
    if param:
        flag = flag_name(param)
        if flag not in message:
            message = f"{flag}: {message}" if message else flag
    return message or type(exc).__name__
