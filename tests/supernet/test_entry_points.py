"""Spaces an installed package registers under the entry point group ``evonas.spaces``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PACKAGE = '''
from torch import nn
from evonas.nn import Choice


def tiny(in_channels=1, num_classes=10, image_size=16):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1),
                         Choice({"conv": nn.Conv2d(8, 8, 3, padding=1), "skip": nn.Identity()}, label="mid"),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
'''


def installed(tmp_path: Path) -> dict[str, str]:
    """An environment where a package 'myspaces' is installed (a dist-info folder on the path) with one space."""
    site = tmp_path / "site"
    (site / "myspaces").mkdir(parents=True)
    (site / "myspaces" / "__init__.py").write_text(PACKAGE)
    info = site / "myspaces-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myspaces\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[evonas.spaces]\ntiny-net = myspaces:tiny\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "OMP_NUM_THREADS": "1"}


def evonas(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evonas", *argv], env=env, capture_output=True, text=True, timeout=300)


def test_an_installed_space_is_listed_and_profiled_by_its_name(tmp_path):
    env = installed(tmp_path)
    listed = evonas(env, "spaces")
    assert listed.returncode == 0, listed.stderr
    assert "tiny-net: installed, myspaces:tiny" in listed.stdout
    assert "macro-fmnist" in listed.stdout
    done = evonas(env, "profile", "--space", "tiny-net", "--arch", "mid=conv", "--check", "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["flops"] == row["measured_flops"] > 0
    wrong = evonas(env, "profile", "--space", "tiny-net", "--arch", "mid=pool")
    assert wrong.returncode == 2 and "no option 'pool'" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
