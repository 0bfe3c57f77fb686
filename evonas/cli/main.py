"""Entry point of the ``evonas`` command: a click group and the error boundary.

Subcommands live in one module per concern: ``train`` (train-supernet, eval, profile,
export), ``search``, ``gap`` (fit-predictor, predict) and ``bench`` (predictor-bench).
Each exposes ``COMMANDS``, a list of click commands that parse options, call one job
of :mod:`evonas.jobs` and print its result.
"""

from __future__ import annotations

import sys

import click

from predictors.errors import PredictorError
from search_spaces import SpaceError

from evonas.cli import bench, gap, latency, logs, search, train
from evonas.errors import EvonasError, cli_message

HELP = """evonas: weight-sharing neural architecture search.

\b
A typical session:
  evonas train-supernet --space macro-fmnist --run runs/demo --epochs 10
  evonas eval --run runs/demo --arch 12012200
  evonas search --run runs/demo --algo evolution --budget 500 --max-flops 3e6
  evonas fit-predictor --run runs/demo --anchors 16 --anchor-epochs 3
  evonas export --run runs/demo --top-k 5

Architectures are strings: one digit per layer for chain spaces (macro-*,
mobilenet-*), the official cell string for nb201. `evonas spaces` lists the spaces.
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="evonas")
def cli() -> None:
    pass


@cli.command("spaces")
def spaces_cmd() -> None:
    """List the preset search spaces and their sizes, and the spaces installed packages register.

    Your own model is a space too: give its factory as --space PATH.py:FACTORY.
    """
    from search_spaces import get_space, list_spaces

    from evonas.spaces import SPACES_BUILTIN, entry_point_spaces

    for name in list_spaces():
        if name in SPACES_BUILTIN:
            click.echo(get_space(name).describe())
    for name, ref in sorted(entry_point_spaces().items()):
        click.echo(f"{name}: installed, {ref} (package entry point evonas.spaces)")


for _module in (train, search, gap, latency, bench):
    for _cmd in _module.COMMANDS:
        cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one clear message and exit 2.

    While it runs, the library's messages (logged on "evonas" at INFO and above) are
    printed as plain lines (:mod:`evonas.cli.logs`).
    """
    with logs.shown():
        _main(argv)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort: say how to continue
        interrupted = isinstance(exc.__context__, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo(interrupted_message(argv) if interrupted else "aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # a usage error: one line, and where the help is
        message = " ".join(exc.format_message().split())
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo(f"error: {message}{hint}", err=True)
        sys.exit(2)
    except (EvonasError, SpaceError, PredictorError) as exc:
        click.echo(f"error: {cli_message(exc)}", err=True)
        sys.exit(2)
    except OSError as exc:  # a file the user named cannot be read or written (permissions, disk full, ...)
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"error: {' '.join((exc.strerror or str(exc)).split())}{where}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(interrupted_message(argv), err=True)
        sys.exit(130)


def interrupted_message(argv: list[str] | None) -> str:
    """One line after Ctrl-C: the command that continues the work (the same one with --resume), when there is one."""
    import shlex

    from evonas.jobs.resume import something_to_resume

    args = list(sys.argv[1:] if argv is None else argv)
    command = cli.commands.get(args[0]) if args else None
    if command is None or not any("--resume" in getattr(p, "opts", ()) for p in command.params):
        return "interrupted; run the command again"
    if something_to_resume(args[0], args):
        again = args if "--resume" in args else [*args, "--resume"]
        return f"interrupted; to continue where it stopped, run: evonas {shlex.join(again)}"
    return "interrupted before anything was kept; run the command again to start over"


if __name__ == "__main__":
    main()
