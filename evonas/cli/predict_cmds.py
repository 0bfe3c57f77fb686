"""`evonas predictor-bench`: how well predictors rank architectures, measured on a table."""

from __future__ import annotations

import json

import click

from search_spaces import get_space, list_spaces

from evonas.errors import ConfigError
from evonas.scorers.tables import SHARED_NB201
from evonas.cli.common import echo_table

BENCH_COLUMNS = [
    ("predictor", "predictor", "s"),
    ("train_size", "anchors", "d"),
    ("kendall_tau", "tau", ".3f"),
    ("kendall_tau_std", "± std", ".3f"),
    ("spearman_rho", "rho", ".3f"),
    ("top_tau", "tau top10%", ".3f"),
    ("best_true_rank_median", "rank of #1 (median)", ".0f"),
]


def _int_list(option: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{option} must be a comma-separated list of integers such as 10,20,50; got {text!r}") from None
    if not values:
        raise ConfigError(f"{option} needs at least one integer; got {text!r}")
    return values


def run_predictor_bench(*, space: str, table: str, target: str, proxy: str | None, train_sizes: list[int], seeds: int,
                        predictors: list[str] | None, selection: str, progress: bool = False) -> dict:
    """Load the table, encode its architectures and benchmark; returns the JSON-ready result object."""
    import numpy as np

    from predictors import ArchEncoder, PredictorError, kendall_tau, list_predictors
    from predictors.benchmark import benchmark_predictors

    from evonas.scorers.tables import load_table

    if predictors is not None:
        unknown = [p for p in predictors if p not in list_predictors()]
        if unknown:
            raise ConfigError(f"--predictors: unknown name(s) {unknown}; choose from: {', '.join(list_predictors())}")
    sp = get_space(space)
    tab = load_table(table, sp)
    y = tab.column(target)
    p = tab.column(proxy) if proxy else None
    keep = ~np.isnan(y) if p is None else ~(np.isnan(y) | np.isnan(p))
    archs = [a for a, k in zip(tab.archs, keep) if k]
    enc = ArchEncoder(sp)
    X = enc.transform(archs)
    flops = np.array([sp.cost(a).flops for a in archs], dtype=np.float64)
    try:
        rows = benchmark_predictors(
            X, y[keep], flops=flops, proxy=None if p is None else p[keep], cost_index=enc.index_of("log_flops"),
            train_sizes=train_sizes, seeds=seeds, predictors=predictors, selection=selection, progress=progress,
        )
    except PredictorError as exc:
        raise ConfigError(str(exc)) from None
    rows.sort(key=lambda r: (r["train_size"], -r["kendall_tau"]))
    return {
        "space": space,
        "table": str(table),
        "target": target,
        "proxy": proxy,
        "proxy_tau_full_table": None if p is None else round(kendall_tau(y[keep], p[keep]), 4),
        "n_archs": int(keep.sum()),
        "train_sizes": train_sizes,
        "seeds": seeds,
        "selection": selection,
        "features": enc.feature_names,
        "results": rows,
    }


@click.command("predictor-bench")
@click.option("--space", default="nb201", show_default=True, type=click.Choice(list_spaces()), help="Space of the table's arch strings.")
@click.option("--table", default=str(SHARED_NB201 / "nb201.csv"), show_default=True, help="CSV with an 'arch' column and numeric columns.")
@click.option("--target", default="cifar10_valid_acc", show_default=True, help="Column to predict (stand-alone accuracy).")
@click.option("--proxy", default=None, help="Cheap-score column standing in for the supernet score; enables gap correction.")
@click.option("--train-sizes", default="10,20,50,100", show_default=True, help="Comma list of anchor counts.")
@click.option("--seeds", default=10, show_default=True, type=int, help="Anchor draws per size (mean and std over them).")
@click.option("--predictors", "predictor_list", default=None, help="Comma list of registered predictors (default: all that apply).")
@click.option("--selection", default="random", show_default=True, type=click.Choice(["random", "spread"]),
              help="How anchors are drawn: uniformly, or spread over proxy and FLOPs ranks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with a 'results' list).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predictor_bench(space, table, target, proxy, train_sizes, seeds, predictor_list, selection, as_json, quiet) -> None:
    """Benchmark predictors on a table: held-out Kendall tau versus number of anchors.

    For each training size and seed, anchors are drawn from the table, every
    predictor is fitted on them, and it is scored on all other rows: Kendall tau
    and Spearman rho against --target, tau among the true top 10%, and the true
    rank of the architecture it puts first. With --proxy, each predictor also runs
    with the proxy as an extra feature (NAME+proxy), the gap-correcting predictors
    run, and 'proxy-alone' is the bar to beat.

    \b
    Examples:
      evonas predictor-bench --proxy cifar10_valid_acc_12ep --train-sizes 10,20,50 --seeds 5
      evonas predictor-bench --proxy cifar10_valid_acc_12ep --predictors gap,xgb --json
      evonas predictor-bench --target cifar100_test_acc --predictors gp,rf,ensemble
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1; got {seeds}")
    sizes = _int_list("--train-sizes", train_sizes)
    names = [n.strip() for n in predictor_list.split(",") if n.strip()] if predictor_list else None
    result = run_predictor_bench(space=space, table=table, target=target, proxy=proxy, train_sizes=sizes, seeds=seeds,
                                 predictors=names, selection=selection, progress=not quiet)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['n_archs']} architectures of {space}; target {target}; "
               f"{seeds} seeds per size; {selection} anchors; held-out metrics")
    if proxy:
        click.echo(f"proxy {proxy}: Kendall tau {result['proxy_tau_full_table']:.3f} on the whole table")
    echo_table(result["results"], BENCH_COLUMNS)


COMMANDS = [predictor_bench]
