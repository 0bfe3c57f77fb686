"""Architecture encodings read from the space description, and the no-torch guarantee."""

from __future__ import annotations

import math
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest

from predictors import ArchEncoder
from search_spaces import get_space, list_spaces


def test_nb201_features():
    space = get_space("nb201")
    enc = ArchEncoder(space)
    assert enc.feature_names[:5] == ["e10=none", "e10=skip_connect", "e10=nor_conv_1x1", "e10=nor_conv_3x3", "e10=avg_pool_3x3"]
    assert "count_nor_conv_3x3" in enc.feature_names and enc.feature_names[-2:] == ["log_flops", "log_params"]
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    row = enc.transform([arch])[0]
    onehot = row[: 6 * 5].reshape(6, 5)
    assert np.all(onehot.sum(axis=1) == 1)
    assert row[enc.index_of("count_nor_conv_3x3")] == 3 and row[enc.index_of("count_skip_connect")] == 2
    assert row[enc.index_of("log_flops")] == pytest.approx(math.log(space.cost(arch).flops))
    assert row[enc.index_of("log_params")] == pytest.approx(math.log(space.cost(arch).params))


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_encodes(name):
    space = get_space(name)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(5)]
    enc = ArchEncoder(space)
    X = enc.transform(archs)
    assert X.shape == (5, enc.n_features) and np.all(np.isfinite(X))
    assert len(set(enc.feature_names)) == enc.n_features
    n_onehot = sum(len(d.options) for d in space.dims)
    assert np.all(X[:, :n_onehot].sum(axis=1) == len(space.dims))


def test_chain_counts_per_stage():
    space = get_space("macro-cifar10")
    enc = ArchEncoder(space, parts=("counts",))
    arch = space.parse("02012100")  # stages of 2, 3 and 3 layers
    row = dict(zip(enc.feature_names, enc.transform([arch])[0]))
    assert row["count_s0_id"] == 1 and row["count_s0_mb6_k5"] == 1
    assert row["count_s1_id"] == 1 and row["count_s1_mb3_k3"] == 1 and row["count_s1_mb6_k5"] == 1
    assert row["count_s2_mb3_k3"] == 1 and row["count_s2_id"] == 2
    assert sum(row.values()) == 8


def test_extra_columns_and_pickle():
    space = get_space("macro-fmnist")
    enc = ArchEncoder(space, extra_names=("supernet_score",))
    archs = [space.parse("12012200"), space.parse("00000000")]
    X = enc.transform(archs, extra={"supernet_score": [81.5, 70.0]})
    assert enc.index_of("supernet_score") == X.shape[1] - 1 and X[0, -1] == 81.5
    with pytest.raises(ValueError, match="missing"):
        enc.transform(archs)
    with pytest.raises(ValueError, match="parts"):
        ArchEncoder(space, parts=("onehot", "graph"))
    again = pickle.loads(pickle.dumps(enc))
    assert again.feature_names == enc.feature_names and again.space is space


def test_importing_predictors_and_spaces_does_not_import_torch():
    code = (
        "import sys, predictors, search_spaces, predictors.benchmark\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
