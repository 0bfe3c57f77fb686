"""`evonas predictor-bench`: how well predictors rank architectures, measured on a table."""

from __future__ import annotations

import json

import click

from search_spaces import list_spaces

from evonas.cli.common import echo_table, int_list, name_list
from evonas.jobs.predictor_bench import DEFAULT_TABLE, SELECTIONS, PredictorBenchOptions, predictor_bench as bench

BENCH_COLUMNS = [
    ("predictor", "predictor", "s"),
    ("train_size", "anchors", "d"),
    ("kendall_tau", "tau", ".3f"),
    ("kendall_tau_std", "± std", ".3f"),
    ("spearman_rho", "rho", ".3f"),
    ("top_tau", "tau top10%", ".3f"),
    ("best_true_rank_median", "rank of #1 (median)", ".0f"),
]


@click.command("predictor-bench")
@click.option("--space", default="nb201", show_default=True, type=click.Choice(list_spaces()), help="Space of the table's arch strings.")
@click.option("--table", default=str(DEFAULT_TABLE), show_default=True, help="CSV with an 'arch' column and numeric columns.")
@click.option("--target", default="cifar10_valid_acc", show_default=True, help="Column to predict (stand-alone accuracy).")
@click.option("--proxy", default=None, help="Cheap-score column standing in for the supernet score; enables gap correction.")
@click.option("--train-sizes", default="10,20,50,100", show_default=True, help="Comma list of anchor counts.")
@click.option("--seeds", default=10, show_default=True, type=int, help="Anchor draws per size (mean and std over them).")
@click.option("--predictors", "predictor_list", default=None, help="Comma list of registered predictors (default: all that apply).")
@click.option("--selection", default="random", show_default=True, type=click.Choice(SELECTIONS),
              help="How anchors are drawn: uniformly, or spread over proxy and FLOPs ranks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with a 'results' list).")
@click.option("--quiet", is_flag=True, help="No progress bar (also off when stderr is not a terminal).")
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
    options = PredictorBenchOptions(space=space, table=table, target=target, proxy=proxy,
                                    train_sizes=tuple(int_list("--train-sizes", train_sizes)), seeds=seeds,
                                    predictors=name_list(predictor_list), selection=selection, quiet=quiet)
    result = bench(options)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(f"{result.n_archs} architectures of {space}; target {target}; "
               f"{seeds} seeds per size; {selection} anchors; held-out metrics")
    if proxy:
        click.echo(f"proxy {proxy}: Kendall tau {result.proxy_tau_full_table:.3f} on the whole table")
    echo_table(result.results, BENCH_COLUMNS)


COMMANDS = [predictor_bench]
