"""The fitted gap-correcting predictor of a run, and the ranking report that chose it.

``fit_gap_model`` takes the anchors (stand-alone accuracy) and the supernet scores
of a pool of architectures. It compares every registered predictor with the
``supernet`` baseline (the supernet score calibrated to accuracy units, same
ranking) on random held-out splits of the anchors, keeps the baseline unless a
corrector beats it by more than its uncertainty, and fits the chosen one on all
anchors with conformal intervals. Because scoring a new architecture with the
supernet takes about a second, searches use a second, architecture-only model
distilled from the chosen one: it learns the chosen model's estimates for every
supernet-scored architecture (with a corrector, the anchors keep their true
accuracy; with the baseline, it learns the calibrated supernet scores so that
searches follow the supernet). Its agreement with those estimates is measured on
held-out architectures and the report says when it is poor.

Optional extra per-architecture features (zero-cost scores, the supernet's
validation loss, see ``evonas.evaluation.zero_cost``) enter the corrector as named
encoder columns beside the supernet score.

Saved as ``RUN/predictor/model.pkl`` beside ``report.md``, ``report.json`` and plots.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from search_spaces import Arch, Space

from evonas.run.config import write_json_atomic
from evonas.errors import CheckpointError, RunDirError
from evonas.run.run import RunLayout

if TYPE_CHECKING:
    from evonas.gap.fidelity import Fidelities

FORMAT = "evonas-gap-model-1"
SCORE = "supernet_score"
SEARCH_MODEL = "xgb"  # architecture-only learner of the distilled search model
ANCHOR_WEIGHT = 3.0  # with a corrector, an anchor's true accuracy counts this many corrected estimates
POOR_AGREEMENT = 0.5  # held-out Kendall tau of the search model below which the report warns


@dataclass
class GapModel:
    """Everything ``predict`` and the ``predictor`` scorer need, picklable."""

    space: str
    encoder: object  # predictors.ArchEncoder with the supernet score as the last column
    model: object  # predictors.ConformalRegressor around the chosen estimator
    best: str  # registered name of the chosen estimator
    search_encoder: object  # architecture-only encoder
    search_model: object  # architecture-only estimator (predicts corrected accuracy)
    supernet_source: str  # source key of the supernet scores the model was fitted on
    anchors: dict[str, float]  # canonical arch -> stand-alone accuracy
    report: dict  # RankingReport.to_dict() plus distillation figures
    coverage: float
    # how the supernet scores were taken, as SupernetScorer options beyond the run ({"finetune_steps": 50, ...});
    # empty: plain BN-recalibrated scoring. Read it through supernet_options(gap): older models lack it.
    supernet_options: dict = field(default_factory=dict)
    format: str = field(default=FORMAT)

    def predict(self, archs: Sequence[Arch], supernet: Sequence[float],
                extra: Mapping[str, Sequence[float]] | None = None) -> dict[str, np.ndarray]:
        """Corrected accuracy, interval and (where the estimator offers one) std.

        ``extra``: the values of the extra features the model was fitted with (by
        name, one per architecture); none by default.
        """
        X = self.encoder.transform(archs, extra={**dict(extra or {}), SCORE: supernet})
        mean = np.clip(np.asarray(self.model.predict(X), dtype=float), 0.0, 100.0)  # accuracy is a percentage
        lower, upper = self.model.predict_interval(X)
        out = {"predicted": mean, "lower": np.clip(np.asarray(lower, float), 0.0, 100.0), "upper": np.clip(np.asarray(upper, float), 0.0, 100.0)}
        if getattr(self.model.model_, "offers_std", False):
            out["std"] = np.asarray(self.model.predict(X, return_std=True)[1], float)
        return out

    def predict_arch_only(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.clip(np.asarray(self.search_model.predict(self.search_encoder.transform(archs)), dtype=float), 0.0, 100.0)

    def save(self, run: RunLayout | str | Path) -> Path:
        """Write the model (atomically) where the run keeps its predictor; returns that path."""
        path = RunLayout.of(run).predictor_model
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh)
        tmp.replace(path)
        return path


def supernet_options(gap: GapModel) -> dict:
    """The SupernetScorer options that reproduce the scores ``gap`` was fitted on (empty: plain scoring)."""
    return dict(getattr(gap, "supernet_options", None) or {})


def scoring_text(options: Mapping[str, Any]) -> str:
    """How supernet scores taken with SupernetScorer ``options`` were obtained, in words."""
    steps = int(options.get("finetune_steps") or 0)
    return (f"inherited weights fine-tuned {steps} steps per path, BN recalibrated" if steps
            else "inherited weights, BN recalibrated")


def load_gap_model(run: RunLayout | str | Path) -> GapModel:
    """The run's fitted gap model; a clear error when it is missing, corrupt or foreign."""
    layout = RunLayout.of(run)
    run_dir, path = layout.path, layout.predictor_model
    if not path.is_file():
        raise RunDirError(f"{run_dir} has no fitted predictor; fit one with `evonas fit-predictor --run {run_dir}`")
    try:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
    except Exception as exc:  # a truncated or foreign pickle raises many types
        raise CheckpointError(f"{path} is not a readable predictor ({type(exc).__name__}); refit with `evonas fit-predictor`") from None
    if not isinstance(model, GapModel) or model.format != FORMAT:
        raise CheckpointError(f"{path} was not written by this evonas; refit with `evonas fit-predictor --run {run_dir}`")
    return model


def fit_gap_model(
    space: Space,
    anchors: dict[str, float],
    pool: dict[str, float],
    *,
    supernet_source: str,
    predictors: Sequence[str] | None = None,
    coverage: float = 0.9,
    seed: int = 0,
    extra_features: Mapping[str, Mapping[str, float]] | None = None,
    n_splits: int = 50,
    margin: float = 0.5,
    fidelities: Fidelities | None = None,
    supernet_scoring: Mapping[str, Any] | None = None,
) -> tuple[GapModel, dict[str, np.ndarray]]:
    """Compare, choose, fit and distil; returns the model and plot data.

    ``anchors``: canonical arch -> stand-alone accuracy; ``pool``: canonical arch ->
    supernet score (every anchor included). ``extra_features``: optional feature
    name -> {canonical arch -> value}, known for every anchor (pool architectures
    without them get no distillation label). ``n_splits`` and ``margin``: the
    held-out selection (see ``predictors.cross_validate_predictors``).

    ``fidelities``: an ``evonas.gap.fidelity.Fidelities`` when some anchors were also
    trained with a long schedule; ``anchors`` are then its ``labels()`` (the long
    scale), the predictor is chosen by ``select_on_fidelities`` (held-out tau against
    long labels, or the short labels' when there are too few) and the short-label
    report is kept under ``short_fidelity_cv``. None: today's single-fidelity fit.

    ``supernet_scoring``: the SupernetScorer options the ``pool`` scores were taken
    with beyond the run (``{"finetune_steps": 50, "finetune_lr": 0.03}``); kept on the
    model so that ``predict`` and ``export`` score new architectures the same way.
    """
    from sklearn.model_selection import KFold, LeaveOneOut, cross_val_predict

    from predictors import ArchEncoder, build_predictor, fit_final

    names, extras = _check_anchors(anchors, pool, extra_features)
    archs = [space.parse(a) for a in names]
    y = np.array([anchors[a] for a in names])
    score = np.array([pool[a] for a in names])
    enc = ArchEncoder(space, extra_names=(*extras, SCORE))
    X = enc.transform(archs, extra=_columns(extras, names, score))
    pi, ci = enc.index_of(SCORE), enc.index_of("log_flops")
    flops = np.array([space.cost(a).flops for a in archs], dtype=float)
    report, reference = _select(X, y, names, fidelities, proxy_index=pi, cost_index=ci, flops=flops,
                                predictors=predictors, coverage=coverage, seed=seed, n_splits=n_splits, margin=margin)
    model = fit_final(report.best, X, y, proxy_index=pi, cost_index=ci, coverage=coverage, random_state=seed)
    cv = LeaveOneOut() if len(y) <= 20 else KFold(10, shuffle=True, random_state=seed)
    oof = cross_val_predict(build_predictor(report.best, proxy_index=pi, cost_index=ci, random_state=seed), X, y, cv=cv)

    search_enc = ArchEncoder(space)
    search_model, distil = _distil(space, enc, model, report, anchors, pool, extras, search_enc, seed)
    rep, text = _fit_report(report, distil, fidelities, reference, len(names))
    gap = GapModel(
        space=space.name,
        encoder=enc,
        model=model,
        best=report.best,
        search_encoder=search_enc,
        search_model=search_model,
        supernet_source=supernet_source,
        anchors=dict(anchors),
        report=rep,
        coverage=coverage,
        supernet_options=dict(supernet_scoring or {}),
    )
    return gap, {"y": y, "supernet": score, "oof": oof, "flops": flops, "text": text}


def _check_anchors(anchors: dict[str, float], pool: dict[str, float],
                   extra_features: Mapping[str, Mapping[str, float]] | None) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The sorted anchor archs and the extra features by name; every anchor must have a supernet score and each feature."""
    names = sorted(anchors)
    missing = [a for a in names if a not in pool]
    if missing:
        raise RunDirError(f"anchors {missing[:3]} have no supernet score in the store; rerun fit-predictor")
    extras = {str(k): dict(v) for k, v in (extra_features or {}).items()}
    if SCORE in extras:
        raise RunDirError(f"extra feature name {SCORE!r} is reserved for the supernet score")
    for feature, values in extras.items():
        lacking = [a for a in names if a not in values]
        if lacking:
            raise RunDirError(f"extra feature {feature!r} has no value for anchors {lacking[:3]}; compute it for every anchor")
    return names, extras


def _select(X: np.ndarray, y: np.ndarray, names: list[str], fidelities: Fidelities | None, *, proxy_index: int,
            cost_index: int, flops: np.ndarray, predictors: Sequence[str] | None, coverage: float, seed: int,
            n_splits: int, margin: float) -> tuple[Any, Any]:
    """The held-out comparison that chooses the predictor, and (with two fidelities) the short labels' report."""
    from predictors import cross_validate_predictors

    if fidelities is None:
        report = cross_validate_predictors(
            X, y, proxy_index=proxy_index, cost_index=cost_index, flops=flops, predictors=predictors,
            coverage=coverage, random_state=seed, n_splits=n_splits, margin=margin,
        )
        return report, None
    from evonas.gap.fidelity import select_on_fidelities

    return select_on_fidelities(
        X, names, fidelities, proxy_index=proxy_index, cost_index=cost_index, flops=flops, predictors=predictors,
        coverage=coverage, random_state=seed, n_splits=n_splits, margin=margin,
    )


def _fit_report(report: Any, distil: dict, fidelities: Fidelities | None, reference: Any,
                n_anchors: int) -> tuple[dict, str]:
    """The model's report (``report.json``'s object) and its text: the choice, the distillation, the fidelities."""
    rep = report.to_dict()
    rep["chosen"] = {"name": report.best, "baseline": report.baseline, "reason": report.reason}
    rep["search_model"] = distil
    if distil.get("warning"):
        rep["notes"] = [*rep["notes"], distil["warning"]]
    text = report.format() + "\n" + _distil_line(distil)
    if fidelities is not None:
        rep["fidelity"] = fidelities.describe()
        if reference is not None:
            rep["short_fidelity_cv"] = reference.to_dict()
            text += (f"\nfor reference, against the {fidelities.short_epochs}-epoch labels of all {n_anchors} anchors "
                     f"(not used for the choice):\n" + reference.format())
    return rep, text


def _columns(extras: dict[str, dict[str, float]], keys: Sequence[str], score: Sequence[float]) -> dict[str, np.ndarray]:
    """The encoder's extra columns for canonical archs ``keys``: every extra feature, then the supernet score."""
    cols = {f: np.array([values[a] for a in keys], dtype=float) for f, values in extras.items()}
    cols[SCORE] = np.asarray(score, dtype=float)
    return cols


def _distil(space: Space, enc, model, report, anchors: dict[str, float], pool: dict[str, float],
            extras: dict[str, dict[str, float]], search_enc, seed: int) -> tuple[object, dict]:
    """Fit the architecture-only search model on the chosen model's estimates; returns it and its figures.

    With the ``supernet`` baseline chosen, every pooled architecture (anchors too)
    is labelled with its calibrated supernet score, so searches follow the
    supernet's ranking. With a corrector, anchors keep their true accuracy (weight
    ``ANCHOR_WEIGHT``) and the others get the corrected estimate. Agreement is the
    mean Kendall tau between the search model and its labels on held-out
    architectures (5-fold), not on the rows it was trained on.
    """
    from sklearn.base import clone

    from predictors import get_predictor, kendall_tau

    keys = [a for a in sorted(pool) if all(a in v for v in extras.values())]
    archs = [space.parse(a) for a in keys]
    estimate = np.asarray(model.predict(enc.transform(archs, extra=_columns(extras, keys, [pool[a] for a in keys]))), float)
    follows_supernet = report.best == report.baseline
    if follows_supernet:
        ys, weights = estimate, np.ones(len(keys))
    else:
        ys = np.array([anchors.get(a, e) for a, e in zip(keys, estimate)])
        weights = np.array([ANCHOR_WEIGHT if a in anchors else 1.0 for a in keys])
    Xs = search_enc.transform(archs)
    search_model = get_predictor(SEARCH_MODEL, random_state=seed).fit(Xs, ys, sample_weight=weights)
    fidelity = kendall_tau(ys, search_model.predict(Xs)) if len(ys) > 2 else float("nan")
    heldout = float("nan")
    if len(ys) >= 10:
        folds = []
        for train, test in _kfold_splits(len(ys), seed):
            fold_model = clone(search_model).fit(Xs[train], ys[train], sample_weight=weights[train])
            folds.append(kendall_tau(ys[test], fold_model.predict(Xs[test])))
        heldout = float(np.mean(folds))
    n_anchor = sum(a in anchors for a in keys)
    out = {
        "estimator": SEARCH_MODEL,
        "trained_on": len(ys),
        "anchors": 0 if follows_supernet else n_anchor,
        "pseudo_labels": len(ys) if follows_supernet else len(ys) - n_anchor,
        "labels": "calibrated supernet scores" if follows_supernet else f"anchor truth (weight {ANCHOR_WEIGHT:g}) + corrected estimates",
        "fidelity_tau": fidelity,
        "heldout_tau": heldout,
    }
    if not np.isfinite(heldout):
        out["warning"] = (f"the search model's agreement could not be checked on held-out architectures ({len(ys)} labelled); "
                          "score a larger pool with the supernet")
    elif heldout < POOR_AGREEMENT:
        out["warning"] = (f"the distilled search model agrees poorly with the {'supernet' if follows_supernet else 'corrected'} "
                          f"scores on held-out architectures (Kendall tau {heldout:.2f} < {POOR_AGREEMENT}); a search with "
                          "--scorer predictor follows them only loosely: score a larger pool, or search with the supernet scorer")
    return search_model, out


def _kfold_splits(n: int, seed: int, k: int = 5):
    """Shuffled k-fold (train, test) index splits of ``n`` rows."""
    from sklearn.model_selection import KFold

    return KFold(min(k, n), shuffle=True, random_state=seed).split(np.arange(n))


def _distil_line(sm: dict) -> str:
    line = (f"search model: {sm['estimator']} on architecture features, trained on {sm['trained_on']} architectures "
            f"({sm['labels']}); held-out agreement tau {sm['heldout_tau']:.2f}, training fidelity {sm['fidelity_tau']:.2f}")
    return line + (f"\nwarning: {sm['warning']}" if sm.get("warning") else "")


def write_report(run: RunLayout | str | Path, gap: GapModel, plot: dict[str, np.ndarray], text: str) -> Path:
    """report.md, report.json and two scatter plots in RUN/predictor/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors import kendall_tau

    layout = RunLayout.of(run)
    folder = layout.predictor_dir
    folder.mkdir(parents=True, exist_ok=True)
    y, s, oof = plot["y"], plot["supernet"], plot["oof"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    axes[0].scatter(s, y, c="tab:blue", s=24)
    axes[0].set_xlabel(f"supernet accuracy (%) — {scoring_text(supernet_options(gap))}")
    axes[0].set_ylabel("stand-alone accuracy (%)")
    axes[0].set_title(f"supernet vs stand-alone: Kendall tau {kendall_tau(y, s):.2f}")
    axes[1].scatter(oof, y, c="tab:green", s=24)
    lo, hi = float(min(oof.min(), y.min())), float(max(oof.max(), y.max()))
    axes[1].plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    axes[1].set_xlabel(f"predicted (out-of-fold, {gap.best})")
    axes[1].set_ylabel("stand-alone accuracy (%)")
    axes[1].set_title(f"corrected vs stand-alone: Kendall tau {kendall_tau(y, oof):.2f}")
    fig.tight_layout()
    fig.savefig(layout.predictor_plot, dpi=110)
    plt.close(fig)
    write_json_atomic(layout.predictor_report_json, gap.report)
    sm = gap.report["search_model"]
    chosen = gap.report.get("chosen", {"name": gap.best, "reason": ""})
    heldout = sm.get("heldout_tau", float("nan"))
    md = [
        "# Ranking report",
        "",
        f"{gap.report['basis']['text'] if 'basis' in gap.report else f'{len(y)} stand-alone anchors'}; every "
        "estimator and the supernet baseline scored against their stand-alone "
        "accuracy on the same random held-out splits (mean Kendall tau, its standard error, and the paired gain over "
        "the supernet); leave-one-out tau is shown for reference only.",
        *([f"Multi-fidelity: {gap.report['fidelity']['selection']}."] if "fidelity" in gap.report else []),
        "",
        "```",
        text,
        "```",
        "",
        f"Chosen: **{gap.best}** (fitted on all anchors, {int(gap.coverage * 100)}% conformal intervals): {chosen['reason']}.",
        f"Search model: `{sm['estimator']}` on architecture features only, trained on {sm['trained_on']} architectures "
        f"({sm.get('labels', '')}); agreement on held-out architectures tau {heldout:.2f} "
        f"(on its training labels {sm['fidelity_tau']:.2f}).",
        *([f"**Warning:** {sm['warning']}."] if sm.get("warning") else []),
        "",
        f"![anchors]({layout.predictor_plot.name})",
    ]
    layout.predictor_report.write_text("\n".join(md) + "\n")
    return layout.predictor_report
