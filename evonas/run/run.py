"""A run directory: the resolved config, the supernet weights, and what was derived from them.

:class:`RunLayout` names every path of a run directory, and nothing else builds them::

    RUN/config.json            resolved training config + package versions
    RUN/space.json             your model's space: choices, options, shapes, costs (checked when the run reopens)
    RUN/train_log.jsonl        one line per supernet epoch
    RUN/checkpoints/last.pt    resumable checkpoint (written atomically every epoch)
    RUN/supernet.pt            final supernet weights
    RUN/store.sqlite           every evaluation (architecture, scorer, metrics, source)
    RUN/optuna.db              Optuna studies (sqlite:///RUN/optuna.db)
    RUN/searches/NAME/         result.json (and pareto.json) of each search
    RUN/predictor/             model.pkl, report.md, report.json, anchors.png
    RUN/exports/ARCH/          standalone modules with inherited weights
    RUN/exports/topK/          the K best (topK-predictor when ranked by the predictor), report

A :class:`Run` is a layout whose config exists (a supernet was trained or is training).
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from search_spaces import Space, get_space

from evonas.run.checkpoint import load_checkpoint
from evonas.run.config import TrainConfig
from evonas.data import Splits, factory_kwargs, load_splits
from evonas.errors import RunDirError
from evonas.spaces import check_stored, is_user_space

if TYPE_CHECKING:
    from evonas.run.store import Store


def load_run_splits(cfg: TrainConfig) -> Splits:
    """The data of a run's config: its dataset, split, size and (for synthetic data) its space's image shape."""
    splits = load_config_splits(cfg.space, cfg.dataset, data_root=cfg.data_root, val_size=cfg.val_size,
                                seed=cfg.seed, train_limit=cfg.train_limit, image_size=cfg.image_size,
                                in_memory=cfg.in_memory)
    if cfg.space_kwargs and is_user_space(cfg.space):
        _check_data_fits(cfg, splits)
    return splits


def _check_data_fits(cfg: TrainConfig, splits: Splits) -> None:
    """Refuse in one line data whose channels, classes or image size are no longer those the model was built for."""
    now = factory_kwargs(splits)
    changed = [f"{key} {now[key]} (the model was built for {cfg.space_kwargs[key]})" for key in now
               if key in cfg.space_kwargs and json.loads(json.dumps(cfg.space_kwargs[key])) != now[key]]
    if changed:
        raise RunDirError(f"the data {cfg.dataset} does not fit the run's model: {', '.join(changed)}. Restore the "
                          "data the run was trained on, or train a new run.")


def load_config_splits(space: str, dataset: str, *, data_root=None, val_size=10_000, seed: int = 0,
                       train_limit: int | None = None, image_size: int | None = None,
                       in_memory: bool | None = None) -> Splits:
    """The data a config names; synthetic images take a preset space's shape (or 1 x ``image_size``^2).

    ``in_memory``: hold a user's images in memory, stream them, or None: by size (see
    :func:`evonas.data.load_splits`)."""
    net = getattr(get_space(space), "net", None) if not is_user_space(space) else None
    side = image_size or 28
    shape = (net.in_channels, net.image_size, net.image_size) if net else (1, side, side)
    return load_splits(dataset, root=data_root, val_size=val_size, seed=seed, train_limit=train_limit,
                       image_shape=shape, image_size=image_size, in_memory=in_memory)


def _file_stem(space: str) -> str:
    """A space's name as a file name: presets as they are, a reference by its file (or module) and factory."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(space.replace(":", "_")).name)


def _latency_stem(space: str, backend: str, batch_size: int, threads: int, device: str, precision: str) -> str:
    where = "" if str(device) == "cpu" else "-" + re.sub(r"[^a-z0-9]", "", str(device))
    how = "" if precision == "fp32" else f"-{precision}"
    return f"{_file_stem(space)}-{backend}{where}{how}-b{batch_size}-t{threads}"


class RunLayout:
    """The paths of one run directory, whether or not it holds a config yet.

    ``train-supernet`` builds one for a directory it is about to create; every other
    command opens a :class:`Run`. Nothing outside ``evonas/run/`` spells these names.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, where: "str | Path | RunLayout") -> "RunLayout":
        """``where`` itself when it is already a layout (or a Run), else the layout of that directory."""
        return where if isinstance(where, RunLayout) else RunLayout(where)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # --- training ---------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def space_file(self) -> Path:
        """Your model's space as it was trained (its description), compared whenever the run is opened."""
        return self.path / "space.json"

    @property
    def train_log(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def checkpoint(self) -> Path:
        """The resumable checkpoint, rewritten after every epoch."""
        return self.checkpoints_dir / "last.pt"

    @property
    def weights(self) -> Path:
        """The final supernet weights (present once training finished)."""
        return self.path / "supernet.pt"

    def has_config(self) -> bool:
        return self.config_file.is_file()

    # --- evaluations and searches -----------------------------------------------------------
    @property
    def store_file(self) -> Path:
        return self.path / "store.sqlite"

    def store(self) -> "Store":
        """Open the run's evaluation store (the directory is created on first use)."""
        from evonas.run.store import Store

        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"The 'run_dir' parameter must be a run directory; got {str(self.path)!r}, a file")
        self.path.mkdir(parents=True, exist_ok=True)
        return Store(self.store_file)

    @property
    def optuna_file(self) -> Path:
        return self.path / "optuna.db"

    @property
    def optuna_lock(self) -> Path:
        """Lock file held while a process creates the Optuna storage or a study (``fcntl.flock``)."""
        return self.path / "optuna.db.lock"

    @property
    def optuna_url(self) -> str:
        """SQLAlchemy URL of the run's Optuna studies."""
        return f"sqlite:///{self.optuna_file.resolve()}"

    @property
    def searches_dir(self) -> Path:
        return self.path / "searches"

    def search_dir(self, name: str) -> Path:
        """Folder of the search run ``name`` (result.json, pareto.json)."""
        return self.searches_dir / name

    def search_result_file(self, name: str) -> Path:
        return self.search_dir(name) / "result.json"

    def search_pareto_file(self, name: str) -> Path:
        return self.search_dir(name) / "pareto.json"

    # --- the gap-correcting predictor -----------------------------------------------------------
    @property
    def predictor_dir(self) -> Path:
        return self.path / "predictor"

    @property
    def predictor_model(self) -> Path:
        return self.predictor_dir / "model.pkl"

    @property
    def predictor_report(self) -> Path:
        return self.predictor_dir / "report.md"

    @property
    def predictor_report_json(self) -> Path:
        return self.predictor_dir / "report.json"

    @property
    def predictor_plot(self) -> Path:
        return self.predictor_dir / "anchors.png"

    # --- exports ---------------------------------------------------------------------------------
    @property
    def exports_dir(self) -> Path:
        return self.path / "exports"

    def export_dir(self, arch: object) -> Path:
        """Default folder of one exported architecture."""
        return self.exports_dir / str(arch)

    @property
    def latency_dir(self) -> Path:
        return self.path / "latency"

    def latency_table_file(self, space: str, backend: str, batch_size: int, threads: int, device: str = "cpu",
                           precision: str = "fp32") -> Path:
        """The latency table of one device setting: ``latency/SPACE-BACKEND-bB-tT.json`` (``BACKEND-cuda0`` on a GPU).

        Your model's space (``/path/my_model.py:build``) is named by its file and factory (``my_model.py_build``).
        """
        return self.latency_dir / f"{_latency_stem(space, backend, batch_size, threads, device, precision)}.json"

    def latency_validation_file(self, space: str, backend: str, batch_size: int, threads: int, device: str = "cpu",
                                precision: str = "fp32") -> Path:
        return self.latency_dir / f"{_latency_stem(space, backend, batch_size, threads, device, precision)}.validation.json"

    def top_k_dir(self, k: int, scorer: str = "supernet") -> Path:
        """Folder of a top-k export: ``topK``, or ``topK-SCORER`` when ranked by another scorer."""
        return self.exports_dir / (f"top{k}" if scorer == "supernet" else f"top{k}-{scorer}")


class Run(RunLayout):
    """An opened run directory holding a trained (or training) supernet."""

    def __init__(self, path: str | Path, config: TrainConfig) -> None:
        super().__init__(path)
        self.config = config

    @classmethod
    def open(cls, path: "str | Path | RunLayout") -> "Run":
        """Open a run directory; an already opened :class:`Run` is returned as it is."""
        if isinstance(path, Run):
            return path
        layout = RunLayout.of(path)
        path, cfg_file = layout.path, layout.config_file
        if not cfg_file.is_file():
            raise RunDirError(
                f"{path} is not an evonas run directory (no {cfg_file.name}); create one with "
                f"`evonas train-supernet --run {path}`"
            )
        try:
            data = json.loads(cfg_file.read_text())
            config = TrainConfig.from_dict(data["config"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RunDirError(f"{cfg_file} is unreadable ({exc}); it was not written by evonas") from None
        run = cls(path, config)
        if is_user_space(config.space):
            stored = None
            if layout.space_file.is_file():
                try:
                    stored = json.loads(layout.space_file.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise RunDirError(f"{layout.space_file} is unreadable ({exc}); it was not written by evonas") from None
            check_stored(run.space, stored, path)
        return run

    @cached_property
    def space(self) -> Space:
        return get_space(self.config.space)

    @property
    def weights_path(self) -> Path:
        """The final weights; an error with the fix when training has not finished."""
        if self.weights.is_file():
            return self.weights
        last = self.checkpoint
        if last.is_file():
            raise RunDirError(
                f"the supernet in {self.path} has not finished training (only {last}); finish it "
                f"with `evonas train-supernet --run {self.path} --resume`"
            )
        raise RunDirError(f"{self.path} has no supernet weights; train them with `evonas train-supernet --run {self.path}`")

    def load_supernet(self):
        from evonas.supernet import build_supernet

        state = load_checkpoint(self.weights_path, kind="weights", config=self.config.to_dict())
        model = build_supernet(self.space, config=self.config)
        model.load_state_dict(state["model"])
        return model

    def splits(self) -> Splits:
        cached = self.__dict__.get("_splits")
        if cached is None:
            cached = self.__dict__["_splits"] = load_run_splits(self.config)
        return cached

    def weights_sha256(self) -> str:
        cached = self.__dict__.get("_sha")
        if cached is None:
            from evonas.run.digest import file_sha256

            cached = self.__dict__["_sha"] = file_sha256(self.weights_path)
        return cached
