"""Supernet training strategies: each trains, resumes bit-identically and scores; their path rules."""

from __future__ import annotations

import collections
import json
import math
import random
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from search_spaces import get_space

from evonas.data import Normalizer, batches
from evonas.errors import ConfigError
from evonas.evaluation.scoring import SupernetEvaluator
from evonas.run.config import TrainConfig
from evonas.run.run import Run, load_run_splits
from evonas.supernet import FewShotSupernet, build_one_shot, build_supernet
from evonas.supernet.chain import build_standalone
from evonas.supernet.ops import InvertedResidual
from evonas.training.loop import epoch_generator, make_optimizer
from evonas.training.strategies import Sandwich, extreme_arch, fair_paths, list_strategies, make_strategy
from evonas.training.train import train_standalone, train_supernet
from tests.conftest import assert_same_weights, supernet_weights, tiny_config

STRATEGIES = list_strategies()
# the TrainConfig fields an older evonas did not write
NEW_KEYS = ("zero_init_residual", "strategy", "sandwich_random", "distill_temperature", "few_shot_fraction", "few_shot_layer",
            "sampling", "pada_mix", "lr_by_size", "size_groups")
PATHS_PER_STEP = {"uniform": 1, "few-shot": 1, "fair": 3, "sandwich": 4, "landmark": 3}  # macro-fmnist: 3 options a layer
# landmark: the uniform path and one pair of landmarks a step (tests/training/test_landmark.py tests the strategy itself)
LANDMARKS = [["12012200", 80.0], ["00000000", 70.0], ["22222222", 75.0]]


def small_config(**changes) -> TrainConfig:
    """Two steps of 16 images an epoch: a strategy's run takes a few seconds."""
    return tiny_config(**{"train_limit": 32, "batch_size": 16, **changes})


def strategy_config(name: str) -> TrainConfig:
    # few-shot over 3 epochs splits after epoch 2, so stopping after epoch 1 resumes across the split
    extra = {"landmark_archs": LANDMARKS} if name == "landmark" else {}
    return small_config(strategy=name, epochs=3 if name == "few-shot" else 2, **extra)


@pytest.fixture(scope="module")
def strategy_runs(tmp_path_factory) -> dict[str, Path]:
    """One uninterrupted run per registered strategy."""
    runs = {}
    for name in STRATEGIES:
        runs[name] = tmp_path_factory.mktemp(f"run-{name}")
        train_supernet(runs[name], strategy_config(name), progress=False)
    return runs


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_trains_logs_images_and_scores(name, strategy_runs):
    run = strategy_runs[name]
    cfg = strategy_config(name)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    per_epoch = 2 * cfg.batch_size * PATHS_PER_STEP[name]
    assert [r["images_seen"] for r in log] == [per_epoch] * cfg.epochs
    assert [r["images_seen_total"] for r in log] == [per_epoch * (i + 1) for i in range(cfg.epochs)]
    assert all(math.isfinite(r["train_loss"]) for r in log)
    final = torch.load(run / "supernet.pt", weights_only=False)
    assert final["images_seen"] == per_epoch * cfg.epochs
    assert json.loads((run / "config.json").read_text())["images_seen"] == per_epoch * cfg.epochs
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())
    ev = SupernetEvaluator(Run.open(run), recalib_images=32)
    expected_type = FewShotSupernet if name == "few-shot" else torch.nn.Module
    assert isinstance(ev.model, expected_type)
    for arch in (get_space(cfg.space).sample(random.Random(i)) for i in range(2)):
        metrics = ev.evaluate(arch)
        assert 0 <= metrics["accuracy"] <= 100 and math.isfinite(metrics["loss"])


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_resumes_bit_identically(name, strategy_runs, tmp_path):
    cfg = strategy_config(name)
    stops = (1, 2) if name == "few-shot" else (1,)  # few-shot: before the split and at it
    for stop in stops:
        run = tmp_path / f"stopped{stop}"
        train_supernet(run, cfg, progress=False, stop_after=stop)
        assert not (run / "supernet.pt").exists()
        train_supernet(run, cfg, progress=False, resume=True)
        assert_same_weights(run, strategy_runs[name])
    if name == "few-shot":
        phases = [json.loads(line)["phase"] for line in (run / "train_log.jsonl").read_text().splitlines()]
        assert phases == ["one-shot", "few-shot", "few-shot"]


def test_uniform_without_zero_init_is_the_original_spos_loop(tmp_path):
    """The reference: the SPOS loop as evonas ran it before strategies existed."""
    cfg = small_config(zero_init_residual=False)
    train_supernet(tmp_path / "run", cfg, progress=False)
    space = get_space(cfg.space)
    torch.manual_seed(cfg.seed)
    model = build_supernet(space)
    splits = load_run_splits(cfg)
    norm = Normalizer(splits.mean, splits.std)
    opt, sched = make_optimizer(model, cfg, 2 * cfg.epochs)
    rng = random.Random(cfg.seed)
    model.train()
    for epoch in range(cfg.epochs):
        for xb, yb in batches(splits.train_x, splits.train_y, cfg.batch_size, generator=epoch_generator(cfg.seed, epoch), drop_last=True):
            loss = F.cross_entropy(model(norm(xb), space.sample(rng)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    got = supernet_weights(tmp_path / "run")
    for k, v in model.state_dict().items():
        assert torch.equal(got[k], v), k


def test_fair_paths_use_every_option_of_every_layer_once():
    space = get_space("macro-fmnist")
    rng = random.Random(0)
    for _ in range(20):
        paths = fair_paths(space, rng)
        assert len(paths) == 3
        for i, dim in enumerate(space.dims):
            assert sorted(p.choices[i] for p in paths) == sorted(dim.options)
    assert fair_paths(space, random.Random(5)) == fair_paths(space, random.Random(5))


def test_fair_paths_cover_uneven_layers_as_evenly_as_possible():
    space = get_space("mobilenet-fmnist")
    m = max(len(d.options) for d in space.dims)
    assert m == 7 and {len(d.options) for d in space.dims} == {6, 7}
    rng = random.Random(1)
    for _ in range(20):
        paths = fair_paths(space, rng)
        assert len(paths) == m
        for i, dim in enumerate(space.dims):
            counts = collections.Counter(p.choices[i] for p in paths)
            assert set(counts) == set(dim.options)  # every option at least once
            assert max(counts.values()) - min(counts.values()) <= 1  # as evenly as possible
            for p in paths:
                space.validate(p)


def test_sandwich_picks_the_largest_and_smallest_paths_by_flops():
    space = get_space("macro-fmnist")
    flops = {arch: space.cost(arch).flops for arch in space.enumerate(canonical_only=False)}
    largest, smallest = extreme_arch(space, largest=True), extreme_arch(space, largest=False)
    assert flops[largest] == max(flops.values()) == space.max_cost("flops")
    assert flops[smallest] == min(flops.values()) == space.min_cost("flops")
    mobile = get_space("mobilenet-fmnist")
    assert mobile.cost(extreme_arch(mobile, largest=True)).flops == mobile.max_cost("flops")
    assert mobile.cost(extreme_arch(mobile, largest=False)).flops == mobile.min_cost("flops")


def test_sandwich_step_trains_the_largest_on_labels_and_distils_the_rest():
    cfg = small_config(strategy="sandwich", sandwich_random=2)
    space = get_space(cfg.space)
    strategy = make_strategy(space, cfg)
    assert isinstance(strategy, Sandwich)
    model = build_supernet(space, cfg)
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x, arch):
            seen.append(arch)
            return self.inner(x, arch)

    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    result = strategy.step(Spy(), x, y, random.Random(0))
    assert seen[0] == strategy.largest and seen[1] == strategy.smallest and len(seen) == 4
    assert result.images == 4 * 4 and result.count == 4 and math.isfinite(result.loss)
    torch.testing.assert_close(result.logits, model(x, strategy.largest).detach(), rtol=0, atol=1e-5)
    used = {id(p) for arch in seen for m in model.path_modules(arch) for p in m.parameters()}
    assert all((p.grad is not None) == (id(p) in used) for p in model.parameters())


def test_few_shot_routes_each_arch_to_the_sub_supernet_of_its_split_option():
    space = get_space("macro-fmnist")
    torch.manual_seed(0)
    model = FewShotSupernet.split(build_one_shot(space), layer=2).eval()
    assert sorted(model.parts) == ["0", "1", "2"]
    assert all(list(part.choices[2]) == [code] for code, part in model.parts.items())
    archs = [space.parse(text) for text in ("11011100", "11111100", "11211100")]
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        before = [model(x, arch) for arch in archs]
        model.parts["1"].head.classifier.bias.add_(1.0)  # only sub-supernet 1 moves
        after = [model(x, arch) for arch in archs]
    for arch, b, a in zip(archs, before, after):
        part = model.parts[str(arch.choices[2])]
        assert all(any(m is q for q in part.modules()) for m in model.path_modules(arch))
        torch.testing.assert_close(a, b + (1.0 if arch.choices[2] == 1 else 0.0), rtol=0, atol=1e-5)


def test_few_shot_extract_matches_forward(strategy_runs):
    run = Run.open(strategy_runs["few-shot"])
    model = run.load_supernet()
    assert isinstance(model, FewShotSupernet)
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model.train()
    with torch.no_grad():
        for i in range(3):  # distinct BN statistics on the paths
            model(x * (i + 1), run.space.sample(random.Random(i)))
    model.eval()
    for i in range(3):
        arch = run.space.sample(random.Random(10 + i))
        with torch.no_grad():
            torch.testing.assert_close(model.extract(arch).eval()(x), model(x, arch), rtol=0, atol=1e-5)


def test_few_shot_default_split_layer_and_config_knob():
    for name in ("macro-fmnist", "mobilenet-fmnist"):
        model = build_supernet(get_space(name), small_config(space=name, strategy="few-shot"))
        assert isinstance(model, FewShotSupernet) and model.layer == 0
    model = build_supernet(get_space("macro-fmnist"), small_config(strategy="few-shot", few_shot_layer=3))
    assert model.layer == 3 and sorted(model.parts) == ["0", "1", "2"]
    with pytest.raises(ConfigError, match="'few_shot_layer' parameter"):
        small_config(strategy="few-shot", few_shot_layer=8)


def test_zero_init_residual_zeroes_the_last_bn_of_residual_blocks_only_in_the_supernet():
    space = get_space("mobilenet-fmnist")
    blocks = [m for m in build_supernet(space, small_config(space=space.name)).modules() if isinstance(m, InvertedResidual)]
    residual = [b for b in blocks if b.use_residual]
    assert residual and len(residual) < len(blocks)
    assert all(torch.count_nonzero(b.body[-1][1].weight) == 0 for b in residual)
    assert all(torch.count_nonzero(b.body[-1][1].weight) > 0 for b in blocks if not b.use_residual)
    off = build_supernet(space, small_config(space=space.name, zero_init_residual=False))
    assert all(torch.count_nonzero(m.body[-1][1].weight) > 0 for m in off.modules() if isinstance(m, InvertedResidual))
    # same random draws with and without: only the zeroed gammas differ
    torch.manual_seed(0)
    on = build_supernet(space, small_config(space=space.name)).state_dict()
    torch.manual_seed(0)
    off = build_supernet(space, small_config(space=space.name, zero_init_residual=False)).state_dict()
    zeroed = [f"{n}.body.2.1.weight" for n, m in build_supernet(space).named_modules() if isinstance(m, InvertedResidual) and m.use_residual]
    assert [k for k in on if not torch.equal(on[k], off[k])] == zeroed
    arch = space.parse("1" * len(space.dims))
    standalone = build_standalone(space, arch)
    assert all(torch.all(m.body[-1][1].weight == 1) for m in standalone.modules() if isinstance(m, InvertedResidual))


def test_standalone_training_ignores_the_supernet_choices():
    cfg = small_config(epochs=1)
    splits = load_run_splits(cfg)
    arch = get_space(cfg.space).parse("11111111")
    a = train_standalone(arch, cfg, splits, progress=False)
    b = train_standalone(arch, cfg.replace(zero_init_residual=False, strategy="sandwich"), splits, progress=False)
    assert (a["accuracy"], a["loss"]) == (b["accuracy"], b["loss"])


def test_unknown_strategy_is_one_config_error_listing_the_valid_names():
    with pytest.raises(ConfigError) as err:
        small_config(strategy="greedy")
    message = str(err.value)
    assert message.startswith("The 'strategy' parameter must be one of") and "got 'greedy'" in message
    assert all(name in message for name in STRATEGIES) and err.value.param == "strategy"
    for bad in (dict(sandwich_random=-1), dict(distill_temperature=0.0), dict(few_shot_fraction=1.0)):
        with pytest.raises(ConfigError, match=f"'{next(iter(bad))}' parameter"):
            small_config(**bad)


def test_a_legacy_config_loads_with_the_legacy_values_and_scores_identically(tmp_path):
    cfg = small_config(epochs=1, zero_init_residual=False)
    run = tmp_path / "old"
    train_supernet(run, cfg, progress=False)
    arch = get_space(cfg.space).parse("12012200")
    before = SupernetEvaluator(Run.open(run), recalib_images=32).evaluate(arch)
    # rewrite the run as an evonas without those fields wrote it
    info = json.loads((run / "config.json").read_text())
    old = {k: v for k, v in info["config"].items() if k not in NEW_KEYS}
    (run / "config.json").write_text(json.dumps({"kind": "supernet", "config": old, "environment": info["environment"]}))
    weights = torch.load(run / "supernet.pt", weights_only=False)
    weights["config"] = old
    for key in ("phase", "images_seen"):
        weights.pop(key)
    torch.save(weights, run / "supernet.pt")
    loaded = TrainConfig.from_dict(old)
    assert loaded.zero_init_residual is False and loaded.strategy == "uniform"
    assert loaded == cfg
    assert SupernetEvaluator(Run.open(run), recalib_images=32).evaluate(arch) == before


def test_a_checkpoint_of_an_older_evonas_resumes(tmp_path):
    cfg = small_config(zero_init_residual=False)
    train_supernet(tmp_path / "reference", cfg, progress=False)
    run = tmp_path / "old"
    train_supernet(run, cfg, progress=False, stop_after=1)
    ckpt = run / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=False)
    old = {k: v for k, v in state["config"].items() if k not in NEW_KEYS}
    state["config"] = old
    for key in ("phase", "images_seen", "sampler"):
        state.pop(key)
    torch.save(state, ckpt)
    train_supernet(run, TrainConfig.from_dict(old), progress=False, resume=True)
    assert_same_weights(run, tmp_path / "reference")
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["images_seen_total"] == 2 * 2 * cfg.batch_size
