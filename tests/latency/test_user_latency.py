"""Latency tables of your own model: one entry per choice and option, timed at the choice's input."""

from __future__ import annotations

import pytest

from evonas.errors import ConfigError
from evonas.latency.build import build_latency_table
from evonas.latency.validate import validate_latency
from evonas.spaces import resolve_space

MODEL = '''
from torch import nn
from evonas.nn import Choice


class Twice(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.b(self.a(x).relu())


def build(in_channels=1, num_classes=4, image_size=12):
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        Choice({"conv": nn.Conv2d(8, 8, 3, padding=1), "twice": Twice(8), "skip": nn.Identity()}, label="a"),
        nn.MaxPool2d(2),
        Choice([nn.Conv2d(8, 8, 1), nn.Identity()], label="b"),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
'''


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "lat_model.py"
    path.write_text(MODEL)
    return resolve_space(f"{path}:build", {"in_channels": 1, "num_classes": 4, "image_size": 12})


def test_a_table_has_an_entry_per_choice_and_option_at_the_choices_input(space):
    table = build_latency_table(space, warmup=1, repeats=5, progress=False, fit_seconds=0)
    assert {(e.layer, e.code) for e in table.entries} == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)}
    shapes = {(e.layer, e.code): tuple(e.input_shape) for e in table.entries}
    assert shapes[(0, 1)] == (1, 8, 12, 12) and shapes[(1, 0)] == (1, 8, 6, 6)  # after the pooling
    skipped = [e for e in table.entries if not e.measured]
    assert {(e.layer, e.code) for e in skipped} == {(0, 2), (1, 1)}  # identities vanish: 0 ms, not timed
    assert table.fit is None  # 6 networks: too few to fit, the isolated table stays
    assert table.predict(space.parse("a=twice,b=conv2d")) > table.predict(space.parse("a=skip,b=identity"))
    report = validate_latency(space, table, [space.parse("a=conv,b=conv2d"), space.parse("a=twice,b=identity")],
                              warmup=1, repeats=5, drift=False)
    assert report["samples"] == 2 and all(r["measured_ms"] > 0 for r in report["archs"])


def test_onnxruntime_and_components_are_refused_for_your_model(space):
    with pytest.raises(ConfigError, match="'backend' parameter must be 'eager'"):
        build_latency_table(space, backend="onnxruntime", progress=False)
    with pytest.raises(ConfigError, match="'overhead' parameter must be 'residual'"):
        build_latency_table(space, overhead="components", progress=False)
