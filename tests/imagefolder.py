"""Test helper: a small ImageFolder-layout directory of real Fashion-MNIST images as PNGs.

``make_image_folder(tmp_path)`` writes ``train/<class>/NNN.png`` and ``test/<class>/NNN.png``
(or ``<class>/NNN.png`` with ``split=False``) from the Fashion-MNIST installed by Debian's
``dataset-fashion-mnist`` package, read with evonas.data's own reader. Importable from
every test folder as ``from tests.imagefolder import make_image_folder`` (tests/ is a package).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from evonas.data import CLASSES, _load_fmnist

__all__ = ["make_image_folder"]


@lru_cache(maxsize=1)
def _fmnist() -> tuple[np.ndarray, ...]:
    """Fashion-MNIST (train_x (N, 1, 28, 28), train_y, test_x, test_y) from the default location, read once."""
    return _load_fmnist(None)


def make_image_folder(
    root: str | Path,
    *,
    classes: int = 3,
    per_class: int = 12,
    split: bool = True,
    size: int = 28,
    test_per_class: int | None = None,
    rgb: bool = False,
) -> Path:
    """Write ``per_class`` Fashion-MNIST PNGs for each of the first ``classes`` classes under ``root``; return ``root``.

    Class folders are named after Fashion-MNIST's classes (t-shirt, trouser, ...), files
    ``000.png``, ``001.png``... With ``split`` the training images go to ``root/train``
    and ``test_per_class`` (default max(2, per_class // 3)) test images per class to
    ``root/test``; without it everything is in ``root``. Images are 8-bit grayscale
    (``rgb`` saves them as RGB), resized with PIL to ``size`` x ``size`` when not 28.
    The images are the first of each class in the dataset's order, so calls are repeatable.
    """
    from PIL import Image

    if not 1 <= classes <= 10:
        raise ValueError(f"classes must be 1..10 (Fashion-MNIST has 10); got {classes}")
    root = Path(root)
    train_x, train_y, test_x, test_y = _fmnist()
    n_test = test_per_class if test_per_class is not None else max(2, per_class // 3)
    parts = [("train", train_x, train_y, per_class)]
    if split:
        parts.append(("test", test_x, test_y, n_test))
    for part, xs, ys, count in parts:
        base = root / part if split else root
        for c in range(classes):
            folder = base / CLASSES["fmnist"][c]
            folder.mkdir(parents=True, exist_ok=True)
            for i, idx in enumerate(np.flatnonzero(ys == c)[:count]):
                img = Image.fromarray(np.ascontiguousarray(xs[idx, 0]))
                if size != 28:
                    img = img.resize((size, size), Image.BILINEAR)
                if rgb:
                    img = img.convert("RGB")
                img.save(folder / f"{i:03d}.png")
    return root
