"""Strategy landmark: uniform training plus a ranking loss on landmarks of known stand-alone accuracy.

Landmarks from a file and from a run's stored anchors, the run recording them, the
hinge and its warm-up, bit-identical resume, one-line errors for bad landmark
inputs, and your own model as the space. Tiny synthetic data (two steps of 16
images an epoch) and one thread.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from search_spaces import get_space

from evonas.errors import ConfigError
from evonas.run.config import TrainConfig
from evonas.run.run import Run
from evonas.run.store import Store
from evonas.scorers.base import source_key
from evonas.supernet import build_one_shot
from evonas.training.landmark import Landmark, landmark_archs
from evonas.training.strategies import make_strategy
from evonas.training.train import train_supernet
from tests.conftest import cli, refused_in_one_line, tiny_config

SMALL = dict(train_limit=32, batch_size=16, val_size=200)  # two steps of 16 images an epoch
LANDMARKS = [["12012200", 80.0], ["00000000", 70.0], ["22222222", 75.0]]


def small_config(**changes) -> TrainConfig:
    return tiny_config(**{**SMALL, "strategy": "landmark", "landmark_archs": LANDMARKS, **changes})


def _params(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "supernet.pt", weights_only=False)["model"]


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def train_argv(run: Path, *more) -> list:
    return ["train-supernet", "--run", run, "--space", "macro-fmnist", "--data", "synthetic", "--val-size", "200",
            "--train-limit", "32", "--batch-size", "16", "--epochs", "2", "--lr", "0.05", "--threads", "1", "--quiet",
            *more]


# ----------------------------------------------------------------------- landmarks from a file, through the CLI


def test_cli_trains_with_a_landmarks_file_and_the_run_records_them(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("landmarks.txt").write_text(
        "# arch accuracy (stand-alone)\n"
        "12012200 80.5\n"
        "\n"
        "11101110   70   # not canonical: stored as 11110110\n"
        "22222222 75.0\n"
        "12012200 81.5\n"  # given twice: the mean
    )
    run = tmp_path / "run"
    code, out, err = cli(capsys, *train_argv(run, "--strategy", "landmark", "--landmarks", "landmarks.txt",
                                             "--landmark-pairs", "2", "--landmark-weight", "1.0"))
    assert code == 0, err
    assert "supernet weights" in out
    config = json.loads((run / "config.json").read_text())["config"]
    expected = [["12012200", 81.0], ["11110110", 70.0], ["22222222", 75.0]]
    assert config["landmark_archs"] == expected
    assert config["landmarks"] == str(tmp_path / "landmarks.txt")  # absolute: the run reopens from anywhere
    assert (config["landmark_weight"], config["landmark_pairs"], config["landmark_warmup"]) == (1.0, 2, 0.25)
    # reopening needs nothing else: the file may go
    Path("landmarks.txt").unlink()
    opened = Run.open(run).config
    assert opened.landmark_archs == expected and TrainConfig.from_dict(config) == opened
    assert landmark_archs(opened) == landmark_archs(config) == {"12012200", "11110110", "22222222"}
    assert landmark_archs(tiny_config()) == set() and landmark_archs(None) == set()
    # images seen: the uniform path and two pairs a step, 2 steps of 16 an epoch
    assert [r["images_seen"] for r in _log(run)] == [5 * 2 * 16] * 2
    assert torch.load(run / "supernet.pt", weights_only=False)["images_seen"] == 5 * 2 * 16 * 2
    code, out, err = cli(capsys, "eval", "--run", run, "--arch", "12012200", "--recalib-images", "32", "--json")
    assert code == 0, err
    assert math.isfinite(json.loads(out.splitlines()[0])["accuracy"])
    # --resume repeats the relative --landmarks (the file is gone: the saved list is used); other settings clash
    code, out, err = cli(capsys, *train_argv(run, "--strategy", "landmark", "--landmarks", "landmarks.txt", "--resume"))
    assert code == 0, err
    assert Run.open(run).config == opened
    code, out, err = cli(capsys, *train_argv(run, "--landmark-pairs", "3", "--resume"))
    assert code == 2 and "'landmark_pairs': (2, 3)" in err, err


def test_config_round_trips_through_json_and_compares_equal():
    cfg = small_config(landmark_archs=[("11101110", 70), ["12012200", "80.25"], ["22222222", 75.0]])
    assert cfg.landmark_archs == [["11110110", 70.0], ["12012200", 80.25], ["22222222", 75.0]]
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data == cfg.to_dict() and TrainConfig.from_dict(data) == cfg
    assert cfg.replace(epochs=3).landmark_archs == cfg.landmark_archs


# ----------------------------------------------------------------------- landmarks from a run's anchors


def _anchor_run(path: Path, anchors: dict[tuple[str, int, int], float], space: str = "macro-fmnist") -> Path:
    """A run directory as fit-predictor leaves it: a config and stand-alone records (arch, epochs, seed) -> accuracy."""
    path.mkdir(parents=True)
    cfg = tiny_config(space=space, **SMALL)
    (path / "config.json").write_text(json.dumps({"kind": "supernet", "config": cfg.to_dict()}))
    with Store(path / "store.sqlite") as store:
        store.put(space=space, arch="12012200", scorer="supernet", source_key="sn", metrics={"accuracy": 99.0},
                  source={"checkpoint": "x"})  # not an anchor
        for (arch, epochs, seed), acc in anchors.items():
            source = {"space": space, "dataset": "synthetic", "epochs": epochs, "seed": seed}
            store.put(space=space, arch=arch, scorer="standalone", source_key=source_key({"scorer": "standalone", **source}),
                      metrics={"accuracy": acc, "loss": 1.0}, source=source)
    return path


def test_landmarks_from_a_run_are_its_anchors_averaged_over_seeds(tmp_path):
    anchors = {
        ("12012200", 1, 0): 60.0, ("12012200", 1, 1): 64.0,  # two seeds: the mean
        ("11110110", 1, 0): 50.0, ("11110110", 1, 1): 51.0,
        ("22222222", 1, 0): 55.0,  # one seed only
        ("12012200", 4, 0): 90.0, ("11110110", 4, 0): 80.0,  # the long schedule: fewer anchors, not mixed in
    }
    source = _anchor_run(tmp_path / "anchors", anchors)
    cfg = small_config(landmark_archs=None, landmarks=str(source), epochs=1)
    assert cfg.landmark_archs == [["11110110", 50.5], ["12012200", 62.0], ["22222222", 55.0]]
    assert cfg.landmarks == str(source)
    run = tmp_path / "run"
    train_supernet(run, cfg, progress=False)
    assert Run.open(run).config.landmark_archs == cfg.landmark_archs
    assert [r["images_seen"] for r in _log(run)] == [3 * 2 * 16]


# ----------------------------------------------------------------------- the ranking loss


def _two_landmarks():
    """macro-fmnist, a seeded supernet of it, a batch, and two paths with their losses on that batch:
    (space, model, x, y, (a, loss a), (b, loss b))."""
    space = get_space("macro-fmnist")
    torch.manual_seed(0)
    model = build_one_shot(space, small_config()).train()
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 10
    a, b = space.parse("12012200"), space.parse("22222222")
    with torch.no_grad():
        loss_a, loss_b = F.cross_entropy(model(x, a), y).item(), F.cross_entropy(model(x, b), y).item()
    return space, model, x, y, (a, loss_a), (b, loss_b)


def test_step_back_propagates_the_hinge_of_an_out_of_order_pair_with_the_warmed_up_weight():
    space, model, x, y, (a, loss_a), (b, loss_b) = _two_landmarks()
    assert loss_a != loss_b
    worse, better = (a, b) if loss_a > loss_b else (b, a)  # the landmark with the higher loss is told it is better
    cfg = small_config(landmark_archs=[[str(worse), 90.0], [str(better), 60.0]], landmark_weight=0.8,
                       landmark_warmup=0.5)
    strategy = make_strategy(space, cfg)
    assert isinstance(strategy, Landmark) and strategy.pairs == [(worse, better)]
    strategy.start(0, 8)  # warm-up over 4 steps
    assert [strategy.weight(s) for s in (0, 1, 2, 4, 7)] == [0.0, 0.2, 0.4, 0.8, 0.8]

    def grads(net, steps_done: int | None):
        net.zero_grad(set_to_none=True)
        rng = random.Random(3)
        if steps_done is None:  # by hand: the uniform path, then the hinge with weight 0.4
            path = space.sample(rng)
            F.cross_entropy(net(x, path), y).backward()
            hinge = F.relu(F.cross_entropy(net(x, worse), y) - F.cross_entropy(net(x, better), y))
            (0.4 * hinge).backward()
            return {n: p.grad for n, p in net.named_parameters()}, None
        strategy.start(steps_done, 8)
        result = strategy.step(net, x, y, rng)
        assert strategy.steps_done == steps_done + 1
        return {n: p.grad for n, p in net.named_parameters()}, result

    got, result = grads(copy.deepcopy(model), 2)
    want, _ = grads(copy.deepcopy(model), None)
    assert got.keys() == want.keys()
    for name in got:
        assert (got[name] is None) == (want[name] is None), name
        if got[name] is not None:
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7)
    assert result.images == 3 * 8 and result.count == 8  # 3 forward passes of the batch; labels on the uniform path
    # at step 0 the weight is 0: only the uniform path has gradients, the landmarks only cost their forward passes
    path = space.sample(random.Random(3))
    at_zero, result = grads(copy.deepcopy(model), 0)
    net = copy.deepcopy(model)
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x, path), y).backward()
    for name, p in net.named_parameters():
        assert (at_zero[name] is None) == (p.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(at_zero[name], p.grad, rtol=1e-5, atol=1e-7)
    assert result.images == 3 * 8


def test_a_well_ordered_pair_adds_no_gradient(tmp_path):
    space, model, x, y, (a, loss_a), (b, loss_b) = _two_landmarks()
    worse, better = (a, b) if loss_a > loss_b else (b, a)
    cfg = small_config(landmark_archs=[[str(worse), 60.0], [str(better), 90.0]], landmark_warmup=0.0)  # already in order
    strategy = make_strategy(space, cfg)
    strategy.start(0, 8)
    net, ref = copy.deepcopy(model), copy.deepcopy(model)
    strategy.step(net, x, y, random.Random(3))
    F.cross_entropy(ref(x, space.sample(random.Random(3))), y).backward()
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), name


def test_ranking_loss_changes_the_weights_and_is_off_at_the_first_step(tmp_path):
    """One step: with a warm-up its weight is 0 (the parameters are uniform's), without one it moves them."""
    one_step = dict(train_limit=16, epochs=1, landmark_pairs=4)
    uniform = tiny_config(**{**SMALL, "train_limit": 16, "epochs": 1})
    train_supernet(tmp_path / "uniform", uniform, progress=False)
    train_supernet(tmp_path / "warm", small_config(**one_step), progress=False)
    train_supernet(tmp_path / "now", small_config(**one_step, landmark_warmup=0.0), progress=False)
    ref, warm, now = (_params(tmp_path / name) for name in ("uniform", "warm", "now"))
    names = [n for n, _ in build_one_shot(get_space("macro-fmnist"), uniform).named_parameters()]
    assert all(torch.equal(warm[n], ref[n]) for n in names)
    assert any(not torch.equal(now[n], ref[n]) for n in names)
    assert _log(tmp_path / "warm")[0]["images_seen"] == 9 * 16 and _log(tmp_path / "uniform")[0]["images_seen"] == 16


def test_resume_is_bit_identical_across_the_warmup_without_the_landmarks_file(tmp_path):
    import evonas.api as api

    landmarks = tmp_path / "landmarks.txt"
    landmarks.write_text("12012200 80\n00000000 70\n22222222 75\n11110110 72.5\n")
    settings = dict(space="macro-fmnist", data="synthetic", strategy="landmark", landmarks=str(landmarks),
                    landmark_pairs=2, landmark_warmup=1.0, epochs=2, lr=0.05, quiet=True, threads=1, **SMALL)
    api.train(tmp_path / "whole", **settings)
    stopped = api.train(tmp_path / "stopped", stop_after=1, **settings)
    assert not stopped.finished
    landmarks.unlink()  # the run's config holds the landmarks it uses
    resumed = api.train(tmp_path / "stopped", resume=True, quiet=True, threads=1)
    assert resumed.finished and resumed.resumed
    whole, again = _params(tmp_path / "whole"), _params(tmp_path / "stopped")
    assert whole.keys() == again.keys() and all(torch.equal(whole[k], again[k]) for k in whole)
    assert _log(tmp_path / "stopped") == [dict(r, seconds=s["seconds"]) for r, s in
                                          zip(_log(tmp_path / "whole"), _log(tmp_path / "stopped"))]


# ----------------------------------------------------------------------- bad landmark inputs: one line each


BAD_FILES = {
    "malformed": ("12012200 80\n22222222\n", ":2:", "'22222222' is not an 'arch accuracy' line"),
    "unparsable": ("12012200 80\n1201 75\n", ":2:", "'1201'"),
    "nan": ("12012200 80\n22222222 nan\n", ":2:", "'nan'"),
    "inf": ("# header\n12012200 inf\n22222222 75\n", ":2:", "'inf'"),
    "word": ("12012200 80\n22222222 high\n", ":2:", "'high'"),
    "one": ("12012200 80\n", "at least 2 landmarks", "1 architecture"),
    "same-accuracy": ("12012200 80\n22222222 80\n", "different accuracies", "[80.0]"),
    "empty": ("# nothing\n", "at least 2 landmarks", "0 architectures"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_landmarks_file_is_one_line_naming_the_line_or_value(tmp_path, capsys, case):
    text, where, what = BAD_FILES[case]
    path = tmp_path / "landmarks.txt"
    path.write_text(text)
    line = refused_in_one_line(capsys, train_argv(tmp_path / "run", "--strategy", "landmark", "--landmarks", path), tmp_path / "run")
    assert "--landmarks" in line and where in line and what in line, line
    if where.startswith(":"):
        assert f"{path}{where}" in line


def test_bad_landmark_sources_and_settings_are_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    landmark = ["--strategy", "landmark", "--landmarks"]
    good = tmp_path / "good.txt"
    good.write_text("12012200 80\n22222222 70\n")
    missing = tmp_path / "nowhere.txt"
    line = refused_in_one_line(capsys, train_argv(run, *landmark, missing), run)
    assert str(missing) in line and "does not exist" in line
    # a run without anchors: no store, or a store with only supernet scores
    bare = _anchor_run(tmp_path / "bare", {})
    line = refused_in_one_line(capsys, train_argv(run, *landmark, bare), run)
    assert str(bare) in line and "no stand-alone anchors" in line
    (tmp_path / "nostore").mkdir()
    (tmp_path / "nostore" / "config.json").write_text((bare / "config.json").read_text())
    line = refused_in_one_line(capsys, train_argv(run, *landmark, tmp_path / "nostore"), run)
    assert "no stand-alone anchors" in line
    one = _anchor_run(tmp_path / "one", {("12012200", 1, 0): 60.0, ("12012200", 1, 1): 62.0})
    line = refused_in_one_line(capsys, train_argv(run, *landmark, one), run)
    assert "at least 2 landmarks" in line and str(one) in line
    other = _anchor_run(tmp_path / "other", {("1" * 16, 1, 0): 60.0, ("2" * 16, 1, 0): 62.0}, space="mobilenet-fmnist")
    line = refused_in_one_line(capsys, train_argv(run, *landmark, other), run)
    assert "'mobilenet-fmnist'" in line and "'macro-fmnist'" in line
    (tmp_path / "folder").mkdir()
    line = refused_in_one_line(capsys, train_argv(run, *landmark, tmp_path / "folder"), run)
    assert "not an evonas run" in line
    # the strategy and its settings
    line = refused_in_one_line(capsys, train_argv(run, "--strategy", "landmark"), run)
    assert line.startswith("error: --landmarks is required with strategy 'landmark'")
    line = refused_in_one_line(capsys, train_argv(run, "--landmarks", good), run)
    assert "--landmarks is only for strategy 'landmark'" in line and "'uniform'" in line
    for flag, value in (("--landmark-weight", "0"), ("--landmark-weight", "nan"), ("--landmark-pairs", "0"),
                        ("--landmark-warmup", "1.5")):
        line = refused_in_one_line(capsys, train_argv(run, *landmark, good, flag, value), run)
        assert line.startswith(f"error: {flag} must be") and f"got {float(value) if 'pairs' not in flag else 0}" in line


def test_bad_landmark_archs_in_python_are_one_config_error():
    for bad, fragment in (([["12012200", 80.0]], "at least 2 landmarks"),
                          ([["12012200", 80.0], ["22222222", float("nan")]], "finite accuracies"),
                          ([["12012200", 80.0], ["1201", 70.0]], "'1201'"),
                          ([["12012200", 80.0], ["12012200", 70.0]], "twice"),
                          ("12012200 80", "a list of [arch, accuracy] pairs")):
        with pytest.raises(ConfigError, match="landmark") as err:
            small_config(landmark_archs=bad)
        assert fragment in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------- your own model


def test_landmark_trains_a_user_model_space(tmp_path):
    import evonas.api as api
    from tests.imagefolder import make_image_folder
    from tests.supernet.test_user_space import write_model

    data = make_image_folder(tmp_path / "images", classes=3, per_class=12, size=16, test_per_class=2)
    model = write_model(tmp_path / "user")
    landmarks = tmp_path / "landmarks.txt"
    landmarks.write_text("b1=conv3,b2=sequential,b3=dw,act=relu 71.5\n"
                         "b1=shift,b2=identity,b3=skip,act=gelu 55\n"
                         "b1=conv5, b2=identity, b3=dw, act=relu 63.25\n")  # blanks after the commas are fine
    run = tmp_path / "run"
    result = api.train(run, space=f"{model}:build", data=f"imagefolder:{data}", strategy="landmark",
                       landmarks=str(landmarks), epochs=1, batch_size=8, quiet=True, threads=1)
    assert result.finished
    config = json.loads((run / "config.json").read_text())["config"]
    assert [a for a, _ in config["landmark_archs"]] == ["b1=conv3,b2=sequential,b3=dw,act=relu",
                                                        "b1=shift,b2=identity,b3=skip,act=gelu",
                                                        "b1=conv5,b2=identity,b3=dw,act=relu"]
    steps = len(_log(run)) and _log(run)[0]["images_seen"] // (3 * 8)
    assert steps >= 1 and _log(run)[0]["images_seen"] == 3 * 8 * steps
    scored = api.evaluate(run, archs=["b1=shift,b2=identity,b3=dw,act=gelu"], quiet=True, threads=1)
    assert 0 <= scored.rows[0]["accuracy"] <= 100
    # the run's own stand-alone anchors as another run's landmarks (same model, same factory arguments)
    space = result.run.space
    with Store(run / "store.sqlite") as store:
        for seed, (arch, acc) in enumerate([("b1=conv3,b2=identity,b3=dw,act=relu", 60.0),
                                            ("b1=shift,b2=sequential,b3=skip,act=gelu", 40.0)]):
            source = {"space": space.name, "epochs": 1, "seed": seed}
            store.put(space=space.name, arch=arch, scorer="standalone", metrics={"accuracy": acc},
                      source_key=source_key({"scorer": "standalone", **source}), source=source)
    cfg = result.run.config.replace(landmarks=str(run), landmark_archs=None)
    assert cfg.landmark_archs == [["b1=conv3,b2=identity,b3=dw,act=relu", 60.0],
                                  ["b1=shift,b2=sequential,b3=skip,act=gelu", 40.0]]
    bad = tmp_path / "bad.txt"
    bad.write_text("b1=conv3,b2=sequential,b3=dw,act=relu 71.5\nb1=conv9,b2=identity,b3=skip,act=gelu 55\n")
    with pytest.raises(ConfigError) as err:
        api.train(tmp_path / "bad-run", space=f"{model}:build", data=f"imagefolder:{data}", strategy="landmark",
                  landmarks=str(bad), epochs=1, batch_size=8, quiet=True, threads=1)
    assert f"{bad}:2:" in str(err.value) and "'conv9'" in str(err.value)


# ----------------------------------------------------------------------- ranking measured without the landmarks


def test_fit_predictor_never_chooses_landmarks_and_names_explicit_ones(tmp_path, caplog):
    from evonas.jobs.fit_predictor import FitPredictorOptions, fit_predictor
    from evonas.scorers.cached import score_cached
    from evonas.scorers.registry import make_scorer

    run = tmp_path / "run"
    train_supernet(run, small_config(epochs=1), progress=False)
    landmarks = landmark_archs(Run.open(run).config)
    assert landmarks == {"12012200", "00000000", "22222222"}
    options = FitPredictorOptions(anchors=4, selection="random", anchor_epochs=1, pool=4, predictors=("gap",), quiet=True)
    space = get_space("macro-fmnist")
    with Run.open(run).store() as store:  # the landmarks are already in the pool: scored by the same supernet scorer
        scorer = make_scorer("supernet", run_dir=run, **options.supernet_scoring)
        for arch in sorted(landmarks):
            score_cached(scorer, store, space.parse(arch))
    caplog.set_level(logging.INFO, logger="evonas")
    chosen = fit_predictor(run, options)
    lines = list(caplog.messages)
    assert any(line.startswith("anchor 1/4 ") for line in lines)  # the anchors are logged as they are ready
    assert len(chosen.anchors) == 4 and not set(chosen.anchors) & landmarks
    assert "landmark_anchors" not in chosen.basis and not any("landmark" in line for line in lines)
    explicit = ("12012200", "00000000", *sorted(chosen.anchors)[:2])  # two landmarks given as anchors
    named = fit_predictor(run, FitPredictorOptions(explicit=explicit, anchor_epochs=1, pool=4, predictors=("gap",),
                                                   quiet=True))
    assert named.basis["landmark_anchors"] == ["00000000", "12012200"]
    assert "2 of the anchors (00000000, 12012200) are landmarks" in named.basis["text"]
    assert any(r.levelno == logging.WARNING and r.getMessage().startswith("warning: 2 of the anchors")
               for r in caplog.records)


# ----------------------------------------------------------------------- two ranks


def _train_landmark_on_two_ranks(root: str) -> None:
    from evonas.training import distributed

    torch.set_num_threads(1)
    world, device = distributed.init(torch.device("cpu"))
    try:
        train_supernet(Path(root), small_config(landmark_pairs=4, landmark_warmup=0.0, landmark_weight=1.0), progress=False,
                       device=device, world=world)
    finally:
        distributed.shutdown()


def test_two_ranks_decide_the_hinge_on_the_whole_batch_like_one_process(tmp_path):
    from evonas.training import distributed

    cfg = small_config(landmark_pairs=4, landmark_warmup=0.0, landmark_weight=1.0)
    distributed.launch(2, _train_landmark_on_two_ranks, str(tmp_path / "two"))
    train_supernet(tmp_path / "one", cfg, progress=False)
    train_supernet(tmp_path / "uniform", tiny_config(**SMALL), progress=False)
    two, one = _log(tmp_path / "two"), _log(tmp_path / "one")
    assert [r["images_seen"] for r in two] == [r["images_seen"] for r in one] == [9 * 2 * 16] * 2
    assert all(r["world_size"] == 2 for r in two)
    flat = {name: torch.cat([v.flatten().float() for k, v in _params(tmp_path / name).items()
                             if "running" not in k and v.is_floating_point()]) for name in ("two", "one", "uniform")}
    # within the noise of per-rank BN batches, and nearer to one process than uniform training is
    assert (flat["two"] - flat["one"]).norm() < 0.05 * flat["one"].norm()
    assert (flat["two"] - flat["one"]).norm() < (flat["uniform"] - flat["one"]).norm()
