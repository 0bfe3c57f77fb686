"""`evonas train-supernet`, `eval`, `profile` and `export`."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import click

from search_spaces import DEFAULT_SPACE, get_space, list_spaces

from evonas.run.config import SCHEDULES, TrainConfig
from evonas.errors import ConfigError
from evonas.cli.common import echo_json_lines, echo_table, read_archs

RESULT_COLUMNS = [
    ("arch", "arch", "s"),
    ("canonical", "canonical", "s"),
    ("accuracy", "acc %", ".2f"),
    ("flops", "FLOPs", ",d"),
    ("params", "params", ",d"),
]


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


@click.command("train-supernet")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory to create (or resume).")
@click.option("--space", default=DEFAULT_SPACE, show_default=True, type=click.Choice(list_spaces()), help="Search space.")
@click.option("--epochs", default=10, show_default=True, type=int, help="Passes over the train split.")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--lr", default=0.1, show_default=True, type=float, help="Peak learning rate (SGD, Nesterov).")
@click.option("--weight-decay", default=1e-4, show_default=True, type=float)
@click.option("--schedule", default="cosine", show_default=True, type=click.Choice(SCHEDULES))
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the split, data order, paths and init.")
@click.option("--dataset", default="", help="fmnist, cifar10 or synthetic (random images, for smoke tests); default: the space's own.")
@click.option("--data-root", default=None, help="Dataset folder (default: Debian's Fashion-MNIST; CIFAR-10 needs one).")
@click.option("--val-size", default=10_000, show_default=True, type=int, help="Training images held out for validation.")
@click.option("--train-limit", default=None, type=int, help="Use only this many training images (quick runs).")
@click.option("--threads", default=None, type=int, help="CPU threads for torch (default: all cores).")
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.pt with the run's saved config.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def train_supernet(ctx: click.Context, run_dir: str, resume: bool, quiet: bool, threads: int | None, **opts) -> None:
    """Train a one-shot supernet with uniform single-path sampling (SPOS).

    Every step trains one uniformly sampled path. A checkpoint is written atomically
    after every epoch; if the process dies, rerun the same command with --resume and
    it continues to the same final weights as an uninterrupted run.

    \b
    Examples:
      evonas train-supernet --run runs/demo --epochs 10
      evonas train-supernet --run runs/demo --resume
      evonas train-supernet --space macro-cifar10 --data-root ~/data/cifar10 --run runs/c10
    """
    from evonas.run.run import Run
    from evonas.training.train import train_supernet as train

    _threads(threads)
    run_path = Path(run_dir)
    given = {k: v for k, v in opts.items() if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    if resume and (run_path / "config.json").is_file():
        cfg = Run.open(run_path).config
        clash = {k: (getattr(cfg, k), v) for k, v in given.items() if getattr(cfg, k) != v}
        if clash:
            raise ConfigError(
                f"--resume continues the run with its saved config; these options differ (saved, given): {clash}. "
                "Drop them, or start a new --run directory."
            )
    else:
        cfg = TrainConfig(**opts)
    weights = train(run_path, cfg, resume=resume, progress=not quiet)
    click.echo(f"supernet weights: {weights}")
    click.echo(f"next: evonas eval --run {run_dir} --sample 5")


@click.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory with a trained supernet.")
@click.option("--arch", "arch_opts", multiple=True, help="Architecture string (repeatable).")
@click.option("--archs", "archs_file", default=None, help="File with one architecture string per line.")
@click.option("--sample", default=0, type=int, help="Also score N uniformly sampled architectures.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of --sample and of the recalibration subset.")
@click.option("--no-recalibrate", is_flag=True, help="Score with the supernet's shared BN statistics (to see what recalibration changes).")
@click.option("--recalib-images", default=2000, show_default=True, type=int, help="Training images used to recalibrate BN.")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "test"]), help="Evaluation split.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("--threads", default=None, type=int)
def eval_cmd(run_dir, arch_opts, archs_file, sample, seed, no_recalibrate, recalib_images, split, as_json, threads) -> None:
    """Score sub-networks with inherited supernet weights.

    Each architecture's BN statistics are reset and recalibrated on a fixed set of
    training images, then accuracy is measured on the validation split (the test
    split stays untouched unless you ask for it).

    \b
    Examples:
      evonas eval --run runs/demo --arch 12012200
      evonas eval --run runs/demo --archs archs.txt --json
      evonas eval --run runs/demo --sample 20 --no-recalibrate
    """
    from tqdm.auto import tqdm

    from evonas.run.run import Run
    from evonas.evaluation.scoring import SupernetEvaluator

    _threads(threads)
    run = Run.open(run_dir)
    space = run.space
    archs = read_archs(space, arch_opts, archs_file)
    rng = random.Random(seed)
    archs += [space.sample(rng) for _ in range(sample)]
    if not archs:
        raise ConfigError("nothing to score: give --arch STRING, --archs FILE or --sample N")
    ev = SupernetEvaluator(run, recalibrate=not no_recalibrate, recalib_images=recalib_images, seed=seed, split=split)
    rows = []
    for arch in tqdm(archs, desc="scoring", unit="arch", disable=len(archs) < 3, file=sys.stderr):
        metrics = ev.evaluate(arch)
        cost = space.cost(arch)
        row = {
            "arch": str(arch),
            "canonical": str(space.canonical(arch)),
            "accuracy": round(metrics["accuracy"], 4),
            "loss": round(metrics["loss"], 5),
            "flops": cost.flops,
            "params": cost.params,
            "split": split,
            "recalibrated": not no_recalibrate,
        }
        rows.append(row)
        if as_json:
            echo_json_lines([row])
    if not as_json:
        echo_table(rows, RESULT_COLUMNS)


@click.command("profile")
@click.option("--space", default=DEFAULT_SPACE, show_default=True, type=click.Choice(list_spaces()))
@click.option("--arch", "arch_opts", multiple=True, help="Architecture string (repeatable).")
@click.option("--archs", "archs_file", default=None, help="File with one architecture string per line.")
@click.option("--check", is_flag=True, help="Also build each network and count with torch.utils.flop_counter.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def profile_cmd(space: str, arch_opts, archs_file, check: bool, as_json: bool) -> None:
    """FLOPs (multiply-accumulates) and parameters, counted from the description.

    No training and no forward pass: the count comes from the space's cost model.
    --check builds the network and counts it independently with PyTorch.

    \b
    Examples:
      evonas profile --space macro-cifar10 --arch 02012100
      evonas profile --space macro-cifar10 --archs archs.txt --json
    """
    from evonas.evaluation.profile import count_module, describe_cost

    sp = get_space(space)
    archs = read_archs(sp, arch_opts, archs_file)
    if not archs:
        raise ConfigError("nothing to profile: give --arch STRING or --archs FILE")
    rows = []
    for arch in archs:
        row = describe_cost(sp, arch)
        if check:
            from evonas.supernet.chain import build_standalone

            net = sp.net
            measured = count_module(build_standalone(sp, arch), (net.in_channels, net.image_size, net.image_size))
            row.update(measured_flops=measured["flops"], measured_params=measured["params"])
        rows.append(row)
    if as_json:
        echo_json_lines(rows)
    else:
        cols = RESULT_COLUMNS[:2] + RESULT_COLUMNS[3:]
        if check:
            cols += [("measured_flops", "torch FLOPs", ",d"), ("measured_params", "torch params", ",d")]
        echo_table(rows, cols)


@click.command("export")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--arch", "arch_opts", multiple=True, help="Architecture to export (repeatable).")
@click.option("--top-k", default=None, type=int, help="Export the K best architectures found by searches, with a report.")
@click.option("--scorer", default="supernet", show_default=True, type=click.Choice(["supernet", "predictor"]),
              help="With --top-k: rank by supernet accuracy or by the gap-corrected prediction.")
@click.option("--out", default=None, help="Output folder (default RUN/exports/ARCH).")
def export_cmd(run_dir: str, arch_opts, top_k: int | None, scorer: str, out: str | None) -> None:
    """Export sub-networks as standalone PyTorch modules with inherited weights.

    Each export folder holds model.pt2 (load with torch.export.load(path).module()),
    state_dict.pt and metrics.json. BN statistics are recalibrated for the
    architecture before the weights are copied.

    \b
    Examples:
      evonas export --run runs/demo --arch 12012200
      evonas export --run runs/demo --top-k 5
      evonas export --run runs/demo --top-k 5 --scorer predictor
    """
    from evonas.export.module import export_arch
    from evonas.run.run import Run
    from evonas.evaluation.scoring import SupernetEvaluator

    if top_k is not None:
        if top_k < 1:
            raise ConfigError(f"--top-k must be >= 1; got {top_k}")
        from evonas.export.topk import export_top_k

        report = export_top_k(Path(run_dir), top_k, scorer=scorer, metric="accuracy" if scorer == "supernet" else "predicted")
        click.echo(f"exported the top {top_k}; report: {report}")
        return
    if not arch_opts:
        raise ConfigError("give --arch STRING (repeatable) or --top-k K")
    run = Run.open(run_dir)
    ev = SupernetEvaluator(run)
    from evonas.export.topk import gap_metrics, load_run_gap_model

    gap = load_run_gap_model(Path(run_dir))
    for arch in read_archs(run.space, arch_opts, None):
        metrics = ev.evaluate(arch)
        target = Path(out) / str(arch) if out and len(arch_opts) > 1 else Path(out or Path(run_dir) / "exports" / str(arch))
        extra = {"supernet_accuracy": round(metrics["accuracy"], 4), **gap_metrics(gap, run.space, str(run.space.canonical(arch)), metrics["accuracy"])}
        export_arch(run_dir, arch, target, extra, evaluator=ev)
        click.echo(f"{arch}: supernet accuracy {metrics['accuracy']:.2f}% -> {target}")


COMMANDS = [train_supernet, eval_cmd, profile_cmd, export_cmd]
