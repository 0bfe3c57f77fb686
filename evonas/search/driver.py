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
from typing import Any, Callable

from search_spaces import Arch, InfeasibleConstraintError

from evonas.search.constraints import Constraints
from evonas.errors import ConfigError
from evonas.search.pareto import pareto_front
from evonas.run.records import SearchRun, Step
from evonas.scorers.base import Scorer
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
    problem = searcher.problem
    space = problem.space
    limits = problem.constraints.limits
    seen: dict[Arch, Evaluation] = {}
    history: list[float] = []
    evaluated: list[Evaluation] = []
    best: Evaluation | None = None
    rejected = duplicates = cached = stale = step_idx = 0
    exhausted = False
    t_start = time.perf_counter()
    score_s = searcher_s = 0.0

    def objective_values(costs: dict[str, float], value: float) -> tuple[float, ...]:
        return tuple(value if o.maximize else float(costs.get(o.metric, math.nan)) for o in problem.objectives)

    def add_step(arch: Arch, value: float | None, feasible: bool, record_id: int | None) -> None:
        nonlocal step_idx
        if search_run is not None:
            store.add_step(Step(run_id=search_run.id, index=step_idx, arch=str(arch), value=value,
                                feasible=feasible, record_id=record_id, created=time.time()))
        step_idx += 1

    scoring = scoring if scoring is not None else SerialScoring(scorer, store)

    def tell(ev: Evaluation) -> None:
        nonlocal searcher_s
        t0 = time.perf_counter()
        searcher.tell(ev)
        searcher_s += time.perf_counter() - t0

    try:
        while len(evaluated) < budget:
            t0 = time.perf_counter()
            try:
                proposed = searcher.ask_batch(budget - len(evaluated))
            except InfeasibleConstraintError:
                if not evaluated:
                    raise  # nothing feasible at all: the message says what to loosen
                exhausted = True  # the feasible part of the space ran out of new architectures
                break
            searcher_s += time.perf_counter() - t0
            # 1. sort the batch, in ask order: a repeat, refused by the constraints, or new (to be scored)
            batch: list[tuple[str, Arch, dict[str, float], dict[str, float]]] = []
            fresh: list[Arch] = []
            for candidate in proposed:
                arch = space.canonical(space.validate(candidate))
                if arch in seen or arch in fresh:
                    duplicates += 1
                    stale += 1
                    batch.append(("repeat", arch, {}, {}))
                else:
                    costs = problem.costs(arch)
                    violations = problem.constraints.violations(costs)
                    if problem.feasible(arch):
                        stale = 0
                        fresh.append(arch)
                        batch.append(("new", arch, costs, violations))
                    else:
                        seen[arch] = Evaluation(arch, False, math.nan, objective_values(costs, math.nan),
                                                tuple(violations.values()), costs)
                        rejected += 1
                        stale += 1
                        batch.append(("refused", arch, costs, violations))
                if stale >= max_stale:
                    exhausted = True  # the rest of the batch is never told, as one by one it is never asked
                    break
            # 2. score the new ones (in parallel with a pool), then record and tell everything in ask order
            scores = scoring.map(fresh)
            spent = False
            for kind, arch, costs, violations in batch:
                if kind == "repeat":
                    tell(seen[arch])
                    continue
                if kind == "refused":
                    add_step(arch, None, False, None)
                    tell(seen[arch])
                    continue
                try:
                    out = next(scores)
                except BudgetSpent:  # a shared study: the workers together have scored its budget
                    spent = True
                    break
                score_s += out.seconds
                cached += out.cached
                metrics = dict(out.record.metrics)
                value = float(metrics[scorer.target])
                ev = Evaluation(arch, True, value, objective_values({**costs, **metrics}, value),
                                tuple(violations.values()), metrics)
                seen[arch] = ev
                evaluated.append(ev)
                if best is None or value > best.value:
                    best = ev
                history.append(best.value)
                add_step(arch, value, True, out.record.id)
                if progress is not None:
                    progress(len(evaluated), best.value)
                tell(ev)
            if spent or exhausted:
                break
    finally:
        searcher.close()
    total_s = time.perf_counter() - t_start

    pareto = None
    if problem.multi_objective and evaluated:
        idx = pareto_front([e.objectives for e in evaluated], [o.maximize for o in problem.objectives])
        pareto = [{"arch": str(evaluated[i].arch),
                   **{o.metric: evaluated[i].objectives[j] for j, o in enumerate(problem.objectives)}} for i in idx]
    n = max(len(evaluated), 1)
    result = SearchResult(
        algo=searcher.name,
        seed=searcher.seed,
        search_run=search_run.name if search_run else None,
        evaluations=len(evaluated),
        best=_best_entry(best, scorer) if best else None,
        history=history,
        pareto=pareto,
        rejected=rejected,
        duplicates=duplicates,
        cached=cached,
        exhausted=exhausted,
        resumed=resumed,
        timings={
            "total_s": total_s,
            "scoring_s": score_s,
            "searcher_s": searcher_s,
            "overhead_s_per_eval": (total_s - score_s) / n,
            "scoring_s_per_fresh_eval": score_s / max(len(evaluated) - cached, 1),
        },
        evaluated=[str(e.arch) for e in evaluated],
    )
    if search_run is not None:
        summary = result.to_dict()
        summary["constraints"] = limits
        store.finish_search(search_run.id, summary, keep_steps=step_idx)
    return result
