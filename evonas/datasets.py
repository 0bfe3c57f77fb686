"""A user's own image data as uint8 tensors (or lazy sets when large): image folders, torchvision, functions.

Three kinds of data spec are read here (``evonas.data.load_splits`` dispatches to them):

* ``imagefolder:DIR`` -- torchvision's ImageFolder layout, one sub-folder per class
  (:func:`read_image_folder`);
* ``torchvision:NAME`` -- a torchvision dataset class already on disk under a root folder,
  never downloaded (:func:`read_torchvision`);
* ``PATH.py:FUNC`` or ``package.module:FUNC`` -- a function returning ``(train, test)``
  datasets of ``(image, label)`` pairs (:func:`read_function`).

Each returns a :class:`RawData`: train and test images as uint8 (N, C, H, W) tensors
(or :class:`evonas.streaming.LazyImages`, see ``in_memory``), int64 labels and the class
names. Images are 1-channel when every image is grayscale, else 3-channel RGB. With
``image_size`` every image is resized to a square of that side; without it every image
must already have one size. Every bad input is one
:class:`~evonas.errors.ConfigError` (or :class:`~evonas.errors.DatasetMissingError`)
naming the file or value and the fix; nothing is written anywhere.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from evonas.errors import ConfigError, DatasetMissingError
from evonas.images import _GRAY_MODES, _Image, _decode_file, _err, _item, _resize
from evonas.refs import load_object

__all__ = [
    "HOLDOUT_FRACTION", "HOLDOUT_SEED", "RawData", "read_function", "read_image_folder", "read_torchvision",
    "torchvision_names",
]

# A single image folder (no train/ and test/) gives up this share of each class, drawn
# with this fixed seed, as its test split: the same images whatever the run's seed.
HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0


@dataclass(frozen=True)
class RawData:
    """A dataset before the validation split: uint8 images (N, C, H, W), int64 labels (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]


# --------------------------------------------------------------------------- images


def _stack(images: Sequence[_Image], channels: int, image_size: int | None, param: str) -> torch.Tensor:
    """Stack decoded images into uint8 (N, channels, H, W): gray images are repeated into RGB when channels is 3."""
    if not images:
        return torch.zeros((0, channels, image_size or 1, image_size or 1), dtype=torch.uint8)
    out = []
    for im in images:
        a = im.array
        if a.shape[0] != channels:
            a = np.repeat(a, channels, axis=0)
        out.append(_resize(a, image_size) if image_size else a)
    return torch.from_numpy(np.stack(out))


def _check_sizes(images: Sequence[_Image], image_size: int | None, param: str) -> None:
    """Without ``image_size`` every image must have one (H, W); else name two files and their sizes."""
    if image_size is not None or not images:
        return
    first = images[0]
    for im in images[1:]:
        if im.array.shape[1:] != first.array.shape[1:]:
            (h1, w1), (h2, w2) = first.array.shape[1:], im.array.shape[1:]
            raise _err(f"The '{param}' parameter gives images of different sizes: {first.source} is {w1}x{h1} "
                       f"(WxH) but {im.source} is {w2}x{h2}; set the 'image_size' parameter (e.g. {max(h1, w1)}) "
                       "to resize every image to one square size.", param)


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ConfigError(f"The 'image_size' parameter must be a positive whole number of pixels or None; "
                          f"got {image_size!r}.", param="image_size")


def _check_assembly(train: Sequence[_Image], test: Sequence[_Image], image_size: int | None, param: str) -> int:
    """Check a dataset's images (both splits present, one size unless ``image_size``); return its channels (1 or 3)."""
    _check_image_size(image_size)
    if not train or not test:
        which = "training" if not train else "test"
        raise _err(f"The '{param}' parameter gives data with no {which} images; it needs both training and test "
                   "images (an image folder holds out 20% of each class with two or more images).", param)
    _check_sizes([*train, *test], image_size, param)
    return 1 if all(im.array.shape[0] == 1 for im in (*train, *test)) else 3


def _labels(labels: Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)


def _assemble(train: list[_Image], train_y: Sequence[int], test: list[_Image], test_y: Sequence[int],
              classes: tuple[str, ...], image_size: int | None, param: str) -> RawData:
    channels = _check_assembly(train, test, image_size, param)
    return RawData(_stack(train, channels, image_size, param), _labels(train_y),
                   _stack(test, channels, image_size, param), _labels(test_y), classes)


# ---------------------------------------------------------------------- imagefolder


def _image_extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def _class_folders(folder: Path, spec: str, param: str) -> list[str]:
    """The sorted class sub-folders of ``folder`` (hidden ones skipped); an error when there are none."""
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise _err(f"The '{param}' parameter names {spec!r}, but {folder} has no class sub-folders; put the images "
                   "of each class in their own sub-folder (DIR/cat/1.png, DIR/dog/2.png), optionally under "
                   "DIR/train and DIR/test.", param)
    return names


def _folder_files(folder: Path, classes: list[str], param: str) -> list[tuple[Path, int]]:
    """(image path, class index) for every file below each class folder; non-images are an error."""
    exts = _image_extensions()
    found: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        class_dir = folder / name
        files: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.startswith("."):
                    continue  # .DS_Store and the like
                path = Path(dirpath) / f
                if not f.lower().endswith(exts):
                    raise _err(f"The '{param}' parameter names an image folder in which {path} is not an image "
                               f"(the extensions read are {' '.join(exts)}); remove it or move it out of {folder}.",
                               param)
                files.append(path)
        if not files:
            raise _err(f"The '{param}' parameter names an image folder whose class folder {class_dir} holds no "
                       f"images ({' '.join(exts)}); add images to it or remove it.", param)
        found.extend((p, index) for p in files)
    return found


def _holdout(labels: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the held-out images: ``fraction`` of each class (rounded, at least 1 of 2+), seeded."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(len(idx) - 1, max(1, int(round(fraction * len(idx))))) if len(idx) > 1 else 0
        mask[rng.permutation(idx)[:k]] = True
    return mask


def read_image_folder(folder: str | Path, *, image_size: int | None = None, param: str = "dataset",
                      spec: str | None = None, in_memory: bool | None = None) -> RawData:
    """Read an ImageFolder-layout directory (one sub-folder per class), into memory or as lazy image sets.

    When ``folder/train`` and ``folder/test`` both exist they are the train and test
    splits and must hold the same class folders. Otherwise ``folder`` itself holds the
    classes and a fixed share of each class (:data:`HOLDOUT_FRACTION`, 20%, drawn with
    :data:`HOLDOUT_SEED` so it does not change with the run's seed; a class of one image
    keeps it for training) becomes the test split. Class names are the sorted folder
    names; images below a class folder are read recursively, hidden files skipped.

    Raises ConfigError (naming ``param``) when the folder does not exist, has no class
    folders, has only one of train/ and test/, train and test classes differ, a class
    folder holds no images, a file is not an image or cannot be decoded, or images differ
    in size and ``image_size`` is None.
    ``in_memory``: True decodes every image now; False reads only headers now and gives
    :class:`evonas.streaming.ImageFiles`; None: by size (:func:`evonas.streaming.hold_in_memory`).
    """
    from evonas import streaming

    spec = spec or f"imagefolder:{folder}"
    root = Path(folder).expanduser()
    if not root.exists():
        raise _err(f"The '{param}' parameter names {spec!r}, but {root} does not exist; give the folder that holds "
                   "one sub-folder of images per class.", param)
    if not root.is_dir():
        raise _err(f"The '{param}' parameter names {spec!r}, but {root} is not a folder; give the folder that holds "
                   "one sub-folder of images per class.", param)
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if has_train != has_test:
        there, missing = ("train", "test") if has_train else ("test", "train")
        raise _err(f"The '{param}' parameter names {spec!r}, which has {root / there} but no {root / missing}; "
                   f"add {missing}/ with the same class folders, or rename {there}/ if it is a class.", param)
    if has_train:
        classes = _class_folders(root / "train", spec, param)
        test_classes = _class_folders(root / "test", spec, param)
        if classes != test_classes:
            only_train = sorted(set(classes) - set(test_classes)) or "none"
            only_test = sorted(set(test_classes) - set(classes)) or "none"
            raise _err(f"The '{param}' parameter names {spec!r}, whose train/ and test/ class folders differ "
                       f"(only in train: {only_train}; only in test: {only_test}); give both the same classes.", param)
        train_files = _folder_files(root / "train", classes, param)
        test_files = _folder_files(root / "test", classes, param)
    else:
        classes = _class_folders(root, spec, param)
        files = _folder_files(root, classes, param)
        held = _holdout([c for _, c in files], HOLDOUT_FRACTION, HOLDOUT_SEED)
        train_files = [f for f, h in zip(files, held) if not h]
        test_files = [f for f, h in zip(files, held) if h]
    if not streaming.hold_in_memory(lambda: folder_bytes(train_files, image_size), in_memory):
        return lazy_image_folder(train_files, test_files, tuple(classes), image_size, param)
    train = [_decode_file(p, param) for p, _ in train_files]
    test = [_decode_file(p, param) for p, _ in test_files]
    return _assemble(train, [c for _, c in train_files], test, [c for _, c in test_files], tuple(classes),
                     image_size, param)


# ---------------------------------------------------------------------- torchvision


def torchvision_names() -> dict[str, type]:
    """Lower-case name -> class, for torchvision's dataset classes that take ``train=`` or ``split=``."""
    import torchvision.datasets as tvd
    from torchvision.datasets import VisionDataset

    out = {}
    for name in getattr(tvd, "__all__", dir(tvd)):
        cls = getattr(tvd, name, None)
        if isinstance(cls, type) and issubclass(cls, VisionDataset) and cls is not VisionDataset:
            params = inspect.signature(cls.__init__).parameters
            if "train" in params or "split" in params:
                out[name.lower()] = cls
    return out


def _tv_split(cls: type, root: Path, train: bool, name: str, param: str):
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if "download" in params:
        kwargs["download"] = False
    if "train" in params:
        kwargs["train"] = train
    else:
        kwargs["split"] = "train" if train else "test"
    try:
        return cls(str(root), **kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        raise DatasetMissingError(
            f"torchvision dataset {cls.__name__} is not in {root} ({' '.join(str(exc).split())}); nothing is "
            f"downloaded: fetch it yourself (e.g. torchvision.datasets.{cls.__name__}({str(root)!r}, "
            "download=True)) or set the 'data_root' parameter to the folder that holds it."
        ) from None
    except ImportError as exc:
        raise _err(f"The '{param}' parameter names {name!r}, whose torchvision reader needs a module that is not "
                   f"installed ({exc}); install it.", param) from None
    except (TypeError, ValueError) as exc:
        raise _err(f"The '{param}' parameter names {name!r}, which torchvision could not open with "
                   f"{kwargs} ({type(exc).__name__}: {exc}); use a data function (PATH.py:FUNC) instead.",
                   param) from None


def _fast_arrays(ds: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 (N, C, H, W), int64 labels) from ``ds.data`` and ``ds.targets``/``ds.labels``, or None if unsafe."""
    if getattr(ds, "transform", None) is not None or getattr(ds, "transforms", None) is not None:
        return None
    data = getattr(ds, "data", None)
    labels = getattr(ds, "targets", getattr(ds, "labels", None))
    if data is None or labels is None:
        return None
    data = data.numpy() if isinstance(data, torch.Tensor) else data
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else labels
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or len(data) != len(ds):
        return None
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if len(labels) != len(ds):
        return None
    if data.ndim == 3:
        data = data[:, None]
    elif data.ndim == 4 and data.shape[-1] in (1, 3) and data.shape[1] not in (1, 3):
        data = data.transpose(0, 3, 1, 2)
    elif not (data.ndim == 4 and data.shape[1] in (1, 3)):
        return None
    return np.ascontiguousarray(data), labels


def read_torchvision(name: str, root: str | Path | None, *, image_size: int | None = None,
                     param: str = "dataset", in_memory: bool | None = None) -> RawData:
    """Open torchvision dataset ``name`` (case-insensitive: cifar10, SVHN, FashionMNIST ...) under ``root``.

    Always ``download=False``; classes taking ``train=`` get True/False, those taking
    ``split=`` get "train"/"test". Arrays the dataset already holds (``.data`` with
    ``.targets`` or ``.labels``) are used directly (always in memory), otherwise every
    item is converted, now or on demand as ``in_memory`` says (:func:`_from_datasets`).

    Raises ConfigError for an unknown name (listing valid ones) and DatasetMissingError,
    naming ``root``, when ``root`` is None or the files are not there.
    """
    names = torchvision_names()
    cls = names.get(name.lower())
    if cls is None:
        common = [n for n in ("CIFAR10", "CIFAR100", "SVHN", "MNIST", "FashionMNIST", "KMNIST") if n.lower() in names]
        raise _err(f"The '{param}' parameter names torchvision dataset {name!r}, which is not one torchvision has "
                   f"(with train/test splits); use one of {', '.join(common)}, ... (case does not matter).", param)
    if root is None:
        raise DatasetMissingError(f"torchvision dataset {cls.__name__} is never downloaded: set the 'data_root' "
                                  "parameter to the folder that holds it.")
    root = Path(root).expanduser()
    train_ds = _tv_split(cls, root, True, name, param)
    test_ds = _tv_split(cls, root, False, name, param)
    classes = getattr(train_ds, "classes", None)
    fast = _fast_arrays(train_ds), _fast_arrays(test_ds)
    if fast[0] is not None and fast[1] is not None:
        (tx, ty), (sx, sy) = fast
        _check_image_size(image_size)
        if tx.shape[2:] != sx.shape[2:] and image_size is None:
            raise _err(f"The '{param}' parameter names {name!r}, whose train images are {tx.shape[3]}x{tx.shape[2]} "
                       f"but test images {sx.shape[3]}x{sx.shape[2]}; set the 'image_size' parameter.", param)
        channels = max(tx.shape[1], sx.shape[1])
        tx_t, sx_t = (_resize_batch(torch.from_numpy(a).expand(-1, channels, -1, -1), image_size) for a in (tx, sx))
        return RawData(tx_t.contiguous(), torch.from_numpy(ty), sx_t.contiguous(), torch.from_numpy(sy),
                       _class_names(classes, ty, sy))
    return _from_datasets(train_ds, test_ds, f"torchvision:{name}", image_size, param, in_memory)


def _resize_batch(x: torch.Tensor, image_size: int | None, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) resized to (N, C, image_size, image_size) in chunks; unchanged when None or same size."""
    if image_size is None or tuple(x.shape[2:]) == (image_size, image_size):
        return x
    from torchvision.transforms.v2 import functional as F

    parts = [F.resize(x[i:i + chunk].contiguous(), [image_size, image_size], antialias=True)
             for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else x.new_zeros((0, x.shape[1], image_size, image_size))


def _class_names(classes: Any, *label_arrays: np.ndarray) -> tuple[str, ...]:
    """The dataset's own class names when it has a fitting list, else "0", "1", ... up to the largest label."""
    top = max((int(a.max()) for a in label_arrays if len(a)), default=-1) + 1
    if isinstance(classes, (list, tuple)) and len(classes) >= top and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return tuple(str(i) for i in range(top))


# ------------------------------------------------------------------------ functions


def _items(ds: Any, split: str, spec: str, param: str, keep: bool = True) -> tuple[list[_Image], list[int]]:
    """Every item of ``ds`` as images and labels; ``keep=False`` keeps only each image's shape (no pixels)."""
    images, labels = [], []
    for i in range(len(ds)):
        array, label, source = _item(ds, i, split, spec, param)
        images.append(_Image(array if keep else np.broadcast_to(np.uint8(0), array.shape), source))
        labels.append(label)
    return images, labels


def _from_datasets(train: Any, test: Any, spec: str, image_size: int | None, param: str,
                   in_memory: bool | None = None) -> RawData:
    """Images and labels of two datasets of (image, label): decoded now, or lazy sets (see ``in_memory``)."""
    from evonas import streaming

    if not streaming.hold_in_memory(lambda: dataset_bytes(train, spec, image_size, param), in_memory):
        return lazy_datasets(train, test, spec, image_size, param)
    tx, ty = _items(train, "train", spec, param)
    sx, sy = _items(test, "test", spec, param)
    classes = _class_names(getattr(train, "classes", None), np.asarray(ty), np.asarray(sy))
    return _assemble(tx, ty, sx, sy, classes, image_size, param)


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, (str, bytes))


def read_function(ref: str, *, image_size: int | None = None, param: str = "dataset",
                  in_memory: bool | None = None) -> RawData:
    """Call the function ``ref`` (``PATH.py:FUNC`` or ``package.module:FUNC``) and read its ``(train, test)``.

    ``FUNC()`` takes no arguments and returns two map-style datasets (``len`` and
    indexing) of ``(image, label)``: the image a PIL image, a uint8 array/tensor (C, H, W)
    or (H, W), or a float one in [0, 1]; the label a class index. Class names come from
    ``train.classes`` when it is a list of strings, else "0", "1", ... ``in_memory`` as
    in :func:`read_image_folder`; lazy items are read once now (labels, sizes, checks).

    Raises ConfigError (naming ``param``) when the reference cannot be loaded (see
    :func:`evonas.refs.load_object`), is not callable, raises, returns anything but two
    datasets, or yields an item that is not an (image, label) pair of the kinds above.
    """
    func: Callable[[], Any] = load_object(ref, param=param)
    if not callable(func):
        raise _err(f"The '{param}' parameter names {ref!r}, which is a {type(func).__name__}, not a function; "
                   "name a function returning (train, test) datasets.", param)
    try:
        result = func()
    except Exception as exc:
        raise _err(f"The '{param}' parameter names {ref!r}, whose call raised {type(exc).__name__}: {exc}; "
                   "fix the function.", param) from None
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and all(_is_dataset(d) for d in result)):
        got = f"a {type(result).__name__}" + (f" of {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise _err(f"The '{param}' parameter names {ref!r}, which returned {got}; it must return (train, test), two "
                   "datasets of (image, label) with len() and indexing.", param)
    return _from_datasets(result[0], result[1], ref, image_size, param, in_memory)


# ------------------------------------------------------------------ reading lazily (evonas.streaming)


def _header(path: Path, param: str):
    """A pixel-less :class:`evonas.datasets._Image` of ``path``'s channels and size, from its header."""
    from PIL import Image, UnidentifiedImageError


    try:
        with Image.open(path) as img:
            (w, h), mode = img.size, img.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _err(f"The '{param}' parameter names an image folder in which {path} cannot be read as an image "
                   f"({type(exc).__name__}: {exc}); replace or remove the file.", param) from None
    return _Image(np.broadcast_to(np.uint8(0), (1 if mode in _GRAY_MODES else 3, h, w)), str(path))


def folder_bytes(train_files: Sequence[tuple[Path, int]], image_size: int | None) -> int:
    """Estimated uint8 bytes of an image folder's training images, from the first one's header (0 if unreadable)."""
    if not train_files:
        return 0
    try:
        c, h, w = _header(train_files[0][0], "dataset").array.shape
    except ConfigError:
        return 0  # the in-memory reader names the file
    if image_size:
        h = w = image_size
    return len(train_files) * c * h * w


def dataset_bytes(train: Any, spec: str, image_size: int | None, param: str) -> int:
    """Estimated uint8 bytes of a dataset's training images, from its first item (0 when it has none)."""

    if len(train) == 0:
        return 0
    c, h, w = _item(train, 0, "train", spec, param)[0].shape
    if image_size:
        h = w = image_size
    return len(train) * c * h * w


def _shape(images: Sequence[Any], image_size: int | None) -> tuple[int, int]:
    h, w = images[0].array.shape[1:]
    return (image_size, image_size) if image_size else (h, w)


def lazy_image_folder(train_files: Sequence[tuple[Path, int]], test_files: Sequence[tuple[Path, int]],
                      classes: tuple[str, ...], image_size: int | None, param: str):
    """An image folder's :class:`evonas.datasets.RawData` of :class:`ImageFiles`: only headers are read now.

    The checks of the in-memory reader (both splits, one size, readable headers) run
    now; a file whose pixels cannot be decoded is named when it is first decoded.
    """

    from evonas.streaming import ImageFiles

    train = [_header(p, param) for p, _ in train_files]
    test = [_header(p, param) for p, _ in test_files]
    channels = _check_assembly(train, test, image_size, param)
    h, w = _shape(train, image_size)
    return RawData(ImageFiles([p for p, _ in train_files], channels, h, w, image_size, param),
                   _labels([c for _, c in train_files]),
                   ImageFiles([p for p, _ in test_files], channels, h, w, image_size, param),
                   _labels([c for _, c in test_files]), classes)


def lazy_datasets(train: Any, test: Any, spec: str, image_size: int | None, param: str):
    """Two datasets' :class:`evonas.datasets.RawData` of :class:`DatasetImages`.

    Every item is read once now, for its label and size and the in-memory reader's
    checks, and its pixels dropped; they are read again when indexed.
    """

    from evonas.streaming import DatasetImages

    tx, ty = _items(train, "train", spec, param, keep=False)
    sx, sy = _items(test, "test", spec, param, keep=False)
    classes = _class_names(getattr(train, "classes", None), np.asarray(ty), np.asarray(sy))
    channels = _check_assembly(tx, sx, image_size, param)
    h, w = _shape(tx, image_size)
    return RawData(DatasetImages(train, "train", spec, channels, h, w, image_size, param), _labels(ty),
                   DatasetImages(test, "test", spec, channels, h, w, image_size, param), _labels(sy), classes)
