"""Supernet sampling options: pada (path and data importance) and lr_by_size (learning rate and momentum per size).

What each changes (probabilities, epoch order, learning rates, momentum groups), that
runs train and resume bit-identically, combine with landmark, sandwich and few-shot,
train your own model, reopen without the options, and that each refusal is one line.
Tiny synthetic data (two steps of 16 images an epoch) and one thread.
"""

from __future__ import annotations

import collections
import json
import math
import random
from pathlib import Path

import pytest
import torch

from search_spaces import get_space

from evonas.errors import ConfigError
from evonas.run.config import TrainConfig
from evonas.run.run import Run, RunLayout
from evonas.training.loop import StepResult
from evonas.training.sampling import PADA_EMA, PadaSampler, Sampler
from evonas.training.size_lr import SizeLR
from evonas.training.strategies import extreme_arch, make_strategy
from evonas.training.train import train_supernet
from tests.conftest import cli, refused_in_one_line, supernet_weights, tiny_config

SMALL = dict(train_limit=32, batch_size=16, val_size=200)  # two steps of 16 images an epoch
LANDMARKS = [["12012200", 80.0], ["00000000", 70.0], ["22222222", 75.0]]
NEW_KEYS = ("sampling", "pada_mix", "lr_by_size", "size_groups")


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread (conftest restores the count after each test): tiny steps gain nothing from two."""
    torch.set_num_threads(1)


def small_config(**changes) -> TrainConfig:
    return tiny_config(**{**SMALL, **changes})


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = supernet_weights(a), supernet_weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def _flat(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


def _opt_with_grad_norm(norm: float) -> torch.optim.Optimizer:
    """An optimizer over one parameter whose gradient has L2 norm ``norm``."""
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), norm / 2)
    return torch.optim.SGD([p], lr=0.1)


# ----------------------------------------------------------------------- pada: paths


def test_path_probabilities_follow_the_gradient_norms_of_the_options_paths():
    space = get_space("macro-fmnist")  # 8 choices of 3 options (codes 0, 1, 2)
    sampler = PadaSampler(space, small_config(sampling="pada", pada_mix=0.6))
    sampler.start(0, 11)
    assert sampler.mix(0) == 0 and sampler.mix(10) == pytest.approx(0.6) and sampler.mix(5) == pytest.approx(0.3)
    uniform = [[1 / 3] * 3] * 8
    sampler.begin_step(0)
    assert _flat(sampler.probabilities()) == pytest.approx(_flat(uniform))
    zeros, ones = space.make([0] * 8), space.make([1] * 8)
    for arch, norm in ((zeros, 4.0), (ones, 1.0)):
        sampler.begin_step(1)
        sampler.step_paths.append(arch)  # as if drawn through sample()
        sampler.observe(_opt_with_grad_norm(norm), None, None, None)
    # the draws use the host copy, read every LOG_EVERY steps and at each epoch's start
    assert _flat(sampler.probabilities(10)) == pytest.approx(_flat(uniform))
    sampler.refresh()
    weights = [4.0, 1.0, 2.5]  # option 2 never trained: the mean of its choice's trained options
    want = [0.4 / 3 + 0.6 * w / 7.5 for w in weights]
    assert _flat(sampler.probabilities(10)) == pytest.approx(_flat([want] * 8))
    assert _flat(sampler.probabilities(0)) == pytest.approx(_flat(uniform))  # lam = 0 at the first step
    sampler.step_paths = [zeros]
    sampler.observe(_opt_with_grad_norm(2.0), None, None, None)
    sampler.refresh()
    assert sampler.weights[0] == pytest.approx([PADA_EMA * 4 + (1 - PADA_EMA) * 2, 1.0, (3.8 + 1.0) / 2])
    # a non-finite norm (an fp16 step that overflowed) changes nothing
    sampler.step_paths = [zeros]
    sampler.observe(_opt_with_grad_norm(float("inf")), None, None, None)
    sampler.refresh()
    assert sampler.weights[0][0] == pytest.approx(3.8)
    # the draws follow the probabilities, from the run's path RNG
    sampler.begin_step(10)
    rng = random.Random(0)
    counts = collections.Counter(code for _ in range(3000) for code in sampler.sample(rng).choices)
    probs = sampler.probabilities()[0]
    for code in (0, 1, 2):
        assert abs(counts[code] / 24000 - probs[code]) < 0.02
    assert counts[0] > counts[2] > counts[1]
    assert len(sampler.step_paths) == 3000
    again = PadaSampler(space, sampler.cfg)
    again.load_state_dict(sampler.state_dict())
    again.start(10, 11)
    again.begin_step(10)
    assert [again.sample(random.Random(5)) for _ in range(20)] == [sampler.sample(random.Random(5)) for _ in range(20)]


def test_the_uniform_sampler_draws_what_space_sample_draws():
    space = get_space("macro-fmnist")
    sampler = make_strategy(space, small_config()).sampler
    assert type(sampler) is Sampler
    a, b = random.Random(3), random.Random(3)
    assert [sampler.sample(a) for _ in range(10)] == [space.sample(b) for _ in range(10)]
    assert sampler.begin_epoch(0, 0, 32) is None and sampler.state_dict() == {}


# ----------------------------------------------------------------------- pada: data


def test_epoch_order_prefers_examples_with_high_scores_and_is_derived_from_seed_and_epoch():
    space = get_space("macro-fmnist")
    cfg = small_config(sampling="pada", pada_mix=0.9)
    sampler = PadaSampler(space, cfg)
    sampler.start(0, 101)
    n = 200
    first = sampler.begin_epoch(0, 0, n)  # lam = 0: uniform, with replacement
    assert len(first) == n and torch.equal(first, sampler.begin_epoch(0, 0, n))
    assert not torch.equal(first, sampler.begin_epoch(1, 0, n))
    assert (first < 100).sum().item() == pytest.approx(100, abs=30)
    sampler.scores = torch.cat([torch.ones(100), torch.full((100,), 0.01)])  # the first half hard, the rest easy
    late = sampler.begin_epoch(3, 100, n)  # lam = 0.9 at the last step
    share = (late < 100).float().mean().item()
    want = 0.1 / 2 + 0.9 * 100 / 101  # (1 - lam) / N + lam * s_i / sum(s), summed over the hard half
    assert share == pytest.approx(want, abs=0.05) and share > 0.85


def test_example_scores_are_the_error_norm_of_the_last_training_and_keep_the_larger_of_duplicates():
    space = get_space("macro-fmnist")
    sampler = PadaSampler(space, small_config(sampling="pada"))
    sampler.start(0, 10)
    sampler.begin_epoch(0, 0, 6)
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0], [0.0, 10.0]])
    y = torch.tensor([0, 0, 0])
    result = StepResult(logits, torch.tensor(0.0), 0, 3, 3)
    sampler.observe(_opt_with_grad_norm(1.0), result, torch.tensor([4, 1, 1]), y)
    p = torch.softmax(logits, dim=1)
    err = (p - torch.tensor([[1.0, 0.0]] * 3)).norm(dim=1)
    assert sampler.scores[4].item() == pytest.approx(err[0].item())
    assert sampler.scores[1].item() == pytest.approx(err[2].item())  # drawn twice: the larger score
    assert sampler.scores[[0, 2, 3, 5]].tolist() == [1.0] * 4  # not trained on: their start value


# ----------------------------------------------------------------------- lr_by_size


def test_learning_rate_compresses_the_cosine_schedule_for_small_paths():
    space = get_space("macro-fmnist")
    cfg = small_config(lr_by_size=True, size_groups=3, lr=0.2)
    sizes = SizeLR(space, cfg, total_steps=100)
    small, large = extreme_arch(space, largest=False), extreme_arch(space, largest=True)
    assert sizes.relative_size(small) == 0 and sizes.relative_size(large) == 1
    assert 0 < sizes.relative_size(space.sample(random.Random(1))) < 1
    assert sizes.rate(0, 0.0) == sizes.rate(0, 1.0) == pytest.approx(0.2)
    for step in (10, 30, 49):
        assert sizes.rate(step, 0.0) < sizes.rate(step, 0.5) < sizes.rate(step, 1.0)
        assert sizes.rate(step, 1.0) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * step / 100)))
    assert sizes.rate(50, 0.0) == pytest.approx(0) and sizes.rate(80, 0.0) == 0 and sizes.rate(100, 1.0) == pytest.approx(0)
    assert [sizes.group(r) for r in (0, 0.3, 1 / 3, 0.5, 0.7, 1)] == [0, 0, 1, 1, 2, 2]
    assert SizeLR(space, small_config(lr_by_size=True, size_groups=1), 100).group(1.0) == 0


def test_each_size_group_keeps_its_own_momentum_buffers():
    space = get_space("macro-fmnist")
    sizes = SizeLR(space, small_config(lr_by_size=True, size_groups=2, lr=0.1), total_steps=10)
    small, large = extreme_arch(space, largest=False), extreme_arch(space, largest=True)
    used, unused = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([used, unused], lr=0.1, momentum=0.9)

    def step(arch, grad: float, t: int) -> None:
        used.grad = torch.full((3,), grad)
        sizes.before_update(opt, [arch], t)
        assert opt.param_groups[0]["lr"] == pytest.approx(sizes.rate(t, sizes.relative_size(arch)))
        opt.step()
        sizes.after_update(opt)

    step(small, 1.0, 2)
    assert set(opt.state[used]) == {"momentum_buffer_size0"} and unused not in opt.state
    step(large, 5.0, 3)
    assert set(opt.state[used]) == {"momentum_buffer_size0", "momentum_buffer_size1"}
    assert opt.state[used]["momentum_buffer_size0"].tolist() == [1.0] * 3  # the first buffer is the gradient
    assert opt.state[used]["momentum_buffer_size1"].tolist() == [5.0] * 3  # not 0.9 * 1 + 5
    step(small, 1.0, 4)
    assert opt.state[used]["momentum_buffer_size0"].tolist() == pytest.approx([1.9] * 3)
    assert opt.state[used]["momentum_buffer_size1"].tolist() == [5.0] * 3


# ----------------------------------------------------------------------- training, resume, combinations

RUNS = {
    "pada": dict(sampling="pada", pada_mix=0.8),
    "size": dict(lr_by_size=True, size_groups=2),
    "pada-size-landmark": dict(sampling="pada", lr_by_size=True, strategy="landmark", landmark_archs=LANDMARKS),
    "pada-sandwich": dict(sampling="pada", strategy="sandwich", sandwich_random=1),
    "pada-size-few-shot": dict(sampling="pada", lr_by_size=True, strategy="few-shot", epochs=3),
}


class _WholeRuns(dict):
    """One uninterrupted run per combination (and ``uniform``), trained when first asked for."""

    def __init__(self, factory) -> None:
        super().__init__()
        self.factory = factory

    def __missing__(self, name: str) -> Path:
        run = self[name] = self.factory.mktemp(name)
        train_supernet(run, small_config(**({} if name == "uniform" else RUNS[name])), progress=False)
        return run


@pytest.fixture(scope="module")
def whole_runs(tmp_path_factory) -> dict[str, Path]:
    return _WholeRuns(tmp_path_factory)


@pytest.mark.parametrize("name", list(RUNS))
def test_options_train_change_the_weights_and_resume_bit_identically(name, whole_runs, tmp_path):
    cfg = small_config(**RUNS[name])
    run = whole_runs[name]
    assert not _same_weights(run, whole_runs["uniform"])
    assert all(math.isfinite(r["train_loss"]) for r in _log(run))
    config = json.loads((run / "config.json").read_text())["config"]
    assert {k: config[k] for k in NEW_KEYS} == {k: getattr(cfg, k) for k in NEW_KEYS}
    stopped = tmp_path / "stopped"
    train_supernet(stopped, cfg, progress=False, stop_after=1)
    state = torch.load(RunLayout(stopped).checkpoint, weights_only=False)
    if cfg.sampling == "pada":
        assert state["sampler"]["scores"].shape == (32,) and bool(state["sampler"]["seen"].any())
        assert not torch.equal(state["sampler"]["scores"], torch.ones(32))
    if cfg.lr_by_size:
        keys = {k for s in state["optimizer"]["state"].values() for k in s}
        assert "momentum_buffer" not in keys and keys <= {f"momentum_buffer_size{g}" for g in range(cfg.size_groups)}
    train_supernet(stopped, cfg, progress=False, resume=True)
    assert _same_weights(stopped, run)
    assert [dict(r, seconds=0) for r in _log(stopped)] == [dict(r, seconds=0) for r in _log(run)]


def test_a_run_without_the_options_reopens_with_the_defaults(tmp_path, whole_runs):
    """config.json of an evonas before these options (tests/training/test_strategies.py resumes such a checkpoint)."""
    import shutil

    from evonas.run.config import comparable_config

    run = tmp_path / "old"
    shutil.copytree(whole_runs["uniform"], run)
    info = json.loads((run / "config.json").read_text())
    info["config"] = {k: v for k, v in info["config"].items() if k not in NEW_KEYS}
    (run / "config.json").write_text(json.dumps(info))
    opened = Run.open(run).config
    assert (opened.sampling, opened.pada_mix, opened.lr_by_size, opened.size_groups) == ("uniform", 0.5, False, 3)
    assert opened == small_config() and comparable_config(info["config"]) == comparable_config(small_config().to_dict())


def test_options_train_your_own_model(tmp_path):
    import evonas.api as api
    from tests.imagefolder import make_image_folder
    from tests.supernet.test_user_space import write_model

    data = make_image_folder(tmp_path / "images", classes=3, per_class=12, size=16, test_per_class=2)
    model = write_model(tmp_path / "user")
    settings = dict(space=f"{model}:build", data=f"imagefolder:{data}", sampling="pada", lr_by_size=True, epochs=2,
                    batch_size=8, quiet=True, threads=1)
    whole = api.train(tmp_path / "whole", **settings)
    assert whole.finished
    config = whole.run.config
    assert (config.sampling, config.lr_by_size) == ("pada", True)
    space = whole.run.space
    sizes = SizeLR(space, config, 10)
    assert {sizes.relative_size(a) for a in space.enumerate()} >= {0.0, 1.0}
    api.train(tmp_path / "stopped", stop_after=1, **settings)
    api.train(tmp_path / "stopped", resume=True, quiet=True, threads=1)
    assert _same_weights(tmp_path / "stopped", tmp_path / "whole")
    scored = api.evaluate(tmp_path / "whole", archs=["b1=shift,b2=identity,b3=dw,act=gelu"], quiet=True, threads=1)
    assert 0 <= scored.rows[0]["accuracy"] <= 100


# ----------------------------------------------------------------------- the command line


def train_argv(run: Path, *more) -> list:
    return ["train-supernet", "--run", run, "--space", "macro-fmnist", "--data", "synthetic", "--val-size", "200",
            "--train-limit", "32", "--batch-size", "16", "--epochs", "1", "--lr", "0.05", "--threads", "1", "--quiet",
            *more]


def test_cli_trains_with_the_options_and_resume_keeps_them(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = cli(capsys, *train_argv(run, "--sampling", "pada", "--pada-mix", "0.3", "--lr-by-size",
                                             "--size-groups", "2"))
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())["config"]
    assert {k: config[k] for k in NEW_KEYS} == {"sampling": "pada", "pada_mix": 0.3, "lr_by_size": True, "size_groups": 2}
    code, out, err = cli(capsys, *train_argv(run, "--sampling", "uniform", "--resume"))
    assert code == 2 and "'sampling': ('pada', 'uniform')" in err, err


REFUSED = {
    "fair": (["--sampling", "pada", "--strategy", "fair"], ["--sampling pada", "strategy 'fair'", "--sampling uniform"]),
    "stream": (["--sampling", "pada", "--stream"], ["--sampling pada", "in memory", "--in-memory", "--sampling uniform"]),
    "mix-high": (["--sampling", "pada", "--pada-mix", "1"], ["--pada-mix must be a float in [0, 1)", "got 1.0"]),
    "mix-low": (["--sampling", "pada", "--pada-mix", "-0.1"], ["--pada-mix must be a float in [0, 1)", "got -0.1"]),
    "mix-nan": (["--pada-mix", "nan"], ["--pada-mix must be a float in [0, 1)", "got nan"]),
    "onecycle": (["--lr-by-size", "--schedule", "onecycle"], ["--lr-by-size", "--schedule cosine", "'onecycle'"]),
    "sandwich": (["--lr-by-size", "--strategy", "sandwich"], ["--lr-by-size does not combine with strategy 'sandwich'"]),
    "fair-size": (["--lr-by-size", "--strategy", "fair"], ["--lr-by-size does not combine with strategy 'fair'"]),
    "groups": (["--lr-by-size", "--size-groups", "0"], ["--size-groups must be an integer >= 1", "got 0"]),
    "processes": (["--sampling", "pada", "--nproc-per-node", "2"], ["--sampling pada trains in one process", "2 processes"]),
    "sampling": (["--sampling", "importance"], ["'importance' is not one of"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_sampling_options_are_one_line_and_write_nothing(tmp_path, capsys, case):
    more, fragments = REFUSED[case]
    line = refused_in_one_line(capsys, train_argv(tmp_path / "run", *more), tmp_path / "run")
    for fragment in fragments:
        assert fragment in line, line


def test_pada_refuses_images_that_stream_because_they_are_large(tmp_path, capsys, monkeypatch):
    from evonas import streaming
    from tests.imagefolder import make_image_folder

    data = make_image_folder(tmp_path / "images", classes=2, per_class=8, size=28, test_per_class=2)
    monkeypatch.setattr(streaming, "MEMORY_BUDGET_BYTES", 100)
    run = tmp_path / "run"
    argv = ["train-supernet", "--run", run, "--space", "macro-fmnist", "--data", f"imagefolder:{data}", "--epochs", "1",
            "--batch-size", "4", "--val-size", "0.25", "--threads", "1", "--quiet", "--sampling", "pada"]
    line = refused_in_one_line(capsys, argv, run)
    assert "--sampling pada" in line and "stream from disk" in line and "--in-memory" in line and "--sampling uniform" in line


def test_bad_values_in_python_are_one_config_error_naming_the_parameter():
    for changes, param in ((dict(sampling="pada", pada_mix=True), "pada_mix"), (dict(lr_by_size=1), "lr_by_size"),
                           (dict(size_groups=2.0), "size_groups"), (dict(sampling="pada", in_memory=False), "sampling")):
        with pytest.raises(ConfigError) as err:
            small_config(**changes)
        assert err.value.param == param and "\n" not in str(err.value)
