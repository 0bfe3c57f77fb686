"""Export: a sub-network as a standalone PyTorch module with the inherited weights.

Each export directory holds::

    model.pt2        torch.export program: torch.export.load(path).module()(x) runs it
    state_dict.pt    the weights, for evonas.supernet.chain.build_standalone(space, arch)
    model.onnx       with formats including "onnx": dynamic batch axis, checked against PyTorch
    metrics.json     architecture, FLOPs, params, accuracies, provenance, latency (predicted and measured)

The BN statistics are recalibrated for the architecture (as in scoring) before the
weights are copied, so the module gives the accuracy the supernet reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from search_spaces import Arch

from evonas.run.config import write_json_atomic

FORMATS = ("torch", "onnx")
PROGRAM = "model.pt2"
ONNX = "model.onnx"
WEIGHTS = "state_dict.pt"
METRICS = "metrics.json"


def save_module(module: torch.nn.Module, example: torch.Tensor, out_dir: Path) -> None:
    """Save ``module`` as a torch.export program with a dynamic batch size, and its weights."""
    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    tmp = out_dir / ("partial-" + PROGRAM)
    torch.export.save(program, tmp)
    tmp.replace(out_dir / PROGRAM)
    torch.save(module.state_dict(), out_dir / WEIGHTS)


def measure_latency(space, table, arch: Arch, module: torch.nn.Module, *, repeats: int = 30,
                    limit_ms: float | None = None) -> dict:
    """Predicted (the device table) and measured latency of one exported module, in the table's setting.

    ``spread`` is (p90 - p10) / median of the repeats: a large one says the machine was
    busy and the measurement is loose. With ``limit_ms`` the result says whether the
    measured latency is within it.
    """
    from evonas.latency.validate import validate_latency

    rep = validate_latency(space, table, [arch], module_factory=lambda _: module, warmup=5, repeats=repeats, drift=False)
    row = rep["archs"][0]
    out = {"predicted_ms": round(row["predicted_ms"], 5), "measured_ms": round(row["measured_ms"], 5),
           "error_pct": round(row["error_pct"], 2), "spread": round(float(row.get("spread", float("nan"))), 4),
           "backend": table.settings.get("backend"), "batch_size": table.settings.get("batch_size"),
           "threads": table.settings.get("threads"), "device": table.device.get("device_key")}
    if limit_ms is not None:
        out.update(limit_ms=float(limit_ms), within_limit=bool(row["measured_ms"] <= limit_ms))
    return out


def export_arch(run_dir: str | Path, arch: Arch | str, out_dir: str | Path, metrics: dict | None = None, *, evaluator=None,
                formats: tuple[str, ...] = ("torch",), latency=None, latency_limit_ms: float | None = None) -> Path:
    """Export ``arch`` of the supernet in ``run_dir`` to ``out_dir``; returns ``out_dir``.

    ``evaluator`` (a :class:`~evonas.evaluation.scoring.SupernetEvaluator`) is reused when given,
    so exporting many architectures loads the supernet and data once. ``formats`` adds
    ``model.onnx`` with "onnx"; ``latency`` (the run's device table) adds the predicted
    and the measured latency of the exported module to metrics.json, and
    ``latency_limit_ms`` whether the measured one is within that limit.
    """
    from evonas.evaluation.scoring import SupernetEvaluator

    ev = evaluator or SupernetEvaluator.from_run(run_dir)
    space = ev.space
    arch = ev.canonical(space.coerce(arch))  # the path that was scored: every spelling exports one network
    ev.prepare(arch)  # recalibrate BN for this path before copying
    module = ev.model.extract(arch).cpu().eval()  # saved and checked on the CPU, wherever it was recalibrated
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from evonas.supernet import input_shape

    shape = input_shape(space)
    example = torch.zeros(2, *shape)
    save_module(module, example, out_dir)
    extra: dict = {}
    if "onnx" in formats:
        from evonas.export.onnx import check_onnx, export_onnx

        export_onnx(module, example, out_dir / ONNX)
        extra["onnx"] = {"file": ONNX, "max_abs_diff_vs_torch": check_onnx(module, out_dir / ONNX)}
    if latency is not None:
        extra["latency"] = measure_latency(space, latency, arch, module, limit_ms=latency_limit_ms)
    cost = space.cost(arch)
    record = {
        "arch": str(arch),
        "canonical": str(space.canonical(arch)),
        "space": space.name,
        "flops": cost.flops,
        "params": cost.params,
        "input_shape": list(shape),
        "mean": list(ev.splits.mean),
        "std": list(ev.splits.std),
        "load": f"torch.export.load('{PROGRAM}').module()(x) with x normalised by mean/std (0..1 pixel scale)",
        "provenance": ev.provenance(),
        **extra,
        **(metrics or {}),
    }
    write_json_atomic(out_dir / METRICS, record)
    return out_dir


def load_exported(out_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """Load an export directory: the runnable module and its metrics."""
    out_dir = Path(out_dir)
    module = torch.export.load(out_dir / PROGRAM).module()
    return module, json.loads((out_dir / METRICS).read_text())
