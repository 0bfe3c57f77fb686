"""Decoding one image: files and dataset items to uint8 (C, H, W) arrays, with one-line errors.

The primitives that :mod:`evonas.datasets` (reading a user's data) and
:mod:`evonas.streaming` (decoding it on demand) share: an image file or a dataset item
becomes a uint8 array, 1 channel when grayscale and 3 (RGB) otherwise, optionally
resized to a square; an unreadable one is a :class:`~evonas.errors.ConfigError`
naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from evonas.errors import ConfigError

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")

def _err(message: str, param: str) -> ConfigError:
    return ConfigError(message, param=param)

class _Image:
    """One decoded image: uint8 array (C, H, W) with C 1 or 3, and where it came from."""

    __slots__ = ("array", "source")

    def __init__(self, array: np.ndarray, source: str) -> None:
        self.array = array
        self.source = source

def _from_pil(img: Any, source: str) -> np.ndarray:
    """A PIL image as uint8 (1, H, W) for grayscale modes, else (3, H, W) RGB."""
    if img.mode in _GRAY_MODES:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            a = np.asarray(img, dtype=np.float64)
            top = 65535.0 if img.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
            if img.mode == "F" and a.max(initial=0) <= 1.0:
                top = 1.0
            return np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)[None]
        return np.array(img.convert("L"), dtype=np.uint8)[None]
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))

def _from_array(image: Any, source: str, param: str) -> np.ndarray:
    """A tensor/array image, (C, H, W) with C 1 or 3 or (H, W), uint8 or float in [0, 1], as uint8 (C, H, W)."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise _err(f"The '{param}' parameter gives {source} with shape {tuple(a.shape)}; an image must be a PIL "
                   "image or an array/tensor of shape (C, H, W) with C 1 or 3, or (H, W).", param)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < -1e-6 or hi > 1 + 1e-6 or not np.isfinite(a).all():
            raise _err(f"The '{param}' parameter gives {source} as floats in [{lo:.3g}, {hi:.3g}]; float images must "
                       "be in [0, 1] (unnormalised: evonas normalises them itself), or give uint8.", param)
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 255:
            raise _err(f"The '{param}' parameter gives {source} as integers in [{lo}, {hi}]; integer images must be "
                       "in 0..255 (uint8).", param)
        return a.astype(np.uint8)
    raise _err(f"The '{param}' parameter gives {source} of dtype {a.dtype}; give uint8 or float in [0, 1].", param)

def _resize(a: np.ndarray, size: int) -> np.ndarray:
    """uint8 (C, H, W) resized to (C, size, size), bilinear with antialiasing."""
    if a.shape[1] == size and a.shape[2] == size:
        return a
    from torchvision.transforms.v2 import functional as F

    return F.resize(torch.from_numpy(np.ascontiguousarray(a)), [size, size], antialias=True).numpy()

def _decode_file(path: Path, param: str) -> _Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return _Image(_from_pil(img, str(path)), str(path))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _err(f"The '{param}' parameter names an image folder in which {path} cannot be read as an image "
                   f"({type(exc).__name__}: {exc}); replace or remove the file.", param) from None

def _label(label: Any, source: str, param: str) -> int:
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    elif isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or label < 0:
        raise _err(f"The '{param}' parameter gives {source} with label {label!r}; labels must be whole numbers "
                   ">= 0 (class indices).", param)
    return int(label)

def _item(ds: Any, i: int, split: str, spec: str, param: str) -> tuple[np.ndarray, int, str]:
    """Item ``i`` of ``ds`` as (uint8 image (C, H, W), label, "split item i of spec"); a bad item is a ConfigError."""
    from PIL import Image

    source = f"{split} item {i} of {spec}"
    try:
        item = ds[i]
    except Exception as exc:
        raise _err(f"The '{param}' parameter gives {split} data whose item {i} raised {type(exc).__name__}: {exc}; "
                   f"fix {spec}.", param) from None
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise _err(f"The '{param}' parameter gives {source} as {type(item).__name__}; each item must be an "
                   "(image, label) pair.", param)
    image, label = item[0], item[1]
    if isinstance(image, Image.Image):
        array = _from_pil(image, source)
    elif isinstance(image, (torch.Tensor, np.ndarray)):
        array = _from_array(image, source, param)
    else:
        raise _err(f"The '{param}' parameter gives {source} with an image of type {type(image).__name__}; give "
                   "a PIL image, or a uint8 / [0, 1] float array or tensor (C, H, W) or (H, W).", param)
    return array, _label(label, source, param), source
