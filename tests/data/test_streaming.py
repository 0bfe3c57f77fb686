"""Streaming data: lazy image sets give the same batches, statistics, weights and scores as in-memory data.

An image folder (and a function's datasets) loaded with ``in_memory=False`` holds
:class:`evonas.streaming.LazyImages` that decode on demand; ``batches`` streams them
through a DataLoader in the in-memory order. The automatic rule streams above
:func:`evonas.streaming.memory_budget`, which tests shrink by monkeypatching
``MEMORY_BUDGET_BYTES``.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from tests.imagefolder import make_image_folder

from evonas import streaming
from evonas.data import batches, load_splits
from evonas.errors import ConfigError
from evonas.streaming import DatasetImages, ImageFiles, LazyImages

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("streaming") / "images", classes=3, per_class=20)


def load(folder: Path, in_memory: bool | None, **kwargs):
    return load_splits(f"imagefolder:{folder}", val_size=0.2, seed=1, in_memory=in_memory, **kwargs)


def all_batches(x, y, seed: int, **kwargs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(batches(x, y, 7, generator=torch.Generator().manual_seed(seed), **kwargs))


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b) > 0
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xb.dtype == torch.uint8 and torch.equal(xa, xb) and torch.equal(ya, yb)


def assert_same_splits(memory, lazy) -> None:
    assert isinstance(memory.train_x, torch.Tensor) and isinstance(lazy.train_x, LazyImages)
    for part in ("train", "val", "test"):
        (xm, ym), (xl, yl) = memory.split(part), lazy.split(part)
        assert xl.shape == xm.shape and len(xl) == len(xm)
        assert torch.equal(xl[:], xm) and torch.equal(ym, yl)
    assert (lazy.mean, lazy.std, lazy.classes, lazy.num_classes) == (memory.mean, memory.std, memory.classes,
                                                                    memory.num_classes)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_in_memory_batches(folder, workers):
    memory, lazy = load(folder, True), load(folder, False)
    assert_same_splits(memory, lazy)
    for drop_last in (True, False):
        assert_same_batches(all_batches(memory.train_x, memory.train_y, 5, drop_last=drop_last),
                            all_batches(lazy.train_x, lazy.train_y, 5, drop_last=drop_last, workers=workers))
    # unshuffled (evaluation) and pinned batches too
    assert_same_batches(list(batches(memory.val_x, memory.val_y, 4)),
                        list(batches(lazy.val_x, lazy.val_y, 4, workers=workers, pin_memory=True)))


def test_streaming_leaves_the_global_rng_as_the_in_memory_path_does(folder):
    lazy = load(folder, False)
    torch.manual_seed(0)
    all_batches(lazy.train_x, lazy.train_y, 5, workers=1)
    after_stream = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3), after_stream)


def test_lazy_sets_index_like_tensors(folder):
    memory, lazy = load(folder, True), load(folder, False)
    x, m = lazy.train_x, memory.train_x
    assert isinstance(x, ImageFiles) and x.dtype == torch.uint8 and x.dim() == 4 and x.numel() == m.numel()
    assert torch.equal(x[3], m[3]) and torch.equal(x[-1], m[-1]) and torch.equal(x[torch.tensor(2)], m[2])
    idx = torch.tensor([5, 0, 5, 9])
    assert torch.equal(x[idx], m[idx]) and torch.equal(x[idx.numpy()], m[idx]) and torch.equal(x[[1, 2]], m[[1, 2]])
    assert torch.equal(x[2:9:3], m[2:9:3]) and x[:0].shape == (0, *m.shape[1:])
    mask = torch.arange(len(m)) % 3 == 0
    assert torch.equal(x[mask], m[mask])
    sub = x.subset(torch.tensor([4, 1]))
    assert isinstance(sub, ImageFiles) and sub.shape == (2, *m.shape[1:]) and torch.equal(sub[:], m[[4, 1]])
    assert torch.equal(streaming.gather(x, idx, batch_size=3, workers=0), m[idx])


def test_the_automatic_rule_streams_above_the_memory_budget(folder, monkeypatch):
    assert isinstance(load(folder, None).train_x, torch.Tensor)  # a few KB: held in memory
    monkeypatch.setattr(streaming, "MEMORY_BUDGET_BYTES", 1000)
    assert streaming.memory_budget() == 1000
    auto = load(folder, None)
    assert isinstance(auto.train_x, ImageFiles) and isinstance(auto.test_x, ImageFiles)
    assert isinstance(load(folder, True).train_x, torch.Tensor)  # forcing wins over the budget
    with pytest.raises(ConfigError, match="'in_memory' parameter must be True, False or None"):
        load(folder, "yes")


def test_resized_rgb_folder_streams_the_same_images(tmp_path):
    images = make_image_folder(tmp_path / "rgb", classes=2, per_class=8, split=False, rgb=True)
    memory, lazy = load(images, True, image_size=20), load(images, False, image_size=20)
    assert lazy.train_x.shape[1:] == (3, 20, 20)
    assert_same_splits(memory, lazy)


DATA_FILE = '''
import numpy as np, torch
from PIL import Image

class Items:
    def __init__(self, n, offset):
        self.n, self.offset, self.classes = n, offset, ["a", "b", "c"]
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        rng = np.random.default_rng(i + self.offset)
        if i % 3 == 0:
            return Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)), i % 3
        if i % 3 == 1:
            return torch.from_numpy(rng.random((1, 12, 10)).astype(np.float32)), torch.tensor(i % 3)
        return rng.integers(0, 256, (3, 12, 10), dtype=np.uint8), np.int64(i % 3)

def load():
    return Items(30, 0), Items(9, 1000)
'''


def test_function_datasets_stream_the_same_images(tmp_path):
    (tmp_path / "my_data.py").write_text(DATA_FILE)
    spec = f"{tmp_path / 'my_data.py'}:load"
    memory = load_splits(spec, val_size=0.2, in_memory=True, image_size=8)
    lazy = load_splits(spec, val_size=0.2, in_memory=False, image_size=8)
    assert isinstance(lazy.train_x, DatasetImages) and lazy.train_x.shape[1:] == (3, 8, 8)
    assert_same_splits(memory, lazy)
    assert_same_batches(all_batches(memory.train_x, memory.train_y, 2),
                        all_batches(lazy.train_x, lazy.train_y, 2, workers=2))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_file_met_while_streaming_is_one_error_naming_it(tmp_path, workers):
    images = make_image_folder(tmp_path / "images", classes=2, per_class=10)
    lazy = load(images, False)
    victim = Path(lazy.train_x.paths[int(lazy.train_x.index[0])])
    victim.write_bytes(victim.read_bytes()[:60])  # truncated after the data was read
    with pytest.raises(ConfigError) as info:
        all_batches(lazy.train_x, lazy.train_y, 0, workers=workers)
    message = str(info.value)
    assert f"{victim} cannot be read as an image" in message and "\n" not in message
    assert info.value.param == "dataset"


def test_a_corrupt_training_file_is_named_when_the_data_is_read(tmp_path):
    images = make_image_folder(tmp_path / "images", classes=2, per_class=10)
    victim = images / "train" / "trouser" / "003.png"
    victim.write_bytes(victim.read_bytes()[:60])  # the header reads; the mean/std pass decodes it
    with pytest.raises(ConfigError, match=f"{victim} cannot be read as an image"):
        load(images, False)


def train_run(tmp_path: Path, images: Path, name: str) -> Path:
    import evonas.api as api

    run = tmp_path / name
    api.train(run, space=str(tmp_path / "my_model.py") + ":build", data=f"imagefolder:{images}", epochs=1,
              batch_size=16, augment="standard", quiet=True, threads=1)
    return run


def test_training_and_scoring_streamed_equal_in_memory(tmp_path, monkeypatch):
    from evonas.evaluation.scoring import SupernetEvaluator
    from evonas.run.run import Run

    shutil.copy(ROOT / "examples" / "my_model.py", tmp_path / "my_model.py")
    images = make_image_folder(tmp_path / "images", classes=3, per_class=24)
    memory_run = train_run(tmp_path, images, "memory")
    arch = Run.open(memory_run).space.sample(random.Random(0))
    memory_eval = SupernetEvaluator.from_run(memory_run, recalib_images=20, finetune_steps=2)
    assert isinstance(memory_eval.splits.train_x, torch.Tensor)
    memory_scores = memory_eval.evaluate(arch)

    n_train = len(memory_eval.splits.train_x) + len(memory_eval.splits.val_x)
    monkeypatch.setattr(streaming, "MEMORY_BUDGET_BYTES", n_train * 28 * 28)  # train streams, val fits as floats
    stream_run = train_run(tmp_path, images, "stream")
    memory_state = torch.load(memory_run / "supernet.pt", map_location="cpu", weights_only=False)
    stream_state = torch.load(stream_run / "supernet.pt", map_location="cpu", weights_only=False)
    flat_m, flat_s = _tensors(memory_state), _tensors(stream_state)
    assert flat_m.keys() == flat_s.keys() and flat_m
    assert all(torch.equal(flat_m[k], flat_s[k]) for k in flat_m)

    held = SupernetEvaluator.from_run(memory_run, recalib_images=20, finetune_steps=2)
    assert isinstance(held.splits.train_x, ImageFiles) and not held._stream_eval
    assert held.evaluate(arch) == memory_scores
    monkeypatch.setattr(streaming, "MEMORY_BUDGET_BYTES", 1000)  # the validation images stream too
    streamed = SupernetEvaluator.from_run(memory_run, recalib_images=20, finetune_steps=2)
    assert streamed._stream_eval and isinstance(streamed.x, ImageFiles)
    assert streamed.evaluate(arch) == memory_scores


def _tensors(state, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a (nested) state dict, keyed by its path."""
    out = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state
    elif isinstance(state, dict):
        for k, v in state.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


def test_a_standalone_network_trains_and_scores_the_same_on_streamed_data(folder):
    from search_spaces import get_space

    from evonas.run.config import TrainConfig
    from evonas.training.standalone import train_standalone

    cfg = TrainConfig(space="macro-fmnist", epochs=1, batch_size=8, augment="standard", seed=2)
    arch = get_space("macro-fmnist").sample(random.Random(1))
    memory, lazy = load(folder, True), load(folder, False)
    drop = ("seconds",)
    a = {k: v for k, v in train_standalone(arch, cfg, memory, progress=False).items() if k not in drop}
    b = {k: v for k, v in train_standalone(arch, cfg, lazy, progress=False, eval_split="val").items() if k not in drop}
    assert a == b


def _stream_in_daemon(x, y, out) -> None:
    out.put([torch.equal(a[0], b[0]) for a, b in zip(all_batches(x, y, 3, workers=2), all_batches(x, y, 3, workers=0))])


def test_a_daemonic_process_streams_without_workers_of_its_own(folder):
    import multiprocessing

    lazy = load(folder, False)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_stream_in_daemon, args=(lazy.train_x, lazy.train_y, out), daemon=True)
    proc.start()
    same = out.get(timeout=120)
    proc.join(timeout=60)
    assert same and all(same)
