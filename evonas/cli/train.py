"""`evonas train-supernet`, `eval`, `profile` and `export`: parse, call one job, print."""

from __future__ import annotations

import click

from search_spaces import DEFAULT_SPACE, list_spaces

from evonas.cli.common import NUMBER, SCI, SPACE, device_option, echo_json_lines, echo_table, precision_option
from evonas.jobs.evaluate import FINETUNE_LR, EvalOptions, evaluate, scoring_defaults_text
from evonas.jobs.export import RANKERS, ExportOptions, export
from evonas.jobs.profile import ProfileOptions, profile
from evonas.jobs.train import SCHEDULES, TrainOptions, train

RESULT_COLUMNS = [
    ("arch", "arch", "s"),
    ("canonical", "canonical", "s"),
    ("accuracy", "acc %", ".2f"),
    ("flops", "FLOPs", ",d"),
    ("params", "params", ",d"),
]


@click.command("train-supernet")
@click.option("--run", "--run-dir", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory to create (or resume); under torchrun write --run-dir (torchrun takes --run for its --run-path).")
@click.option("--space", default=DEFAULT_SPACE, show_default=True, type=SPACE,
              help=f"Search space: a preset ({', '.join(list_spaces())}) or your model's factory, PATH.py:FACTORY or "
                   "package.module:FACTORY (a function returning a model with evonas.nn.Choice points).")
@click.option("--epochs", default=None, type=int, help="Passes over the train split [default: 18 on macro-fmnist, where longer training ranked best; 12 on mobilenet-fmnist; 10 elsewhere].")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--lr", default=0.1, show_default=True, type=float, help="Peak learning rate (SGD, Nesterov).")
@click.option("--weight-decay", default=1e-4, show_default=True, type=float)
@click.option("--schedule", default="cosine", show_default=True, type=click.Choice(SCHEDULES))
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the split, data order, paths and init.")
@click.option("--data", "--dataset", "dataset", default="",
              help="fmnist, cifar10, synthetic (random images, for smoke tests), imagefolder:DIR (one folder per class; "
                   "DIR/train and DIR/test when both exist), torchvision:NAME (a torchvision dataset under --data-root, "
                   "never downloaded) or PATH.py:FUNCTION (returns train and test datasets); default: the preset's own.")
@click.option("--data-root", default=None, help="Dataset folder (default: Debian's Fashion-MNIST; CIFAR-10 needs one).")
@click.option("--image-size", default=None, type=click.IntRange(min=1), help="Resize every image to this square side.")
@click.option("--in-memory/--stream", "in_memory", default=None,
              help="Hold a folder's images in memory, or decode them from disk batch by batch through a DataLoader "
                   "[default: in memory when the training images take under min(2 GiB, a quarter of the RAM)].")
@click.option("--augment", default="none", show_default=True, type=click.Choice(["none", "standard"]),
              help="standard: random crop with 4-pixel padding and horizontal flip (the CIFAR recipe; not for data where "
                   "flips are wrong). Stand-alone anchors train with the same recipe.")
@click.option("--val-size", default=10_000, show_default=True, type=NUMBER,
              help="Training images held out for validation, or a share such as 0.1 [default for your own data: 0.1].")
@click.option("--train-limit", default=None, type=int, help="Use only this many training images (quick runs).")
@click.option("--label-smoothing", default=0.0, show_default=True, type=float, help="Cross-entropy label smoothing.")
@click.option("--strategy", default="uniform", show_default=True,
              help="How each step samples paths: uniform (SPOS), fair (FairNAS strict fairness), sandwich "
                   "(largest + smallest + random paths, distilled in place from the largest), few-shot "
                   "(split into one sub-supernet per option of one layer after --few-shot-fraction of the epochs), "
                   "landmark (uniform plus a ranking loss on pairs of --landmarks of known accuracy).")
@click.option("--zero-init-residual/--no-zero-init-residual", default=True, show_default=True,
              help="Start the last BN of every residual block at zero (deep supernets train far better).")
@click.option("--sandwich-random", default=2, show_default=True, type=int, help="sandwich: random paths per step.")
@click.option("--distill-temperature", default=1.0, show_default=True, type=float, help="sandwich: distillation temperature.")
@click.option("--few-shot-fraction", default=0.5, show_default=True, type=float, help="few-shot: share of epochs before the split.")
@click.option("--few-shot-layer", default=None, type=int, help="few-shot: layer to split on (default: the first layer without a weight-free option).")
@click.option("--landmarks", default=None, metavar="RUN_OR_FILE",
              help="landmark: architectures of known stand-alone accuracy to rank, from a run directory's anchors "
                   "(evonas fit-predictor; mean over seeds) or a text file of 'arch accuracy' lines. The run's "
                   "config.json keeps the list it used.")
@click.option("--landmark-weight", default=0.5, show_default=True, type=float,
              help="landmark: weight of the ranking loss (hinge on the loss difference of each pair) after the warm-up.")
@click.option("--landmark-pairs", default=1, show_default=True, type=int,
              help="landmark: pairs of landmarks per step (each costs 2 forward passes of the batch).")
@click.option("--landmark-warmup", default=0.25, show_default=True, type=float,
              help="landmark: share of the training steps over which the ranking weight rises linearly from 0.")
@click.option("--sampling", default="uniform", show_default=True, type=click.Choice(["uniform", "pada"]),
              help="Which random paths and training images each step draws, under any strategy but fair. uniform: "
                   "every option equally likely, each epoch a permutation of the images. pada (path and data "
                   "importance, after Lu et al. 2023): options whose paths gave large gradients and images the "
                   "supernet gets wrong are drawn more often (images with replacement); uniform at the first step, "
                   "then mixed in linearly up to --pada-mix. Needs the images in memory and one process.")
@click.option("--pada-mix", default=0.5, show_default=True, type=float,
              help="pada: share of the sampling probabilities that follows importance at the last step, in [0, 1) "
                   "(0: uniform throughout).")
@click.option("--lr-by-size", is_flag=True,
              help="Give each step the learning rate of its path's size: the cosine schedule runs to its end over "
                   "the whole run for the largest path (most FLOPs) and over half of it for the smallest, and each "
                   "of --size-groups size bins keeps its own SGD momentum (after Jeon et al. 2025). With strategies "
                   "uniform, few-shot and landmark and --schedule cosine.")
@click.option("--size-groups", default=3, show_default=True, type=int,
              help="lr-by-size: equal-width bins of relative path size, each with its own momentum buffers.")
@click.option("--threads", default=None, type=int,
              help="CPU threads for torch per training process (default: all cores, shared out over --nproc-per-node).")
@click.option("--nproc-per-node", default=1, show_default=True, type=int,
              help="Training processes on this machine (torch.distributed: gloo on CPU, nccl on GPUs); "
                   "each step's batch is split over them.")
@device_option("to train (with --nproc-per-node N and cuda, one GPU per process)")
@precision_option("the training steps (recorded in the run)")
@click.option("--resume", is_flag=True, help="Continue from the run's last checkpoint with the run's saved config.")
@click.option("--quiet", is_flag=True, help="No progress bars (also off when stderr is not a terminal).")
@click.pass_context
def train_supernet(ctx: click.Context, run_dir: str, resume: bool, quiet: bool, threads: int | None, nproc_per_node: int,
                   device: str, **opts) -> None:
    """Train a one-shot supernet (uniform single-path sampling by default).

    Each step trains the paths the --strategy picks (uniform: one path drawn
    uniformly). train_log.jsonl records the images seen per epoch, so strategies can
    be compared at equal cost. A checkpoint is written atomically after every epoch;
    if the process dies, rerun the same command with --resume and it continues to the
    same final weights as an uninterrupted run.

    --nproc-per-node N trains with N processes that split every step's batch (same
    paths on all, gradients averaged), so steps, schedule and images seen are those
    of one process and a run resumes on any number of processes. For several
    machines, start it with torchrun (see the README) and write --run-dir for --run.

    \b
    Examples:
      evonas train-supernet --run runs/demo --epochs 10
      evonas train-supernet --run runs/fair --strategy fair --epochs 4
      evonas train-supernet --run runs/lm --strategy landmark --landmarks runs/demo
      evonas train-supernet --run runs/pada --sampling pada --lr-by-size
      evonas train-supernet --run runs/demo --resume
      evonas train-supernet --run runs/ddp --nproc-per-node 2 --epochs 10
      evonas train-supernet --space macro-cifar10 --data-root ~/data/cifar10 --run runs/c10
      evonas train-supernet --space my_model.py:build --data imagefolder:~/images --run runs/mine
    """
    given = {k: v for k, v in opts.items() if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    result = train(run_dir, TrainOptions(settings=given, resume=resume, quiet=quiet, threads=threads,
                                         nproc_per_node=nproc_per_node, device=device))
    if not result.main_process:
        return
    click.echo(f"supernet weights: {result.weights}")
    click.echo(f"next: evonas eval --run {run_dir} --sample 5")


@click.command("eval")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory with a trained supernet.")
@click.option("--arch", "arch_opts", multiple=True, help="Architecture string (repeatable).")
@click.option("--archs", "archs_file", default=None, help="File with one architecture string per line.")
@click.option("--sample", default=0, type=int, help="Also score N uniformly sampled architectures.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of --sample, of the recalibration subset and of the --finetune-steps batches.")
@click.option("--no-recalibrate", is_flag=True, help="Score with the supernet's shared BN statistics (to see what recalibration changes).")
@click.option("--recalib-images", default=None, type=int,
              help=f"Training images used to recalibrate BN. Default: {scoring_defaults_text()}.")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "test"]), help="Evaluation split.")
@click.option("--finetune-steps", default=0, show_default=True, type=int,
              help="Train each path alone this many SGD steps (128 images each) from its inherited weights before "
                   "scoring it; the same batches for every path. 0: score the inherited weights.")
@click.option("--finetune-lr", default=FINETUNE_LR, show_default=True, type=float,
              help="Peak learning rate of --finetune-steps (cosine-decayed to 0).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@click.option("--threads", default=None, type=int)
@device_option("the supernet scores")
@precision_option("scoring (part of each score's key)")
@click.option("--quiet", is_flag=True, help="No progress bar (also off when stderr is not a terminal).")
def eval_cmd(run_dir, arch_opts, archs_file, sample, seed, no_recalibrate, recalib_images, split, finetune_steps, finetune_lr,
             as_json, threads, device, precision, quiet) -> None:
    """Score sub-networks with inherited supernet weights.

    Each architecture's BN statistics are reset and recalibrated on a fixed set of
    training images, then accuracy is measured on the validation split (the test
    split stays untouched unless you ask for it).

    \b
    Examples:
      evonas eval --run runs/demo --arch 12012200
      evonas eval --run runs/demo --archs archs.txt --json
      evonas eval --run runs/demo --sample 20 --no-recalibrate
      evonas eval --run runs/demo --archs archs.txt --finetune-steps 50
    """
    options = EvalOptions(archs=arch_opts, archs_file=archs_file, sample=sample, seed=seed, recalibrate=not no_recalibrate,
                          recalib_images=recalib_images, split=split, quiet=quiet, threads=threads,
                          finetune_steps=finetune_steps, finetune_lr=finetune_lr, device=device, precision=precision)
    result = evaluate(run_dir, options, on_row=(lambda row: echo_json_lines([row])) if as_json else None)
    if not as_json:
        echo_table(result.rows, RESULT_COLUMNS)


@click.command("profile")
@click.option("--space", default=None, type=SPACE, help=f"Search space [default: the run's, else {DEFAULT_SPACE}].")
@click.option("--run", "run_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Profile the space of this run (your model as it was trained).")
@click.option("--data", "--dataset", "dataset", default=None,
              help="With --space PATH.py:FACTORY: the data whose channels, classes and image size the factory gets "
                   "(as train-supernet --data) [default: the factory's own defaults].")
@click.option("--data-root", default=None, help="Dataset folder of --data torchvision:NAME.")
@click.option("--image-size", default=None, type=click.IntRange(min=1), help="Resize the images to this square side.")
@click.option("--arch", "arch_opts", multiple=True, help="Architecture string (repeatable).")
@click.option("--archs", "archs_file", default=None, help="File with one architecture string per line.")
@click.option("--check", is_flag=True, help="Also build each network and count with torch.utils.flop_counter.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def profile_cmd(space: str | None, run_dir: str | None, dataset: str | None, data_root: str | None,
                image_size: int | None, arch_opts, archs_file, check: bool, as_json: bool) -> None:
    """FLOPs (multiply-accumulates) and parameters, counted from the description.

    No training and no forward pass: the count comes from the space's cost model.
    --check builds the network and counts it independently with PyTorch.

    \b
    Examples:
      evonas profile --space macro-cifar10 --arch 02012100
      evonas profile --space macro-cifar10 --archs archs.txt --json
      evonas profile --run runs/mine --arch block1=conv5,block2=skip --check
      evonas profile --space my_model.py:build --data imagefolder:images --arch block0=conv3,block1=skip,block2=shift,pool=avg
    """
    result = profile(ProfileOptions(space=space, run_dir=run_dir, archs=arch_opts, archs_file=archs_file, check=check,
                                    dataset=dataset, data_root=data_root, image_size=image_size))
    if as_json:
        echo_json_lines(result.rows)
        return
    cols = RESULT_COLUMNS[:2] + RESULT_COLUMNS[3:]
    if result.checked:
        cols += [("measured_flops", "torch FLOPs", ",d"), ("measured_params", "torch params", ",d")]
    echo_table(result.rows, cols)


@click.command("export")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--arch", "arch_opts", multiple=True, help="Architecture to export (repeatable).")
@click.option("--top-k", default=None, type=int, help="Export the K best architectures found by searches, with a report.")
@click.option("--scorer", default="supernet", show_default=True, type=click.Choice(RANKERS),
              help="With --top-k: rank by supernet accuracy or by the gap-corrected prediction.")
@click.option("--out", default=None, help="Output folder (default RUN/exports/ARCH).")
@click.option("--format", "formats", multiple=True, type=click.Choice(["torch", "onnx"]),
              help="Also write model.onnx (dynamic batch axis, checked against PyTorch); repeatable. torch is always written.")
@click.option("--max-flops", default=None, type=SCI, help="With --top-k: only architectures within this FLOPs limit.")
@click.option("--max-params", default=None, type=SCI, help="With --top-k: ... this parameter limit ...")
@click.option("--max-latency-ms", default=None, type=SCI,
              help="With --top-k: ... and this latency predicted by the run's table; each export is then measured "
                   "against it.")
@click.option("--latency-backend", default="eager", show_default=True, type=click.Choice(["eager", "onnxruntime"]),
              help="Which of the run's latency tables reports (and limits) latency: backend ...")
@click.option("--latency-batch-size", default=1, show_default=True, type=click.IntRange(min=1), help="... batch size ...")
@click.option("--latency-threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="... and threads it was measured with.")
@device_option("BN is recalibrated before the weights are copied (the exported modules are saved for the CPU)")
@precision_option("the recalibration and the reported accuracy (the exported weights stay fp32)")
@click.option("--quiet", is_flag=True, help="No progress bar (also off when stderr is not a terminal).")
def export_cmd(run_dir: str, arch_opts, top_k: int | None, scorer: str, out: str | None, formats, max_flops,
               max_params, max_latency_ms, latency_backend: str, latency_batch_size: int, latency_threads: int,
               device: str, precision: str, quiet: bool) -> None:
    """Export sub-networks as standalone PyTorch modules with inherited weights.

    Each export folder holds model.pt2 (load with torch.export.load(path).module()),
    state_dict.pt and metrics.json; --format onnx adds model.onnx. BN statistics are
    recalibrated for the architecture before the weights are copied. When the run has
    a latency table for this device (evonas latency build), metrics.json also holds
    the predicted and the measured latency of the exported module.

    With --top-k, limits keep only the stored architectures within them (use the
    search's limits). A latency limit is checked with the run's table, and every
    exported module is then timed against it: one measured above the limit is named
    in a warning and in report.md.

    \b
    Examples:
      evonas export --run runs/demo --arch 12012200
      evonas export --run runs/demo --arch 12012200 --format onnx
      evonas export --run runs/demo --top-k 5 --format onnx
      evonas export --run runs/demo --top-k 5 --scorer predictor
      evonas export --run runs/demo --top-k 5 --max-latency-ms 1.5      # the search's limit
    """
    result = export(run_dir, ExportOptions(archs=arch_opts, top_k=top_k, scorer=scorer, out=out, quiet=quiet,
                                           formats=formats, max_flops=max_flops, max_params=max_params,
                                           max_latency_ms=max_latency_ms, latency_backend=latency_backend,
                                           latency_batch_size=latency_batch_size, latency_threads=latency_threads,
                                           device=device, precision=precision))
    for item in result.over_limit:
        click.echo(f"warning: {item}", err=True)
    if result.report is not None:
        click.echo(f"exported the top {top_k}; report: {result.report}")
        return
    for item in result.exported:
        click.echo(f"{item.arch}: supernet accuracy {item.supernet_accuracy:.2f}% -> {item.folder}")


COMMANDS = [train_supernet, eval_cmd, profile_cmd, export_cmd]
