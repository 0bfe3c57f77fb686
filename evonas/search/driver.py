"""The search driver: ask, check constraints, score through the store, tell; count distinct architectures.

:func:`make_problem` turns a scorer, constraints and ``--objectives`` into the
:class:`~evonas.search.base.Problem` a searcher works on (checking at once that the
constraints are satisfiable). :func:`run_search` runs the lifecycle until ``budget``
distinct architectures were scored. Every loop is bounded: a searcher that keeps
proposing duplicates or infeasible architectures ends the search with
``exhausted = True`` instead of spinning.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from search_spaces import Arch, InfeasibleConstraintError

from evonas.search.constraints import Constraints
from evonas.errors import ConfigError
from evonas.search.pareto import pareto_front
from evonas.run.records import SearchRun, Step
from evonas.scorers.base import Scorer
from evonas.scorers.cached import Evaluated
from evonas.scorers.pool import Scoring, SerialScoring
from evonas.run.store import BudgetSpent, Store
from evonas.search.base import Evaluation, Problem, Searcher, parse_objectives


def make_problem(scorer: Scorer, constraints: Constraints, objectives: str | None = None) -> Problem:
    """The problem a searcher solves; raises at once if a constraint cannot be met."""
    scorer.cost_model.check(constraints)
    objs = parse_objectives(objectives, scorer.target)
    for o in objs[1:]:
        if not scorer.cost_model.has(o.metric):
            raise ConfigError(f"The 'objectives' parameter names {o.metric}, which needs a latency source: give the 'latency_table' parameter and the 'latency_column' parameter", param="objectives")
    return Problem(space=scorer.space, objectives=objs, constraints=constraints, costs=scorer.costs, known=scorer.knows)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search run (what ``--json`` prints, plus timings)."""

    algo: str
    seed: int
    search_run: str | None  # its name in the store
    evaluations: int  # distinct architectures scored (the budget spent)
    best: dict[str, Any] | None  # arch, value, flops, params, report, metrics
    history: list[float]  # best-so-far target value after each evaluation
    pareto: list[dict[str, Any]] | None  # non-dominated feasible architectures (multi-objective runs)
    rejected: int  # distinct proposals refused by the constraints (never scored)
    duplicates: int  # proposals of an already-seen architecture (no budget spent)
    cached: int  # evaluations served from the store instead of scored
    exhausted: bool  # stopped before the budget because nothing new and feasible was proposed
    resumed: bool
    timings: dict[str, float] = field(default_factory=dict)
    evaluated: list[str] = field(default_factory=list)  # canonical archs in evaluation order

    def to_dict(self, *, with_evaluated: bool = False) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("algo", "seed", "search_run", "best", "evaluations", "history", "pareto",
                                            "rejected", "duplicates", "cached", "exhausted", "resumed", "timings")}
        if with_evaluated:
            out["evaluated"] = list(self.evaluated)
        return out


def _best_entry(ev: Evaluation, scorer: Scorer) -> dict[str, Any]:
    m = dict(ev.metrics)
    entry = {"arch": str(ev.arch), "value": ev.value, "flops": int(m.get("flops", 0)), "params": int(m.get("params", 0))}
    if "latency_ms" in m:
        entry["latency_ms"] = m["latency_ms"]
    if scorer.report:
        entry["report"] = m.get(scorer.report)
    entry["metrics"] = m
    return entry


def _pareto_entries(problem: Problem, evaluated: list[Evaluation]) -> list[dict[str, Any]] | None:
    """The non-dominated evaluations of a multi-objective run, each with its objective values; None otherwise."""
    if not (problem.multi_objective and evaluated):
        return None
    idx = pareto_front([e.objectives for e in evaluated], [o.maximize for o in problem.objectives])
    return [{"arch": str(evaluated[i].arch),
             **{o.metric: evaluated[i].objectives[j] for j, o in enumerate(problem.objectives)}} for i in idx]


class _SearchLoop:
    """The state of one :func:`run_search`: what was seen, scored and told, the counters and the timings.

    One batch goes through :meth:`ask`, :meth:`sort` and :meth:`record`; :meth:`result`
    turns the state into a :class:`SearchResult`.
    """

    def __init__(self, searcher: Searcher, scorer: Scorer, store: Store, search_run: SearchRun | None,
                 progress: Callable[[int, float], None] | None, max_stale: int) -> None:
        self.searcher, self.scorer, self.store = searcher, scorer, store
        self.problem = searcher.problem
        self.search_run, self.progress, self.max_stale = search_run, progress, max_stale
        self.seen: dict[Arch, Evaluation] = {}
        self.history: list[float] = []
        self.evaluated: list[Evaluation] = []
        self.best: Evaluation | None = None
        self.rejected = self.duplicates = self.cached = self.stale = self.step_idx = 0
        self.exhausted = False
        self.score_s = self.searcher_s = 0.0

    def objective_values(self, costs: dict[str, float], value: float) -> tuple[float, ...]:
        return tuple(value if o.maximize else float(costs.get(o.metric, math.nan)) for o in self.problem.objectives)

    def add_step(self, arch: Arch, value: float | None, feasible: bool, record_id: int | None) -> None:
        if self.search_run is not None:
            self.store.add_step(Step(run_id=self.search_run.id, index=self.step_idx, arch=str(arch), value=value,
                                     feasible=feasible, record_id=record_id, created=time.time()))
        self.step_idx += 1

    def tell(self, ev: Evaluation) -> None:
        t0 = time.perf_counter()
        self.searcher.tell(ev)
        self.searcher_s += time.perf_counter() - t0

    def ask(self, n: int) -> list[Arch] | None:
        """The searcher's next batch of up to ``n`` proposals; None once the feasible space has nothing new."""
        t0 = time.perf_counter()
        try:
            proposed = self.searcher.ask_batch(n)
        except InfeasibleConstraintError:
            if not self.evaluated:
                raise  # nothing feasible at all: the message says what to loosen
            self.exhausted = True  # the feasible part of the space ran out of new architectures
            return None
        self.searcher_s += time.perf_counter() - t0
        return proposed

    def sort(self, proposed: list[Arch]) -> tuple[list[tuple[str, Arch, dict[str, float], dict[str, float]]], list[Arch]]:
        """Sort a batch, in ask order, into repeats, proposals the constraints refuse and new ones (to be scored)."""
        space, problem = self.problem.space, self.problem
        batch: list[tuple[str, Arch, dict[str, float], dict[str, float]]] = []
        fresh: list[Arch] = []
        for candidate in proposed:
            arch = space.canonical(space.validate(candidate))
            if arch in self.seen or arch in fresh:
                self.duplicates += 1
                self.stale += 1
                batch.append(("repeat", arch, {}, {}))
            else:
                costs = problem.costs(arch)
                violations = problem.constraints.violations(costs)
                if problem.feasible(arch):
                    self.stale = 0
                    fresh.append(arch)
                    batch.append(("new", arch, costs, violations))
                else:
                    self.seen[arch] = Evaluation(arch, False, math.nan, self.objective_values(costs, math.nan),
                                                 tuple(violations.values()), costs)
                    self.rejected += 1
                    self.stale += 1
                    batch.append(("refused", arch, costs, violations))
            if self.stale >= self.max_stale:
                self.exhausted = True  # the rest of the batch is never told, as one by one it is never asked
                break
        return batch, fresh

    def record(self, batch: list[tuple[str, Arch, dict[str, float], dict[str, float]]], scores: Iterator[Evaluated]) -> bool:
        """Record and tell a sorted batch in ask order, taking the new ones' scores from ``scores``.

        Returns True when a shared study's budget was spent (the search stops).
        """
        for kind, arch, costs, violations in batch:
            if kind == "repeat":
                self.tell(self.seen[arch])
                continue
            if kind == "refused":
                self.add_step(arch, None, False, None)
                self.tell(self.seen[arch])
                continue
            try:
                out = next(scores)
            except BudgetSpent:  # a shared study: the workers together have scored its budget
                return True
            self.score_s += out.seconds
            self.cached += out.cached
            metrics = dict(out.record.metrics)
            value = float(metrics[self.scorer.target])
            ev = Evaluation(arch, True, value, self.objective_values({**costs, **metrics}, value),
                            tuple(violations.values()), metrics)
            self.seen[arch] = ev
            self.evaluated.append(ev)
            if self.best is None or value > self.best.value:
                self.best = ev
            self.history.append(self.best.value)
            self.add_step(arch, value, True, out.record.id)
            if self.progress is not None:
                self.progress(len(self.evaluated), self.best.value)
            self.tell(ev)
        return False

    def result(self, resumed: bool, total_s: float) -> SearchResult:
        """The :class:`SearchResult` of the loop so far, ``total_s`` seconds after it started."""
        evaluated, score_s = self.evaluated, self.score_s
        n = max(len(evaluated), 1)
        return SearchResult(
            algo=self.searcher.name,
            seed=self.searcher.seed,
            search_run=self.search_run.name if self.search_run else None,
            evaluations=len(evaluated),
            best=_best_entry(self.best, self.scorer) if self.best else None,
            history=self.history,
            pareto=_pareto_entries(self.problem, evaluated),
            rejected=self.rejected,
            duplicates=self.duplicates,
            cached=self.cached,
            exhausted=self.exhausted,
            resumed=resumed,
            timings={
                "total_s": total_s,
                "scoring_s": score_s,
                "searcher_s": self.searcher_s,
                "overhead_s_per_eval": (total_s - score_s) / n,
                "scoring_s_per_fresh_eval": score_s / max(len(evaluated) - self.cached, 1),
            },
            evaluated=[str(e.arch) for e in evaluated],
        )


def run_search(
    searcher: Searcher,
    scorer: Scorer,
    store: Store,
    *,
    budget: int,
    search_run: SearchRun | None = None,
    resumed: bool = False,
    progress: Callable[[int, float], None] | None = None,
    max_stale: int = 1000,
    scoring: Scoring | None = None,
) -> SearchResult:
    """Run ``searcher`` until ``budget`` distinct architectures are scored by ``scorer``.

    Scores go through the store (cached ones are not recomputed); each distinct
    proposal is written as a step of ``search_run`` when one is given. ``max_stale``
    bounds consecutive asks that bring nothing new (duplicates or infeasible).

    The searcher is asked in batches (:meth:`Searcher.ask_batch`); the new
    architectures of a batch are scored by ``scoring`` (default: one by one in this
    process; :class:`~evonas.scorers.pool.PoolScoring` scores them in worker processes)
    and told in ask order, so the search does not depend on how it is scored.
    """
    if not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"The 'budget' parameter must be an integer >= 1 (distinct architectures to score); got {budget!r}.", param="budget")
    loop = _SearchLoop(searcher, scorer, store, search_run, progress, max_stale)
    t_start = time.perf_counter()
    scoring = scoring if scoring is not None else SerialScoring(scorer, store)
    try:
        while len(loop.evaluated) < budget:
            proposed = loop.ask(budget - len(loop.evaluated))
            if proposed is None:
                break
            batch, fresh = loop.sort(proposed)
            # score the new ones (in parallel with a pool), then record and tell everything in ask order
            spent = loop.record(batch, scoring.map(fresh))
            if spent or loop.exhausted:
                break
    finally:
        searcher.close()
    result = loop.result(resumed, time.perf_counter() - t_start)
    if search_run is not None:
        summary = result.to_dict()
        summary["constraints"] = searcher.problem.constraints.limits
        store.finish_search(search_run.id, summary, keep_steps=loop.step_idx)
    return result
