"""Image datasets held in memory as uint8 tensors, with a fixed, seeded validation split.

Fashion-MNIST is read from Debian's ``dataset-fashion-mnist`` package (gzipped IDX
files under ``/usr/share/datasets/fashion-mnist``); CIFAR-10 from a user's copy of the
python version (``cifar-10-batches-py``). Nothing is ever downloaded. ``synthetic``
makes a small random dataset of any shape, for tests.

The 60k (50k for CIFAR-10) training images are split once, with a seed, into train
and validation; the test images stay untouched for final reports.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from evonas.errors import ConfigError, DatasetMissingError

FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}
# Per-channel mean and std of the training images (0..1 scale).
STATS = {
    "fmnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
DATASETS = ("fmnist", "cifar10", "synthetic")


@dataclass(frozen=True)
class Splits:
    """Train/validation/test tensors: images uint8 (N, C, H, W), labels int64 (N,)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        if which not in ("train", "val", "test"):
            raise ConfigError(f"The 'split' parameter must be 'train', 'val' or 'test'; got {which!r}.")
        return getattr(self, f"{which}_x"), getattr(self, f"{which}_y")


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST family's format) into a numpy array."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetMissingError(f"{path} is not an unsigned-byte IDX file (corrupt download?)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetMissingError(f"{path} is truncated: expected {np.prod(shape)} values, found {data.size}")
    return data.reshape(shape).copy()  # frombuffer is read-only; torch wants writable memory


def _load_fmnist(root: Path | None) -> tuple[np.ndarray, ...]:
    root = Path(root) if root else FMNIST_ROOT
    missing = [f for f in FMNIST_FILES.values() if not (root / f).is_file()]
    if missing:
        raise DatasetMissingError(
            f"Fashion-MNIST is not in {root} (missing {', '.join(missing)}). Install it with "
            "`sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist` (or run "
            "`make setup`), or set the 'data_root' parameter to a folder with the four *-idx*-ubyte.gz files."
        )
    arrays = {k: _read_idx(root / f) for k, f in FMNIST_FILES.items()}
    return (
        arrays["train_x"][:, None],
        arrays["train_y"].astype(np.int64),
        arrays["test_x"][:, None],
        arrays["test_y"].astype(np.int64),
    )


def _load_cifar10(root: Path | None) -> tuple[np.ndarray, ...]:
    if root is None:
        raise DatasetMissingError(
            "CIFAR-10 is never downloaded: set the 'data_root' parameter to your copy of the "
            "python version (the folder cifar-10-batches-py, or the folder that holds it)"
        )
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DatasetMissingError(
            f"CIFAR-10 batches not found in {root} (missing {', '.join(missing)}); set "
            "the 'data_root' parameter to the extracted cifar-10-python.tar.gz"
        )

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(root / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        return batch[b"data"].reshape(-1, 3, 32, 32), np.asarray(batch[b"labels"], dtype=np.int64)

    parts = [read(n) for n in names[:5]]
    test_x, test_y = read("test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), test_x, test_y


def _make_synthetic(shape: tuple[int, int, int], n: int, seed: int, classes: int = 10) -> tuple[np.ndarray, ...]:
    """Random images whose class shifts the mean brightness, so a net can learn it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(0, 40, size=(n, *shape)) + (y * (200 / classes))[:, None, None, None]
    x = np.clip(x, 0, 255).astype(np.uint8)
    n_test = max(n // 6, classes)
    return x[n_test:], y[n_test:].astype(np.int64), x[:n_test], y[:n_test].astype(np.int64)


def load_splits(
    name: str,
    *,
    root: str | Path | None = None,
    val_size: int = 10_000,
    seed: int = 0,
    train_limit: int | None = None,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    synthetic_size: int = 1200,
) -> Splits:
    """Load a dataset and split its training images into train and validation.

    ``val_size`` images are held out with a permutation drawn from ``seed``;
    ``train_limit`` keeps only the first N of the remaining train images (for quick
    runs). The test split is returned whole.
    """
    if name == "fmnist":
        tx, ty, sx, sy = _load_fmnist(Path(root) if root else None)
        mean, std = STATS["fmnist"]
    elif name == "cifar10":
        tx, ty, sx, sy = _load_cifar10(Path(root) if root else None)
        mean, std = STATS["cifar10"]
    elif name == "synthetic":
        tx, ty, sx, sy = _make_synthetic(image_shape, synthetic_size, seed)
        mean, std = (0.5,) * image_shape[0], (0.25,) * image_shape[0]
    else:
        raise ConfigError(f"The 'dataset' parameter must be one of {', '.join(DATASETS)}; got {name!r}.")
    if not 0 < val_size < len(tx):
        raise ConfigError(
            f"The 'val_size' parameter must be between 1 and {len(tx) - 1} for {name} ({len(tx)} training "
            f"images); got {val_size}"
        )
    perm = np.random.default_rng(seed).permutation(len(tx))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if train_limit is not None:
        if train_limit < 1:
            raise ConfigError(f"The 'train_limit' parameter must be a positive number of images; got {train_limit}.")
        train_idx = train_idx[:train_limit]
    t = torch.from_numpy
    return Splits(
        name=name,
        train_x=t(np.ascontiguousarray(tx[train_idx])),
        train_y=t(ty[train_idx]),
        val_x=t(np.ascontiguousarray(tx[val_idx])),
        val_y=t(ty[val_idx]),
        test_x=t(np.ascontiguousarray(sx)),
        test_y=t(sy),
        mean=tuple(mean),
        std=tuple(std),
    )


class Normalizer:
    """Turns uint8 (B, C, H, W) batches into normalised float32 tensors."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, labels) batches; shuffled when a generator is given."""
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]
