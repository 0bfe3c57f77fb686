"""Exceptions raised by search-space descriptions.

They subclass ``ValueError`` so callers that only care about "bad input" can catch
that, while the CLI can print the message alone (it already names the value, the rule
and the fix).
"""

from __future__ import annotations


class SpaceError(ValueError):
    """Base class for every error raised by ``search_spaces``."""


class ArchStringError(SpaceError):
    """An architecture string or choice tuple does not belong to the space."""


class InfeasibleConstraintError(SpaceError):
    """A constraint is tighter than the smallest network of the space allows."""


class UnknownNameError(SpaceError, KeyError):
    """A registry lookup used a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
