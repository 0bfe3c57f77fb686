"""The train-supernet job: create a run directory and train its supernet, or resume one.

With ``nproc_per_node > 1`` the job checks everything, then starts that many
training processes through PyTorch's elastic launcher (gloo on CPU, nccl on GPUs).
A process that ``torchrun`` started (several machines) runs the job as one rank of
the run: rank 0 checks the run directory and sends the config to the others. See
:mod:`evonas.training.distributed` for how the ranks split the work.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from evonas.errors import ConfigError, EvonasError, ResourceError, RunDirError, TrainingDivergedError
from evonas.jobs.threads import check_threads, use_threads
from evonas.progress import progress_enabled
from evonas.run.config import SCHEDULES, TrainConfig
from evonas.data import factory_kwargs
from evonas.run.lock import run_lock
from evonas.run.run import Run, RunLayout, load_config_splits, load_run_splits
from evonas.spaces import canonical_name, is_user_space

__all__ = ["SCHEDULES", "TrainOptions", "TrainResult", "train"]


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """How to train (or resume) a supernet."""

    settings: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig fields the user set; others keep their defaults
    resume: bool = False  # continue from the run's checkpoint with its saved config (settings must agree with it)
    quiet: bool = False  # no progress bars (they are off anyway when stderr is not a terminal)
    threads: int | None = None  # CPU threads for torch; None: torch's default
    stop_after: int | None = None  # stop after this many epochs, as if killed (resume tests)
    nproc_per_node: int = 1  # training processes to start on this machine (torch.distributed, PyTorch's launcher)
    device: str = "cpu"  # cpu, cuda (an error when there is no GPU) or auto (cuda when there is one)

    def __post_init__(self) -> None:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.settings) - known)
        if unknown:
            raise ConfigError(f"The 'settings' parameter has unknown training config keys {unknown}; known: {sorted(known)}",
                              param="settings")
        check_threads(self.threads)
        if self.stop_after is not None and self.stop_after < 1:
            raise ConfigError(f"The 'stop_after' parameter must be an integer >= 1; got {self.stop_after!r}", param="stop_after")
        if not isinstance(self.nproc_per_node, int) or self.nproc_per_node < 1:
            raise ConfigError(f"The 'nproc_per_node' parameter must be an integer >= 1; got {self.nproc_per_node!r}",
                              param="nproc_per_node")
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What training produced: the run, and its weights (or the checkpoint when stopped early)."""

    run: Run
    weights: Path
    resumed: bool
    finished: bool
    world_size: int = 1  # training processes (ranks) that trained it
    main_process: bool = True  # False in the other ranks of a torchrun launch (they print nothing)


# The validation share of a user's data when none is given (presets keep their 10,000 images).
USER_VAL_SHARE = 0.1


def resolve_config(layout: RunLayout, options: TrainOptions) -> TrainConfig:
    """The config to train with: the saved one when resuming, else one built from the settings."""
    return config_and_data(layout, options)[0]


def config_and_data(layout: RunLayout, options: TrainOptions) -> tuple[TrainConfig, Any]:
    """The config to train with (the saved one when resuming, else one built from the settings) and, when
    reading them was needed to build it, the data splits (None otherwise).

    A user's model is called with the data's ``in_channels``, ``num_classes`` and
    ``image_size``, so its config needs the data first; a preset's does not.
    """
    if options.resume and layout.has_config():
        cfg = Run.open(layout).config
        clash = {k: (getattr(cfg, k), v) for k, v in options.settings.items() if getattr(cfg, k) != _as_saved(k, v)}
        if clash:
            raise ConfigError(
                f"--resume continues the run with its saved config; these options differ (saved, given): {clash}. "
                "Drop them, or start a new --run directory."
            )
        return cfg, None
    from search_spaces import DEFAULT_SPACE

    from evonas.run.config import default_epochs

    settings = dict(options.settings)
    space = settings.get("space", DEFAULT_SPACE)
    splits = None
    if is_user_space(space) and "space_kwargs" not in settings:
        if not settings.get("dataset"):
            raise ConfigError("The 'dataset' parameter is required with your own model: imagefolder:DIR, "
                              "torchvision:NAME (with data_root) or PATH.py:FUNCTION.", param="dataset")
        settings.setdefault("val_size", USER_VAL_SHARE)
        splits = load_config_splits(space, settings["dataset"], data_root=settings.get("data_root"),
                                    val_size=settings["val_size"], seed=settings.get("seed", 0),
                                    train_limit=settings.get("train_limit"), image_size=settings.get("image_size"),
                                    in_memory=settings.get("in_memory"))
        settings["space_kwargs"] = factory_kwargs(splits)
    return TrainConfig(**{"epochs": default_epochs(space), **settings}), splits


def _as_saved(key: str, value: Any) -> Any:
    """A setting as the config stores it: file and folder paths absolute (a resume repeats the relative ones)."""
    from evonas.run.config import absolute_data

    if key == "space":
        return canonical_name(value)
    if key == "dataset":
        return absolute_data(value)
    if key in ("data_root", "landmarks") and value is not None:
        return str(Path(value).expanduser().resolve())
    return value


def train(run: RunLayout | str | Path, options: TrainOptions) -> TrainResult:
    """Train the supernet of a run directory (created when missing); ``options.resume`` continues it."""
    from evonas.training import distributed

    layout = RunLayout.of(run)
    device = distributed.resolve_device(options.device)
    if distributed.launched_by_torchrun():
        return _train_as_rank(layout, options, device)
    distributed.check_world(options.nproc_per_node, device)
    cfg, splits, resumed = _prepare(layout, options)  # every option checked before the data is read
    _check_sampling(cfg, splits, options.nproc_per_node)
    distributed.check_batch(options.nproc_per_node, min(cfg.batch_size, len(splits.train_x)))
    created = not layout.path.exists()
    progress = progress_enabled(options.quiet)
    try:
        layout.path.mkdir(parents=True, exist_ok=True)
        with run_lock(layout.path, "train-supernet"):  # one writer per run: a second one is refused
            weights = _train_locked(layout, options, cfg, splits, device, progress)
    except BaseException as exc:
        if created and isinstance(exc, (TrainingDivergedError, ResourceError)) and not layout.checkpoint.exists():
            for leftover in (layout.config_file, layout.train_log):  # nothing trained: no run is left behind
                leftover.unlink(missing_ok=True)
        if created:
            remove_if_empty(layout.path)  # failed before writing anything: leave no empty run directory
        raise
    return TrainResult(run=Run.open(layout), weights=Path(weights), resumed=resumed, finished=Path(weights) == layout.weights,
                       world_size=options.nproc_per_node)


def _train_locked(layout: RunLayout, options: TrainOptions, cfg: TrainConfig, splits, device, progress: bool) -> Path:
    """Train in one process, or launch the processes of ``nproc_per_node``; the run's lock is held."""
    from evonas.training import distributed

    if options.nproc_per_node > 1:
        results = distributed.launch(options.nproc_per_node, _launched_rank, str(layout.path), cfg.to_dict(), options.resume,
                                     progress, options.stop_after, device.type, _threads_per_rank(options))
        weights = results[0]
        if isinstance(weights, EvonasError):
            raise weights
    else:
        from evonas.training.supernet import train_supernet

        use_threads(options.threads)
        weights = train_supernet(layout, cfg, resume=options.resume, progress=progress, stop_after=options.stop_after,
                                 splits=splits, device=device)
    return weights


def _prepare(layout: RunLayout, options: TrainOptions) -> tuple[TrainConfig, Any, bool]:
    """Check the run directory and the options; the config, the data splits, and whether it resumes a checkpoint."""
    if layout.path.exists() and not layout.path.is_dir():
        raise RunDirError(f"The 'run_dir' parameter must be a directory; got {str(layout.path)!r}, a file")
    if options.resume and not (layout.checkpoint.is_file() or layout.weights.is_file()):
        raise RunDirError(f"there is nothing to resume in {layout.path} (no {layout.checkpoint.name}); "
                          "drop --resume to start a new training there")
    cfg, splits = config_and_data(layout, options)
    if splits is None:
        splits = load_run_splits(cfg)  # the dataset options too, before the run directory is created
    return cfg, splits, options.resume and layout.checkpoint.is_file()


def _check_sampling(cfg: TrainConfig, splits, world_size: int) -> None:
    """What the sampler needs of the data and the processes, refused before the run directory is written."""
    from evonas.training.sampling import check_sampling_data, check_sampling_world

    check_sampling_world(cfg, world_size)
    check_sampling_data(cfg, splits.train_x)


def _threads_per_rank(options: TrainOptions) -> int:
    """CPU threads of each training process: --threads, else the cores shared out (never oversubscribed)."""
    return options.threads or max(1, (os.cpu_count() or 1) // options.nproc_per_node)


def _launched_rank(run_path: str, cfg_dict: dict, resume: bool, progress: bool, stop_after: int | None, device: str,
                   threads: int) -> str | EvonasError:
    """One process started by :func:`train` through the launcher: join the group, train, leave.

    Returns the weights path, or the user error the rank met (the parent raises it as one line).
    """
    from evonas.training import distributed
    from evonas.training.supernet import train_supernet

    use_threads(threads)
    world, rank_device = distributed.init(distributed.resolve_device(device))
    try:
        weights = train_supernet(RunLayout(run_path), TrainConfig(**cfg_dict), resume=resume, progress=progress,
                                 stop_after=stop_after, device=rank_device, world=world)
    except EvonasError as exc:  # a user's error that every rank raised alike (rank 0 sends its checkpoint's)
        return exc
    finally:
        distributed.shutdown()
    return str(weights)


def _train_as_rank(layout: RunLayout, options: TrainOptions, device) -> TrainResult:
    """The job in a process that torchrun started: rank 0 checks and sends the config, every rank trains."""
    from evonas.training import distributed
    from evonas.training.supernet import train_supernet

    if options.nproc_per_node != 1:
        raise ConfigError("The 'nproc_per_node' parameter is torchrun's own when torchrun starts evonas; "
                          "drop it from the evonas arguments", param="nproc_per_node")
    import contextlib

    use_threads(options.threads)
    world, device = distributed.init(device)
    held = contextlib.ExitStack()  # rank 0 holds the run's lock for the whole training (it alone writes the run)
    try:
        outcome: tuple[str, Any] | None = None
        if world.is_main:
            try:
                cfg, splits, resumed = _prepare(layout, options)
                _check_sampling(cfg, splits, world.size)
                layout.path.mkdir(parents=True, exist_ok=True)
                held.enter_context(run_lock(layout.path, "train-supernet"))
                outcome = ("config", (cfg.to_dict(), resumed))
            except EvonasError as exc:
                outcome = ("error", exc)
        kind, value = distributed.broadcast_object(outcome, world)
        if kind == "error":
            raise value
        cfg, resumed = TrainConfig(**value[0]), value[1]
        weights = train_supernet(layout, cfg, resume=options.resume, progress=progress_enabled(options.quiet),
                                 stop_after=options.stop_after, device=device, world=world)
    finally:
        held.close()
        distributed.shutdown()
    return TrainResult(run=Run(layout.path, cfg), weights=Path(weights), resumed=resumed, finished=Path(weights) == layout.weights,
                       world_size=world.size, main_process=world.is_main)


def remove_if_empty(path: Path) -> None:
    """Remove ``path`` when it holds no file at all (only empty folders), as a failed job that created it left it."""
    path = Path(path)
    if not path.is_dir() or any(p.is_file() or p.is_symlink() for p in path.rglob("*")):
        return
    for folder in sorted((p for p in path.rglob("*")), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()
    path.rmdir()
