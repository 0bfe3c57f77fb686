"""The fitted gap-correcting predictor of a run, and the ranking report that chose it.

``fit_gap_model`` takes the anchors (stand-alone accuracy) and the supernet scores
of a pool of architectures. It cross-validates every registered predictor on the
anchors, keeps the best by cross-validated Kendall tau, and fits it on all anchors
with conformal intervals. Because scoring a new architecture with the supernet takes
about a second, searches use a second, architecture-only model distilled from the
first: it learns from the anchors' true accuracy and the corrected estimates of
every supernet-scored architecture, and needs no forward pass.

Saved as ``RUN/predictor/model.pkl`` beside ``report.md``, ``report.json`` and plots.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from search_spaces import Arch, Space

from evonas.run.config import write_json_atomic
from evonas.errors import CheckpointError, RunDirError

PREDICTOR_DIR = "predictor"
MODEL_FILE = "model.pkl"
FORMAT = "evonas-gap-model-1"
SCORE = "supernet_score"
SEARCH_MODEL = "xgb"  # architecture-only learner of the distilled search model


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
    format: str = field(default=FORMAT)

    def predict(self, archs: Sequence[Arch], supernet: Sequence[float]) -> dict[str, np.ndarray]:
        """Corrected accuracy, interval and (where the estimator offers one) std."""
        X = self.encoder.transform(archs, extra={SCORE: supernet})
        mean = np.clip(np.asarray(self.model.predict(X), dtype=float), 0.0, 100.0)  # accuracy is a percentage
        lower, upper = self.model.predict_interval(X)
        out = {"predicted": mean, "lower": np.clip(np.asarray(lower, float), 0.0, 100.0), "upper": np.clip(np.asarray(upper, float), 0.0, 100.0)}
        if getattr(self.model.model_, "offers_std", False):
            out["std"] = np.asarray(self.model.predict(X, return_std=True)[1], float)
        return out

    def predict_arch_only(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.clip(np.asarray(self.search_model.predict(self.search_encoder.transform(archs)), dtype=float), 0.0, 100.0)

    def save(self, run_dir: Path) -> Path:
        folder = Path(run_dir) / PREDICTOR_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (MODEL_FILE + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh)
        tmp.replace(folder / MODEL_FILE)
        return folder / MODEL_FILE


def load_gap_model(run_dir: str | Path) -> GapModel:
    path = Path(run_dir) / PREDICTOR_DIR / MODEL_FILE
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
) -> tuple[GapModel, dict[str, np.ndarray]]:
    """Cross-validate, choose, fit and distil; returns the model and plot data."""
    from sklearn.model_selection import KFold, LeaveOneOut, cross_val_predict

    from predictors import ArchEncoder, build_predictor, cross_validate_predictors, fit_final, get_predictor

    names = sorted(anchors)
    missing = [a for a in names if a not in pool]
    if missing:
        raise RunDirError(f"anchors {missing[:3]} have no supernet score in the store; rerun fit-predictor")
    archs = [space.parse(a) for a in names]
    y = np.array([anchors[a] for a in names])
    score = np.array([pool[a] for a in names])
    enc = ArchEncoder(space, extra_names=(SCORE,))
    X = enc.transform(archs, extra={SCORE: score})
    pi, ci = enc.index_of(SCORE), enc.index_of("log_flops")
    flops = np.array([space.cost(a).flops for a in archs], dtype=float)
    report = cross_validate_predictors(
        X, y, proxy_index=pi, cost_index=ci, flops=flops, predictors=predictors, coverage=coverage, random_state=seed
    )
    model = fit_final(report.best, X, y, proxy_index=pi, cost_index=ci, coverage=coverage, random_state=seed)
    cv = LeaveOneOut() if len(y) <= 20 else KFold(10, shuffle=True, random_state=seed)
    oof = cross_val_predict(build_predictor(report.best, proxy_index=pi, cost_index=ci, random_state=seed), X, y, cv=cv)

    # distil: anchors keep their truth; every other pooled architecture gets its corrected estimate
    others = [a for a in sorted(pool) if a not in anchors]
    other_archs = [space.parse(a) for a in others]
    pseudo = model.predict(enc.transform(other_archs, extra={SCORE: [pool[a] for a in others]})) if others else np.zeros(0)
    search_enc = ArchEncoder(space)
    Xs = search_enc.transform(archs + other_archs)
    ys = np.concatenate([y, pseudo])
    weights = np.concatenate([np.full(len(y), 3.0), np.ones(len(pseudo))])  # truth counts more
    search_model = get_predictor(SEARCH_MODEL, random_state=seed)
    try:
        search_model.fit(Xs, ys, sample_weight=weights)
    except TypeError:
        search_model.fit(Xs, ys)
    from predictors import kendall_tau

    fidelity = kendall_tau(ys, search_model.predict(Xs)) if len(ys) > 2 else float("nan")
    rep = report.to_dict()
    rep["search_model"] = {"estimator": SEARCH_MODEL, "trained_on": len(ys), "anchors": len(y), "pseudo_labels": len(pseudo), "fidelity_tau": fidelity}
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
    )
    return gap, {"y": y, "supernet": score, "oof": oof, "flops": flops, "text": report.format()}


def write_report(run_dir: Path, gap: GapModel, plot: dict[str, np.ndarray], text: str) -> Path:
    """report.md, report.json and two scatter plots in RUN/predictor/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors import kendall_tau

    folder = Path(run_dir) / PREDICTOR_DIR
    folder.mkdir(parents=True, exist_ok=True)
    y, s, oof = plot["y"], plot["supernet"], plot["oof"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    axes[0].scatter(s, y, c="tab:blue", s=24)
    axes[0].set_xlabel("supernet accuracy (%) — inherited weights, BN recalibrated")
    axes[0].set_ylabel("stand-alone accuracy (%)")
    axes[0].set_title(f"supernet vs stand-alone: Kendall tau {kendall_tau(y, s):.2f}")
    axes[1].scatter(oof, y, c="tab:green", s=24)
    lo, hi = float(min(oof.min(), y.min())), float(max(oof.max(), y.max()))
    axes[1].plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    axes[1].set_xlabel(f"predicted (out-of-fold, {gap.best})")
    axes[1].set_ylabel("stand-alone accuracy (%)")
    axes[1].set_title(f"corrected vs stand-alone: Kendall tau {kendall_tau(y, oof):.2f}")
    fig.tight_layout()
    fig.savefig(folder / "anchors.png", dpi=110)
    plt.close(fig)
    write_json_atomic(folder / "report.json", gap.report)
    sm = gap.report["search_model"]
    md = [
        "# Ranking report",
        "",
        f"{len(y)} stand-alone anchors; every estimator scored against their stand-alone accuracy by cross-validation.",
        "",
        "```",
        text,
        "```",
        "",
        f"Chosen: **{gap.best}** (fitted on all anchors, {int(gap.coverage * 100)}% conformal intervals).",
        f"Search model: `{sm['estimator']}` on architecture features only, trained on {sm['anchors']} anchors and "
        f"{sm['pseudo_labels']} corrected supernet scores; agreement with its training labels tau {sm['fidelity_tau']:.2f}.",
        "",
        "![anchors](anchors.png)",
    ]
    (folder / "report.md").write_text("\n".join(md) + "\n")
    return folder / "report.md"
