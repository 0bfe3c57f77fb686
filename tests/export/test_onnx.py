"""ONNX export: onnxruntime gives PyTorch's outputs at several batch sizes from one file."""

from __future__ import annotations

import pytest
import torch

from search_spaces import get_space

from evonas.errors import ConfigError
from evonas.export.onnx import INPUT_NAME, OUTPUT_NAME, check_onnx, export_onnx, onnx_session
from evonas.supernet.chain import build_standalone


@pytest.mark.parametrize("space_name, arch", [("macro-fmnist", "12012200"), ("mobilenet-fmnist", "1634225010306201")])
def test_export_matches_pytorch_with_dynamic_batch(tmp_path, space_name, arch):
    space = get_space(space_name)
    torch.manual_seed(0)
    module = build_standalone(space, space.parse(arch)).eval()
    net = space.net
    path = export_onnx(module, torch.zeros(1, net.in_channels, net.image_size, net.image_size), tmp_path / "m" / "model.onnx")
    assert path == tmp_path / "m" / "model.onnx" and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # weights inside, no partial file left
    assert check_onnx(module, path, example_batches=(1, 3)) < 1e-4
    session = onnx_session(path, threads=1)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == INPUT_NAME and out.name == OUTPUT_NAME
    assert not isinstance(inp.shape[0], int) and inp.shape[1:] == [net.in_channels, net.image_size, net.image_size]
    x = torch.randn(5, net.in_channels, net.image_size, net.image_size)
    assert session.run(None, {INPUT_NAME: x.numpy()})[0].shape == (5, net.num_classes)


def test_bad_parameters(tmp_path):
    with pytest.raises(ConfigError, match="'threads' parameter must be an integer >= 1; got 0"):
        onnx_session(tmp_path / "x.onnx", threads=0)
    with pytest.raises(ConfigError, match="No ONNX model at .*x.onnx"):
        onnx_session(tmp_path / "x.onnx", threads=1)
    with pytest.raises(ConfigError, match="'opset' parameter"):
        export_onnx(torch.nn.Identity(), torch.zeros(1, 1, 4, 4), tmp_path / "x.onnx", opset=3)
