"""Scorers turn architectures into metrics: supernet (inherited weights), table (look-up),
predictor (the fitted gap model), standalone (training from scratch).

Scoring goes through :func:`score_cached` (``cached.py``), which reads the store first
and writes a record after scoring, so nothing is scored twice for the same source.
Scorers are built by name with :func:`make_scorer`, which rejects options the scorer
does not accept; :func:`select_options` keeps those it does.
"""

from __future__ import annotations

from evonas.scorers.base import Scorer, source_key
from evonas.scorers.cached import Evaluated, score_cached
from evonas.scorers.registry import get_scorer, list_scorers, make_scorer, register_scorer, scorer_options, select_options

__all__ = ["Evaluated", "Scorer", "score_cached", "get_scorer", "list_scorers", "make_scorer", "register_scorer",
           "scorer_options", "select_options", "source_key"]
