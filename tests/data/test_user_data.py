"""A user's own data: image folders, torchvision datasets on disk, data functions; bad inputs; augmentation."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evonas.data import AUGMENTATIONS, CLASSES, _load_fmnist, augment_batch, describe_data, load_splits
from evonas.errors import ConfigError, DatasetMissingError
from tests.imagefolder import make_image_folder


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _spec(folder: Path) -> str:
    return f"imagefolder:{folder}"


# ----------------------------------------------------------------------- image folders


def test_image_folder_with_train_and_test(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=3, per_class=12)
    before = _files(tmp_path)
    s = load_splits(_spec(folder), val_size=6, seed=0)
    assert _files(tmp_path) == before  # loading writes nothing
    assert s.classes == ("pullover", "t-shirt", "trouser")  # sorted folder names
    assert s.num_classes == 3
    assert s.train_x.shape == (30, 1, 28, 28) and s.val_x.shape == (6, 1, 28, 28) and s.test_x.shape == (12, 1, 28, 28)
    assert s.train_x.dtype == torch.uint8 and s.train_y.dtype == torch.int64
    assert sorted(torch.cat([s.train_y, s.val_y]).tolist()) == [0] * 12 + [1] * 12 + [2] * 12
    assert sorted(s.test_y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    assert describe_data(s) == {"in_channels": 1, "image_size": 28, "image_height": 28, "image_width": 28,
                                "num_classes": 3, "classes": ("pullover", "t-shirt", "trouser"),
                                "num_train": 30, "num_val": 6, "num_test": 12}
    # the pixels are Fashion-MNIST's: the first t-shirt of the training set is among the t-shirts read
    train_x, train_y, _, _ = _load_fmnist(None)
    first_tshirt = torch.from_numpy(train_x[np.flatnonzero(train_y == 0)[0]])
    all_x, all_y = torch.cat([s.train_x, s.val_x]), torch.cat([s.train_y, s.val_y])
    assert any(torch.equal(img, first_tshirt) for img in all_x[all_y == s.classes.index("t-shirt")])
    # mean/std are the training images' own, per channel, on the 0..1 scale
    pixels = all_x.double() / 255
    assert s.mean == pytest.approx((pixels.mean().item(),), abs=1e-5)
    assert s.std == pytest.approx((pixels.std(unbiased=False).item(),), abs=1e-5)
    assert 0.05 < s.mean[0] < 0.6 and 0.1 < s.std[0] < 0.5


def test_single_folder_holds_out_a_fixed_test_split(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=3, per_class=10, split=False)
    a = load_splits(_spec(folder), val_size=4, seed=0)
    b = load_splits(_spec(folder), val_size=4, seed=1)
    assert len(a.test_x) == 6 and sorted(a.test_y.tolist()) == [0, 0, 1, 1, 2, 2]  # 20% of each class
    assert len(a.train_x) + len(a.val_x) == 24
    assert torch.equal(a.test_x, b.test_x)  # the test split does not move with the seed
    assert not torch.equal(a.val_x, b.val_x)
    # no test image is also a training image
    train = {bytes(x.numpy()) for x in torch.cat([a.train_x, a.val_x])}
    assert not any(bytes(x.numpy()) in train for x in a.test_x)


def test_rgb_and_mixed_folders_read_as_three_channels(tmp_path):
    s = load_splits(_spec(make_image_folder(tmp_path / "rgb", classes=2, per_class=6, rgb=True)), val_size=2)
    assert s.in_channels == 3 and s.train_x.shape[1:] == (3, 28, 28) and len(s.mean) == len(s.std) == 3
    mixed = make_image_folder(tmp_path / "mixed", classes=2, per_class=6)
    gray = Image.open(mixed / "train" / "trouser" / "000.png")
    Image.merge("RGB", (gray, gray, gray.point(lambda v: 255 - v))).save(mixed / "train" / "trouser" / "000.png")
    s = load_splits(_spec(mixed), val_size=2)
    assert s.in_channels == 3
    # a grayscale image is repeated into three equal channels
    assert any(torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]) for x in s.test_x)
    assert any(not torch.equal(x[0], x[2]) for x in torch.cat([s.train_x, s.val_x]))


def test_image_size_resizes_every_image(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=2, per_class=6, size=20)
    Image.new("L", (31, 17), 200).save(folder / "train" / "t-shirt" / "odd.png")
    s = load_splits(_spec(folder), val_size=2, image_size=16)
    assert s.train_x.shape[1:] == (1, 16, 16) and s.test_x.shape[1:] == (1, 16, 16)
    assert describe_data(s)["image_size"] == 16
    assert load_splits("synthetic", val_size=100, image_size=14).train_x.shape[1:] == (1, 14, 14)
    with pytest.raises(ConfigError, match=r"The 'image_size' parameter must be a positive whole number.*got 0"):
        load_splits(_spec(folder), val_size=2, image_size=0)


def test_mixed_sizes_name_two_files_and_the_fix(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=2, per_class=6)
    odd = folder / "train" / "trouser" / "odd.png"
    Image.new("L", (31, 17), 200).save(odd)
    with pytest.raises(ConfigError) as info:
        load_splits(_spec(folder), val_size=2)
    msg = str(info.value)
    assert str(odd) in msg and "31x17" in msg and "28x28" in msg and "000.png" in msg
    assert "'image_size' parameter" in msg and "\n" not in msg


def test_fractional_val_size(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=3, per_class=12)
    s = load_splits(_spec(folder), val_size=0.25)
    assert len(s.val_x) == 9 and len(s.train_x) == 27
    assert len(load_splits("synthetic", val_size=0.1).val_x) == 100  # 1000 training images
    assert len(load_splits(_spec(folder), val_size=None).val_x) == 4  # None: 10% for a user's data
    with pytest.raises(ConfigError, match=r"between 1 and 35 for imagefolder:.* \(36 training images\); got 100"
                                          r".*fraction such as 0\.1"):
        load_splits(_spec(folder), val_size=100)
    with pytest.raises(ConfigError, match=r"The 'val_size' parameter must be a whole number of images or a fraction "
                                          r"in \(0, 1\); got 1\.5"):
        load_splits(_spec(folder), val_size=1.5)
    with pytest.raises(ConfigError, match=r"leaves 0 of the 36 training images"):
        load_splits(_spec(folder), val_size=0.001)


# --------------------------------------------------------------------- data functions


DATA_FN = '''
import numpy as np
import torch
from PIL import Image

class Pairs(torch.utils.data.Dataset):
    classes = ["zero", "one"]

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

def data():
    train = Pairs([(torch.full((3, 8, 8), 0.5), 0), (np.zeros((8, 8), np.uint8), torch.tensor(1)),
                   (Image.new("RGB", (8, 8), (255, 0, 10)), np.int64(1)), (torch.ones(8, 8), 0)] * 3)
    test = [(torch.zeros(1, 8, 8, dtype=torch.uint8), 1), (torch.ones(3, 8, 8), 0)]
    return train, test

def raises():
    raise RuntimeError("no data today")

def one():
    return Pairs([])

def normalised():
    return [(torch.full((1, 4, 4), -0.4), 0)], [(torch.zeros(1, 4, 4), 0)]

def not_pairs():
    return [torch.zeros(1, 4, 4)], [torch.zeros(1, 4, 4)]

def big():
    return [(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 5, 5), 0)], [(torch.zeros(1, 4, 4), 0)]

def notest():
    return [(torch.zeros(1, 4, 4), 0)] * 3, []

NOT_A_FUNCTION = 3
'''


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "mydata.py"
    path.write_text(DATA_FN)
    return path


def test_function_dataset(data_file):
    s = load_splits(f"{data_file}:data", val_size=0.25)
    assert s.classes == ("zero", "one") and s.num_classes == 2
    assert s.train_x.shape == (9, 3, 8, 8) and s.val_x.shape == (3, 3, 8, 8) and s.test_x.shape == (2, 3, 8, 8)
    everything = torch.cat([s.train_x, s.val_x])
    values = {tuple(int(v) for v in x[:, 0, 0]) for x in everything}
    assert values == {(128, 128, 128), (0, 0, 0), (255, 0, 10), (255, 255, 255)}  # float 0.5 -> 128, gray -> RGB
    assert sorted(s.test_y.tolist()) == [0, 1]


@pytest.mark.parametrize("func, pattern", [
    ("raises", r"mydata\.py:raises', whose call raised RuntimeError: no data today"),
    ("one", r"mydata\.py:one', which returned a Pairs; it must return \(train, test\)"),
    ("normalised", r"train item 0 of .*mydata\.py:normalised as floats in \[-0\.4, -0\.4\]; float images must be in"),
    ("not_pairs", r"train item 0 of .*mydata\.py:not_pairs as Tensor; each item must be an \(image, label\) pair"),
    ("big", r"train item 0 of .* is 4x4 .*train item 1 of .* is 5x5.*'image_size' parameter"),
    ("notest", r"gives data with no test images"),
    ("NOT_A_FUNCTION", r"which is a int, not a function"),
    ("missing", r"'missing' in .*mydata\.py', which has no such attribute"),
])
def test_bad_data_functions_are_one_line(data_file, func, pattern):
    with pytest.raises(ConfigError) as info:
        load_splits(f"{data_file}:{func}", val_size=1)
    assert re.search(pattern, str(info.value)), str(info.value)
    assert "\n" not in str(info.value) and info.value.param == "dataset"


# ------------------------------------------------------------------------ torchvision


def _write_raw_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_dataset_on_disk(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_raw_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 255, (40, 28, 28)))
    _write_raw_idx(raw / "train-labels-idx1-ubyte", np.arange(40) % 10)
    _write_raw_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 28, 28)))
    _write_raw_idx(raw / "t10k-labels-idx1-ubyte", np.arange(10))
    s = load_splits("torchvision:fashionmnist", root=tmp_path, val_size=10)
    assert s.train_x.shape == (30, 1, 28, 28) and s.test_x.shape == (10, 1, 28, 28)
    assert s.num_classes == 10 and s.classes[0] == "T-shirt/top"
    assert s.test_y.tolist() == list(range(10))
    small = load_splits("torchvision:FashionMNIST", root=tmp_path, val_size=10, image_size=14)
    assert small.test_x.shape[2:] == (14, 14)


def test_torchvision_missing_data_is_not_downloaded(tmp_path):
    before = _files(tmp_path)
    with pytest.raises(DatasetMissingError) as info:
        load_splits("torchvision:CIFAR10", root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "nothing is downloaded" in msg and "\n" not in msg
    assert _files(tmp_path) == before
    with pytest.raises(DatasetMissingError, match="never downloaded: set the 'data_root' parameter"):
        load_splits("torchvision:svhn")
    with pytest.raises(ConfigError, match=r"torchvision dataset 'imagenet22k'.*CIFAR10, CIFAR100, SVHN, MNIST"):
        load_splits("torchvision:imagenet22k", root=tmp_path)


# ------------------------------------------------------------------------- bad folders


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'nope'} does not exist")):
        load_splits(_spec(tmp_path / "nope"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        load_splits(_spec(tmp_path / "afile"))
    with pytest.raises(ConfigError, match="must name a folder after imagefolder:"):
        load_splits("imagefolder:")


def test_empty_folder_and_empty_class(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'empty'} has no class sub-folders")):
        load_splits(_spec(tmp_path / "empty"))
    folder = make_image_folder(tmp_path / "fm", classes=2, per_class=6, split=False)
    (folder / "zebra").mkdir()
    with pytest.raises(ConfigError, match=re.escape(f"class folder {folder / 'zebra'} holds no images")):
        load_splits(_spec(folder))


def test_train_without_test_and_class_mismatch(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=2, per_class=6)
    (folder / "test" / "trouser" / "000.png").rename(folder / "test" / "t-shirt" / "x.png")
    for p in (folder / "test" / "trouser").iterdir():
        p.unlink()
    (folder / "test" / "trouser").rmdir()
    with pytest.raises(ConfigError, match=r"class folders differ \(only in train: \['trouser'\]; only in test: none\)"):
        load_splits(_spec(folder))
    for p in sorted((folder / "test").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (folder / "test").rmdir()
    with pytest.raises(ConfigError, match=re.escape(f"has {folder / 'train'} but no {folder / 'test'}")):
        load_splits(_spec(folder))


def test_non_image_and_corrupt_files_are_named(tmp_path):
    folder = make_image_folder(tmp_path / "fm", classes=2, per_class=6, split=False)
    (folder / ".DS_Store").write_bytes(b"\0\1")  # hidden files are skipped
    (folder / "trouser" / ".hidden").write_bytes(b"\0\1")
    assert load_splits(_spec(folder), val_size=2).num_classes == 2
    notes = folder / "trouser" / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(ConfigError, match=re.escape(f"{notes} is not an image")):
        load_splits(_spec(folder), val_size=2)
    notes.unlink()
    garbage = folder / "t-shirt" / "garbage.png"
    garbage.write_bytes(b"this is not a png at all")
    with pytest.raises(ConfigError, match=re.escape(f"{garbage} cannot be read as an image")):
        load_splits(_spec(folder), val_size=2)
    garbage.unlink()
    good = (folder / "t-shirt" / "000.png").read_bytes()
    truncated = folder / "t-shirt" / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConfigError) as info:
        load_splits(_spec(folder), val_size=2)
    assert f"{truncated} cannot be read as an image" in str(info.value) and "\n" not in str(info.value)


def test_unknown_dataset_lists_the_specs():
    with pytest.raises(ConfigError, match=r"fmnist, cifar10, synthetic, or a data spec \(imagefolder:DIR, "
                                          r"torchvision:NAME, PATH\.py:FUNC"):
        load_splits("imagenet")


# ------------------------------------------------------------------------ augmentation


def _reference_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The CIFAR recipe one image at a time, with the draws in augment_batch's documented order."""
    b, _, h, w = x.shape
    dy = torch.randint(0, 9, (b,), generator=generator)
    dx = torch.randint(0, 9, (b,), generator=generator)
    flip = torch.randint(0, 2, (b,), generator=generator)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    out = []
    for i in range(b):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_augment_batch_crops_and_flips_deterministically():
    assert AUGMENTATIONS == ("none", "standard")
    x = torch.randint(1, 256, (64, 3, 10, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    a = augment_batch(x, torch.Generator().manual_seed(0), "standard")
    b = augment_batch(x, torch.Generator().manual_seed(0), "standard")
    c = augment_batch(x, torch.Generator().manual_seed(1), "standard")
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, _reference_augment(x, torch.Generator().manual_seed(0)))
    # columns numbered 1..12: a middle row (always inside the image) reads as a run of consecutive
    # numbers, rising when not flipped and falling when flipped, cut short by zeros when shifted
    cols = torch.arange(1, 13, dtype=torch.uint8).expand(64, 3, 10, 12).contiguous()
    out = augment_batch(cols, torch.Generator().manual_seed(3), "standard")
    flipped = shifted = 0
    for row in out[:, 0, 5]:
        values = row[row > 0]
        steps = set((values[1:].int() - values[:-1].int()).tolist())
        assert steps in ({1}, {-1}), row.tolist()
        flipped += steps == {-1}
        shifted += len(values) < 12
    assert 16 < flipped < 48 and shifted > 48
    assert torch.equal(out[:, 0], out[:, 2])  # every channel moves together
    assert augment_batch(x, None, "none") is x
    with pytest.raises(ConfigError, match=r"The 'augment' parameter must be one of none, standard; got 'cutout'"):
        augment_batch(x, None, "cutout")


def test_fmnist_splits_know_their_classes():
    s = load_splits("synthetic", val_size=100)
    assert s.num_classes == 10 and describe_data(s)["in_channels"] == 1
    assert CLASSES["fmnist"][0] == "t-shirt"
