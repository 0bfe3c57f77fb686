"""The train-supernet job: create a run directory and train its supernet, or resume one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from evonas.errors import ConfigError
from evonas.jobs.threads import check_threads, use_threads
from evonas.progress import progress_enabled
from evonas.run.config import SCHEDULES, TrainConfig
from evonas.run.run import Run, RunLayout, load_run_splits

__all__ = ["SCHEDULES", "TrainOptions", "TrainResult", "train"]


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """How to train (or resume) a supernet."""

    settings: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig fields the user set; others keep their defaults
    resume: bool = False  # continue from the run's checkpoint with its saved config (settings must agree with it)
    quiet: bool = False  # no progress bars (they are off anyway when stderr is not a terminal)
    threads: int | None = None  # CPU threads for torch; None: torch's default
    stop_after: int | None = None  # stop after this many epochs, as if killed (resume tests)

    def __post_init__(self) -> None:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.settings) - known)
        if unknown:
            raise ConfigError(f"The 'settings' parameter has unknown training config keys {unknown}; known: {sorted(known)}",
                              param="settings")
        check_threads(self.threads)
        if self.stop_after is not None and self.stop_after < 1:
            raise ConfigError(f"The 'stop_after' parameter must be an integer >= 1; got {self.stop_after!r}", param="stop_after")
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What training produced: the run, and its weights (or the checkpoint when stopped early)."""

    run: Run
    weights: Path
    resumed: bool
    finished: bool


def resolve_config(layout: RunLayout, options: TrainOptions) -> TrainConfig:
    """The config to train with: the saved one when resuming, else one built from the settings."""
    if options.resume and layout.has_config():
        cfg = Run.open(layout).config
        clash = {k: (getattr(cfg, k), v) for k, v in options.settings.items() if getattr(cfg, k) != v}
        if clash:
            raise ConfigError(
                f"--resume continues the run with its saved config; these options differ (saved, given): {clash}. "
                "Drop them, or start a new --run directory."
            )
        return cfg
    return TrainConfig(**options.settings)


def train(run: RunLayout | str | Path, options: TrainOptions) -> TrainResult:
    """Train the supernet of a run directory (created when missing); ``options.resume`` continues it."""
    from evonas.training.train import train_supernet

    layout = RunLayout.of(run)
    if layout.path.exists() and not layout.path.is_dir():
        from evonas.errors import RunDirError

        raise RunDirError(f"The 'run_dir' parameter must be a directory; got {str(layout.path)!r}, a file")
    if options.resume and not (layout.checkpoint.is_file() or layout.weights.is_file()):
        from evonas.errors import RunDirError

        raise RunDirError(f"there is nothing to resume in {layout.path} (no {layout.checkpoint.name}); "
                          "drop --resume to start a new training there")
    cfg = resolve_config(layout, options)  # every option checked before the data is read
    splits = load_run_splits(cfg)  # the dataset options too, before the run directory is created
    use_threads(options.threads)
    resumed = options.resume and layout.checkpoint.is_file()
    created = not layout.path.exists()
    try:
        weights = train_supernet(layout, cfg, resume=options.resume, progress=progress_enabled(options.quiet),
                                 stop_after=options.stop_after, splits=splits)
    except BaseException:
        if created:
            remove_if_empty(layout.path)  # failed before writing anything: leave no empty run directory
        raise
    return TrainResult(run=Run.open(layout), weights=Path(weights), resumed=resumed, finished=layout.weights.is_file())


def remove_if_empty(path: Path) -> None:
    """Remove ``path`` when it holds no file at all (only empty folders), as a failed job that created it left it."""
    path = Path(path)
    if not path.is_dir() or any(p.is_file() or p.is_symlink() for p in path.rglob("*")):
        return
    for folder in sorted((p for p in path.rglob("*")), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()
    path.rmdir()
