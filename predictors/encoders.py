"""Architecture encodings: turn architectures of a space into numeric feature matrices.

Everything is read from the space description, so every space gets the same three
parts and the feature names come from the dimension labels:

* ``onehot``: one column per (dimension, option), named ``"{dim.label}={name}"``;
* ``counts``: how many layers use each op, per stage for chain spaces
  (``"count_s{stage}_{op}"``), over the whole cell otherwise (``"count_{op}"``);
* ``cost``: ``log_flops`` and ``log_params`` from ``space.cost``.

Extra columns that are not a function of the architecture (a supernet score, a
cheap proxy) are appended by name with ``transform(archs, extra={...})``.

>>> from search_spaces import get_space
>>> enc = ArchEncoder(get_space("nb201"), extra_names=("supernet_score",))
>>> X = enc.transform(archs, extra={"supernet_score": scores})   # doctest: +SKIP
>>> enc.index_of("supernet_score")                                # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from search_spaces import Arch, Space

from .errors import PredictorError

PARTS = ("onehot", "counts", "cost")


def _stage_of(space: Space) -> list[int] | None:
    """The stage index of every dimension for chain spaces, else ``None``."""
    slots = getattr(space, "slots", None)
    if slots is None or len(slots) != len(space.dims):
        return None
    return [int(s.stage) for s in slots]


def _count_groups(space: Space) -> list[tuple[str, list[int], str]]:
    """(feature name, dimension indices, op name) of every count column."""
    stages = _stage_of(space)
    ops: list[str] = []
    for dim in space.dims:
        ops.extend(n for n in dim.names if n not in ops)
    if stages is None:
        return [(f"count_{op}", list(range(len(space.dims))), op) for op in ops]
    groups = []
    for stage in sorted(set(stages)):
        members = [i for i, s in enumerate(stages) if s == stage]
        stage_ops = [op for op in ops if any(op in space.dims[i].names for i in members)]
        groups.extend((f"count_s{stage}_{op}", members, op) for op in stage_ops)
    return groups


class ArchEncoder:
    """Encodes architectures of one space as a float matrix with named columns.

    ``parts`` picks any of ``"onehot"``, ``"counts"`` and ``"cost"`` (in that column
    order); ``extra_names`` are caller-supplied columns appended last, in order.
    The encoder is stateless (nothing is learned), and pickles by space name, so
    a saved predictor re-creates it from the registry.
    """

    def __init__(
        self,
        space: Space,
        parts: Sequence[str] = PARTS,
        extra_names: Sequence[str] = (),
    ) -> None:
        parts = tuple(parts)
        bad = [p for p in parts if p not in PARTS]
        if bad or not (parts or extra_names):
            raise PredictorError(
                f"the 'parts' parameter of ArchEncoder must be a non-empty subset of {PARTS}; "
                f"got {parts!r}"
            )
        if len(set(extra_names)) != len(tuple(extra_names)):
            raise PredictorError(f"the 'extra_names' of ArchEncoder must be distinct; got {tuple(extra_names)!r}")
        self.space = space
        self.parts = tuple(p for p in PARTS if p in parts)
        self.extra_names = tuple(extra_names)
        self._groups = _count_groups(space)
        names: list[str] = []
        if "onehot" in self.parts:
            names += [f"{d.label}={n}" for d in space.dims for n in d.names]
        if "counts" in self.parts:
            names += [g[0] for g in self._groups]
        if "cost" in self.parts:
            names += ["log_flops", "log_params"]
        clash = set(names) & set(self.extra_names)
        if clash:
            raise PredictorError(f"the 'extra_names' of ArchEncoder clash with built-in feature names: {sorted(clash)}")
        self.feature_names: list[str] = names + list(self.extra_names)

    def __reduce__(self):
        return (_encoder_from_name, (self.space.name, self.parts, self.extra_names))

    def __repr__(self) -> str:
        return f"ArchEncoder({self.space.name!r}, parts={self.parts!r}, extra_names={self.extra_names!r})"

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def index_of(self, name: str) -> int:
        """Column index of feature ``name`` (for example the supernet score)."""
        try:
            return self.feature_names.index(name)
        except ValueError:
            raise KeyError(f"feature {name!r} is not encoded; extra columns: {list(self.extra_names)}") from None

    def transform(self, archs: Sequence[Arch], extra: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
        """The (n_archs, n_features) float64 matrix of ``archs``; ``extra`` fills the named columns."""
        archs = list(archs)
        n = len(archs)
        blocks: list[np.ndarray] = []
        choices = np.array([a.choices for a in archs], dtype=np.int64).reshape(n, len(self.space.dims))
        if "onehot" in self.parts:
            cols = [(choices[:, i] == code) for i, d in enumerate(self.space.dims) for code in d.options]
            blocks.append(np.stack(cols, axis=1).astype(np.float64) if cols else np.zeros((n, 0)))
        if "counts" in self.parts:
            counts = np.zeros((n, len(self._groups)))
            for j, (_, members, op) in enumerate(self._groups):
                for i in members:
                    dim = self.space.dims[i]
                    if op in dim.names:
                        counts[:, j] += choices[:, i] == dim.options[dim.names.index(op)]
            blocks.append(counts)
        if "cost" in self.parts:
            costs = [self.space.cost(a) for a in archs]
            blocks.append(
                np.array([[math.log(max(c.flops, 1)), math.log(max(c.params, 1))] for c in costs]).reshape(n, 2)
            )
        extra = dict(extra or {})
        missing = [k for k in self.extra_names if k not in extra]
        unknown = [k for k in extra if k not in self.extra_names]
        if missing or unknown:
            raise PredictorError(
                f"the 'extra' columns of transform must be exactly {list(self.extra_names)}; "
                f"missing {missing}, unexpected {unknown}"
            )
        for name in self.extra_names:
            col = np.asarray(extra[name], dtype=np.float64).reshape(-1)
            if col.shape[0] != n:
                raise PredictorError(f"extra column {name!r} has {col.shape[0]} values for {n} architectures")
            blocks.append(col[:, None])
        return np.hstack(blocks) if blocks else np.zeros((n, 0))


def _encoder_from_name(space_name: str, parts: tuple[str, ...], extra_names: tuple[str, ...]) -> ArchEncoder:
    from search_spaces import get_space

    return ArchEncoder(get_space(space_name), parts=parts, extra_names=extra_names)
