"""The device a latency table belongs to.

A table belongs to the device that built it: :func:`describe_device` digests the CPU
model, threads, batch size and backend into a ``device_key``, and
``LatencyTable.check_device`` refuses a table built under another key unless told to
allow it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform

import torch

from evonas.latency.params import BACKENDS, _choice_param, _int_param

__all__ = ["KEY_FIELDS", "describe_device", "device_key"]

# the fields of describe_device() that decide timings; their digest is the device_key
KEY_FIELDS = ("cpu_model", "threads", "batch_size", "backend")


def _cpu_model() -> str:
    from evonas.device import device_name

    return device_name("cpu")


def _ort_version() -> str | None:
    from importlib import metadata

    try:  # the installed version, without importing onnxruntime
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return None


def describe_device(threads: int, batch_size: int, backend: str, device: str = "cpu", precision: str = "fp32") -> dict:
    """What decides a timing here: the CPU (or GPU), threads, batch size and backend, with their digest.

    ``device_key`` is a short digest of ``cpu_model``, ``threads``, ``batch_size`` and
    ``backend`` (and ``gpu_model`` for a table timed on a GPU); the package versions and
    core count are recorded for the reader.
    """
    threads = _int_param("threads", threads, 1)
    batch_size = _int_param("batch_size", batch_size, 1)
    backend = _choice_param("backend", backend, BACKENDS)
    info = {
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "threads": threads,
        "batch_size": batch_size,
        "backend": backend,
        "torch": torch.__version__,
        "onnxruntime": _ort_version(),
        "python": platform.python_version(),
    }
    if precision != "fp32":  # timed under autocast: a setting of its own (fp32 tables keep their keys)
        info["precision"] = precision
    if torch.device(device).type == "cuda":
        info.update(device=str(device), gpu_model=torch.cuda.get_device_name(torch.device(device)),
                    cuda=torch.version.cuda)
    info["device_key"] = device_key(info)
    return info


def device_key(description: dict) -> str:
    """The 12-hex-digit digest of the timing-deciding fields of a device description."""
    fields = {k: description.get(k) for k in KEY_FIELDS}
    for extra in ("gpu_model", "precision"):  # only when set: CPU fp32 tables keep the key they always had
        if description.get(extra):
            fields[extra] = description[extra]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _device_line(d: dict) -> str:
    where = f"{d['gpu_model']} GPU" if d.get("gpu_model") else d.get("cpu_model")
    return (
        f"{d.get('device_key')} ({where}, {d.get('threads')} thread(s), "
        f"batch {d.get('batch_size')}, {d.get('backend')})"
    )
