"""`evonas search`: parse the options, run the search job, print its summary or JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from search_spaces import list_spaces

from evonas.cli.common import SCI, SPACE, device_option, precision_option
from evonas.jobs.search import SEARCHER_OPTIONS, SearchOptions, search as run_search_job, searcher_names


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
        reason = out.get("exhausted_reason") or "the searcher proposed nothing new and feasible"
        click.echo(f"note: stopped before the budget: {reason}")
    if out.get("pareto") is not None:
        click.echo(f"Pareto front: {len(out['pareto'])} architectures" + (f" -> {out['pareto_file']}" if out.get("pareto_file") else ""))
    if out.get("store"):
        click.echo(f"store: {out['store']} (search run {out['search_run']})")
    if out.get("study"):
        study = out["study"]
        click.echo(f"study {study['name']} in {study['storage']}: {study['scored']} of {study['budget']} architectures "
                   f"scored by {study['workers']} worker{'s' if study['workers'] != 1 else ''} (this one is worker "
                   f"{study['worker']})")
        if study.get("best"):
            click.echo(f"study best {study['best']['arch']}  {out['target']} {study['best']['value']:.4f}")


@click.command("search")
@click.option("--run", "run_dir", default=None, type=click.Path(file_okay=False),
              help="Run directory: its supernet scores, its evaluation store keeps every score (optional with --table).")
@click.option("--space", default=None, type=SPACE, help="Search space (default: the run's).")
@click.option("--algo", default="evolution", show_default=True, type=click.Choice(searcher_names()), help="Searcher.")
@click.option("--budget", default=100, show_default=True, type=int, help="Distinct architectures to score.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the searcher (same seed, same search).")
@click.option("--scorer", default=None,
              help="supernet (default with --run), table (default with --table), predictor (the run's gap corrector, "
                   "after fit-predictor) or standalone (trains every candidate: slow, for small budgets).")
@click.option("--table", default=None, type=click.Path(dir_okay=False), help="CSV whose arch column holds the space's strings.")
@click.option("--target", default=None, help="Table column to maximise, e.g. cifar10_valid_acc.")
@click.option("--report", default=None, help="Table column to report for the best architecture, e.g. cifar10_test_acc.")
@click.option("--latency-table", default=None, type=click.Path(dir_okay=False), help="CSV of latencies joined on arch.")
@click.option("--latency-column", default=None, help="Column giving latency in ms, e.g. pixel3_ms.")
@click.option("--max-flops", default=None, type=SCI, help="FLOPs (multiply-accumulates) limit, e.g. 3e6.")
@click.option("--max-params", default=None, type=SCI, help="Parameter limit, e.g. 100e3.")
@click.option("--max-latency-ms", default=None, type=SCI,
              help="Latency limit in ms: from the run's table for this device (evonas latency build), or a --latency-column.")
@click.option("--latency-backend", default="eager", show_default=True, type=click.Choice(["eager", "onnxruntime"]),
              help="Which of the run's latency tables: backend ...")
@click.option("--latency-batch-size", default=1, show_default=True, type=int, help="... batch size ...")
@click.option("--latency-threads", default=1, show_default=True, type=int, help="... and threads it was measured with.")
@click.option("--allow-foreign-latency", is_flag=True, help="Use the run's latency table even if it was measured on another device.")
@click.option("--objectives", default=None, help="Comma list, e.g. accuracy,flops (nsga2, optuna-nsga2, tpe, random).")
@click.option("--storage", default=None, help="SQLAlchemy URL of the Optuna study (default: the run's optuna.db).")
@click.option("--study-name", default=None,
              help="Join this Optuna study shared by several workers: --budget is the study's total, no arch scored twice.")
@click.option("--name", default=None, help="Name of this search run in the store (default ALGO-sSEED).")
@click.option("--resume", is_flag=True, help="Continue an interrupted search (same options): scored architectures come from the store.")
@click.option("--population", default=None, type=int, help="evolution, nsga2, rea, optuna-nsga2: population size.")
@click.option("--parents", default=None, type=int, help="evolution: top-k parents per generation.")
@click.option("--mutation-prob", default=None, type=float, help="evolution, nsga2, rea: per-layer mutation probability.")
@click.option("--crossover-fraction", default=None, type=float, help="evolution: share of children bred by crossover.")
@click.option("--crossover-prob", default=None, type=float, help="nsga2: crossover probability per child.")
@click.option("--tournament", default=None, type=int, help="rea: tournament size.")
@click.option("--startup-trials", default=None, type=int, help="tpe: random trials before the model is used.")
@click.option("--threads", default=None, type=int, help="CPU threads of this process (it scores when --workers is 1).")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Scoring processes on this machine; each builds the scorer once. At most the CPU cores.")
@click.option("--threads-per-worker", default=None, type=int,
              help="Torch threads of each scoring worker (default: the cores divided among the workers, at least 1).")
@device_option("candidates are scored (cuda: the --workers are spread over the visible GPUs)")
@precision_option("supernet scoring (part of each score's key)")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (progress stays on stderr).")
@click.option("--quiet", is_flag=True, help="No progress bar (also off when stderr is not a terminal).")
def search(as_json: bool, threads: int | None, **opts: Any) -> None:
    """Search for the best architecture under FLOPs, params or latency limits.

    --budget counts distinct architectures scored; duplicates and architectures
    refused by the constraints cost nothing. Every score is stored in the run's store
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
      evonas search --run runs/demo --algo evolution --max-latency-ms 1.5     # after evonas latency build
      evonas search --run runs/demo --algo nsga2 --objectives accuracy,latency
      evonas search --run runs/demo --algo evolution --budget 500 --max-flops 3e6 --resume
      evonas search --run runs/demo --algo evolution --budget 500 --workers 2   # 2 scoring processes
      evonas search --run runs/demo --algo tpe --budget 300 --study-name s1 \\
          --storage postgresql://evonas@dbhost/evonas       # on each machine: 300 in all
      evonas search --space nb201 --table nb201.csv --target cifar10_valid_acc \\
          --report cifar10_test_acc --algo evolution --budget 100 --seed 3 --json
      evonas search --space nb201 --table nb201.csv --target cifar10_valid_acc \\
          --latency-table nb201_latency.csv --latency-column pixel3_ms --max-latency-ms 10
    """
    run_dir = opts.pop("run_dir")
    searcher_options = {k: opts.pop(k) for k in SEARCHER_OPTIONS}
    result = run_search_job(run_dir, SearchOptions(**opts, searcher_options=searcher_options, threads=threads))
    if as_json:
        click.echo(json.dumps(result.to_dict(), default=str))
    else:
        _summary(result.to_dict())


COMMANDS = [search]
