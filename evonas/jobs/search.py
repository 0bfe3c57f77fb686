"""The search job: a constrained architecture search with a registered searcher and scorer.

It resolves the space and the scorer from the options and the run directory, checks
every option, runs the searcher through the store (every score is a record, so a
killed search resumes without rescoring) and writes ``result.json`` (and
``pareto.json``) in the run's search folder.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces import get_space, list_spaces

from evonas.errors import ConfigError
from evonas.device import check_device_and_precision
from evonas.jobs.threads import check_threads, use_threads
from evonas.jobs.train import remove_if_empty
from evonas.names import check_inside, check_name
from evonas.progress import progress_enabled
from evonas.run.atomic import write_text_atomic
from evonas.run.run import Run, RunLayout
from evonas.spaces import canonical_name, is_user_space

# searcher options: passed only when given; a searcher without that config field rejects it
SEARCHER_OPTIONS = ("population", "parents", "mutation_prob", "crossover_fraction", "crossover_prob", "tournament",
                    "startup_trials")


def searcher_names() -> list[str]:
    """The registered searchers (for the command line's choices)."""
    from evonas.search import list_searchers

    return list_searchers()


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """One search: searcher, budget, scorer and its sources, limits, objectives, searcher settings."""

    algo: str = "evolution"  # registered searcher
    budget: int = 100  # distinct architectures to score
    seed: int = 0  # seeds the searcher (same seed, same search)
    space: str | None = None  # search space; default: the run's
    scorer: str | None = None  # supernet (default with a run), table (default with a table), predictor
    table: str | None = None  # CSV whose arch column holds the space's strings
    target: str | None = None  # table column to maximise
    report: str | None = None  # table column reported for the best architecture
    latency_table: str | None = None  # CSV of latencies joined on arch
    latency_column: str | None = None  # column giving latency in ms
    latency_backend: str = "eager"  # with a run and no latency table: the run's table measured with this backend
    latency_batch_size: int = 1  # ... at this batch size
    latency_threads: int = 1  # ... and thread count
    allow_foreign_latency: bool = False  # use a run's latency table even when it was measured on another device
    max_flops: float | None = None  # FLOPs (multiply-accumulates) limit
    max_params: float | None = None  # parameter limit
    max_latency_ms: float | None = None  # latency limit in ms
    objectives: str | None = None  # comma list, e.g. accuracy,flops
    storage: str | None = None  # SQLAlchemy URL of the Optuna study; default: the run's Optuna database
    study_name: str | None = None  # join this study shared by several workers (budget = the study's total)
    name: str | None = None  # name of this search run in the store (default ALGO-sSEED)
    resume: bool = False  # continue an interrupted search with the same options
    searcher_options: dict[str, Any] = field(default_factory=dict)  # searcher config fields (population, ...)
    quiet: bool = False  # no progress bar
    threads: int | None = None  # CPU threads of this process (it scores when workers is 1)
    workers: int = 1  # scoring processes on this machine (1: score in this process)
    threads_per_worker: int | None = None  # torch threads of each worker; default: the cores divided among the workers
    device: str = "cpu"  # where networks are scored: cpu, cuda (workers spread over the visible GPUs), cuda:N, auto
    precision: str = "fp32"  # supernet scoring precision: fp32, bf16 or fp16 (part of each score's key)

    def __post_init__(self) -> None:
        from evonas.scorers.registry import list_scorers
        from evonas.search.base import build_config
        from evonas.search.registry import get_searcher

        opts = {k: v for k, v in dict(self.searcher_options).items() if v is not None}
        unknown = sorted(set(opts) - set(SEARCHER_OPTIONS))
        if unknown:
            raise ConfigError(f"The 'searcher_options' parameter has unknown keys {unknown}; known: {list(SEARCHER_OPTIONS)}",
                              param="searcher_options")
        object.__setattr__(self, "searcher_options", opts)
        if not isinstance(self.budget, int) or self.budget < 1:
            raise ConfigError(f"The 'budget' parameter must be an integer >= 1 (distinct architectures to score); "
                              f"got {self.budget!r}", param="budget")
        if self.space is not None and not is_user_space(self.space):
            get_space(self.space)  # a user's model is built from its run
        build_config(get_searcher(self.algo), opts)  # unknown searcher, or an option it lacks or a bad value
        if self.scorer is not None and self.scorer not in list_scorers():
            raise ConfigError(f"The 'scorer' parameter must be one of {', '.join(list_scorers())}; got {self.scorer!r}",
                              param="scorer")
        scorer = self.scorer or ("table" if self.table else "supernet")
        if scorer == "table" and not self.table:
            raise ConfigError("--scorer table needs --table CSV (a file whose arch column holds the space's strings)")
        if scorer == "table" and not self.target:
            raise ConfigError("--table needs --target COLUMN, the column to maximise (e.g. cifar10_valid_acc)")
        if self.report and scorer != "table":
            raise ConfigError("--report names a table column; it needs --table")
        check_threads(self.threads)
        check_workers(self)
        check_device_and_precision(self.device, self.precision)
        self.constraints()  # limits must be numbers > 0
        if self.storage is not None:
            storage_backend(self.storage)
        check_shared_study(self.algo, self.storage, self.study_name)
        check_name(self.name, "name")  # a folder of the run: RUN/searches/NAME
        check_name(self.study_name, "study_name")
        self.latency_setting()

    def latency_setting(self):
        from evonas.jobs.latency import LatencySetting

        return LatencySetting(backend=self.latency_backend, batch_size=self.latency_batch_size, threads=self.latency_threads)

    def wants_latency(self) -> bool:
        """A latency limit or objective: the scorer needs a latency source."""
        objectives = [o.strip() for o in (self.objectives or "").split(",")]
        return self.max_latency_ms is not None or "latency" in objectives or "latency_ms" in objectives

    def constraints(self):
        from evonas.search.constraints import Constraints

        return Constraints(max_flops=self.max_flops, max_params=self.max_params, max_latency_ms=self.max_latency_ms)


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """A finished (or exhausted) search: its JSON object, and where it was written."""

    summary: dict[str, Any]  # space, scorer, target, report, objectives, constraints, best, history, ...
    result_file: Path | None  # RUN/searches/NAME/result.json; None without a run directory

    def to_dict(self) -> dict[str, Any]:
        return dict(self.summary)

    @property
    def best_arch(self) -> str | None:
        """The string of the best architecture found (None when nothing was scored)."""
        return (self.summary.get("best") or {}).get("arch")

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]


def resolve_space_and_scorer(layout: RunLayout | None, options: SearchOptions) -> tuple[str, str, Run | None]:
    """(space name, scorer name, opened run or None) from the options and the run directory."""
    scorer = options.scorer or ("table" if options.table else "supernet")
    run = Run.open(layout) if layout is not None and layout.has_config() else None
    if scorer in ("supernet", "predictor"):
        if layout is None:
            raise ConfigError(
                f"the {scorer} scorer needs --run DIR with a trained supernet; to benchmark on a table give "
                "--table CSV --target COLUMN --space NAME"
            )
        if run is None:
            Run.open(layout)  # raises RunDirError with the fix
    run_space = run.config.space if run else None
    if options.space and run_space and canonical_name(options.space) != run_space:
        raise ConfigError(f"--space {options.space} differs from the space of run {layout.path} ({run_space}); drop --space")
    space = options.space or run_space
    if not space:
        raise ConfigError(f"--space is required with --table and no trained run; choose one of: {', '.join(list_spaces())}")
    return space, scorer, run


def search(run: RunLayout | str | Path | None, options: SearchOptions) -> SearchResult:
    """Run one search in ``run`` (a run directory, possibly without a supernet for table searches, or None)."""
    layout = RunLayout.of(run) if run is not None else None
    plan = _plan_search(layout, options)
    result, search_run, shared_summary = _run_searcher(layout, options, plan)
    return _write_result(layout, options, plan, result, search_run.name, shared_summary)


@dataclass(frozen=True)
class _SearchPlan:
    """What a search resolved to, checked before its store records anything."""

    space: str
    scorer_name: str
    scorer: Any  # the Scorer
    scorer_factory: Any  # builds the scorer again in a scoring worker
    constraints: Any  # the Constraints
    problem: Any  # the searcher's Problem
    study_url: str | None  # the shared study's database (None: no shared study)
    study: dict[str, Any] | None  # the shared study's configuration


def _plan_search(layout: RunLayout | None, options: SearchOptions) -> _SearchPlan:
    """Resolve the space, the scorer and the problem, and check everything that can be checked before writing."""
    from evonas.scorers.registry import make_scorer, select_options
    from evonas.search import make_problem
    from evonas.search.registry import get_searcher

    space, scorer_name, opened = resolve_space_and_scorer(layout, options)
    constraints = options.constraints()
    use_threads(options.threads)
    sources = dict(space=space, table=options.table, target=options.target, report=options.report,
                   latency_table=options.latency_table, latency_column=options.latency_column,
                   run_dir=opened or (layout.path if layout else None), device=options.device,
                   precision=options.precision)
    if scorer_name in ("supernet", "predictor") and opened is not None and options.wants_latency() \
            and not options.latency_table:  # the run's own table, measured on this device
        from evonas.jobs.latency import device_table

        sources["device_latency"] = device_table(opened, options.latency_setting(),
                                                 allow_foreign=options.allow_foreign_latency)
    scorer = make_scorer(scorer_name, **select_options(scorer_name, sources))
    scorer_factory = worker_scorer_factory(scorer_name, sources, layout)
    problem = make_problem(scorer, constraints, options.objectives)
    if options.storage:
        check_storage(options.storage)  # reachable, before the store records a search run
    study_url = shared_study_url(layout, options)
    study = None
    if study_url is not None:  # a shared study: the run directory's store will hold its union
        from evonas.run.shared_store import check_study, study_config

        study = study_config(space=space, scorer=scorer, constraints=constraints.to_dict(),
                             objectives=[o.metric for o in problem.objectives])
        if options.storage or layout.path.exists():
            check_study(study_url, options.study_name, budget=options.budget, config=study)  # before anything is written
    if options.resume and (layout is None or not layout.store_file.is_file()):  # nothing recorded: nothing to resume
        where = f"run {layout.path} has no evaluation store" if layout is not None else "a search without a run directory keeps nothing"
        raise ConfigError(f"The 'resume' parameter continues an interrupted search, but {where}; drop --resume to start "
                          "one", param="resume")
    if layout is not None:  # result.json goes to RUN/searches/NAME: inside the run, checked before anything is written
        check_inside(layout.path, layout.search_dir(options.name or f"{options.algo}-s{options.seed}"))
    get_searcher(options.algo).check_problem(problem)  # refused before the store records a search run
    return _SearchPlan(space=space, scorer_name=scorer_name, scorer=scorer, scorer_factory=scorer_factory,
                       constraints=constraints, problem=problem, study_url=study_url, study=study)


def _run_searcher(layout: RunLayout | None, options: SearchOptions, plan: _SearchPlan) -> tuple[Any, Any, dict | None]:
    """Open the store and run the searcher through it: (the driver's result, the search run, the shared study's summary)."""
    from evonas.run.store import Store
    from evonas.search import SearchContext, make_searcher

    created = layout is not None and not layout.path.exists()
    try:
        store = layout.store() if layout else Store.memory()
    except BaseException:
        if created:
            remove_if_empty(layout.path)
        raise
    shared_summary = None
    try:
        config = {
            "space": plan.space,
            "scorer": plan.scorer.describe(),
            "constraints": plan.constraints.to_dict(),
            "objectives": [o.metric for o in plan.problem.objectives],
            "options": options.searcher_options,
        }
        seed = options.seed
        if plan.study_url is not None:
            from evonas.run.shared_store import SharedStore

            store = SharedStore.join(store, plan.study_url, options.study_name, budget=options.budget, config=plan.study)
            seed += store.worker  # worker i samples with seed + i: workers started alike propose different archs
        search_run, resumed = store.begin_search(algo=options.algo, seed=options.seed, config=config, name=options.name,
                                                 resume=options.resume, budget=options.budget)
        storage = options.storage or (layout.optuna_url if layout else None)
        context = SearchContext(run_dir=str(layout.path) if layout else None, storage=storage,
                                study_name=options.study_name or search_run.name, resume=resumed,
                                shared=plan.study_url is not None)
        searcher = make_searcher(options.algo, plan.problem, seed=seed, options=options.searcher_options, context=context)
        result = _drive(options, plan, store, searcher, search_run, resumed)
        if plan.study_url is not None:  # wait for the other workers' last scores, then keep the study's union here
            store.wait_for_claims()
            store.sync(space=plan.space, scorer=plan.scorer.name, source_key=plan.scorer.source_key)
            shared_summary = store.describe(plan.scorer.target)
    finally:
        store.close()
    return result, search_run, shared_summary


def _drive(options: SearchOptions, plan: _SearchPlan, store: Any, searcher: Any, search_run: Any, resumed: bool) -> Any:
    """Run the searcher to its budget with a progress bar, scoring in ``options.workers`` processes."""
    from tqdm.auto import tqdm

    from evonas.scorers.pool import make_scoring
    from evonas.search import run_search

    with tqdm(total=options.budget, desc=options.algo, unit="arch", file=sys.stderr,
              disable=not progress_enabled(options.quiet), leave=False) as bar:
        def progress(done: int, best: float) -> None:
            bar.update(done - bar.n)
            bar.set_postfix_str(f"best {best:.4g}", refresh=False)

        with make_scoring(plan.scorer, store, workers=options.workers, threads_per_worker=options.threads_per_worker,
                          factory=plan.scorer_factory, devices=worker_devices(options.device, options.workers)) as scoring:
            return run_search(searcher, plan.scorer, store, budget=options.budget, search_run=search_run,
                              resumed=resumed, progress=progress, scoring=scoring)


def _write_result(layout: RunLayout | None, options: SearchOptions, plan: _SearchPlan, result: Any, name: str,
                  shared_summary: dict | None) -> SearchResult:
    """The search's JSON object, written (with ``pareto.json``) to the run's folder ``searches/NAME`` when there is a run."""
    scorer = plan.scorer
    out = {
        "space": plan.space,
        "scorer": plan.scorer_name,
        "target": scorer.target,
        "report": scorer.report,
        "objectives": [o.metric for o in plan.problem.objectives],
        "constraints": {k: v for k, v in plan.constraints.to_dict().items() if v is not None},
        **result.to_dict(),
        "store": str(layout.store_file) if layout else None,
    }
    if plan.study_url is not None:
        out["study"] = shared_summary  # name, storage, budget, this worker's index, workers, scored
    if result.exhausted:
        out["exhausted_reason"], out["feasible_rows"] = exhaustion_reason(scorer, plan.problem, result.evaluations,
                                                                          options.budget)
    result_file = None
    if layout:
        check_inside(layout.path, layout.search_dir(name)).mkdir(parents=True, exist_ok=True)
        if result.pareto is not None:
            pareto_file = layout.search_pareto_file(name)
            write_text_atomic(pareto_file, json.dumps(result.pareto, indent=2) + "\n")
            out["pareto_file"] = str(pareto_file)
        result_file = layout.search_result_file(name)
        write_text_atomic(result_file, json.dumps(out, indent=2, default=str) + "\n")  # never half a result
    return SearchResult(summary=out, result_file=result_file)


def exhaustion_reason(scorer, problem, evaluations: int, budget: int) -> tuple[str, int | None]:
    """Why a search stopped before its budget, and (for a table) how many of its rows meet the limits."""
    table = getattr(scorer, "table", None)
    if table is None or scorer.target not in table.columns:
        return (f"stopped after {evaluations} of the budget of {budget}: the searcher proposed nothing new that meets "
                "the limits"), None
    target = table.columns[scorer.target]
    space = table.space
    rows = sum(1 for i in table.index.values()
               if not math.isnan(target[i]) and problem.feasible(space.canonical(table.archs[i])))
    if evaluations >= rows:
        return (f"the table ran out: all {rows} of its rows that meet the limits were scored, fewer than the budget "
                f"of {budget}; the best is the best of the table"), rows
    return (f"stopped after {evaluations} of the table's {rows} rows that meet the limits (budget {budget}): the "
            "searcher kept proposing architectures already scored or not in the table, so rows are left unscored "
            "and the table may hold a better one"), rows


def check_workers(options: SearchOptions) -> None:
    """``workers`` and ``threads_per_worker`` fit this machine's cores and the other options."""
    from evonas.scorers.pool import check_pool

    check_pool(options.workers, options.threads_per_worker)
    if options.workers == 1 and options.threads_per_worker is not None:
        raise ConfigError(f"The 'threads_per_worker' parameter applies with the 'workers' parameter >= 2; got "
                          f"{options.threads_per_worker!r} with 1 worker; use the 'threads' parameter for this process",
                          param="threads_per_worker")
    if options.workers > 1 and options.study_name is not None:
        raise ConfigError(f"The 'workers' parameter cannot be combined with the 'study_name' parameter (got "
                          f"{options.workers!r}): every process of a shared study is a worker already; start one "
                          "search process per core instead", param="workers")


def worker_devices(device: str, workers: int) -> tuple[str, ...] | None:
    """The device of each scoring worker: with ``cuda`` the workers are spread over the visible GPUs in turn."""
    if workers < 2 or device not in ("cuda", "auto"):
        return None
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return tuple(f"cuda:{i % count}" for i in range(workers)) if count else None


def worker_scorer_factory(scorer_name: str, sources: dict[str, Any], layout: RunLayout | None):
    """A picklable callable that builds the search's scorer again in a scoring worker process."""
    import functools

    from evonas.scorers.registry import make_scorer, select_options

    options = select_options(scorer_name, {**sources, "run_dir": str(layout.path) if layout else None})
    return functools.partial(make_scorer, scorer_name, **options)


STORAGE_TIMEOUT_S = 10.0  # how long --storage may take to answer before the search gives up


def shared_study_url(layout: RunLayout | None, options: SearchOptions) -> str | None:
    """The database of the shared study ``options.study_name`` (None without one): ``--storage``, else the run's."""
    if options.study_name is None:
        return None
    url = options.storage or (layout.optuna_url if layout is not None else None)
    if url is None:
        raise ConfigError("The 'study_name' parameter needs a database that its workers share: give the 'storage' "
                          "parameter (sqlite:///FILE on one machine, postgresql://USER@HOST/DB for several) or the "
                          "'run_dir' parameter (its optuna.db)", param="study_name")
    return url


def check_shared_study(algo: str, storage: str | None, study_name: str | None) -> None:
    """``storage`` and ``study_name`` are for the Optuna searchers; a study name is a non-empty string."""
    from evonas.search.optuna_search import OptunaSearcher
    from evonas.search.registry import get_searcher

    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise ConfigError(f"The 'study_name' parameter must be a non-empty name shared by the study's workers; "
                          f"got {study_name!r}", param="study_name")
    if (storage is not None or study_name is not None) and not issubclass(get_searcher(algo), OptunaSearcher):
        from evonas.search.optuna_search import optuna_searchers

        given = "storage" if storage is not None else "study_name"
        raise ConfigError(f"The '{given}' parameter is for the Optuna searchers "
                          f"({', '.join(c.name for c in optuna_searchers())}), which share a study through it; "
                          f"got the 'algo' parameter {algo!r}; use --algo tpe, or drop --storage and --study-name",
                          param=given)


def storage_backend(url: str):
    """The parsed SQLAlchemy URL of ``--storage``; a ConfigError when it is not one or its driver is missing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"The 'storage' parameter must be an SQLAlchemy URL such as sqlite:///optuna.db or "
                          f"postgresql://user@host/db; got {url!r}", param="storage") from None
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigError(f"The 'storage' parameter names database {parsed.get_backend_name()!r}, which SQLAlchemy does "
                          f"not know; got {url!r}", param="storage") from None
    except ImportError as exc:
        how = "evonas's postgres extra (pip install 'evonas[postgres]')" if parsed.get_backend_name() == "postgresql" else "it"
        raise ConfigError(f"The 'storage' parameter ({url}) needs the Python driver of {parsed.get_backend_name()}, "
                          f"which is not installed ({exc}); install {how}, or use sqlite:///FILE", param="storage") from None
    return parsed


def check_storage(url: str, timeout: float = STORAGE_TIMEOUT_S) -> None:
    """Connect to ``--storage`` and read its schema, in at most ``timeout`` seconds; a ConfigError otherwise."""
    from sqlalchemy import create_engine, inspect

    storage_backend(url)
    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            engine = create_engine(url)
            try:
                with engine.connect() as conn:
                    inspect(conn).get_table_names()
            finally:
                engine.dispose()
            outcome.append(None)
        except Exception as exc:  # reported below, as one line
            outcome.append(exc)

    worker = threading.Thread(target=probe, name="evonas-storage-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise ConfigError(f"The 'storage' parameter ({url}) did not answer within {timeout:g} s; check the host and "
                          "port, or use sqlite:///FILE", param="storage")
    if outcome[0] is not None:
        reason = " ".join(str(getattr(outcome[0], "orig", None) or outcome[0]).split())[:300]
        raise ConfigError(f"The 'storage' parameter ({url}) cannot be used: {reason}", param="storage")
