"""ONNX export of a sub-network, its check against PyTorch, and an onnxruntime session.

The model has one input named ``input`` (``(batch, C, H, W)``) and one output named
``logits``, with a dynamic batch axis: a file exported from a batch-2 example runs at
batch 1, 3 or 256 alike. It is written with ``torch.onnx.export(..., dynamo=True)``,
the torch.export-based exporter (the TorchScript one is deprecated since torch 2.9 and
warns that it will be removed); the weights are stored inside the one ``.onnx`` file.

    path = export_onnx(module, torch.zeros(1, 1, 28, 28), "model.onnx")
    check_onnx(module, path)                       # max |onnxruntime - torch| at batch 1 and 3
    onnx_session(path, threads=1).run(None, {"input": x.numpy()})[0]
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from evonas.errors import ConfigError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def _check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"The 'threads' parameter must be an integer >= 1; got {threads!r}.", param="threads")
    return threads


ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # evonas's "onnx" extra


def require_onnx() -> None:
    """A one-line ConfigError naming evonas's ``onnx`` extra when a package of it is not installed."""
    from importlib.util import find_spec

    missing = [name for name in ONNX_PACKAGES if find_spec(name) is None]
    if missing:
        raise ConfigError(f"ONNX export and onnxruntime timing need {', '.join(missing)}, "
                          f"which {'is' if len(missing) == 1 else 'are'} not installed; "
                          "install evonas's onnx extra: pip install 'evonas[onnx]'")


def _import_ort():
    require_onnx()
    import onnxruntime

    return onnxruntime


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: str | Path, *, opset: int | None = None) -> Path:
    """Write ``module`` (in eval mode) as an ONNX model with a dynamic batch axis; returns the path.

    ``example`` is one input batch ``(B, C, H, W)``; only its shape after the batch axis
    matters. The file appears atomically (written beside it, then renamed). ``opset``
    picks the ONNX opset version (None: the exporter's default).
    """
    if example.dim() < 1:
        raise ConfigError(f"The 'example' parameter must be a batch with a leading batch axis; got shape {tuple(example.shape)}.", param="example")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ConfigError(f"The 'opset' parameter must be None or an integer >= 7; got {opset!r}.", param="opset")
    require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    # torch.export specialises a size-1 axis to the constant 1: export from a batch of 2
    if example.shape[0] < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    example = example.detach().to(torch.float32)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    tmp = path.with_name(path.name + ".partial")
    log = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(log), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's progress lines and deprecation notes
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=({0: batch},),
            external_data=False,
        )
        program.save(str(tmp), external_data=False)
    tmp.replace(path)
    return path


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU ``InferenceSession`` of ``path`` running on ``threads`` intra-op threads."""
    threads = _check_threads(threads)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No ONNX model at {path}; write one with export_onnx(module, example, path).")
    ort = _import_ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def check_onnx(module: torch.nn.Module, path: str | Path, example_batches: Sequence[int] = (1, 3), *, seed: int = 0) -> float:
    """The largest absolute difference between onnxruntime's and PyTorch's outputs.

    Runs random inputs at every batch size of ``example_batches`` (several sizes check
    the dynamic batch axis) through the exported file and through ``module`` in eval mode.
    """
    session = onnx_session(path, threads=1)
    shape = session.get_inputs()[0].shape[1:]
    if not all(isinstance(s, int) for s in shape):
        raise ConfigError(f"{path} has a dynamic axis other than the batch ({session.get_inputs()[0].shape}); export it with export_onnx.")
    generator = torch.Generator().manual_seed(seed)
    module = module.eval()
    worst = 0.0
    for b in example_batches:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError(f"The 'example_batches' parameter must hold integers >= 1; got {b!r}.", param="example_batches")
        x = torch.randn(b, *shape, generator=generator)  # (B, C, H, W)
        with torch.inference_mode():
            expected = module(x).float().numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        if got.shape != expected.shape:
            raise ConfigError(f"{path} returns shape {got.shape} at batch {b}; PyTorch returns {expected.shape}.")
        worst = max(worst, float(np.max(np.abs(got - expected))) if got.size else 0.0)
    return worst


def _compose_onnx(pieces: Sequence[Path], path: Path) -> None:
    """Chain ONNX models with one input ``input`` and one output ``logits`` into one model at ``path``.

    Piece k's names get the prefix ``pK/``; its input is the previous piece's output. The
    chained graph holds the same operators as the network exported whole, so onnxruntime
    optimises it alike (checked end to end by ``validate_latency`` on real exports).
    """
    import onnx
    from onnx import helper

    models = [onnx.load(str(p)) for p in pieces]
    nodes, inits, infos, functions = [], [], [], {}
    previous = INPUT_NAME
    for k, m in enumerate(models):
        last = k == len(models) - 1
        out = OUTPUT_NAME if last else f"p{k}/{OUTPUT_NAME}"

        def rename(name: str, k: int = k, prev: str = previous, out: str = out) -> str:
            if not name:
                return name  # an omitted optional input
            if name == INPUT_NAME:
                return prev
            if name == OUTPUT_NAME:
                return out
            return f"p{k}/{name}"

        g = m.graph
        for node in g.node:
            node = onnx.NodeProto.FromString(node.SerializeToString())
            node.input[:] = [rename(n) for n in node.input]
            node.output[:] = [rename(n) for n in node.output]
            node.name = f"p{k}/{node.name}"
            nodes.append(node)
        for init in g.initializer:
            init = onnx.TensorProto.FromString(init.SerializeToString())
            init.name = rename(init.name)
            inits.append(init)
        for vi in g.value_info:
            vi = onnx.ValueInfoProto.FromString(vi.SerializeToString())
            vi.name = rename(vi.name)
            infos.append(vi)
        for f in m.functions:
            functions.setdefault((f.domain, f.name), f)
        previous = out
    graph = helper.make_graph(nodes, "composed", [models[0].graph.input[0]], [models[-1].graph.output[0]],
                              initializer=inits, value_info=infos)
    opsets: dict[str, int] = {}
    for m in models:
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              functions=list(functions.values()))
    model.ir_version = max(m.ir_version for m in models)
    onnx.save(model, str(path))


def _identity_onnx(shape: tuple[int, ...], path: Path) -> None:
    """An ONNX model whose one node copies ``input`` (batch, *shape) to ``logits``."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["batch", *shape]
    graph = helper.make_graph(
        [helper.make_node("Identity", [INPUT_NAME], [OUTPUT_NAME])],
        "empty",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), str(path))
