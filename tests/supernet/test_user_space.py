"""Your own model as a search space: costs, extraction, architecture strings, strategies, bad inputs, the CLI.

Every model file is written by the test into ``tmp_path`` (a folder outside the
project), as a user would keep it next to their data; the data are small image
folders of Fashion-MNIST PNGs (tests/imagefolder.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from evonas.errors import ConfigError
from evonas.evaluation.profile import count_module
from evonas.nn import Choice
from evonas.spaces import resolve_space
from evonas.supernet import ModelSupernet, build_standalone
from tests.imagefolder import make_image_folder
from search_spaces import Arch, ArchStringError

ROOT = Path(__file__).resolve().parents[2]

# Four choices: a dict of convolutions and an op of the file's own (Shift), a list-form choice
# on a residual branch (named sequential / identity / sequential2), a weight-free option, and
# activations. 3 * 3 * 2 * 2 = 36 architectures.
MODEL = '''
import torch
from torch import nn
from evonas.nn import Choice


class Shift(nn.Module):
    """Shift half the channels one pixel right, then mix them (an op written in this file)."""
    def __init__(self, c):
        super().__init__()
        self.mix = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        half = x.shape[1] // 2
        return self.mix(torch.cat([x[:, :half].roll(1, dims=3), x[:, half:]], dim=1))


def conv(c, k):
    return nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU())


class Net(nn.Module):
    def __init__(self, in_channels, num_classes, width=WIDTH):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.b1 = Choice({"conv3": conv(width, 3), "conv5": conv(width, 5), "shift": Shift(width)}, label="b1")
        self.pool = nn.MaxPool2d(2)
        self.b2 = Choice([conv(width, 3), nn.Identity(), nn.Sequential(conv(width, 1), conv(width, 3))])
        self.b3 = Choice({"dw": nn.Conv2d(width, width, 3, padding=1, groups=width), "skip": nn.Identity()}, label="b3")
        self.act = Choice({"relu": nn.ReLU(), "gelu": nn.GELU()}, label="act")
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        x = self.pool(self.b1(self.stem(x)))
        x = x + self.b2(x)
        return self.head(self.act(self.b3(x)))


def build(in_channels=1, num_classes=3, image_size=16):
    return Net(in_channels, num_classes)
'''


def write_model(folder: Path, text: str = MODEL, name: str = "my_model.py", width: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text.replace("WIDTH", str(width)))
    return path


def model_space(tmp_path: Path, **kwargs):
    path = write_model(tmp_path / "user")
    return resolve_space(f"{path}:build", {"in_channels": 1, "num_classes": 3, "image_size": 16, **kwargs})


# ----------------------------------------------------------------------- costs, extraction, strings


def test_costs_equal_torch_counts_of_every_extracted_and_standalone_network(tmp_path):
    space = model_space(tmp_path)
    assert [d.label for d in space.dims] == ["b1", "b2", "b3", "act"]
    assert space.dims[1].names == ("sequential", "identity", "sequential2")  # the list form's names
    assert space.input_shape == (1, 16, 16) and space.num_classes == 3
    archs = list(space.enumerate())
    assert len(archs) == 36
    supernet = ModelSupernet(space)
    costs = set()
    for arch in archs:
        cost = space.cost(arch)
        costs.add((cost.flops, cost.params))
        expected = {"flops": cost.flops, "params": cost.params}
        assert count_module(supernet.extract(arch), space.input_shape) == expected, space.format(arch)
        assert count_module(build_standalone(space, arch), space.input_shape) == expected, space.format(arch)
    assert len(costs) >= 18  # the options really differ in cost (not all counted as zero)
    # the op of the file's own is counted: its 1x1 mix conv, 8*8 weights applied at each of the 16x16 pixels
    shift = space.description["choices"][0]["options"][2]
    assert shift["type"] == "Shift" and shift["params"] == 64 and shift["flops"] == 64 * 16 * 16


def _train_a_little(supernet: ModelSupernet, space, steps: int = 6) -> None:
    """A few SGD steps on random paths, so that weights and BN statistics are no longer the initial ones."""
    gen = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    opt = torch.optim.SGD(supernet.parameters(), lr=0.1)
    supernet.train()
    for _ in range(steps):
        x = torch.randn(8, *space.input_shape, generator=gen)
        y = torch.randint(0, 3, (8,), generator=gen)
        loss = nn.functional.cross_entropy(supernet(x, space.sample(rng)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_extracted_module_is_the_supernet_path_and_exports(tmp_path):
    space = model_space(tmp_path)
    supernet = ModelSupernet(space)
    _train_a_little(supernet, space)
    supernet.eval()
    x = torch.randn(5, *space.input_shape, generator=torch.Generator().manual_seed(1))
    rng = random.Random(3)
    archs = [space.parse("b1=shift,b2=sequential2,b3=dw,act=gelu"),
             space.parse("b1=conv5,b2=identity,b3=skip,act=relu")]
    archs += [space.sample(rng) for _ in range(4)]
    outputs = []
    for arch in archs:
        with torch.no_grad():
            expected = supernet(x, arch)
            module = supernet.extract(arch).eval()
            got = module(x)
        assert torch.equal(got, expected), space.format(arch)
        outputs.append(expected)
        assert not any(isinstance(m, Choice) for m in module.modules()), space.format(arch)
        assert not any(type(m).__module__.startswith("evonas.") for m in module.modules())
        # only the chosen options' weights are in the extracted module
        names = space.format(arch)
        assert sum(p.numel() for p in module.parameters()) == space.cost(arch).params, names
        exported = torch.export.export(module, (x,))
        with torch.no_grad():
            assert torch.allclose(exported.module()(x), expected, atol=1e-6), names
    assert not torch.equal(outputs[0], outputs[1])  # different paths compute different things
    # extracting changed nothing in the supernet: the first path still gives its output
    with torch.no_grad():
        assert torch.equal(supernet(x, archs[0]), outputs[0])
    # the extracted module is a copy: training it leaves the supernet's weights alone
    module = supernet.extract(archs[0])
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
        assert torch.equal(supernet(x, archs[0]), outputs[0])


def test_arch_strings_round_trip_and_bad_strings_name_the_choice(tmp_path):
    space = model_space(tmp_path)
    for arch in space.enumerate():
        text = space.format(arch)
        assert str(arch) == text
        assert space.parse(text) == arch
        assert space.parse(" " + text.replace(",", ", ") + " ") == arch  # spaces around parts are fine
        digits = "".join(str(c) for c in arch.choices)
        assert space.parse(digits) == arch  # the digit form: one option index per choice
    arch = space.parse("b1=shift,b2=identity,b3=dw,act=gelu")
    assert arch == Arch(space.name, (2, 1, 0, 1)) == space.parse("2101")
    assert space.parse("act=gelu,b3=dw,b2=identity,b1=shift") == arch  # order does not matter
    bad = {
        "b1=conv7,b2=identity,b3=dw,act=gelu": ["'b1'", "'conv7'", "conv3, conv5, shift"],
        "b1=shift,b2=conv2d,b3=dw,act=gelu": ["'b2'", "'conv2d'", "sequential, identity, sequential2"],
        "b1=shift,b2=identity,b3=dw": ["no option for ['act']"],
        "b1=shift,b2=identity,b3=dw,act=gelu,b9=skip": ["unknown choices ['b9']"],
        "b1=shift,identity,b3=dw,act=gelu": ["write label=option", "b1="],
        "3101": ["position 0 (b1)", "got 3"],
        "21011": ["write label=option"],
    }
    for text, fragments in bad.items():
        with pytest.raises(ArchStringError) as info:
            space.parse(text)
        message = str(info.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message, (text, message)




def test_choice_checks_its_options_and_label():
    bad = [
        (({},), "needs at least one module"),
        (([],), "needs at least one module"),
        (("conv",), "dict of name -> module or a list of modules; got str"),
        (({"a b": nn.ReLU()},), "got 'a b'"),
        (({"a=b": nn.ReLU()},), "got 'a=b'"),
        (({"": nn.ReLU()},), "got ''"),
        (({"relu": "relu"},), "option 'relu' is a str"),
        (([nn.ReLU(), 3],), "option '3' is a int"),
        (({"relu": nn.ReLU()}, "x,y"), "'label' parameter of Choice"),
        (({"relu": nn.ReLU()}, ""), "'label' parameter of Choice"),
    ]
    for args, fragment in bad:
        with pytest.raises(ConfigError) as info:
            Choice(*args)
        assert fragment in str(info.value), (args, str(info.value))
    choice = Choice([nn.ReLU(), nn.ReLU(), nn.GELU()])
    assert choice.names == ("relu", "relu2", "gelu") and choice.active == "relu" and choice.label is None
    x = torch.linspace(-2, 2, 9)
    assert torch.equal(choice(x), torch.relu(x))  # outside a search the first option runs
    assert torch.equal(choice.select("gelu")(x), nn.functional.gelu(x))
    with pytest.raises(ConfigError, match="one of relu, relu2, gelu; got 'tanh'"):
        choice.select("tanh")


BLOCKS = """
import torch
from torch import nn
from evonas.nn import Choice


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.op = Choice([nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 1), nn.Identity()])

    def forward(self, x):
        return torch.relu(x + self.op(x))


class Net(nn.Module):
    def __init__(self, in_channels, num_classes, depth=3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.blocks = nn.ModuleList([Block(8) for _ in range(depth)])
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def anything(**kwargs):
    return Net(kwargs["in_channels"], kwargs["num_classes"])


def fixed():
    return Net(1, 3)
"""


@pytest.mark.parametrize("factory", ["Net", "anything", "fixed"])
def test_factories_of_every_shape_and_labels_from_module_paths(tmp_path, factory):
    from evonas.supernet import FewShotSupernet

    path = write_model(tmp_path / "user", BLOCKS, name="blocks.py")
    space = resolve_space(f"{path}:{factory}", {"in_channels": 1, "num_classes": 3, "image_size": 8})
    assert [d.label for d in space.dims] == ["blocks.0.op", "blocks.1.op", "blocks.2.op"]
    assert space.dims[0].names == ("conv2d", "conv2d2", "identity") and space.num_strings == 27
    arch = space.parse("blocks.0.op=conv2d,blocks.1.op=conv2d2,blocks.2.op=identity")
    assert arch == space.parse("012")
    # a few-shot split on the middle block: every path extracts from its own part
    one_shot = ModelSupernet(space)
    _train_a_little(one_shot, space, steps=2)
    few = FewShotSupernet.split(one_shot, 1).eval()
    x = torch.randn(2, *space.input_shape, generator=torch.Generator().manual_seed(4))
    for arch in space.enumerate():
        with torch.no_grad():
            module = few.extract(arch).eval()
            assert torch.equal(module(x), few(x, arch)) and torch.equal(module(x), one_shot.eval()(x, arch))
        assert count_module(module, space.input_shape) == {"flops": space.cost(arch).flops,
                                                          "params": space.cost(arch).params}



def test_model_file_imports_modules_next_to_it(tmp_path, monkeypatch, capsys):
    """As when the file runs as a script: a helper beside it imports, whichever folder evonas runs from."""
    from evonas.cli.main import main

    monkeypatch.setattr(sys, "path", list(sys.path))  # what the import adds, the test takes away
    monkeypatch.delitem(sys.modules, "tus_helper_blocks", raising=False)
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "tus_helper_blocks.py").write_text("from torch import nn\n\n\ndef conv(c, k):\n"
                                                 "    return nn.Conv2d(c, c, k, padding=k // 2)\n")
    (folder / "model.py").write_text(HEADER + "from tus_helper_blocks import conv\n\n\n"
                                     "def build(in_channels=1, num_classes=3, image_size=8):\n"
                                     "    op = Choice([conv(8, 3), conv(8, 5)], label='op')\n"
                                     "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), op,\n"
                                     "                         HEAD(num_classes))\n")
    monkeypatch.chdir(tmp_path)
    main(["profile", "--space", "user/model.py:build", "--arch", "op=conv2d2", "--check", "--json"])
    row = json.loads(capsys.readouterr().out)
    assert row["params"] == 8 * 9 + 8 + 8 * 8 * 25 + 8 + 8 * 3 + 3 == row["measured_params"]
    assert sys.path[-1] == str(folder.resolve())  # last: the user's files shadow no installed module


# A model that is itself one Choice between two whole networks, and one with a parameter of its own
# (not in a child module) next to its choices.
WHOLE_NETS = """
import torch
from torch import nn
from evonas.nn import Choice


def net(in_channels, num_classes, k):
    return nn.Sequential(nn.Conv2d(in_channels, 4, k, padding=k // 2), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def build(in_channels=1, num_classes=3, image_size=8):
    return Choice({"small": net(in_channels, num_classes, 3), "large": net(in_channels, num_classes, 5)}, label="net")


class Scaled(nn.Module):
    def __init__(self, in_channels=1, num_classes=3):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, 4, 1, 1), 2.0))
        self.register_buffer("shift", torch.zeros(1, 4, 1, 1))
        self.stem = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.op = Choice({"conv": nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)),
                          "skip": nn.Identity()})
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.head(self.op(self.stem(x) * self.scale + self.shift))


def build_scaled(in_channels=1, num_classes=3, image_size=8):
    return Scaled(in_channels, num_classes)
"""


@pytest.mark.parametrize("factory", ["build", "build_scaled"])
def test_path_modules_and_extract_hold_exactly_the_path(tmp_path, factory):
    path = write_model(tmp_path / "user", WHOLE_NETS, name="nets.py")
    space = resolve_space(f"{path}:{factory}")  # the input shape from the factory's defaults
    assert space.input_shape == (1, 8, 8)
    supernet = ModelSupernet(space)
    _train_a_little(supernet, space, steps=3)
    supernet.eval()
    x = torch.randn(3, *space.input_shape, generator=torch.Generator().manual_seed(2))
    for arch in space.enumerate():
        chosen = [c.options[n] for c, n in zip(supernet.choices, supernet._names(arch))]
        unchosen = {id(t) for c in supernet.choices for m in c.options.values() if all(m is not o for o in chosen)
                    for t in [*m.parameters(), *m.buffers()]}
        everything = {id(t) for t in [*supernet.model.parameters(), *supernet.model.buffers()]}
        on_path = {id(t) for m in supernet.path_modules(arch) for t in [*m.parameters(), *m.buffers()]}
        assert on_path == everything - unchosen, space.format(arch)
        with torch.no_grad():
            module = supernet.extract(arch).eval()
            assert torch.equal(module(x), supernet(x, arch)), space.format(arch)
        assert not any(isinstance(m, Choice) for m in module.modules()), space.format(arch)
        cost = {"flops": space.cost(arch).flops, "params": space.cost(arch).params}
        assert count_module(module, space.input_shape) == cost, space.format(arch)
        assert count_module(build_standalone(space, arch), space.input_shape) == cost, space.format(arch)
    if factory == "build":  # the two whole networks: the extracted one is the chosen network itself
        assert isinstance(supernet.extract(space.parse("net=large")), nn.Sequential)
        assert supernet.path_modules(space.parse("net=large")) == [supernet.model.options["large"]]


# ----------------------------------------------------------------------- every strategy on a user's model


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Path:
    """Three classes of 16x16 Fashion-MNIST PNGs: 20 training and 4 test images per class."""
    return make_image_folder(tmp_path_factory.mktemp("data") / "images", classes=3, per_class=20, size=16,
                             test_per_class=4)


@pytest.fixture(scope="module")
def user_model(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("user"))


def _train(run: Path, model: Path, data: Path, **options):
    import evonas.api as api

    settings = dict(epochs=2, batch_size=16, quiet=True, threads=1)
    settings.update(options)
    return api.train(run, space=f"{model}:build", data=f"imagefolder:{data}", **settings)


@pytest.mark.parametrize("strategy, layer", [("uniform", None), ("fair", None), ("sandwich", None), ("few-shot", None),
                                             ("few-shot", 2)])
def test_every_strategy_trains_a_user_space_and_scores(tmp_path, user_model, user_data, strategy, layer):
    import evonas.api as api
    from evonas.supernet import FewShotSupernet

    run = tmp_path / "run"
    result = _train(run, user_model, user_data, strategy=strategy, few_shot_layer=layer)
    assert result.finished and result.weights == run / "supernet.pt"
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["strategy"] == strategy and config["space"] == f"{user_model}:build"
    assert config["space_kwargs"] == {"in_channels": 1, "num_classes": 3, "image_size": 16}
    stored = json.loads((run / "space.json").read_text())
    assert [c["label"] for c in stored["choices"]] == ["b1", "b2", "b3", "act"]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    assert all(row["train_loss"] == row["train_loss"] for row in log)  # not NaN

    given = "b1=shift,b2=identity,b3=dw,act=gelu"
    scored = api.evaluate(run, archs=[given], sample=2, quiet=True, threads=1)
    assert len(scored.rows) == 3 and scored.rows[0]["arch"] == given
    space = result.run.space
    for row in scored.rows:
        space.parse(row["arch"])
        assert 0 <= row["accuracy"] <= 100
        cost = space.cost(space.parse(row["arch"]))
        assert (row["flops"], row["params"]) == (cost.flops, cost.params)

    supernet = result.run.load_supernet().eval()
    x = torch.randn(4, *space.input_shape, generator=torch.Generator().manual_seed(0))
    if strategy != "few-shot":
        assert isinstance(supernet, ModelSupernet)
        return
    # few-shot: split on b1 (the first choice whose options all have weights) or on the layer given (b3: dw or
    # skip, a weight-free option), one sub-supernet per option
    split = 0 if layer is None else layer
    assert isinstance(supernet, FewShotSupernet) and supernet.layer == split
    assert sorted(supernet.parts) == [str(c) for c in space.dims[split].options]
    for code, part in supernet.parts.items():
        assert part.choices[split].names == (space.dims[split].names[int(code)],)  # only its own option at the split
    # the parts trained apart after the split: the same shared weights differ between them
    head = [part.model.head[2].weight for part in supernet.parts.values()]
    assert all(not torch.equal(a, b) for a, b in zip(head, head[1:]))
    for arch in space.enumerate():
        with torch.no_grad():
            module = supernet.extract(arch).eval()
            assert torch.equal(module(x), supernet(x, arch)), space.format(arch)
        assert not any(isinstance(m, Choice) for m in module.modules())
        assert count_module(module, space.input_shape) == {"flops": space.cost(arch).flops,
                                                          "params": space.cost(arch).params}
        own = supernet.parts[str(arch.choices[split])].model.head[2].weight
        assert torch.equal(module.head[2].weight, own)  # the weights of its own sub-supernet



def test_non_square_images_give_the_factory_and_the_costs_their_shape(tmp_path, user_model):
    from PIL import Image

    folder = make_image_folder(tmp_path / "images", classes=3, per_class=6, size=16)
    for png in folder.rglob("*.png"):
        Image.open(png).resize((20, 12)).save(png)  # 20 wide, 12 high
    result = _train(tmp_path / "run", user_model, folder, epochs=1)
    assert result.run.splits().train_x.shape[1:] == (1, 12, 20)
    assert result.run.config.space_kwargs == {"in_channels": 1, "num_classes": 3, "image_size": [12, 20]}
    space = result.run.space
    assert space.input_shape == (1, 12, 20)
    arch = space.parse("b1=conv5,b2=sequential2,b3=dw,act=relu")
    measured = count_module(result.run.load_supernet().extract(arch), (1, 12, 20))
    assert measured == {"flops": space.cost(arch).flops, "params": space.cost(arch).params}


# ----------------------------------------------------------------------- bad input: exit 2, one line, nothing written

HEADER = "import torch\nfrom torch import nn\nfrom evonas.nn import Choice\n\nHEAD = lambda n: nn.Sequential(" \
         "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, n))\n\n"


def _net(init: str, forward: str) -> str:
    """A model class with a stem conv, the given extra modules and forward body, and its factory ``build``."""
    return (f"class Net(nn.Module):\n    def __init__(self, in_channels, num_classes):\n        super().__init__()\n"
            f"        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)\n"
            f"        self.head = HEAD(num_classes)\n{init}"
            f"    def forward(self, x):\n{forward}\n\n"
            "def build(in_channels=1, num_classes=3):\n    return Net(in_channels, num_classes)\n")


OP = "Choice({'conv': nn.Conv2d(8, 8, 3, padding=1), 'skip': nn.Identity()}, label='%s')"

BAD_MODELS = {  # case: (the file after HEADER, what the one line must name)
    "syntax": ("def build(in_channels=1, num_classes=3):\n    return nn.Sequential(nn.Conv2d(in_channels, 8, 3)\n",
               ["bad.py", "syntax error at line 8: '(' was never closed"]),
    "raises": ("def build(in_channels=1, num_classes=3):\n    raise ValueError('width must be even')\n",
               ["bad.py", "ValueError: width must be even"]),
    "not-a-module": ("def build(in_channels=1, num_classes=3):\n    return 'a model'\n", ["returned a str"]),
    "no-choice": ("def build(in_channels=1, num_classes=3):\n"
                  "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), HEAD(num_classes))\n",
                  ["bad.py", "has no evonas.nn.Choice"]),
    "shapes": ("def build(in_channels=1, num_classes=3):\n"
               "    width = Choice({'narrow': nn.Conv2d(8, 8, 3, padding=1), 'wide': nn.Conv2d(8, 16, 3, padding=1)},\n"
               "                   label='width')\n"
               "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), width,\n"
               "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(num_classes))\n",
               ["choice 'width'", "narrow -> (1, 8, 16, 16)", "wide -> (1, 16, 16, 16)"]),
    "channels": ("def build(in_channels=1, num_classes=3):  # ignores in_channels: RGB only\n"
                 "    act = Choice([nn.ReLU(), nn.Identity()], label='act')\n"
                 "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), act, HEAD(num_classes))\n",
                 ["bad.py", "shape (1, 16, 16)", "in_channels"]),
    "classes": ("def build(in_channels=1, num_classes=3):  # ignores num_classes: 10\n"
                "    act = Choice([nn.ReLU(), nn.Identity()], label='act')\n"
                "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), act, HEAD(10))\n",
                ["gives 10 classes, the data has 3", "num_classes"]),
    "not-logits": ("def build(in_channels=1, num_classes=3):  # no pooling and flattening: (batch, classes, H, W)\n"
                   "    act = Choice([nn.ReLU(), nn.Identity()], label='act')\n"
                   "    return nn.Sequential(nn.Conv2d(in_channels, num_classes, 3, padding=1), act)\n",
                   ["must return logits of shape (batch, classes)", "(1, 3, 16, 16)"]),
    "runs-twice": (_net(f"        self.op = {OP % 'op'}\n", "        return self.head(self.op(self.op(self.stem(x))))"),
                   ["choice 'op'", "runs 2 times"]),
    "never-runs": (_net(f"        self.op = {OP % 'op'}\n        self.spare = {OP % 'spare'}\n",
                        "        return self.head(self.op(self.stem(x)))"),
                   ["choice 'spare'", "never runs"]),
    "nested": ("def build(in_channels=1, num_classes=3):\n"
               "    inner = Choice({'relu': nn.ReLU(), 'gelu': nn.GELU()}, label='inner')\n"
               "    conv = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), inner)\n"
               "    outer = Choice({'conv': conv, 'skip': nn.Identity()}, label='outer')\n"
               "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), outer, HEAD(num_classes))\n",
               ["choice 'outer'", "'conv'", "nested choices are not supported"]),
    "not-additive": (_net(f"        self.op = {OP % 'op'}\n        self.extra = nn.Conv2d(8, 8, 3, padding=1)\n",
                          "        x = self.op(self.stem(x))\n"
                          "        if self.op.active == 'skip':  # the fixed part depends on the option\n"
                          "            x = self.extra(x)\n"
                          "        return self.head(x)"),
                     ["op=skip", "is not the sum of its parts", "must not depend on which option runs"]),
    "same-label": ("def build(in_channels=1, num_classes=3):\n"
                   "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1),\n"
                   "                         Choice([nn.ReLU(), nn.GELU()], label='act'),\n"
                   "                         Choice([nn.ReLU(), nn.GELU()], label='act'), HEAD(num_classes))\n",
                   ["share the labels ['act']"]),
}


def cli_error(capsys, argv: list[str], run: Path | None = None) -> str:
    """Run the evonas CLI in this process on bad input; its one stderr line (exit 2, nothing written)."""
    from evonas.cli.main import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    assert info.value.code == 2, out.err
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert "Traceback" not in out.err and not out.out.strip(), out.out
    if run is not None:
        assert not run.exists(), sorted(str(p) for p in run.rglob("*"))
    return lines[0]


def _train_argv(run: Path, space: str, data: Path, *more) -> list[str]:
    return ["train-supernet", "--run", run, "--space", space, "--data", f"imagefolder:{data}", "--epochs", "1",
            "--batch-size", "16", "--threads", "1", "--quiet", *more]


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_is_one_line_and_writes_nothing(tmp_path, capsys, user_data, case):
    body, fragments = BAD_MODELS[case]
    path = tmp_path / "user" / "bad.py"
    path.parent.mkdir()
    path.write_text(HEADER + body)
    run = tmp_path / "run"
    line = cli_error(capsys, _train_argv(run, f"{path}:build", user_data), run)
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_missing_file_attribute_and_data_are_one_line(tmp_path, capsys, user_data, user_model):
    run = tmp_path / "run"
    missing = tmp_path / "nowhere" / "model.py"
    line = cli_error(capsys, _train_argv(run, f"{missing}:build", user_data), run)
    assert str(missing) in line and "not a file" in line
    line = cli_error(capsys, _train_argv(run, f"{user_model}:biuld", user_data), run)
    assert "'biuld'" in line and "no such attribute" in line
    line = cli_error(capsys, _train_argv(run, f"{user_model}:Net.nothing", user_data), run)
    assert "no such attribute" in line
    line = cli_error(capsys, ["train-supernet", "--run", run, "--space", user_model, "--epochs", "1"], run)
    assert "'--space'" in line and "PATH.py:FACTORY" in line  # the file without :FACTORY
    line = cli_error(capsys, ["train-supernet", "--run", run, "--space", f"{user_model}:build", "--epochs", "1"], run)
    assert "required with your own model" in line and "imagefolder:DIR" in line  # no --data
    line = cli_error(capsys, _train_argv(run, f"{user_model}:build", tmp_path / "no-images"), run)
    assert str(tmp_path / "no-images") in line and "does not exist" in line


def _empty_folder(root: Path) -> Path:
    (root / "images").mkdir()
    return root / "images"


def _empty_class(root: Path) -> Path:
    folder = make_image_folder(root / "images", classes=2, per_class=4, size=16, split=False)
    (folder / "zebra").mkdir()
    return folder


def _non_image(root: Path) -> Path:
    folder = make_image_folder(root / "images", classes=2, per_class=4, size=16, split=False)
    (folder / "trouser" / "notes.txt").write_text("not a picture")
    return folder


def _corrupt_png(root: Path) -> Path:
    folder = make_image_folder(root / "images", classes=2, per_class=4, size=16, split=False)
    good = (folder / "trouser" / "000.png").read_bytes()
    (folder / "trouser" / "broken.png").write_bytes(good[: len(good) // 2])
    return folder


def _mixed_sizes(root: Path) -> Path:
    folder = make_image_folder(root / "images", classes=2, per_class=4, size=16, split=False)
    from PIL import Image

    Image.open(folder / "trouser" / "001.png").resize((20, 20)).save(folder / "trouser" / "001.png")
    return folder


BAD_DATA = {
    "empty-folder": (_empty_folder, ["images", "has no class sub-folders"]),
    "empty-class": (_empty_class, ["zebra", "holds no images"]),
    "non-image": (_non_image, ["notes.txt", "is not an image"]),
    "corrupt-png": (_corrupt_png, ["broken.png", "cannot be read as an image"]),
    "mixed-sizes": (_mixed_sizes, ["different sizes", "001.png is 20x20", "image"]),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_image_folder_is_one_line_and_writes_nothing(tmp_path, capsys, user_model, case):
    make, fragments = BAD_DATA[case]
    folder = make(tmp_path)
    run = tmp_path / "run"
    line = cli_error(capsys, _train_argv(run, f"{user_model}:build", folder), run)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    if case == "mixed-sizes":  # resizing every image makes the same folder good
        from evonas.cli.main import main

        main([str(a) for a in _train_argv(run, f"{user_model}:build", folder, "--image-size", "12")])
        config = json.loads((run / "config.json").read_text())["config"]
        assert config["image_size"] == 12
        assert config["space_kwargs"] == {"in_channels": 1, "num_classes": 2, "image_size": 12}
        assert json.loads((run / "space.json").read_text())["input_shape"] == [1, 12, 12]


def _evonas(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m evonas ARGS`` in a new process, run from ``cwd`` (a folder outside the project)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "evonas", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_run_whose_space_file_changed_is_refused_in_one_line(tmp_path, capsys, user_data):
    import py_compile
    import time

    import evonas.api as api

    model = write_model(tmp_path / "user")
    original = model.read_text()
    second = (int(time.time()) - 10) * 10**9  # every version of the file below is dated within this one second

    def edit(text: str, ns: int) -> None:
        """Write the file as an editor would, dated ``ns`` nanoseconds into the second."""
        model.write_text(text)
        os.utime(model, ns=(second + ns, second + ns))

    edit(original, 0)
    run = tmp_path / "run"
    _train(run, model, user_data, epochs=1)
    # the user imported their model themselves once: Python cached its bytecode next to it
    py_compile.compile(str(model), doraise=True)
    assert list((model.parent / "__pycache__").glob("my_model.*.pyc"))
    arch = "b1=shift,b2=identity,b3=dw,act=gelu"

    def files(folder: Path = run) -> list:
        return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))

    before = files()
    # a change that keeps every name and the file's size: conv5 becomes a 7x7 convolution (in this process)
    edit(original.replace('"conv5": conv(width, 5)', '"conv5": conv(width, 7)'), 1000)
    line = cli_error(capsys, ["profile", "--run", run, "--arch", arch])
    assert "has changed since it was trained" in line and "choice 'b1' differs in its shapes or costs" in line, line
    assert str(model) in line  # what to restore
    assert files() == before
    # restored as it was, the run opens again
    edit(original, 2000)
    assert len(api.evaluate(run, archs=[arch], quiet=True, threads=1).rows) == 1
    before = files()
    # the user renames an option of b3 (the file keeps its size); a new process refuses the run
    edit(original.replace('"skip": nn.Identity()}, label="b3"', '"noop": nn.Identity()}, label="b3"'), 3000)
    assert model.read_text() != original and len(model.read_text()) == len(original)
    done = _evonas("eval", "--run", run, "--sample", "1", "--threads", "1", "--quiet", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr and not done.stdout.strip(), done.stderr
    assert "has changed since it was trained" in lines[0] and "choice 'b3'" in lines[0], lines[0]
    assert "has options ['dw', 'noop'] (the run was trained with ['dw', 'skip'])" in lines[0], lines[0]
    assert files() == before  # nothing in the run was written by the refused commands
    # resuming a stopped run of a changed file is refused before anything is written
    edit(original, 4000)
    stopped = tmp_path / "stopped"
    _train(stopped, model, user_data, epochs=2, stop_after=1)
    stem = "nn.Conv2d(in_channels, width, 3, padding=1, bias=False)"
    edit(original.replace(stem, stem.replace("3, padding=1", "5, padding=2")), 5000)  # the fixed part changes
    saved = files(stopped)
    line = cli_error(capsys, ["train-supernet", "--run", stopped, "--resume", "--threads", "1", "--quiet"])
    assert "has changed since it was trained" in line and "the fixed part of the model" in line, line
    assert files(stopped) == saved



def test_run_whose_data_changed_is_refused_in_one_line(tmp_path, capsys, user_model):
    from PIL import Image

    folder = make_image_folder(tmp_path / "images", classes=3, per_class=8, size=16)
    run, stopped = tmp_path / "run", tmp_path / "stopped"
    _train(run, user_model, folder, epochs=1)
    _train(stopped, user_model, folder, epochs=2, stop_after=1)

    def files() -> list:
        return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.rglob("*") if run in p.parents
                      or stopped in p.parents)

    before = files()
    # a fourth class folder joins the data: the model's head has three outputs
    make_image_folder(tmp_path / "four", classes=4, per_class=8, size=16)
    for part in ("train", "test"):
        (tmp_path / "four" / part / "dress").rename(folder / part / "dress")
    for argv in (["eval", "--run", run, "--sample", "1", "--quiet"], ["train-supernet", "--run", stopped, "--resume"]):
        line = cli_error(capsys, argv)
        assert "does not fit the run's model: num_classes 4 (the model was built for 3)" in line, line
        assert str(folder) in line
    # the images are resized: the costs were counted at 16x16
    for part in ("train", "test"):
        for png in (folder / part / "dress").iterdir():
            png.unlink()
        (folder / part / "dress").rmdir()
    for png in folder.rglob("*.png"):
        Image.open(png).resize((12, 12)).save(png)
    line = cli_error(capsys, ["eval", "--run", run, "--sample", "1", "--quiet"])
    assert "image_size 12 (the model was built for 16)" in line, line
    assert files() == before


# ----------------------------------------------------------------------- the CLI on a user's run


def test_profile_check_on_a_user_run_and_spaces_still_lists_the_presets(tmp_path, capsys, user_model, user_data):
    from evonas.cli.main import main
    from evonas.spaces import SPACES_BUILTIN

    run = tmp_path / "run"
    main([str(a) for a in _train_argv(run, f"{user_model}:build", user_data)])
    capsys.readouterr()
    archs = ["b1=conv5,b2=sequential2,b3=dw,act=relu", "b1=shift,b2=identity,b3=skip,act=gelu", "0000"]
    main(["profile", "--run", str(run), "--check", "--json", *(x for a in archs for x in ("--arch", a))])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["arch"] for r in rows] == archs[:2] + ["b1=conv3,b2=sequential,b3=dw,act=relu"]
    space = resolve_space(f"{user_model}:build", {"in_channels": 1, "num_classes": 3, "image_size": 16})
    for row in rows:
        cost = space.cost(space.parse(row["arch"]))
        assert (row["flops"], row["params"]) == (cost.flops, cost.params)
        assert (row["measured_flops"], row["measured_params"]) == (row["flops"], row["params"]), row
    assert rows[0]["flops"] > rows[1]["flops"] > 0 and rows[0]["params"] > rows[1]["params"]
    # the table shows both counts
    main(["profile", "--run", str(run), "--check", "--arch", archs[0]])
    table = capsys.readouterr().out
    assert "torch FLOPs" in table and f"{rows[0]['flops']:,}" in table and table.count(f"{rows[0]['params']:,}") == 2
    # a bad architecture on the run is one line naming the choice
    line = cli_error(capsys, ["profile", "--run", run, "--arch", "b1=conv9,b2=identity,b3=skip,act=gelu"])
    assert "'b1'" in line and "'conv9'" in line
    # the user's space (registered in this process) does not join the presets' list
    main(["spaces"])
    listed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert {"macro-fmnist", "macro-cifar10", "mobilenet-fmnist", "nb201"} <= set(listed)
    assert set(listed) == set(SPACES_BUILTIN) and str(user_model) not in " ".join(listed)


# ----------------------------------------------------------------------- augmentation and resume


def test_augment_standard_is_recorded_and_changes_training(tmp_path, user_model, user_data):
    plain = _train(tmp_path / "plain", user_model, user_data, epochs=1)
    augmented = _train(tmp_path / "augmented", user_model, user_data, epochs=1, augment="standard")
    config = json.loads((tmp_path / "augmented" / "config.json").read_text())["config"]
    assert config["augment"] == "standard" and augmented.finished
    assert augmented.run.config.augment == "standard" and plain.run.config.augment == "none"
    a = torch.load(tmp_path / "plain" / "supernet.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "augmented" / "supernet.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the augmented images trained other weights


def test_resume_of_a_user_run_is_bit_identical(tmp_path, monkeypatch, user_model, user_data):
    import evonas.api as api

    whole = _train(tmp_path / "whole", user_model, user_data, epochs=3, strategy="few-shot")
    # the user works in the folder of their model and data, and gives relative paths, the same ones each time
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "my_model.py").write_text(user_model.read_text())
    (tmp_path / "work" / "images").symlink_to(user_data, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "work")
    same = dict(space="my_model.py:build", data="imagefolder:images", epochs=3, strategy="few-shot", batch_size=16,
                quiet=True, threads=1)
    a = torch.load(tmp_path / "whole" / "supernet.pt", weights_only=False)["model"]
    assert len(a) > 20
    for stop in (1, 2):  # before and after the few-shot split (at epoch 2 of 3)
        run = f"split{stop}"
        stopped = api.train(run, stop_after=stop, **same)
        assert not stopped.finished and not (tmp_path / "work" / run / "supernet.pt").exists()
        assert json.loads((tmp_path / "work" / run / "config.json").read_text())["config"]["space"] == \
            f"{tmp_path / 'work' / 'my_model.py'}:build"
        resumed = api.train(run, resume=True, **same)
        assert resumed.resumed and resumed.finished and whole.finished
        b = torch.load(tmp_path / "work" / run / "supernet.pt", weights_only=False)["model"]
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, (stop, different[:5])


def test_profile_of_a_model_file_takes_the_shape_of_the_data(tmp_path, capsys):
    """profile --space PATH.py:FACTORY --data SPEC builds the model for the data's shape, as train-supernet would."""
    import shutil

    from evonas.cli.main import main as cli_main

    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "my_model.py", tmp_path / "my_model.py")
    images = make_image_folder(tmp_path / "images", classes=3, per_class=4, size=16)
    arch = "block0=conv5,block1=skip,block2=shift,pool=max"
    cli_main(["profile", "--space", f"{tmp_path / 'my_model.py'}:build", "--data", f"imagefolder:{images}",
              "--arch", arch, "--check", "--json"])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["flops"] == row["measured_flops"] > 0 and row["params"] == row["measured_params"]
    # a new process without --data: the factory has no image_size default, so the shape is unknown
    done = subprocess.run([sys.executable, "-m", "evonas", "profile", "--space", f"{tmp_path / 'my_model.py'}:build",
                           "--arch", arch], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and "--data" in done.stderr and len(done.stderr.strip().splitlines()) == 1
