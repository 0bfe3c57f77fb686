"""Image sets too large for memory: decoded on demand and streamed through a DataLoader.

A user's data (an image folder, or datasets of (image, label) that are not arrays) is
held in memory as uint8 tensors when its training images are small
(:func:`hold_in_memory`, :data:`MEMORY_BUDGET_BYTES`), else as a :class:`LazyImages`:
:class:`ImageFiles` (a file per image) or :class:`DatasetImages` (items of a dataset).
A lazy set knows its length, shape (N, C, H, W) and labels' order, and indexes like a
tensor (``x[i]``, ``x[idx_tensor]``, ``x[a:b]`` decode and stack those images into
uint8), so code written for tensors keeps working on it.

:func:`stream_batches` (what :func:`evonas.data.batches` does for a lazy set) decodes
batches in DataLoader workers in exactly the order the in-memory path would take, so a
seeded epoch gives the same batches either way; :func:`gather` and :func:`take` pick
images by index. A file that cannot be decoded while streaming is one ConfigError
naming it.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from evonas.errors import ConfigError

__all__ = [
    "DatasetImages", "ImageFiles", "LazyImages", "MEMORY_BUDGET_BYTES", "MEMORY_FRACTION", "default_workers", "gather",
    "hold_in_memory", "is_lazy", "memory_budget", "stream_batches", "take",
]

# Training images of at most this many bytes (uint8 N*C*H*W), and at most this share of
# the memory available when the data is read, are held in memory; larger ones stream.
MEMORY_BUDGET_BYTES = 2 * 1024**3
MEMORY_FRACTION = 0.25


def memory_budget() -> int:
    """Bytes of images held in memory: min(:data:`MEMORY_BUDGET_BYTES`, :data:`MEMORY_FRACTION` of available RAM)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return MEMORY_BUDGET_BYTES
    return int(min(MEMORY_BUDGET_BYTES, available * MEMORY_FRACTION))


def hold_in_memory(nbytes: int | Callable[[], int], in_memory: bool | None) -> bool:
    """Whether images of ``nbytes`` (or ``nbytes()``, called only when needed) are decoded into memory.

    ``in_memory`` when it is True or False, else (None) whether ``nbytes`` is below
    :func:`memory_budget`.
    """
    if in_memory is not None and not isinstance(in_memory, bool):
        raise ConfigError(f"The 'in_memory' parameter must be True, False or None (automatic); got {in_memory!r}.",
                          param="in_memory")
    if in_memory is not None:
        return in_memory
    return (nbytes() if callable(nbytes) else nbytes) < memory_budget()


def default_workers() -> int:
    """DataLoader worker processes by default: min(4, CPUs this process may use - 1), 0 on one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus - 1))


class LazyImages:
    """uint8 images (N, C, H, W) decoded on demand; subclasses say how to read source ``i``.

    ``index`` maps positions to sources, so :meth:`subset` (a split of the set) copies
    no pixels. Indexing with an int gives one (C, H, W) image; with a slice, an int
    tensor/array/list or a bool mask, a (B, C, H, W) stack, like a tensor would.
    Every image is turned into the set's channels (gray repeated into RGB) and resized
    to ``image_size`` (when set) exactly as the in-memory path does.
    """

    dtype = torch.uint8

    def __init__(self, count: int, channels: int, height: int, width: int, image_size: int | None, param: str) -> None:
        self.index = np.arange(count, dtype=np.int64)
        self.image_shape = (channels, height, width)
        self.image_size = image_size
        self.param = param

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.image_shape))

    def __len__(self) -> int:
        return len(self.index)

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def dim(self) -> int:
        return 4

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.shape)})"

    def subset(self, key: Any) -> "LazyImages":
        """The images at ``key`` (as for indexing) as a lazy set of their own; nothing is decoded."""
        out = copy.copy(self)
        out.index = self.index[self._positions(key)]
        return out

    def _positions(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(len(self.index))[key]
        if isinstance(key, torch.Tensor):
            key = key.detach().cpu().numpy()
        key = np.asarray(key)
        if key.dtype == np.bool_:
            return np.flatnonzero(key)
        if key.dtype.kind not in "iu":
            raise TypeError(f"{type(self).__name__} indices must be integers, slices or bool masks; got {key.dtype}")
        return key.reshape(-1).astype(np.int64)

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.dim() == 0):
            return torch.from_numpy(self.image(int(self.index[int(key)])))
        sources = self.index[self._positions(key)]
        if not len(sources):
            return torch.zeros((0, *self.image_shape), dtype=torch.uint8)
        return torch.from_numpy(np.stack([self.image(int(i)) for i in sources]))

    def image(self, source: int) -> np.ndarray:
        """Source ``source`` decoded to uint8 (C, H, W) in the set's channels and size."""
        from evonas.images import _resize

        array, name = self.read(source)
        channels = self.image_shape[0]
        if array.shape[0] == 1 and channels == 3:
            array = np.repeat(array, 3, axis=0)
        if self.image_size:
            array = _resize(array, self.image_size)
        if array.shape != self.image_shape:
            c, h, w = array.shape
            raise ConfigError(f"The '{self.param}' parameter gives {name}, which is now {w}x{h} (WxH) with {c} "
                              f"channel(s) but was {self.image_shape[2]}x{self.image_shape[1]} with "
                              f"{self.image_shape[0]} when the data was read; do not change the data during a run.",
                              param=self.param)
        return array

    def read(self, source: int) -> tuple[np.ndarray, str]:
        """Source ``source`` as uint8 (C, H, W) with C 1 or 3, before resizing, and its name for errors."""
        raise NotImplementedError


class ImageFiles(LazyImages):
    """Image files decoded on demand (read like :func:`evonas.datasets.read_image_folder` reads them)."""

    def __init__(self, paths: Sequence[str | Path], channels: int, height: int, width: int, image_size: int | None,
                 param: str) -> None:
        super().__init__(len(paths), channels, height, width, image_size, param)
        self.paths = [str(p) for p in paths]

    def read(self, source: int) -> tuple[np.ndarray, str]:
        from evonas.images import _decode_file

        path = self.paths[source]
        return _decode_file(Path(path), self.param).array, path


class DatasetImages(LazyImages):
    """The images of a map-style dataset of (image, label), converted on demand (``ds[i]`` each time)."""

    def __init__(self, ds: Any, split: str, spec: str, channels: int, height: int, width: int,
                 image_size: int | None, param: str) -> None:
        super().__init__(len(ds), channels, height, width, image_size, param)
        self.ds, self.split, self.spec = ds, split, spec

    def read(self, source: int) -> tuple[np.ndarray, str]:
        from evonas.images import _item

        array, _, name = _item(self.ds, source, self.split, self.spec, self.param)
        return array, name


def is_lazy(x: Any) -> bool:
    return isinstance(x, LazyImages)


# ------------------------------------------------------------------ reading lazily


# ---------------------------------------------------------------------- streaming


class _Failure:
    """A ConfigError met in a worker, carried to the main process as data (re-raised there as one line)."""

    def __init__(self, message: str, param: str | None) -> None:
        self.message, self.param = message, param


class _Fetch(torch.utils.data.Dataset):
    """Batch fetcher for the DataLoader: ``fetch[idx]`` is ``(x[idx], y[idx])`` for an index tensor ``idx``."""

    def __init__(self, x: LazyImages, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: torch.Tensor):
        try:
            return self.x[idx], self.y[idx]
        except ConfigError as exc:
            return _Failure(str(exc), exc.param)


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"The 'workers' parameter must be a whole number >= 0 (0 decodes in this process) or None; "
                          f"got {workers!r}.", param="workers")
    return workers


def stream_batches(x: LazyImages, y: torch.Tensor, order: torch.Tensor, batch_size: int, stop: int, *,
                   workers: int | None = None, pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x[idx], y[idx])`` for ``idx = order[i:i + batch_size]``, i = 0, batch_size, ... < ``stop``.

    The batches are decoded by a DataLoader with ``workers`` processes (None:
    :func:`default_workers`; 0: in this process, as always in a daemonic process), pinned
    when ``pin_memory`` and CUDA is there, no persistent workers; they come in order. The DataLoader draws its seeds
    from a private generator, so the global RNG is left as the in-memory path leaves it.
    A decode error becomes one ConfigError naming the file (or item).
    """
    chunks = [order[i:i + batch_size] for i in range(0, stop, batch_size)]
    if not chunks:
        return
    workers = min(_check_workers(workers), len(chunks))
    if multiprocessing.current_process().daemon:
        workers = 0  # a daemonic process (a scoring pool's worker) may not start processes of its own
    loader = torch.utils.data.DataLoader(
        _Fetch(x, y), batch_size=None, sampler=chunks, num_workers=workers,
        pin_memory=bool(pin_memory) and torch.cuda.is_available(), persistent_workers=False,
        generator=torch.Generator().manual_seed(0),
    )
    for item in loader:
        if isinstance(item, _Failure):
            raise ConfigError(item.message, param=item.param)
        yield item


def gather(x: Any, idx: torch.Tensor, *, batch_size: int = 256, workers: int | None = None) -> torch.Tensor:
    """``x[idx]`` as a uint8 tensor; a lazy ``x`` is decoded in DataLoader workers, ``batch_size`` images at a time."""
    if not is_lazy(x):
        return x[idx]
    idx = torch.as_tensor(idx, dtype=torch.int64).reshape(-1)
    parts = [xb for xb, _ in stream_batches(x, torch.zeros(len(x), dtype=torch.int64), idx, batch_size, len(idx),
                                            workers=workers)]
    return torch.cat(parts) if parts else torch.zeros((0, *x.shape[1:]), dtype=torch.uint8)


def take(x: Any, idx: Any) -> Any:
    """The images of ``x`` at ``idx``: a contiguous tensor for a tensor, a lazy subset (nothing decoded) for a lazy
    set."""
    return x.subset(idx) if is_lazy(x) else x[idx].contiguous()
