"""`evonas latency build` and `evonas latency validate`: parse, call one job, print."""

from __future__ import annotations

import json

import click

from evonas.cli.common import echo_table, json_safe
from evonas.jobs.latency import (BACKENDS, CLOCKS, FIT_SECONDS, MAX_FIT_ROUNDS, METHODS, LatencyBuildOptions,
                                 LatencySetting, LatencyValidateOptions, build, validate)


def _setting(backend: str, batch_size: int, threads: int, device: str = "cpu", precision: str = "fp32") -> LatencySetting:
    return LatencySetting(backend=backend, batch_size=batch_size, threads=threads, device=device, precision=precision)


def setting_options(fn):
    """--backend, --batch-size, --threads, --device, --precision: the conditions a table is measured under."""
    fn = click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "fp16"]),
                      help="Time the networks in this precision (bf16/fp16 under autocast, eager backend; fp16 on a "
                           "GPU).")(fn)
    fn = click.option("--device", default="cpu", show_default=True,
                      help="cpu, or a GPU (cuda, cuda:N; eager backend), timed with a synchronisation after each call.")(fn)
    fn = click.option("--threads", default=1, show_default=True, type=int, help="Intra-op threads, pinned while timing.")(fn)
    fn = click.option("--batch-size", default=1, show_default=True, type=int, help="Images per forward pass.")(fn)
    fn = click.option("--backend", default="eager", show_default=True, type=click.Choice(BACKENDS),
                      help="eager PyTorch, or ONNX Runtime.")(fn)
    return fn


@click.group("latency")
def latency() -> None:
    """Measure latency on this device: a per-layer table, checked end to end.

    \b
    A typical session:
      evonas latency build --run runs/demo --batch-size 1 --threads 1
      evonas latency validate --run runs/demo --samples 30
      evonas search --run runs/demo --algo evolution --max-latency-ms 1.5
    """


@latency.command("build")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory.")
@setting_options
@click.option("--warmup", default=10, show_default=True, type=int, help="Untimed calls before timing each module.")
@click.option("--repeats", default=50, show_default=True, type=int, help="Timed calls per module (the median is kept).")
@click.option("--clock", default="wall", show_default=True, type=click.Choice(CLOCKS),
              help="wall time, or this process's CPU time (1 thread; steadier on a busy machine).")
@click.option("--method", default="fitted", show_default=True, type=click.Choice(METHODS),
              help="fitted: fit a scale of the table, then the entries, to random whole networks timed end to end "
                   "(each kept only when it predicts better than the simpler table); isolated: each layer timed alone.")
@click.option("--fit-samples", default=None, type=int,
              help="Networks timed end to end for the fit  [default: 3 per entry, 60 to 300].")
@click.option("--fit-rounds", default=7, show_default=True, type=int,
              help="The least interleaved timing rounds per fitting network (more while they fit in --fit-seconds).")
@click.option("--fit-seconds", default=None, type=float,
              help=f"Add fitting rounds while all the rounds take about this many seconds, up to {MAX_FIT_ROUNDS} "
                   "rounds: cheap networks get more rounds (steadier times to fit to) for at most about this much "
                   f"more build time; 0: exactly --fit-rounds  [default: {FIT_SECONDS:g}].")
@click.option("--rebuild", is_flag=True, help="Measure anew even when a table for this setting exists.")
@click.option("--allow-foreign", is_flag=True, help="Accept a stored table measured on another device.")
@click.option("--quiet", is_flag=True, help="No progress bar (also off when stderr is not a terminal).")
def build_cmd(run_dir, backend, batch_size, threads, device, precision, warmup, repeats, clock, method, fit_samples, fit_rounds, fit_seconds,
              rebuild, allow_foreign, quiet) -> None:
    """Time every (layer, option) of the run's space on this device and store the table.

    Each searchable layer's module is timed alone at its input shape (warm-up, then
    repeats; the median and the spread are kept), plus the fixed part of a network
    (stem, head, call overhead). Then (--method fitted, the default) a few hundred random
    whole networks are timed end to end in interleaved rounds, and two tables are fitted
    to them: the isolated one scaled (a * isolated + b, which keeps its ranking) and
    per-entry costs shrunk toward the isolated timings; the scaled table is kept only
    when its cross-validated error beats the isolated table's, and the per-entry fit
    only when it beats the table chosen so far, by error or by ranking the held-out
    networks better (Kendall tau) at no higher error. A network's
    predicted latency is the sum of its entries and the fixed part. The table
    records the device (CPU model, threads, batch size, backend, versions) and is
    refused on another device. Entries whose spread is too large are counted, and the
    command says when the machine is too busy to measure.

    \b
    Examples:
      evonas latency build --run runs/demo
      evonas latency build --run runs/demo --backend onnxruntime --batch-size 32
    """
    result = build(run_dir, LatencyBuildOptions(setting=_setting(backend, batch_size, threads, device, precision), warmup=warmup,
                                                repeats=repeats, clock=clock, method=method,
                                                fit_samples=fit_samples, fit_rounds=fit_rounds, fit_seconds=fit_seconds,
                                                rebuild=rebuild,
                                                allow_foreign=allow_foreign, quiet=quiet))
    how = f"built in {result.build_seconds:.0f}s" if result.built else "already built on this device (--rebuild to measure anew)"
    click.echo(f"latency table: {result.table_file} ({result.entries} entries, {how})")
    click.echo(f"fastest network: {result.min_latency_ms:.4g} ms; noisy entries: {result.noisy_entries}")
    if result.fit_verdict:
        click.echo(f"entries: {result.fit_verdict}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    extra = ("" if device == "cpu" else f" --device {device}") + ("" if precision == "fp32" else f" --precision {precision}")
    click.echo(f"next: evonas latency validate --run {run_dir} --backend {backend} --batch-size {batch_size} "
               f"--threads {threads}{extra}")


@latency.command("validate")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory.")
@setting_options
@click.option("--samples", default=30, show_default=True, type=int, help="Sampled architectures timed end to end.")
@click.option("--seed", default=0, show_default=True, type=int, help="Which architectures are sampled.")
@click.option("--calibrate", default=5, show_default=True, type=int,
              help="Fit a linear correction on the first N measurements; kept only when it predicts the rest better.")
@click.option("--warmup", default=10, show_default=True, type=int)
@click.option("--repeats", default=50, show_default=True, type=int)
@click.option("--clock", default="wall", show_default=True, type=click.Choice(CLOCKS))
@click.option("--allow-foreign", is_flag=True, help="Use a table measured on another device anyway.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (mape, within_10pct, kendall_tau, samples, ...).")
@click.option("--quiet", is_flag=True, help="No progress bar (also off when stderr is not a terminal).")
def validate_cmd(run_dir, backend, batch_size, threads, device, precision, samples, seed, calibrate, warmup, repeats, clock, allow_foreign,
                 as_json, quiet) -> None:
    """Time sampled sub-networks end to end and compare with the table's prediction.

    Prints the mean absolute percentage error, the share of networks within 10% and
    the Kendall tau of predicted against measured latency. The sub-networks are the
    supernet's own paths with inherited weights, exported as standalone modules, and
    none of them is one the table was fitted to.

    \b
    Examples:
      evonas latency validate --run runs/demo --samples 30
      evonas latency validate --run runs/demo --backend onnxruntime --json
    """
    result = validate(run_dir, LatencyValidateOptions(setting=_setting(backend, batch_size, threads, device, precision), samples=samples,
                                                      seed=seed, calibrate=calibrate, warmup=warmup, repeats=repeats,
                                                      clock=clock, allow_foreign=allow_foreign, quiet=quiet))
    rep = result.report
    if as_json:
        click.echo(json.dumps(json_safe({k: v for k, v in rep.items() if k != "archs"} | {"archs": rep.get("archs"),
                                                                                           "report": str(result.report_file)})))
        return
    echo_table(rep["archs"], [("arch", "arch", "s"), ("predicted_ms", "predicted ms", ".4g"),
                              ("measured_ms", "measured ms", ".4g"), ("error_pct", "error %", ".1f")])
    click.echo(f"MAPE {rep['mape']:.1f}%, within ±10%: {100 * rep['within_10pct']:.0f}%, Kendall tau "
               f"{rep['kendall_tau']:.3f} over {rep['samples']} networks")
    retest = rep.get("retest_kendall_tau")
    if retest is not None and retest == retest:
        click.echo(f"the timings against themselves (even vs odd rounds): Kendall tau {retest:.3f}"
                   + (" — timing noise, not the table, limits the ranking: validate again on an idle machine or with "
                      "more --repeats" if retest < rep["kendall_tau"] + 0.05 else ""))
    drift = rep.get("drift")
    if drift:
        slower = "slower" if drift["pct"] > 0 else "faster"
        what = (f"the build's {drift['networks']} fresh networks run" if drift["source"] == "fresh networks" else
                f"the build's reference network {drift['reference_arch']} runs")
        click.echo(f"{what} {abs(drift['pct']):.1f}% {slower} now than when the table was built"
                   + (": the machine has likely changed speed (on a quiet machine they differ by a few percent, "
                      "as they are timed among other networks), so every prediction may be off by about that much; "
                      "rebuild the table (--rebuild) with the machine as it will be used" if drift["changed"] else ""))
    corr = rep.get("correction")
    if corr:
        verdict = "kept: constraints now use it" if result.correction_kept else "not kept: it does not predict better"
        click.echo(f"linear correction fitted on {corr['calibration_samples']}: MAPE {corr['mape']:.1f}%, "
                   f"within ±10% {100 * corr['within_10pct']:.0f}% ({verdict})")
    click.echo(f"report: {result.report_file}")


COMMANDS = [latency]
