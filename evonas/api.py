"""The Python API: the workflow as functions over a run directory, the same jobs the CLI calls.

::

    import evonas

    evonas.train("runs/mine", space="my_model.py:build", data="imagefolder:images", epochs=5)
    found = evonas.search("runs/mine", budget=20, max_flops=2e6)
    evonas.fit_predictor("runs/mine", anchors=8, anchor_epochs=3)
    evonas.predict("runs/mine", [found.best.arch])
    evonas.export("runs/mine", top_k=3)

Each function takes the run directory and keyword options (the fields of the job's
options class: :class:`~evonas.jobs.train.TrainOptions` settings,
:class:`~evonas.jobs.search.SearchOptions`, ...) and returns the job's result object.
Bad input raises :class:`~evonas.errors.EvonasError` subclasses with one-line messages.

The functions print nothing: progress messages (an anchor trained, ...) are logged on
the ``evonas`` logger, which has only a ``NullHandler`` until you configure logging,
e.g. ``logging.basicConfig(level=logging.INFO, format="%(message)s")``. Progress bars
are drawn on a terminal unless ``quiet=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from evonas.run.run import Run

__all__ = ["evaluate", "export", "fit_predictor", "open_run", "predict", "search", "train"]

_TRAIN_JOB_OPTIONS = ("resume", "quiet", "threads", "stop_after", "nproc_per_node", "device")


def open_run(path: str | Path) -> Run:
    """Open a run directory (its config, space, supernet and store)."""
    return Run.open(path)


def train(run: str | Path, *, space: str | None = None, data: str | None = None, **options: Any):
    """Train (or with ``resume=True`` continue) the supernet of ``run``.

    ``space`` is a preset or your model's factory (``"my_model.py:build"``), ``data``
    a dataset spec (``"imagefolder:DIR"``, ``"torchvision:CIFAR10"`` with
    ``data_root``, ``"my_data.py:load"``, ``"fmnist"``); every other keyword is a
    :class:`~evonas.run.config.TrainConfig` field (``epochs``, ``lr``, ``augment``,
    ``strategy``, ...) or a job option (``resume``, ``quiet``, ``threads``, ``device``).
    Returns a :class:`~evonas.jobs.train.TrainResult`.
    """
    from evonas.jobs.train import TrainOptions, train as train_job

    job = {k: options.pop(k) for k in _TRAIN_JOB_OPTIONS if k in options}
    settings = dict(options)
    if space is not None:
        settings["space"] = space
    if data is not None:
        settings["dataset"] = data
    return train_job(run, TrainOptions(settings=settings, **job))


def evaluate(run: str | Path, archs: Iterable[str] = (), **options: Any):
    """Score architectures with the supernet's inherited weights (:class:`~evonas.jobs.evaluate.EvalOptions`)."""
    from evonas.jobs.evaluate import EvalOptions, evaluate as evaluate_job

    return evaluate_job(run, EvalOptions(archs=tuple(str(a) for a in archs), **options))


def search(run: str | Path, **options: Any):
    """Search the run's space under limits (:class:`~evonas.jobs.search.SearchOptions`: budget, max_flops, algo, ...)."""
    from evonas.jobs.search import SearchOptions, search as search_job

    return search_job(run, SearchOptions(**options))


def fit_predictor(run: str | Path, **options: Any):
    """Train anchors stand-alone and fit the gap corrector (:class:`~evonas.jobs.fit_predictor.FitPredictorOptions`)."""
    from evonas.jobs.fit_predictor import FitPredictorOptions, fit_predictor as fit_job

    return fit_job(run, FitPredictorOptions(**options))


def predict(run: str | Path, archs: Iterable[str], **options: Any):
    """Stand-alone accuracy predicted by the run's corrector (:class:`~evonas.jobs.predict.PredictOptions`)."""
    from evonas.jobs.predict import PredictOptions, predict as predict_job

    return predict_job(run, PredictOptions(archs=tuple(str(a) for a in archs), **options))


def export(run: str | Path, archs: Iterable[str] = (), **options: Any):
    """Export architectures (or ``top_k=K`` best found) as plain PyTorch modules (:class:`~evonas.jobs.export.ExportOptions`)."""
    from evonas.jobs.export import ExportOptions, export as export_job

    return export_job(run, ExportOptions(archs=tuple(str(a) for a in archs), **options))
