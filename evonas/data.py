"""Image datasets as uint8 tensors (or lazy sets that stream), with a fixed, seeded validation split.

Fashion-MNIST is read from Debian's ``dataset-fashion-mnist`` package (gzipped IDX
files under ``/usr/share/datasets/fashion-mnist``); CIFAR-10 from a user's copy of the
python version (``cifar-10-batches-py``). Nothing is ever downloaded. ``synthetic``
makes a small random dataset of any shape, for tests. A user's own data is named by a
data spec (``imagefolder:DIR``, ``torchvision:NAME``, ``PATH.py:FUNC``), read by
:mod:`evonas.datasets`.

The training images are split once, with a seed, into train and validation; the test
images stay untouched for final reports. :func:`augment_batch` applies the CIFAR
crop-and-flip recipe to uint8 batches.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from evonas.errors import ConfigError, DatasetMissingError
from evonas.streaming import LazyImages, is_lazy, stream_batches, take

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
# Prefixes of the data specs of a user's own data (besides PATH.py:FUNC / package.module:FUNC).
DATA_SPECS = ("imagefolder:DIR", "torchvision:NAME", "PATH.py:FUNC", "package.module:FUNC")
CLASSES = {
    "fmnist": ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
AUGMENTATIONS = ("none", "standard")


@dataclass(frozen=True)
class Splits:
    """Train/validation/test tensors: images uint8 (N, C, H, W), labels int64 (N,).

    A user's large data holds its images as lazy sets instead
    (:class:`evonas.streaming.LazyImages`: ``len``, ``shape`` and indexing like a tensor,
    decoded on demand); :func:`batches` streams them. Labels are always tensors.

    ``mean``/``std`` are per channel on the 0..1 scale; ``classes`` names the labels
    0..num_classes-1 (empty when unknown).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = 10
    classes: tuple[str, ...] = ()

    @property
    def in_channels(self) -> int:
        """Channels per image (1 grayscale, 3 RGB)."""
        return int(self.train_x.shape[1])

    @property
    def image_height(self) -> int:
        return int(self.train_x.shape[2])

    @property
    def image_width(self) -> int:
        return int(self.train_x.shape[3])

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


def _val_count(val_size: int | float, n_train: int, name: str) -> int:
    """The number of validation images: ``val_size`` itself (int) or that fraction of ``n_train`` (float in (0, 1))."""
    fix = "use a smaller number, or a fraction such as 0.1"
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float, np.integer, np.floating)):
        raise ConfigError(f"The 'val_size' parameter must be a number of images or a fraction in (0, 1); "
                          f"got {val_size!r}.", param="val_size")
    if isinstance(val_size, (float, np.floating)) and not float(val_size).is_integer():
        if not 0 < val_size < 1:
            raise ConfigError(f"The 'val_size' parameter must be a whole number of images or a fraction in (0, 1); "
                              f"got {val_size}.", param="val_size")
        count = int(round(val_size * n_train))
        if not 0 < count < n_train:
            raise ConfigError(f"The 'val_size' parameter ({val_size}) leaves {count} of the {n_train} training images "
                              f"of {name} for validation; it must hold out between 1 and {n_train - 1}: use a "
                              "different fraction, or a number of images.", param="val_size")
        return count
    count = int(val_size)
    if not 0 < count < n_train:
        raise ConfigError(
            f"The 'val_size' parameter must be between 1 and {n_train - 1} for {name} ({n_train} training "
            f"images); got {val_size}: {fix}.", param="val_size"
        )
    return count


def _channel_stats(x, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) on the 0..1 scale; a std of 0 becomes 1/255.

    ``x`` is a tensor or a lazy set (streamed ``chunk`` images at a time). Sums are exact
    integers, so the result does not depend on the chunking.
    """
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.int64)
    squares = torch.zeros(c, dtype=torch.int64)
    if isinstance(x, torch.Tensor):
        parts = (x[i:i + chunk] for i in range(0, len(x), chunk))
    else:
        parts = (xb for xb, _ in batches(x, torch.zeros(len(x), dtype=torch.int64), chunk))
    for part in parts:
        values = part.transpose(0, 1).reshape(c, -1).to(torch.int64)
        total += values.sum(1)
        squares += (values * values).sum(1)
    count = max(1, len(x) * int(np.prod(x.shape[2:])))
    mean = total.double() / (255.0 * count)
    std = (squares.double() / (255.0 * 255.0 * count) - mean * mean).clamp_min(0).sqrt().clamp_min(1 / 255)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def _read_user_data(name: str, root: Path | None, image_size: int | None, param: str, in_memory: bool | None):
    """The RawData of a data spec, or None when ``name`` is not one."""
    from evonas import datasets
    from evonas.refs import is_reference

    if name.startswith("imagefolder:"):
        folder = name[len("imagefolder:"):]
        if not folder:
            raise ConfigError(f"The '{param}' parameter must name a folder after imagefolder:, e.g. "
                              f"imagefolder:data/pets; got {name!r}.", param=param)
        return datasets.read_image_folder(folder, image_size=image_size, param=param, spec=name, in_memory=in_memory)
    if name.startswith("torchvision:"):
        return datasets.read_torchvision(name[len("torchvision:"):], root, image_size=image_size, param=param,
                                         in_memory=in_memory)
    if is_reference(name):
        return datasets.read_function(name, image_size=image_size, param=param, in_memory=in_memory)
    return None


def load_splits(
    name: str,
    *,
    root: str | Path | None = None,
    val_size: int | float | None = 10_000,
    seed: int = 0,
    train_limit: int | None = None,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    synthetic_size: int = 1200,
    image_size: int | None = None,
    param: str = "dataset",
    in_memory: bool | None = None,
) -> Splits:
    """Load a dataset and split its training images into train and validation.

    ``name`` is a built-in dataset (``fmnist``, ``cifar10``, ``synthetic``) or a data spec:

    * ``imagefolder:DIR`` -- one sub-folder of images per class; ``DIR/train`` and
      ``DIR/test`` are the splits when both exist, else 20% of each class of ``DIR``
      (a fixed draw, the same for every ``seed``) is the test split
      (see :func:`evonas.datasets.read_image_folder`);
    * ``torchvision:NAME`` -- a torchvision dataset class (case-insensitive) already
      under ``root``, never downloaded (:func:`evonas.datasets.read_torchvision`);
    * ``PATH.py:FUNC`` / ``package.module:FUNC`` -- ``FUNC()`` returns ``(train, test)``
      datasets of ``(image, label)`` (:func:`evonas.datasets.read_function`).

    Images are uint8 (N, C, H, W): 1 channel when every image is grayscale, else RGB.
    ``image_size`` resizes every image to image_size x image_size (any dataset); without
    it a user's images must all share one size. For a user's data ``mean``/``std`` are
    computed per channel from all its training images (0..1 scale), and ``classes`` and
    ``num_classes`` come from the data.

    ``val_size`` images (an int), or that fraction of the training images (a float in
    (0, 1)), are held out with a permutation drawn from ``seed``; None means 10,000 for
    fmnist and cifar10 and 10% of the training images otherwise; ``train_limit`` keeps
    only the first N of the remaining train images (for quick runs). The test split is
    returned whole.

    ``in_memory`` decides how a user's image folder or datasets of items are held
    (arrays -- fmnist, cifar10, synthetic, array-backed torchvision sets -- always are
    in memory): True decodes every image now into uint8 tensors; False keeps lazy sets
    (:class:`evonas.streaming.LazyImages`) that decode on demand and stream through a
    DataLoader (:func:`batches`); None (the default) holds the data in memory when its
    training images take fewer bytes (N*C*H*W) than :func:`evonas.streaming.memory_budget`
    (min(2 GiB, a quarter of the available RAM)), else streams it. Either way the
    batches, splits and statistics are the same; mean/std then take one pass over the
    training images. Nothing is written anywhere, so a caller can load the data before
    it creates a run directory.

    Raises ConfigError (``param`` names the dataset parameter, ``val_size``,
    ``train_limit`` or ``image_size``) for a bad value or bad data, and
    DatasetMissingError when a dataset's files are not where they are looked for.
    """
    if not isinstance(name, str):
        raise ConfigError(f"The '{param}' parameter must be a dataset name or data spec; got {name!r}.", param=param)
    tx, ty, sx, sy, mean, std, classes = _read_dataset(name, root, image_shape, synthetic_size, seed, image_size,
                                                       param, in_memory)
    if val_size is None:
        val_size = 10_000 if name in ("fmnist", "cifar10") else 0.1
    n_val = _val_count(val_size, len(tx), name)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(tx)))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    if train_limit is not None:
        if train_limit < 1:
            raise ConfigError(f"The 'train_limit' parameter must be a positive number of images; got {train_limit}.",
                              param="train_limit")
        train_idx = train_idx[:train_limit]
    return Splits(
        name=name,
        train_x=take(tx, train_idx),
        train_y=ty[train_idx].contiguous(),
        val_x=take(tx, val_idx),
        val_y=ty[val_idx].contiguous(),
        test_x=sx if is_lazy(sx) else sx.contiguous(),
        test_y=sy.contiguous(),
        mean=tuple(mean),
        std=tuple(std),
        num_classes=len(classes),
        classes=tuple(classes),
    )


def _read_dataset(name: str, root: str | Path | None, image_shape: tuple[int, int, int], synthetic_size: int,
                  seed: int, image_size: int | None, param: str, in_memory: bool | None) -> tuple:
    """A dataset's (train images, train labels, test images, test labels, mean, std, class names), unsplit.

    Arrays become tensors, resized to ``image_size`` when given (a user's data is resized as it is read).
    """
    classes: tuple[str, ...]
    if name == "fmnist":
        tx, ty, sx, sy = _load_fmnist(Path(root) if root else None)
        mean, std = STATS["fmnist"]
        classes = CLASSES["fmnist"]
    elif name == "cifar10":
        tx, ty, sx, sy = _load_cifar10(Path(root) if root else None)
        mean, std = STATS["cifar10"]
        classes = CLASSES["cifar10"]
    elif name == "synthetic":
        tx, ty, sx, sy = _make_synthetic(image_shape, synthetic_size, seed)
        mean, std = (0.5,) * image_shape[0], (0.25,) * image_shape[0]
        classes = tuple(str(i) for i in range(10))
    else:
        raw = _read_user_data(name, Path(root).expanduser() if root else None, image_size, param, in_memory)
        if raw is None:
            raise ConfigError(f"The '{param}' parameter must be one of {', '.join(DATASETS)}, or a data spec "
                              f"({', '.join(DATA_SPECS)}); got {name!r}.", param=param)
        tx, ty, sx, sy = raw.train_x, raw.train_y, raw.test_x, raw.test_y
        classes = raw.classes
        mean, std = _channel_stats(tx)
    if isinstance(tx, np.ndarray):
        tx, ty, sx, sy = (torch.from_numpy(np.ascontiguousarray(a)) for a in (tx, ty, sx, sy))
        if image_size is not None:
            from evonas.datasets import _check_image_size, _resize_batch

            _check_image_size(image_size)
            tx, sx = _resize_batch(tx, image_size), _resize_batch(sx, image_size)
    return tx, ty, sx, sy, mean, std, classes


def describe_data(splits: Splits) -> dict:
    """What a model factory needs to know of ``splits``, plus the split sizes.

    Keys: ``in_channels`` (1 or 3), ``image_size`` (the height H; images may be
    non-square, so ``image_height`` and ``image_width`` are given too), ``num_classes``,
    ``classes`` (tuple of names, possibly empty), ``num_train``, ``num_val``, ``num_test``.
    """
    return {
        "in_channels": splits.in_channels,
        "image_size": splits.image_height,
        "image_height": splits.image_height,
        "image_width": splits.image_width,
        "num_classes": splits.num_classes,
        "classes": tuple(splits.classes),
        "num_train": int(len(splits.train_x)),
        "num_val": int(len(splits.val_x)),
        "num_test": int(len(splits.test_x)),
    }


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, kind: str = "standard") -> torch.Tensor:
    """Augment a uint8 (B, C, H, W) batch; ``kind`` is one of :data:`AUGMENTATIONS`.

    ``"none"`` returns ``x`` itself. ``"standard"`` is the CIFAR recipe: pad 4 zero pixels
    on every side, crop a random H x W window, and flip it horizontally with probability
    1/2. Offsets and flips are drawn from ``generator`` on its own device (the global CPU
    RNG when None): B row offsets, then B column offsets, then B flips, so one generator
    state gives one result. One gather for the whole batch, no loop per image; the result is
    a new tensor on ``x``'s device, same dtype.
    """
    if kind not in AUGMENTATIONS:
        raise ConfigError(f"The 'augment' parameter must be one of {', '.join(AUGMENTATIONS)}; got {kind!r}.",
                          param="augment")
    if kind == "none" or x.numel() == 0:
        return x
    if x.dim() != 4:
        raise ConfigError(f"augment_batch needs a (B, C, H, W) batch; got shape {tuple(x.shape)}.")
    pad = 4
    b, _, h, w = x.shape
    draw = {"generator": generator, "device": generator.device if generator is not None else "cpu"}
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (b,), **draw).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), **draw).to(dev)
    flip = torch.randint(0, 2, (b,), **draw).bool().to(dev)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # (B, H+8, W+8, C)
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]  # (B, H)
    j = torch.arange(w, device=dev)[None, :]
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - j, j)  # (B, W)
    out = padded[torch.arange(b, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


class Normalizer:
    """Turns uint8 (B, C, H, W) batches into normalised float32 tensors."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0
        self._copies: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` normalised on its own device (uint8 batches are copied to a GPU before they become floats)."""
        if x.device == self.mean.device:
            return (x.float() - self.mean) / self.std
        if x.device not in self._copies:
            self._copies[x.device] = (self.mean.to(x.device), self.std.to(x.device))
        mean, std = self._copies[x.device]
        return (x.float() - mean) / std


def batches(
    x: torch.Tensor | LazyImages,
    y: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    workers: int | None = None,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, labels) batches; shuffled when a generator is given.

    The order is ``torch.randperm(len(x), generator=generator)`` (else 0..N-1), cut into
    ``batch_size`` slices (the last short one dropped with ``drop_last``). A tensor ``x``
    is indexed directly; a lazy set (:class:`evonas.streaming.LazyImages`) is decoded by
    a DataLoader with ``workers`` processes (None: min(4, CPUs - 1); 0: in this process)
    and ``pin_memory`` (see :func:`evonas.streaming.stream_batches`), giving the same
    batches in the same order.
    """
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    if is_lazy(x):
        yield from stream_batches(x, y, order, batch_size, stop, workers=workers, pin_memory=pin_memory)
        return
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


def factory_kwargs(splits: Splits) -> dict[str, Any]:
    """What a user's factory is called with: the data's channels, classes and image size."""
    info = describe_data(splits)
    height, width = info["image_height"], info["image_width"]  # image_size is the height alone
    return {"in_channels": info["in_channels"], "num_classes": info["num_classes"],
            "image_size": height if height == width else [height, width]}
