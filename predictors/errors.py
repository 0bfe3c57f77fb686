"""The exceptions ``predictors`` raises for bad input.

They subclass ``ValueError`` (and ``KeyError`` for unknown names) so callers that
only care about bad input can catch those; each message names the parameter, the
rule and the value received.
"""

from __future__ import annotations


class PredictorError(ValueError):
    """Base class of every error raised by ``predictors``."""


class UnknownPredictorError(PredictorError, KeyError):
    """A registry lookup used a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
