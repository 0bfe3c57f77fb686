"""Scorers turn architectures into metrics: supernet (inherited weights), table (look-up), predictor (later).

Scoring goes through :func:`evaluate` (``cached.py``), which reads the store first and
writes a record after scoring, so nothing is scored twice for the same source.
"""

from __future__ import annotations

from evonas.scorers.base import Scorer, source_key
from evonas.scorers.cached import Evaluated, score_cached
from evonas.scorers.registry import get_scorer, list_scorers, make_scorer, register_scorer

__all__ = ["Evaluated", "Scorer", "score_cached", "get_scorer", "list_scorers", "make_scorer", "register_scorer", "source_key"]
