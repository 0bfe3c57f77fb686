"""`evonas fit-predictor` and `evonas predict`: measure the optimization gap, and correct it."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import click

from evonas.errors import ConfigError
from evonas.cli.common import echo_json_lines, echo_table, json_safe, read_archs

SELECTIONS = ("spread", "random", "uncertainty", "explicit")


def _predictor_errors():
    from predictors import PredictorError

    return PredictorError


@click.command("fit-predictor")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory with a trained supernet.")
@click.option("--anchors", "n_anchors", default=16, show_default=True, type=int, help="How many architectures to train stand-alone.")
@click.option("--anchor-epochs", default=3, show_default=True, type=int, help="Epochs of each stand-alone training (short schedule).")
@click.option("--anchor-seed", default=0, show_default=True, type=int, help="Seed of the stand-alone trainings.")
@click.option("--selection", default="spread", show_default=True, type=click.Choice(SELECTIONS),
              help="spread: cover the supernet-score and FLOPs ranges; random; uncertainty: half spread, then where the predictor is least sure; explicit: --anchor/--anchors-file.")
@click.option("--anchor", "anchor_opts", multiple=True, help="An anchor architecture (repeatable; with --selection explicit).")
@click.option("--anchors-file", default=None, help="File with one anchor architecture per line.")
@click.option("--pool", default=None, type=int, help="Supernet-scored candidates to choose anchors from (default max(4 x anchors, 48)).")
@click.option("--predictors", "names", default=None, help="Comma list of estimators to compare (default: all registered).")
@click.option("--coverage", default=0.9, show_default=True, type=float, help="Target coverage of the prediction intervals.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the pool sampling, anchor choice and estimators.")
@click.option("--json", "as_json", is_flag=True, help="Print the ranking report as one JSON object.")
@click.option("--threads", default=None, type=int)
def fit_predictor(run_dir, n_anchors, anchor_epochs, anchor_seed, selection, anchor_opts, anchors_file, pool, names, coverage, seed, as_json, threads) -> None:
    """Train stand-alone anchors and fit a predictor that corrects the supernet.

    The supernet ranks architectures only roughly. This command measures how well on
    your own task: it trains a few anchor architectures from scratch (resumable, one
    store record each), then cross-validates every predictor (leave-one-out for up to
    20 anchors) and reports the Kendall tau and Spearman rho of the supernet score,
    FLOPs alone and each predictor against stand-alone accuracy, plus the coverage of
    the prediction intervals. The best predictor by cross-validated tau is kept.

    \b
    Examples:
      evonas fit-predictor --run runs/demo --anchors 16 --anchor-epochs 3
      evonas fit-predictor --run runs/demo --selection explicit --anchor 12012200 --anchor 00000000 ...
      evonas fit-predictor --run runs/demo --anchors 24 --selection uncertainty --json
    """
    import numpy as np

    import predictors as P
    from predictors import ArchEncoder, PredictorError

    from evonas.gap.anchors import StandaloneScorer, supernet_pool, train_anchors
    from evonas.gap.corrector import SCORE, fit_gap_model, write_report
    from evonas.run.run import Run
    from evonas.scorers.cached import score_cached
    from evonas.scorers.registry import make_scorer
    from evonas.run.store import Store

    if threads:
        import torch

        torch.set_num_threads(threads)
    run = Run.open(run_dir)
    space = run.space
    explicit = read_archs(space, anchor_opts, anchors_file)
    if selection == "explicit" and not explicit:
        raise ConfigError("--selection explicit needs --anchor ARCH (repeatable) or --anchors-file FILE")
    if explicit and selection != "explicit":
        selection = "explicit"
    k = len(explicit) if selection == "explicit" else n_anchors
    if k < 4:
        raise ConfigError(f"--anchors must be at least 4 (cross-validation needs them); got {k}")
    pool_size = pool or max(4 * k, 48)
    if pool_size < k:
        raise ConfigError(f"--pool ({pool_size}) must be at least --anchors ({k})")
    name_list = [n.strip() for n in names.split(",")] if names else None
    try:
        store = Store.open(run_dir)
        supernet = make_scorer("supernet", run_dir=run_dir)
        log = (lambda msg: click.echo(msg, err=True)) if as_json else click.echo
        scores = supernet_pool(store, supernet, pool_size, seed=seed, progress=True)
        for arch in explicit:  # explicit anchors need supernet scores too
            key = str(space.canonical(arch))
            if key not in scores:
                scores[key] = score_cached(supernet, store, space.canonical(arch)).record.metric("accuracy")
        keys = sorted(scores)
        pool_archs = [space.parse(a) for a in keys]
        proxy = np.array([scores[a] for a in keys])
        flops = np.array([space.cost(a).flops for a in pool_archs], dtype=float)
        standalone = StandaloneScorer(run, epochs=anchor_epochs, seed=anchor_seed)
        t0 = time.perf_counter()
        if selection == "explicit":
            chosen = [str(space.canonical(a)) for a in explicit]
            truth = train_anchors(store, standalone, [space.parse(a) for a in chosen], echo=log)
        elif selection in ("spread", "random"):
            idx = P.select_anchors(selection, k, proxy=proxy, flops=flops, seed=seed, n_pool=len(keys))
            chosen = [keys[i] for i in idx]
            truth = train_anchors(store, standalone, [space.parse(a) for a in chosen], echo=log)
        else:  # uncertainty: half spread, then one at a time where a std-offering predictor is least sure
            idx = P.spread_anchors(max(k // 2, 4), proxy=proxy, flops=flops, seed=seed)
            chosen = [keys[i] for i in idx]
            enc = ArchEncoder(space, extra_names=(SCORE,))
            Xpool = enc.transform(pool_archs, extra={SCORE: proxy})
            truth = train_anchors(store, standalone, [space.parse(a) for a in chosen], echo=log)
            while len(chosen) < k:
                rows = [keys.index(a) for a in chosen]
                model = P.get_predictor("gp", random_state=seed).fit(Xpool[rows], [truth[a] for a in chosen])
                nxt = keys[P.uncertainty_anchors(model, Xpool, 1, exclude=rows, top_weight=0.5)[0]]
                chosen.append(nxt)
                truth.update(train_anchors(store, standalone, [space.parse(nxt)], echo=log))
        log(f"anchors ready in {time.perf_counter() - t0:.0f}s; cross-validating predictors ...")
        gap, plot = fit_gap_model(space, truth, scores, supernet_source=supernet.source_key, predictors=name_list, coverage=coverage, seed=seed)
    except PredictorError as exc:
        raise ConfigError(str(exc)) from None
    path = gap.save(Path(run_dir))
    report_md = write_report(Path(run_dir), gap, plot, plot["text"])
    if as_json:
        click.echo(json.dumps(json_safe({**gap.report, "model": str(path), "report": str(report_md)})))
        return
    click.echo(plot["text"])
    need = next(n for n in range(2, 10_000) if math.ceil(coverage * (n + 1)) <= n)
    if len(truth) < need:
        click.echo(f"note: with {len(truth)} anchors a {coverage:.0%} conformal interval is unbounded (shown as 0-100%); "
                   f"use at least {need} anchors or a lower --coverage")
    sm = gap.report["search_model"]
    click.echo(f"search model: {sm['estimator']} on architecture features ({sm['anchors']} anchors + {sm['pseudo_labels']} corrected scores)")
    click.echo(f"saved: {path}\nreport: {report_md}")
    click.echo(f"next: evonas search --run {run_dir} --scorer predictor --algo evolution --budget 2000")


@click.command("predict")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory with a fitted predictor.")
@click.option("--arch", "arch_opts", multiple=True, help="Architecture string (repeatable).")
@click.option("--archs", "archs_file", default=None, help="File with one architecture string per line.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def predict_cmd(run_dir, arch_opts, archs_file, as_json) -> None:
    """Predict stand-alone accuracy with the run's gap-correcting predictor.

    Each architecture is scored with the supernet (cached in the run's store) and the
    fitted predictor maps that score and the architecture to stand-alone accuracy,
    with a conformal interval at the coverage chosen in fit-predictor.

    \b
    Examples:
      evonas predict --run runs/demo --arch 12012200
      evonas predict --run runs/demo --archs archs.txt --json
    """
    from evonas.gap.corrector import load_gap_model
    from evonas.run.run import Run
    from evonas.scorers.cached import score_cached
    from evonas.scorers.registry import make_scorer
    from evonas.run.store import Store

    run = Run.open(run_dir)
    space = run.space
    archs = read_archs(space, arch_opts, archs_file)
    if not archs:
        raise ConfigError("nothing to predict: give --arch STRING or --archs FILE")
    gap = load_gap_model(run_dir)
    store = Store.open(run_dir)
    supernet = make_scorer("supernet", run_dir=run_dir)
    if supernet.source_key != gap.supernet_source:
        click.echo(
            "warning: the supernet scores differ in source from those the predictor was fitted on (another checkpoint "
            "or other scoring settings); rerun `evonas fit-predictor` for consistent predictions",
            err=True,
        )
    sup = [score_cached(supernet, store, space.canonical(a)).record.metric("accuracy") for a in archs]
    pred = gap.predict(archs, sup)
    rows = []
    for i, arch in enumerate(archs):
        cost = space.cost(arch)
        row = {
            "arch": str(arch),
            "canonical": str(space.canonical(arch)),
            "predicted": round(float(pred["predicted"][i]), 3),
            "lower": round(float(pred["lower"][i]), 3),
            "upper": round(float(pred["upper"][i]), 3),
            "coverage": gap.coverage,
            "supernet": round(sup[i], 3),
            "flops": cost.flops,
            "params": cost.params,
            "predictor": gap.best,
        }
        if "std" in pred:
            row["std"] = round(float(pred["std"][i]), 3)
        rows.append(row)
    if as_json:
        echo_json_lines(rows)
    else:
        echo_table(rows, [("arch", "arch", "s"), ("predicted", "predicted %", ".2f"), ("lower", "lower", ".2f"), ("upper", "upper", ".2f"), ("supernet", "supernet %", ".2f"), ("flops", "FLOPs", ",d")])


COMMANDS = [fit_predictor, predict_cmd]
