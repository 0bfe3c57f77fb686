"""`evonas search`: constrained architecture search with a registered searcher and scorer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from search_spaces import list_spaces

from evonas.errors import ConfigError
from evonas.cli.common import SCI

# searcher options: CLI name -> config field; passed only when given, and a searcher without
# that field rejects it with a message listing its own options
SEARCHER_OPTIONS = ("population", "parents", "mutation_prob", "crossover_fraction", "crossover_prob", "tournament",
                    "startup_trials")


def _searcher_names() -> list[str]:
    from evonas.search import list_searchers

    return list_searchers()


def resolve_space_and_scorer(*, run_dir: str | None, space: str | None, scorer: str | None, table: str | None):
    """(space name, scorer name) from the options and the run directory's config."""
    scorer = scorer or ("table" if table else "supernet")
    run_space = None
    if run_dir and (Path(run_dir) / "config.json").is_file():
        from evonas.run.run import Run

        run_space = Run.open(run_dir).config.space
    if scorer == "supernet":
        if not run_dir:
            raise ConfigError(
                "the supernet scorer needs --run DIR with a trained supernet; to benchmark on a table give "
                "--table CSV --target COLUMN --space NAME"
            )
        if run_space is None:
            from evonas.run.run import Run

            Run.open(run_dir)  # raises RunDirError with the fix
    if space and run_space and space != run_space:
        raise ConfigError(f"--space {space} differs from the space of run {run_dir} ({run_space}); drop --space")
    space = space or run_space
    if not space:
        raise ConfigError(f"--space is required with --table and no trained run; choose one of: {', '.join(list_spaces())}")
    return space, scorer


def search_main(**o: Any) -> dict[str, Any]:
    """Run one search from CLI options; returns the JSON result object (also used by tests and benchmarks)."""
    from evonas.search.constraints import Constraints
    from evonas.scorers import make_scorer
    from evonas.search import SearchContext, make_problem, make_searcher, run_search
    from evonas.run.store import Store

    run_dir = o.get("run_dir")
    space, scorer_name = resolve_space_and_scorer(run_dir=run_dir, space=o.get("space"), scorer=o.get("scorer"),
                                                  table=o.get("table"))
    if scorer_name == "table" and not o.get("table"):
        raise ConfigError("--scorer table needs --table CSV (a file whose arch column holds the space's strings)")
    if scorer_name == "table" and not o.get("target"):
        raise ConfigError("--table needs --target COLUMN, the column to maximise (e.g. cifar10_valid_acc)")
    if o.get("report") and scorer_name != "table":
        raise ConfigError("--report names a table column; it needs --table")
    scorer = make_scorer(scorer_name, space=space, table=o.get("table"), target=o.get("target"), report=o.get("report"),
                         latency_table=o.get("latency_table"), latency_column=o.get("latency_column"), run_dir=run_dir)
    constraints = Constraints(max_flops=o.get("max_flops"), max_params=o.get("max_params"),
                              max_latency_ms=o.get("max_latency_ms"))
    problem = make_problem(scorer, constraints, o.get("objectives"))
    budget = o["budget"]
    if budget < 1:
        raise ConfigError(f"--budget must be an integer >= 1 (distinct architectures to score); got {budget}")
    options = {k: o[k] for k in SEARCHER_OPTIONS if o.get(k) is not None}
    store = Store.open(run_dir) if run_dir else Store.memory()
    try:
        config = {
            "space": space,
            "scorer": scorer.describe(),
            "constraints": constraints.to_dict(),
            "objectives": [o_.metric for o_ in problem.objectives],
            "options": options,
        }
        search_run, resumed = store.begin_search(algo=o["algo"], seed=o["seed"], config=config, name=o.get("name"),
                                                 resume=o.get("resume", False))
        context = SearchContext(run_dir=run_dir, storage=o.get("storage"), study_name=search_run.name, resume=resumed)
        searcher = make_searcher(o["algo"], problem, seed=o["seed"], options=options, context=context)
        from tqdm import tqdm

        with tqdm(total=budget, desc=o["algo"], unit="arch", file=sys.stderr, disable=o.get("quiet", False),
                  leave=False) as bar:
            def progress(done: int, best: float) -> None:
                bar.update(done - bar.n)
                bar.set_postfix_str(f"best {best:.4g}", refresh=False)

            result = run_search(searcher, scorer, store, budget=budget, search_run=search_run, resumed=resumed,
                                progress=progress)
    finally:
        store.close()
    out = {
        "space": space,
        "scorer": scorer_name,
        "target": scorer.target,
        "report": scorer.report,
        "objectives": config["objectives"],
        "constraints": {k: v for k, v in constraints.to_dict().items() if v is not None},
        **result.to_dict(),
        "store": str(Path(run_dir) / "store.sqlite") if run_dir else None,
    }
    if run_dir:
        folder = Path(run_dir) / "searches" / search_run.name
        folder.mkdir(parents=True, exist_ok=True)
        if result.pareto is not None:
            (folder / "pareto.json").write_text(json.dumps(result.pareto, indent=2) + "\n")
            out["pareto_file"] = str(folder / "pareto.json")
        (folder / "result.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


def _summary(out: dict[str, Any]) -> None:
    best = out["best"]
    click.echo(f"{out['algo']} (seed {out['seed']}) on {out['space']}: {out['evaluations']} architectures scored "
               f"by {out['scorer']} ({out['cached']} from the store, {out['rejected']} refused by constraints)")
    if best is None:
        click.echo("no feasible architecture was scored")
        return
    line = f"best {best['arch']}  {out['target']} {best['value']:.4f}"
    if out.get("report") and best.get("report") is not None:
        line += f"  {out['report']} {best['report']:.4f}"
    line += f"  FLOPs {best['flops']:,}  params {best['params']:,}"
    if "latency_ms" in best:
        line += f"  latency {best['latency_ms']:.3g} ms"
    click.echo(line)
    if out.get("exhausted"):
        click.echo("note: stopped before the budget: the searcher proposed nothing new and feasible")
    if out.get("pareto") is not None:
        click.echo(f"Pareto front: {len(out['pareto'])} architectures" + (f" -> {out['pareto_file']}" if out.get("pareto_file") else ""))
    if out.get("store"):
        click.echo(f"store: {out['store']} (search run {out['search_run']})")


@click.command("search")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False),
              help="Run directory: its supernet scores, its store.sqlite keeps every evaluation (optional with --table).")
@click.option("--space", default=None, type=click.Choice(list_spaces()), help="Search space (default: the run's).")
@click.option("--algo", default="evolution", show_default=True, type=click.Choice(_searcher_names()), help="Searcher.")
@click.option("--budget", default=100, show_default=True, type=int, help="Distinct architectures to score.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the searcher (same seed, same search).")
@click.option("--scorer", default=None, help="supernet (default with --run) or table (default with --table).")
@click.option("--table", default=None, type=click.Path(dir_okay=False), help="CSV whose arch column holds the space's strings.")
@click.option("--target", default=None, help="Table column to maximise, e.g. cifar10_valid_acc.")
@click.option("--report", default=None, help="Table column to report for the best architecture, e.g. cifar10_test_acc.")
@click.option("--latency-table", default=None, type=click.Path(dir_okay=False), help="CSV of latencies joined on arch.")
@click.option("--latency-column", default=None, help="Column giving latency in ms, e.g. pixel3_ms.")
@click.option("--max-flops", default=None, type=SCI, help="FLOPs (multiply-accumulates) limit, e.g. 3e6.")
@click.option("--max-params", default=None, type=SCI, help="Parameter limit, e.g. 100e3.")
@click.option("--max-latency-ms", default=None, type=SCI, help="Latency limit in ms (needs a latency column).")
@click.option("--objectives", default=None, help="Comma list, e.g. accuracy,flops (nsga2, optuna-nsga2, tpe, random).")
@click.option("--storage", default=None, help="SQLAlchemy URL of the Optuna study (default: sqlite:///RUN/optuna.db).")
@click.option("--name", default=None, help="Name of this search run in the store (default ALGO-sSEED).")
@click.option("--resume", is_flag=True, help="Continue an interrupted search (same options): scored architectures come from the store.")
@click.option("--population", default=None, type=int, help="evolution, nsga2, rea, optuna-nsga2: population size.")
@click.option("--parents", default=None, type=int, help="evolution: top-k parents per generation.")
@click.option("--mutation-prob", default=None, type=float, help="evolution, nsga2, rea: per-layer mutation probability.")
@click.option("--crossover-fraction", default=None, type=float, help="evolution: share of children bred by crossover.")
@click.option("--crossover-prob", default=None, type=float, help="nsga2: crossover probability per child.")
@click.option("--tournament", default=None, type=int, help="rea: tournament size.")
@click.option("--startup-trials", default=None, type=int, help="tpe: random trials before the model is used.")
@click.option("--threads", default=None, type=int, help="CPU threads for supernet scoring.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (progress stays on stderr).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def search(as_json: bool, threads: int | None, **opts: Any) -> None:
    """Search for the best architecture under FLOPs, params or latency limits.

    --budget counts distinct architectures scored; duplicates and architectures
    refused by the constraints cost nothing. Every score is stored (RUN/store.sqlite)
    as it finishes and reused by any later search with the same scorer, so a killed
    search continues with --resume without scoring anything twice. Limits tighter than
    the smallest network are refused at once with the smallest feasible value.

    \b
    Searchers: evolution (SPOS, DEAP), nsga2 (DEAP), rea, random, tpe,
    optuna-nsga2, optuna-random.
    \b
    Examples:
      evonas search --run runs/demo --algo evolution --budget 500 --max-flops 3e6
      evonas search --run runs/demo --algo nsga2 --budget 1000 --objectives accuracy,flops
      evonas search --run runs/demo --algo tpe --budget 300 --max-params 100e3
      evonas search --run runs/demo --algo evolution --budget 500 --max-flops 3e6 --resume
      evonas search --space nb201 --table nb201.csv --target cifar10_valid_acc \\
          --report cifar10_test_acc --algo evolution --budget 100 --seed 3 --json
      evonas search --space nb201 --table nb201.csv --target cifar10_valid_acc \\
          --latency-table nb201_latency.csv --latency-column pixel3_ms --max-latency-ms 10
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    if as_json:
        opts["quiet"] = opts["quiet"] or not sys.stderr.isatty()
    out = search_main(**opts)
    if as_json:
        click.echo(json.dumps(out, default=str))
    else:
        _summary(out)


COMMANDS = [search]
