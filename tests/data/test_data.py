"""Dataset loading: IDX and CIFAR readers on files made here, splits, and missing-data errors."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from evonas.data import FMNIST_FILES, load_splits
from evonas.errors import ConfigError, DatasetMissingError


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fmnist(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / FMNIST_FILES["train_x"], rng.integers(0, 255, (300, 28, 28)))
    _write_idx(tmp_path / FMNIST_FILES["train_y"], np.arange(300) % 10)
    _write_idx(tmp_path / FMNIST_FILES["test_x"], rng.integers(0, 255, (50, 28, 28)))
    _write_idx(tmp_path / FMNIST_FILES["test_y"], np.arange(50) % 10)
    return tmp_path


def test_fmnist_reader_and_seeded_split(fake_fmnist):
    a = load_splits("fmnist", root=fake_fmnist, val_size=100, seed=1)
    b = load_splits("fmnist", root=fake_fmnist, val_size=100, seed=1)
    c = load_splits("fmnist", root=fake_fmnist, val_size=100, seed=2)
    assert a.train_x.shape == (200, 1, 28, 28) and a.val_x.shape == (100, 1, 28, 28) and a.test_x.shape == (50, 1, 28, 28)
    assert a.train_x.dtype.is_floating_point is False
    assert np.array_equal(a.val_x.numpy(), b.val_x.numpy())
    assert not np.array_equal(a.val_x.numpy(), c.val_x.numpy())
    # train and validation are disjoint and together are the whole training set
    rows = {tuple(r) for r in a.train_x.reshape(200, -1).numpy().tolist()} | {tuple(r) for r in a.val_x.reshape(100, -1).numpy().tolist()}
    assert len(rows) == 300
    assert load_splits("fmnist", root=fake_fmnist, val_size=100, train_limit=50).train_x.shape[0] == 50


def test_missing_fmnist_says_how_to_install(tmp_path):
    with pytest.raises(DatasetMissingError, match="apt-get install -y dataset-fashion-mnist"):
        load_splits("fmnist", root=tmp_path)


def test_cifar_needs_a_root_and_reads_python_batches(tmp_path):
    with pytest.raises(DatasetMissingError, match="never downloaded"):
        load_splits("cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}, fh)
    splits = load_splits("cifar10", root=tmp_path, val_size=30)
    assert splits.train_x.shape == (70, 3, 32, 32) and splits.test_x.shape == (20, 3, 32, 32)


def test_bad_values_name_the_option():
    with pytest.raises(ConfigError, match="The 'val_size' parameter must be between 1 and"):
        load_splits("synthetic", val_size=10**6)
    with pytest.raises(ConfigError, match="The 'dataset' parameter must be one of"):
        load_splits("imagenet")
