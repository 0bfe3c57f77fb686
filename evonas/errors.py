"""The few exception types evonas raises for bad input.

Each message names the parameter or file, the rule, the value received and the fix;
the CLI prints it alone (no traceback) and exits with status 2.
"""

from __future__ import annotations


class EvonasError(Exception):
    """Base class of every user-facing evonas error."""


class ConfigError(EvonasError, ValueError):
    """A parameter value breaks a rule (range, type, combination)."""


class DatasetMissingError(EvonasError, FileNotFoundError):
    """A dataset is not where evonas looks; the message says how to install it."""


class CheckpointError(EvonasError):
    """A checkpoint or run directory is missing, corrupt, or from another run."""


class RunDirError(EvonasError):
    """A run directory is missing something a command needs."""
