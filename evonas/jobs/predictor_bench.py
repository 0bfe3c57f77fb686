"""The predictor-bench job: how well predictors rank architectures, measured on a table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import get_space

from evonas.errors import ConfigError
from evonas.jobs.fit_predictor import check_predictor_names
from evonas.progress import progress_enabled
from evonas.scorers.tables import SHARED_NB201

DEFAULT_TABLE = SHARED_NB201 / "nb201.csv"
SELECTIONS = ("random", "spread")


@dataclass(frozen=True, kw_only=True)
class PredictorBenchOptions:
    """Which table, columns, anchor counts, seeds and predictors."""

    space: str = "nb201"  # space of the table's arch strings
    table: str | Path = DEFAULT_TABLE  # CSV with an 'arch' column and numeric columns
    target: str = "cifar10_valid_acc"  # column to predict (stand-alone accuracy)
    proxy: str | None = None  # cheap-score column standing in for the supernet score; enables gap correction
    train_sizes: tuple[int, ...] = (10, 20, 50, 100)  # anchor counts
    seeds: int = 10  # anchor draws per size
    predictors: tuple[str, ...] | None = None  # registered predictors; None: all that apply
    selection: str = "random"  # random, or spread over proxy and FLOPs ranks
    quiet: bool = False  # no progress bar

    def __post_init__(self) -> None:
        get_space(self.space)
        if self.seeds < 1:
            raise ConfigError(f"The 'seeds' parameter must be an integer >= 1; got {self.seeds}", param="seeds")
        sizes = tuple(self.train_sizes)
        if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
            raise ConfigError(f"The 'train_sizes' parameter must be integers >= 1; got {list(sizes)}", param="train_sizes")
        object.__setattr__(self, "train_sizes", sizes)
        if self.selection not in SELECTIONS:
            raise ConfigError(f"The 'selection' parameter must be one of {', '.join(SELECTIONS)}; got {self.selection!r}",
                              param="selection")
        object.__setattr__(self, "predictors", check_predictor_names(self.predictors))


@dataclass(frozen=True, kw_only=True)
class PredictorBenchResult:
    """Held-out ranking metrics per predictor and training size, and what they were measured on."""

    space: str
    table: str
    target: str
    proxy: str | None
    proxy_tau_full_table: float | None  # Kendall tau of the proxy on the whole table
    n_archs: int
    train_sizes: list[int]
    seeds: int
    selection: str
    features: list[str]
    results: list[dict[str, Any]]  # one row per (predictor, train size)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def predictor_bench(options: PredictorBenchOptions) -> PredictorBenchResult:
    """Load the table, encode its architectures and benchmark every predictor on it."""
    import numpy as np

    from predictors import ArchEncoder, PredictorError, kendall_tau
    from predictors.benchmark import benchmark_predictors

    from evonas.scorers.tables import load_table

    sp = get_space(options.space)
    tab = load_table(options.table, sp)
    y = tab.column(options.target)
    p = tab.column(options.proxy) if options.proxy else None
    keep = ~np.isnan(y) if p is None else ~(np.isnan(y) | np.isnan(p))
    archs = [a for a, k in zip(tab.archs, keep) if k]
    enc = ArchEncoder(sp)
    X = enc.transform(archs)
    flops = np.array([sp.cost(a).flops for a in archs], dtype=np.float64)
    try:
        rows = benchmark_predictors(
            X, y[keep], flops=flops, proxy=None if p is None else p[keep], cost_index=enc.index_of("log_flops"),
            train_sizes=list(options.train_sizes), seeds=options.seeds,
            predictors=None if options.predictors is None else list(options.predictors), selection=options.selection,
            progress=progress_enabled(options.quiet),
        )
    except PredictorError as exc:
        raise ConfigError(str(exc)) from None
    rows.sort(key=lambda r: (r["train_size"], -r["kendall_tau"]))
    return PredictorBenchResult(
        space=options.space,
        table=str(options.table),
        target=options.target,
        proxy=options.proxy,
        proxy_tau_full_table=None if p is None else round(kendall_tau(y[keep], p[keep]), 4),
        n_archs=int(keep.sum()),
        train_sizes=list(options.train_sizes),
        seeds=options.seeds,
        selection=options.selection,
        features=list(enc.feature_names),
        results=rows,
    )
