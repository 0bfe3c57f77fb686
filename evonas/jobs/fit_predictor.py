"""The fit-predictor job: train stand-alone anchors and fit the gap-correcting predictor.

Steps: a pool of supernet-scored candidates (cached in the store), a choice of
anchors among them (spread over the supernet-score and FLOPs ranges, random,
explicit, or uncertainty-driven), stand-alone training of the anchors (one store
record each, resumable), optionally a longer training of a few of them (multi-fidelity
anchors, ``evonas.gap.fidelity``: the long schedule becomes the target), then
cross-validation of every predictor and the saved model and report. Every option is
checked before anything is scored or trained.

A supernet trained with strategy ``landmark`` was trained to rank its landmarks
(``evonas.training.strategies.landmark_archs``), so they are no held-out truth: the
automatic selections never choose them (the pool grows by their number), and
explicit anchors that are landmarks are named in the log and the report's basis.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from evonas.errors import ConfigError
from evonas.device import check_device_and_precision
from evonas.jobs.archs import read_archs
from evonas.jobs.threads import check_threads, use_threads
from evonas.progress import progress_enabled
from evonas.run.config import FINETUNE_LR, check_finetune  # noqa: F401  (FINETUNE_LR re-exported for the CLI)
from evonas.run.run import Run

if TYPE_CHECKING:
    from evonas.gap.fidelity import Fidelities

logger = logging.getLogger(__name__)

SELECTIONS = ("spread", "random", "uncertainty", "explicit")
MIN_ANCHORS = 4  # cross-validation needs them
MAX_ANCHOR_SEEDS = 10


def check_predictor_names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    """``names`` as a tuple when every one is registered; else an error listing the valid names."""
    if names is None:
        return None
    from predictors import list_predictors

    names = tuple(names)
    known = list_predictors()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"The 'predictors' parameter has unknown name(s) {unknown or list(names)}; "
                          f"choose from: {', '.join(known)}", param="predictors")
    return names


@dataclass(frozen=True, kw_only=True)
class FitPredictorOptions:
    """How many anchors, chosen how, trained how long; which predictors to compare."""

    anchors: int = 16  # architectures to train stand-alone (ignored with explicit anchors)
    anchor_epochs: int = 3  # epochs of each stand-alone training (short schedule)
    anchor_seed: int = 0  # seed of the stand-alone trainings (the first one, with several)
    anchor_seeds: int = 1  # trainings per anchor (seeds anchor_seed, anchor_seed + 1, ...); the label is their mean
    long_anchors: int = 0  # of the anchors, how many also train long_epochs (the target fidelity); 0: single fidelity
    long_epochs: int | None = None  # epochs of the long trainings, > anchor_epochs; None: 4 x anchor_epochs
    selection: str = "spread"  # spread, random, uncertainty, explicit
    explicit: tuple[str, ...] = ()  # anchor architectures (selection becomes explicit when given)
    anchors_file: str | Path | None = None  # file with one anchor architecture per line
    pool: int | None = None  # supernet-scored candidates to choose from; default max(4 x anchors, 48)
    predictors: tuple[str, ...] | None = None  # registered estimators to compare; None: all that apply
    coverage: float = 0.9  # target coverage of the conformal intervals
    seed: int = 0  # seed of the pool sampling, anchor choice and estimators
    # > 0: every supernet score of the pool (anchors included) comes after this many SGD steps of each path alone
    finetune_steps: int = 0
    finetune_lr: float = FINETUNE_LR  # peak learning rate of those steps
    quiet: bool = False  # no progress bars
    threads: int | None = None  # CPU threads for torch
    device: str = "cpu"  # where the pool is scored and the anchors train: cpu, cuda, cuda:N or auto
    precision: str = "fp32"  # precision of the pool's supernet scores (fp32, bf16, fp16); anchors use the run's

    def __post_init__(self) -> None:
        check_finetune(self.finetune_steps, self.finetune_lr)
        check_device_and_precision(self.device, self.precision)
        object.__setattr__(self, "explicit", tuple(self.explicit))
        if self.explicit or self.anchors_file:
            object.__setattr__(self, "selection", "explicit")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"The 'selection' parameter must be one of {', '.join(SELECTIONS)}; got {self.selection!r}",
                              param="selection")
        if self.selection == "explicit" and not (self.explicit or self.anchors_file):
            raise ConfigError("--selection explicit needs --anchor ARCH (repeatable) or --anchors-file FILE")
        if self.selection != "explicit":
            self.check_counts(self.anchors)
        if self.pool is not None and (not isinstance(self.pool, int) or self.pool < 1):
            raise ConfigError(f"The 'pool' parameter must be an integer >= 1 (or None for the default); got {self.pool!r}",
                              param="pool")
        if self.anchor_epochs < 1:
            raise ConfigError(f"The 'anchor_epochs' parameter must be an integer >= 1; got {self.anchor_epochs!r}",
                              param="anchor_epochs")
        if not isinstance(self.anchor_seeds, int) or not 1 <= self.anchor_seeds <= MAX_ANCHOR_SEEDS:
            raise ConfigError(f"The 'anchor_seeds' parameter must be an integer from 1 to {MAX_ANCHOR_SEEDS}; "
                              f"got {self.anchor_seeds!r}", param="anchor_seeds")
        if not isinstance(self.long_anchors, int) or isinstance(self.long_anchors, bool) or self.long_anchors < 0:
            raise ConfigError(f"The 'long_anchors' parameter must be an integer >= 0 (0: no long trainings); "
                              f"got {self.long_anchors!r}", param="long_anchors")
        if self.long_epochs is not None and (not isinstance(self.long_epochs, int) or isinstance(self.long_epochs, bool)
                                             or self.long_epochs <= self.anchor_epochs):
            raise ConfigError(f"The 'long_epochs' parameter must be an integer greater than the 'anchor_epochs' parameter "
                              f"({self.anchor_epochs}); got {self.long_epochs!r}: raise it or lower the short schedule",
                              param="long_epochs")
        if self.selection != "explicit":
            self.check_long(self.anchors)
        if not (0.0 < self.coverage < 1.0):
            raise ConfigError(f"The 'coverage' parameter must be a float in (0, 1); got {self.coverage!r}", param="coverage")
        object.__setattr__(self, "predictors", check_predictor_names(self.predictors))
        check_threads(self.threads)

    def check_counts(self, k: int) -> int:
        """The pool size for ``k`` anchors; an error when ``k`` or the pool is too small."""
        if k < MIN_ANCHORS:
            raise ConfigError(f"The 'anchors' parameter must be at least {MIN_ANCHORS} (cross-validation needs them); got {k}",
                              param="anchors")
        pool = self.pool or max(4 * k, 48)
        if pool < k:
            raise ConfigError(f"The 'pool' parameter ({pool}) must be at least the number of anchors ({k})", param="pool")
        return pool

    def check_long(self, k: int) -> None:
        """An error when more long anchors are asked for than there are anchors (``k``)."""
        if self.long_anchors > k:
            raise ConfigError(f"The 'long_anchors' parameter ({self.long_anchors}) must be at most the number of anchors "
                              f"({k}): ask for fewer long anchors or more anchors", param="long_anchors")

    @property
    def supernet_scoring(self) -> dict[str, Any]:
        """The supernet scorer's options that decide its scores: none for plain fp32 scoring (the predictor keeps them)."""
        return {**({"finetune_steps": self.finetune_steps, "finetune_lr": self.finetune_lr} if self.finetune_steps else {}),
                **({"precision": self.precision} if self.precision != "fp32" else {})}

    @property
    def long_schedule(self) -> int:
        """Epochs of the long trainings: ``long_epochs``, or 4 x ``anchor_epochs`` when not given."""
        return self.long_epochs if self.long_epochs is not None else 4 * self.anchor_epochs


@dataclass(frozen=True, kw_only=True)
class FitPredictorResult:
    """The fitted gap model, where it and its report were saved, and the anchors' stand-alone accuracy."""

    gap: Any  # evonas.gap.corrector.GapModel
    model_path: Path
    report_path: Path
    anchors: dict[str, float]  # canonical arch -> stand-alone accuracy (mean over the seeds), short schedule
    basis: dict[str, Any]  # what the report rests on: anchors, seeds each, epochs, seed-to-seed tau (+ long fidelity)
    text: str  # the ranking report as text
    coverage: float
    min_anchors_for_bounded_interval: int  # below this, a conformal interval at ``coverage`` is unbounded
    long_anchors: dict[str, float] = field(default_factory=dict)  # canonical arch -> accuracy after long_epochs (mean over seeds)
    labels: dict[str, float] = field(default_factory=dict)  # what the predictor was fitted on (long scale with long anchors)

    @property
    def report(self) -> dict[str, Any]:
        return self.gap.report


def bounded_interval_anchors(coverage: float) -> int:
    """The fewest anchors for which a split-conformal interval at ``coverage`` is finite."""
    return next(n for n in range(2, 10_000) if math.ceil(coverage * (n + 1)) <= n)


def candidate_pool(run: Run, store, supernet, size: int, *, extra: Sequence = (), seed: int = 0,
                   progress: bool = True) -> dict[str, float]:
    """Canonical arch -> supernet accuracy: at least ``size`` sampled candidates plus every ``extra`` arch."""
    from evonas.gap.anchors import supernet_pool
    from evonas.scorers.cached import score_cached

    space = run.space
    scores = supernet_pool(store, supernet, size, seed=seed, progress=progress)
    for arch in extra:  # explicit anchors need supernet scores too
        key = str(space.canonical(arch))
        if key not in scores:
            scores[key] = score_cached(supernet, store, space.canonical(arch)).record.metric("accuracy")
    return scores


def choose_and_train(run: Run, store, standalone: Sequence, scores: dict[str, float], options: FitPredictorOptions,
                     explicit: Sequence, k: int) -> dict[str, float]:
    """Choose the anchors with ``options.selection`` and train them; canonical arch -> stand-alone accuracy."""
    import numpy as np

    import predictors as P
    from evonas.gap.anchors import train_anchors

    from evonas.training.strategies import landmark_archs

    space = run.space
    keys = sorted(set(scores) - landmark_archs(run.config))  # landmarks are no held-out truth
    proxy = np.array([scores[a] for a in keys])
    flops = np.array([space.cost(space.parse(a)).flops for a in keys], dtype=float)

    def train(chosen: Sequence[str]) -> dict[str, float]:
        return train_anchors(store, standalone, [space.parse(a) for a in chosen])

    if options.selection == "explicit":
        return train([str(space.canonical(a)) for a in explicit])
    if options.selection in ("spread", "random"):
        idx = P.select_anchors(options.selection, k, proxy=proxy, flops=flops, seed=options.seed, n_pool=len(keys))
        return train([keys[i] for i in idx])
    return uncertainty_anchors(run, keys, proxy, flops, k, seed=options.seed, train=train)


def uncertainty_anchors(run: Run, keys: list[str], proxy, flops, k: int, *, seed: int,
                        train: Callable[[Sequence[str]], dict[str, float]]) -> dict[str, float]:
    """Half the anchors spread over the ranges, then one at a time where a GP is least sure."""
    import predictors as P
    from predictors import ArchEncoder

    from evonas.gap.corrector import SCORE

    space = run.space
    idx = P.spread_anchors(max(k // 2, MIN_ANCHORS), proxy=proxy, flops=flops, seed=seed)
    chosen = [keys[i] for i in idx]
    enc = ArchEncoder(space, extra_names=(SCORE,))
    X = enc.transform([space.parse(a) for a in keys], extra={SCORE: proxy})
    truth = train(chosen)
    while len(chosen) < k:
        rows = [keys.index(a) for a in chosen]
        model = P.get_predictor("gp", random_state=seed).fit(X[rows], [truth[a] for a in chosen])
        nxt = keys[P.uncertainty_anchors(model, X, 1, exclude=rows, top_weight=0.5)[0]]
        chosen.append(nxt)
        truth.update(train([nxt]))
    return truth


def anchor_basis(store, standalone: Sequence, truth: dict[str, float], options: FitPredictorOptions) -> dict[str, Any]:
    """What the ranking report rests on: anchors, seeds each, epochs, and (with 2+ seeds) the seed-to-seed tau.

    The seed-to-seed Kendall tau of the anchors measures the noise of the labels
    themselves: no estimator can be shown to rank much better than it.
    """
    from predictors import kendall_tau

    from evonas.gap.anchors import per_seed_anchors

    seeds = [sc.seed for sc in standalone]
    basis: dict[str, Any] = {"anchors": len(truth), "seeds_per_anchor": len(seeds), "seeds": seeds,
                             "anchor_epochs": options.anchor_epochs, "seed_to_seed_tau": None}
    if len(seeds) >= 2:
        first, second = per_seed_anchors(store, standalone[:2], sorted(truth))
        common = sorted(set(first) & set(second))
        if len(common) >= 3:
            basis["seed_to_seed_tau"] = round(float(kendall_tau([first[a] for a in common], [second[a] for a in common])), 4)
    text = (f"{len(truth)} anchors, each {'the mean of ' + str(len(seeds)) + ' seeds' if len(seeds) > 1 else 'one seed'} "
            f"of {options.anchor_epochs}-epoch stand-alone training")
    if basis["seed_to_seed_tau"] is not None:
        text += f"; seed-to-seed tau of the anchors {basis['seed_to_seed_tau']:.2f}"
    if options.finetune_steps:
        basis["supernet_finetune_steps"] = options.finetune_steps
        text += f"; supernet scores after {options.finetune_steps} fine-tuning steps of each path"
    basis["text"] = text
    return basis


def landmark_basis(basis: dict[str, Any], among: list[str]) -> dict[str, Any]:
    """``basis`` naming the anchors that are landmarks of the supernet's training (its ranking of them is not held out)."""
    note = (f"{len(among)} of the anchors ({', '.join(among)}) are landmarks the supernet was trained to rank, "
            "not held-out truth")
    logger.warning("warning: %s", note)
    return {**basis, "landmark_anchors": among, "text": f"{basis['text']}; {note}"}


def train_long_anchors(run: Run, store, truth: dict[str, float], scores: dict[str, float], options: FitPredictorOptions,
                       *, progress: bool = True) -> tuple[Fidelities, list]:
    """Train (or read back) ``options.long_anchors`` of the anchors for the long schedule; their ``Fidelities``.

    Which ones: ``evonas.gap.fidelity.choose_long_anchors`` (spread over the short
    labels and supernet scores, seeded by ``options.seed``). Each long training is a
    store record of its own (``standalone`` scorer, the long epochs in its source),
    once per seed of ``--anchor-seeds``, so it resumes and is never trained twice.
    """
    from evonas.gap.anchors import train_anchors
    from evonas.gap.fidelity import Fidelities, choose_long_anchors
    from evonas.scorers.standalone import StandaloneScorer

    epochs = options.long_schedule
    scorers = [StandaloneScorer(run, epochs=epochs, seed=options.anchor_seed + i, progress=progress,
                                device=options.device) for i in range(options.anchor_seeds)]
    chosen = choose_long_anchors(truth, scores, options.long_anchors, seed=options.seed)
    logger.info("long anchors: %d of the %d anchors also train for %s epochs (the target fidelity)", len(chosen),
                len(truth), epochs)
    long = train_anchors(store, scorers, [run.space.parse(a) for a in chosen], kind="long anchor")
    return Fidelities(short=dict(truth), long=long, short_epochs=options.anchor_epochs, long_epochs=epochs), scorers


def long_basis(basis: dict[str, Any], store, scorers: Sequence, fidelities: Fidelities) -> dict[str, Any]:
    """``basis`` with the long fidelity added: counts, epochs, short-vs-long tau, the mapping, what selection used."""
    from predictors import kendall_tau

    from evonas.gap.anchors import per_seed_anchors

    d = fidelities.describe()
    out = {**basis, "short_anchors": len(fidelities.short), "long_anchors": len(fidelities.long),
           "long_epochs": fidelities.long_epochs, "short_long_tau": d["short_long_tau"], "long_seed_to_seed_tau": None,
           "mapping": d["mapping"], "selection_labels": d["selection_labels"], "selection": d["selection"]}
    if len(scorers) >= 2:
        first, second = per_seed_anchors(store, scorers[:2], sorted(fidelities.long))
        common = sorted(set(first) & set(second))
        if len(common) >= 3:
            out["long_seed_to_seed_tau"] = round(float(kendall_tau([first[a] for a in common], [second[a] for a in common])), 4)
    m, seeds = len(fidelities.long), len(scorers)
    text = (f"{basis['text']}; {m} of them also trained for {fidelities.long_epochs} epochs "
            f"({'the mean of ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}), the target fidelity")
    tau = out["short_long_tau"]
    text += (f"; short-vs-long tau {tau:.2f} on the {m} paired anchors" if tau is not None
             else f"; short-vs-long tau not measured ({m} paired anchor{'s' if m != 1 else ''}, fewer than 3)")
    if out["long_seed_to_seed_tau"] is not None:
        text += f"; long seed-to-seed tau {out['long_seed_to_seed_tau']:.2f}"
    out["text"] = text
    return out


def fit_predictor(run: Run | str | Path, options: FitPredictorOptions) -> FitPredictorResult:
    """Train (or read back) the anchors of ``run`` and fit, report and save its gap-correcting predictor.

    Progress (each anchor as it is ready, the long anchors, the start of the
    cross-validation) is logged at INFO on this module's logger and on
    ``evonas.gap.anchors``; a landmark among the anchors is a WARNING.
    """
    from predictors import PredictorError

    from evonas.gap.corrector import fit_gap_model, write_report
    from evonas.scorers.registry import make_scorer
    from evonas.scorers.standalone import StandaloneScorer
    from evonas.training.strategies import landmark_archs

    run = Run.open(run)
    explicit = read_archs(run.space, options.explicit, options.anchors_file, param="anchors_file")
    k = len(explicit) if options.selection == "explicit" else options.anchors
    pool_size = options.check_counts(k)
    landmarks = landmark_archs(run.config)  # the automatic selections leave them out of the pool
    options.check_long(k)
    progress = progress_enabled(options.quiet)
    _ = run.weights_path  # an unfinished supernet is an error before anything is scored
    use_threads(options.threads)
    try:
        with run.store() as store:
            supernet = make_scorer("supernet", run_dir=run, device=options.device, **options.supernet_scoring)
            scores = candidate_pool(run, store, supernet, pool_size + len(landmarks), extra=explicit, seed=options.seed,
                                    progress=progress)
            standalone = [StandaloneScorer(run, epochs=options.anchor_epochs, seed=options.anchor_seed + i, progress=progress,
                                           device=options.device) for i in range(options.anchor_seeds)]
            t0 = time.perf_counter()
            truth = choose_and_train(run, store, standalone, scores, options, explicit, k)
            basis = anchor_basis(store, standalone, truth, options)
            if landmarks & set(truth):
                basis = landmark_basis(basis, sorted(landmarks & set(truth)))
            fidelities, long, labels = None, {}, truth
            if options.long_anchors:
                fidelities, long_scorers = train_long_anchors(run, store, truth, scores, options, progress=progress)
                long, labels = fidelities.long, fidelities.labels()
                basis = long_basis(basis, store, long_scorers, fidelities)
            logger.info("anchors ready in %.0fs (%s); cross-validating predictors ...", time.perf_counter() - t0,
                        basis["text"])
            if fidelities is not None:
                logger.info("selection: %s", basis["selection"])
            gap, plot = fit_gap_model(run.space, labels, scores, supernet_source=supernet.source_key,
                                      predictors=options.predictors, coverage=options.coverage, seed=options.seed,
                                      fidelities=fidelities, supernet_scoring=options.supernet_scoring)
            gap.report["basis"] = basis
    except PredictorError as exc:
        raise ConfigError(str(exc)) from None
    model_path = gap.save(run)
    report_path = write_report(run, gap, plot, plot["text"])
    return FitPredictorResult(gap=gap, model_path=model_path, report_path=report_path, anchors=truth, basis=basis, text=plot["text"],
                              coverage=options.coverage, min_anchors_for_bounded_interval=bounded_interval_anchors(options.coverage),
                              long_anchors=long, labels=labels)
