"""`evonas fit-predictor` and `evonas predict`: measure the optimization gap, and correct it."""

from __future__ import annotations

import contextlib
import json

import click

from evonas.cli import logs
from evonas.cli.common import device_option, echo_json_lines, echo_table, json_safe, name_list, precision_option
from evonas.jobs.fit_predictor import FINETUNE_LR, SELECTIONS, FitPredictorOptions, fit_predictor as fit_predictor_job
from evonas.jobs.predict import PredictOptions, predict


@click.command("fit-predictor")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory with a trained supernet.")
@click.option("--anchors", "n_anchors", default=16, show_default=True, type=int, help="How many architectures to train stand-alone.")
@click.option("--anchor-epochs", default=3, show_default=True, type=int, help="Epochs of each stand-alone training (short schedule).")
@click.option("--anchor-seed", default=0, show_default=True, type=int, help="Seed of the stand-alone trainings (the first, with --anchor-seeds).")
@click.option("--anchor-seeds", default=1, show_default=True, type=int,
              help="Train each anchor this many times (seeds --anchor-seed, +1, ...) and learn from the mean: less label noise, "
                   "and the report shows the seed-to-seed tau that caps any estimate.")
@click.option("--long-anchors", default=0, show_default=True, type=int,
              help="Of the anchors, train this many again for --long-epochs (spread over the short accuracies and supernet "
                   "scores) and make the long schedule the target; short-only anchors are mapped to it. The choice is "
                   "judged on long labels when there are 4 or more. 0: one fidelity.")
@click.option("--long-epochs", default=None, type=int,
              help="Epochs of the long trainings; must exceed --anchor-epochs.  [default: 4 x --anchor-epochs]")
@click.option("--selection", default="spread", show_default=True, type=click.Choice(SELECTIONS),
              help="spread: cover the supernet-score and FLOPs ranges; random; uncertainty: half spread, then where the predictor is least sure; explicit: --anchor/--anchors-file.")
@click.option("--anchor", "anchor_opts", multiple=True, help="An anchor architecture (repeatable; with --selection explicit).")
@click.option("--anchors-file", default=None, help="File with one anchor architecture per line.")
@click.option("--pool", default=None, type=int, help="Supernet-scored candidates to choose anchors from (default max(4 x anchors, 48)).")
@click.option("--predictors", "names", default=None, help="Comma list of estimators to compare (default: all registered).")
@click.option("--coverage", default=0.9, show_default=True, type=float, help="Target coverage of the prediction intervals.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the pool sampling, anchor choice and estimators.")
@click.option("--finetune-steps", default=0, show_default=True, type=int,
              help="Score the pool (anchors included) after this many SGD steps of each path alone from its inherited "
                   "weights: about 4x the scoring time at 50; on macro-fmnist the corrector then ranked +0.01 Kendall "
                   "tau better on average, not on every supernet (benchmarks/results/finetune_scoring.md). "
                   "`predict` and `export` then score the same way.")
@click.option("--finetune-lr", default=FINETUNE_LR, show_default=True, type=float,
              help="Peak learning rate of --finetune-steps (cosine-decayed to 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the ranking report as one JSON object.")
@click.option("--threads", default=None, type=int)
@device_option("the pool is scored and the anchors train")
@precision_option("the pool's supernet scores (the anchors train in the run's precision)")
@click.option("--quiet", is_flag=True, help="No progress bars (also off when stderr is not a terminal).")
def fit_predictor(run_dir, n_anchors, anchor_epochs, anchor_seed, anchor_seeds, long_anchors, long_epochs, selection,
                  anchor_opts, anchors_file, pool, names, coverage, seed, finetune_steps, finetune_lr, as_json, threads,
                  device, precision, quiet) -> None:
    """Train stand-alone anchors and fit a predictor that corrects the supernet.

    The supernet ranks architectures only roughly. This command measures how well on
    your own task: it trains a few anchor architectures from scratch (resumable, one
    store record each), then scores every predictor and the supernet itself against
    their stand-alone accuracy on 50 random held-out splits of the anchors (Kendall tau
    and its standard error, Spearman rho, FLOPs alone, the coverage of the prediction
    intervals). A predictor replaces the supernet's own ranking only when it beats it by
    more than its noise; otherwise the corrector is the calibrated supernet score.

    \b
    Examples:
      evonas fit-predictor --run runs/demo --anchors 16 --anchor-epochs 3
      evonas fit-predictor --run runs/demo --selection explicit --anchor 12012200 --anchor 00000000 ...
      evonas fit-predictor --run runs/demo --anchors 24 --selection uncertainty --json
      evonas fit-predictor --run runs/demo --anchors 16 --anchor-epochs 3 --long-anchors 6 --long-epochs 12
      evonas fit-predictor --run runs/demo --anchors 16 --finetune-steps 50
    """
    options = FitPredictorOptions(anchors=n_anchors, anchor_epochs=anchor_epochs, anchor_seed=anchor_seed,
                                  anchor_seeds=anchor_seeds, long_anchors=long_anchors, long_epochs=long_epochs,
                                  selection=selection,
                                  explicit=anchor_opts, anchors_file=anchors_file, pool=pool, predictors=name_list(names),
                                  coverage=coverage, seed=seed, finetune_steps=finetune_steps, finetune_lr=finetune_lr,
                                  quiet=quiet, threads=threads, device=device, precision=precision)
    with logs.to_stderr() if as_json else contextlib.nullcontext():  # with --json, stdout is the JSON object alone
        result = fit_predictor_job(run_dir, options)
    if as_json:
        click.echo(json.dumps(json_safe({**result.report, "model": str(result.model_path), "report": str(result.report_path)})))
        return
    click.echo(result.text)
    need = result.min_anchors_for_bounded_interval
    if len(result.anchors) < need:
        click.echo(f"note: with {len(result.anchors)} anchors a {result.coverage:.0%} conformal interval is unbounded (shown as 0-100%); "
                   f"use at least {need} anchors or a lower --coverage")
    sm = result.report["search_model"]
    click.echo(f"search model: {sm['estimator']} on architecture features ({sm['anchors']} anchors + {sm['pseudo_labels']} corrected scores)")
    click.echo(f"saved: {result.model_path}\nreport: {result.report_path}")
    click.echo(f"next: evonas search --run {run_dir} --scorer predictor --algo evolution --budget 2000")


@click.command("predict")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory with a fitted predictor.")
@click.option("--arch", "arch_opts", multiple=True, help="Architecture string (repeatable).")
@click.option("--archs", "archs_file", default=None, help="File with one architecture string per line.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@device_option("the supernet scores them")
@click.option("--precision", default=None, type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Precision of the supernet scores  [default: that of the scores the predictor was fitted on; another "
                   "is refused].")
def predict_cmd(run_dir, arch_opts, archs_file, as_json, device, precision) -> None:
    """Predict stand-alone accuracy with the run's gap-correcting predictor.

    Each architecture is scored with the supernet (cached in the run's store; with the
    --finetune-steps fit-predictor used, if any) and the
    fitted predictor maps that score and the architecture to stand-alone accuracy,
    with a conformal interval at the coverage chosen in fit-predictor.

    \b
    Examples:
      evonas predict --run runs/demo --arch 12012200
      evonas predict --run runs/demo --archs archs.txt --json
    """
    result = predict(run_dir, PredictOptions(archs=arch_opts, archs_file=archs_file, device=device, precision=precision))
    if result.source_mismatch:
        click.echo(
            "warning: the supernet scores differ in source from those the predictor was fitted on (another checkpoint "
            "or other scoring settings); rerun `evonas fit-predictor` for consistent predictions",
            err=True,
        )
    if as_json:
        echo_json_lines(result.rows)
    else:
        echo_table(result.rows, [("arch", "arch", "s"), ("predicted", "predicted %", ".2f"), ("lower", "lower", ".2f"),
                                 ("upper", "upper", ".2f"), ("supernet", "supernet %", ".2f"), ("flops", "FLOPs", ",d")])


COMMANDS = [fit_predictor, predict_cmd]
