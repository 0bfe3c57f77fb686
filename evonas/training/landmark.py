"""Landmark regularisation: uniform supernet training plus a ranking loss on architectures of known accuracy.

The idea is Yu et al., "Landmark Regularization: Ranking Guided Super-Net Training in
Neural Architecture Search" (CVPR 2021); this is our own implementation of it:

* every step trains one path on labels, exactly as ``uniform`` (drawn uniformly, or by
  the run's ``sampling``: see :mod:`evonas.training.sampling`);
* then it draws ``landmark_pairs`` pairs ``(a, b)`` of landmarks with
  ``acc(a) > acc(b)`` (each pair uniformly among all such ordered pairs, from the
  run's path sampler ``rng``, whose state the checkpoint saves), forwards both on
  the same batch and adds ``weight * mean over pairs of max(0, loss_a - loss_b)``:
  a hinge with margin 0 on the supernet's cross-entropy, which is zero when the
  better landmark already has the lower loss. The margin of 0 keeps the term from
  pushing well-ordered pairs further apart (which it could do by making the worse
  landmark worse). Gradients of the label and ranking terms accumulate into the
  one optimizer update of the step. Only the pairs out of order are
  back-propagated, so the landmark paths of a well-ordered pair get no zero
  gradients (no weight decay, no momentum step) that a uniform step would not give
  them. On several ranks whether a pair is out of order is decided on the mean
  loss over all ranks' shards (one all-reduce of the pair losses), so every rank
  back-propagates the same pairs, as one process would on the whole batch;
* the weight rises linearly from 0 at the first step to ``landmark_weight`` after
  ``landmark_warmup`` of the run's steps (0: full weight from the start), so the
  ranking term starts once the shared weights mean something.

``StepResult.images`` counts every forward pass: ``(1 + 2 * landmark_pairs) * B``
images a step (the landmark forwards run at every step, also at weight 0, so the
cost per step is constant). The logged loss and accuracy are the uniform path's.

Landmarks (``TrainConfig.landmarks``) come from a run directory (its stand-alone
anchors, :func:`run_landmarks`) or from a text file of ``arch accuracy`` lines
(:func:`file_landmarks`); the config stores the resolved list in
``landmark_archs`` (``[[canonical arch, accuracy], ...]``), so a run resumes and
reopens without its source. A measurement of how well the supernet ranks must
leave the landmarks out (the supernet was trained to rank them):
:func:`landmark_archs` gives the set to exclude.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from search_spaces import Space

from evonas.errors import ConfigError
from evonas.training.loop import StepResult, backward, supervised_step
from evonas.training.strategies import Strategy, _path, landmark_archs, register_strategy

if TYPE_CHECKING:
    from evonas.run.config import TrainConfig

__all__ = ["Landmark", "check_landmark_archs", "file_landmarks", "landmark_archs", "resolve_landmarks", "run_landmarks"]

PARAM = "landmarks"
FORMAT_HINT = "one 'arch accuracy' pair a line ('#' starts a comment)"


def _arch_text(space: Space, text: str) -> str:
    """The canonical string of ``text`` in ``space`` (ValueError when it is not one of its architectures)."""
    return space.format(space.canonical(space.parse(str(text))))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _enough(pairs: list[list], where: str) -> list[list]:
    if len(pairs) < 2 or len({acc for _, acc in pairs}) < 2:
        accs = sorted({acc for _, acc in pairs})
        raise ConfigError(f"The 'landmarks' parameter needs at least 2 landmarks with different accuracies to rank; "
                          f"{where} gives {len(pairs)} architecture{'s' if len(pairs) != 1 else ''} with accuracies "
                          f"{accs}.", param=PARAM)
    return pairs


def _averaged(values: dict[str, list[float]]) -> list[list]:
    return [[arch, sum(accs) / len(accs)] for arch, accs in values.items()]


def check_landmark_archs(value: Any, space: Space) -> list[list]:
    """``landmark_archs`` as the config stores it: ``[[canonical arch, accuracy], ...]``, checked in ``space``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"The 'landmark_archs' parameter must be a list of [arch, accuracy] pairs; got {value!r}.",
                          param="landmark_archs")
    out, seen = [], set()
    for item in value:
        ok = isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
        acc = _finite(item[1]) if ok else None
        if acc is None:
            raise ConfigError(f"The 'landmark_archs' parameter must be a list of [arch, accuracy] pairs with finite "
                              f"accuracies; got {item!r}.", param="landmark_archs")
        try:
            arch = _arch_text(space, item[0])
        except ValueError as exc:
            raise ConfigError(f"The 'landmark_archs' parameter holds {item[0]!r}, not an architecture of "
                              f"{space.name!r}: {exc}", param="landmark_archs") from None
        if arch in seen:
            raise ConfigError(f"The 'landmark_archs' parameter holds {arch!r} twice; give each landmark once.",
                              param="landmark_archs")
        seen.add(arch)
        out.append([arch, acc])
    return _enough(out, "'landmark_archs'")


def file_landmarks(path: str | Path, space: Space) -> list[list]:
    """The landmarks of a text file: ``arch accuracy`` a line; an architecture given twice gets the mean."""
    from evonas.jobs.archs import read_text_lines

    values: dict[str, list[float]] = {}
    for lineno, line in enumerate(read_text_lines(path, PARAM), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.rsplit(None, 1)
        if len(fields) != 2:
            raise ConfigError(f"{path}:{lineno}: {line!r} is not an 'arch accuracy' line; give {FORMAT_HINT}",
                              param=PARAM)
        text, acc_text = fields
        acc = _finite(acc_text)
        if acc is None:
            raise ConfigError(f"{path}:{lineno}: the accuracy must be a finite number; got {acc_text!r}", param=PARAM)
        try:
            arch = _arch_text(space, text.strip())
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}", param=PARAM) from None
        values.setdefault(arch, []).append(acc)
    return _enough(_averaged(values), str(path))


def _config_of(run: Path) -> dict[str, Any]:
    try:
        info = json.loads((run / "config.json").read_text())
        return dict(info["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"The 'landmarks' parameter names {str(run)!r}, whose config.json cannot be read "
                          f"({type(exc).__name__}); give a run directory or a file of {FORMAT_HINT}", param=PARAM) from None


def run_landmarks(run: str | Path, space: Space, space_name: str, space_kwargs: dict | None = None) -> list[list]:
    """The stand-alone anchors of a run as landmarks: canonical arch -> accuracy, averaged over the seeds.

    The anchors are the store records of scorer ``standalone`` in the run's space.
    Anchors trained with different schedules (``anchor_epochs``, the long fidelity)
    are not mixed: the schedule with the most anchors is used (ties: the longer
    one), each anchor's accuracy the mean over the seeds it was trained with. The
    run must have been trained on the same space (and, for your own model, with the
    same factory arguments).
    """
    from evonas.run.records import canonical_json
    from evonas.run.store import Store
    from evonas.spaces import canonical_name

    run = Path(run)
    other = _config_of(run)
    same = canonical_name(str(other.get("space", ""))) == space_name and (other.get("space_kwargs") or None) == (space_kwargs or None)
    if not same:
        raise ConfigError(f"The 'landmarks' parameter names run {str(run)!r} of space {other.get('space')!r}"
                          f"{' ' + json.dumps(other.get('space_kwargs')) if other.get('space_kwargs') else ''}; this "
                          f"supernet's space is {space_name!r}{' ' + json.dumps(space_kwargs) if space_kwargs else ''}: "
                          "its anchors are not architectures of this space.", param=PARAM)
    store_file = run / "store.sqlite"
    groups: dict[str, dict[str, list[float]]] = {}
    epochs: dict[str, float] = {}
    if store_file.is_file():
        store = Store(store_file)
        try:
            records = store.records(space=space.name, scorer="standalone")
        finally:
            store.close()
        for rec in records:
            acc = rec.metric("accuracy")
            if not math.isfinite(acc):
                continue
            schedule = {k: v for k, v in rec.source.items() if k != "seed"}
            key = canonical_json(schedule)
            epochs[key] = _finite(schedule.get("epochs")) or 0.0
            try:
                arch = _arch_text(space, rec.arch)
            except ValueError:
                continue
            groups.setdefault(key, {}).setdefault(arch, []).append(acc)
    if not groups:
        raise ConfigError(f"The 'landmarks' parameter names run {str(run)!r}, which has no stand-alone anchors "
                          "(train them there with `evonas fit-predictor`); give a run with anchors or a file of " + FORMAT_HINT,
                          param=PARAM)
    best = max(groups, key=lambda k: (len(groups[k]), epochs[k], k))
    return _enough(sorted(_averaged(groups[best])), f"run {str(run)!r}")


def resolve_landmarks(source: str | Path, space: Space, space_name: str, space_kwargs: dict | None = None) -> list[list]:
    """The landmarks ``source`` names: a run directory's anchors, or a file of ``arch accuracy`` lines."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"The 'landmarks' parameter names {str(source)!r}, a directory that is not an evonas run "
                              f"(no config.json); give a run directory with stand-alone anchors or a file of "
                              f"{FORMAT_HINT}", param=PARAM)
        return run_landmarks(path, space, space_name, space_kwargs)
    if not path.exists():
        raise ConfigError(f"The 'landmarks' parameter names {str(source)!r}, which does not exist; give a run directory "
                          f"with stand-alone anchors or a file of {FORMAT_HINT}", param=PARAM)
    return file_landmarks(path, space)


@register_strategy
class Landmark(Strategy):
    """Uniform sampling plus a hinge ranking loss on pairs of landmarks (see the module doc)."""

    name = "landmark"

    def __init__(self, space: Space, cfg: TrainConfig) -> None:
        super().__init__(space, cfg)
        landmarks = [(space.parse(arch), float(acc)) for arch, acc in cfg.landmark_archs or ()]
        # every ordered pair (better, worse); drawn uniformly
        self.pairs = [(a, b) for a, acc_a in landmarks for b, acc_b in landmarks if acc_a > acc_b]
        if not self.pairs:
            raise ConfigError("strategy 'landmark' needs the 'landmark_archs' parameter: at least 2 landmarks with "
                              "different accuracies", param="landmark_archs")
        self.steps_done = 0
        self.total_steps = 1

    def start(self, step: int, total_steps: int) -> None:
        self.steps_done, self.total_steps = step, total_steps

    def weight(self, step: int) -> float:
        """The ranking loss's weight at ``step`` (0-based): linear from 0 to ``landmark_weight`` over the warm-up."""
        warm = self.cfg.landmark_warmup * self.total_steps
        return self.cfg.landmark_weight * (min(1.0, step / warm) if warm > 0 else 1.0)

    def step(self, model, x, y, rng):
        result = supervised_step(_path(model, self.sampler.sample(rng)), x, y, self.cfg)
        weight = self.weight(self.steps_done)
        self.steps_done += 1
        drawn = [self.pairs[rng.randrange(len(self.pairs))] for _ in range(self.cfg.landmark_pairs)]
        smoothing = self.cfg.label_smoothing
        gaps = []  # loss_a - loss_b of each pair, a the better landmark
        for better, worse in drawn:
            loss_a = F.cross_entropy(model(x, better), y, label_smoothing=smoothing)
            loss_b = F.cross_entropy(model(x, worse), y, label_smoothing=smoothing)
            gaps.append(loss_a - loss_b)
        if weight > 0:
            # out of order on the whole step's batch: on several ranks the mean over all of them decides
            values = _mean_over_ranks(torch.stack(gaps).detach(), len(y)).tolist()
            active = [gap for gap, value in zip(gaps, values) if value > 0]
            if active:  # the hinge max(0, gap): its gradient is the gap's where it is positive
                backward(weight * torch.stack(active).sum() / len(drawn))
        return StepResult(result.logits, result.loss, result.correct, result.count, result.images * (1 + 2 * len(drawn)))


def _mean_over_ranks(values: torch.Tensor, count: int) -> torch.Tensor:
    """``values`` (means over this rank's ``count`` images) as means over every rank's images (itself on one rank)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return values
    total = torch.cat([values * count, values.new_tensor([float(count)])])
    dist.all_reduce(total)
    return total[:-1] / total[-1]
