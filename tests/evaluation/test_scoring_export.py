"""Scoring with BN recalibration, and export against the supernet as oracle."""

from __future__ import annotations

import pytest
import torch

from evonas.data import Normalizer
from evonas.export.module import export_arch, load_exported
from evonas.evaluation.scoring import SupernetEvaluator


def test_recalibration_changes_bn_statistics_and_is_repeatable(tiny_run):
    ev = SupernetEvaluator.from_run(tiny_run, recalib_images=300)
    arch = ev.space.parse("12012200")
    first = ev.evaluate(arch)
    assert first == ev.evaluate(arch)  # same images, same statistics
    bn = ev.model.head.conv[1]  # the stem runs before any choice; the head sees the path
    before = bn.running_mean.clone()
    ev.evaluate(ev.space.parse("00000000"))
    assert not torch.equal(before, bn.running_mean)
    raw = SupernetEvaluator.from_run(tiny_run, recalibrate=False)
    assert raw.provenance()["recalibrate"] is False
    assert 0.0 <= raw.evaluate(arch)["accuracy"] <= 100.0


def test_val_images_caps_the_validation_split_and_never_the_test_split(tiny_run):
    whole = SupernetEvaluator.from_run(tiny_run, recalib_images=32, val_images=None)
    capped = SupernetEvaluator.from_run(tiny_run, recalib_images=32, val_images=7)
    assert capped.val_images == 7 < whole.val_images
    assert capped.provenance()["eval_images"] == 7  # scores at other sizes are other store records
    assert torch.equal(capped.y, whole.y[:7])  # the first images of the same seeded split
    test = SupernetEvaluator.from_run(tiny_run, recalib_images=32, val_images=7, split="test")
    assert test.val_images == len(test.splits.split("test")[1]) > 7


def test_scoring_sizes_default_per_space(tiny_run, monkeypatch):
    from evonas.run import config

    ev = SupernetEvaluator.from_run(tiny_run)
    r, v = config.scoring_defaults(ev.space.name)
    assert ev.recalib_images == r and ev.provenance()["recalib_images"] == r
    monkeypatch.setitem(config.SPACE_SCORING, ev.space.name, (16, 5))
    other = SupernetEvaluator.from_run(tiny_run)
    assert (other.recalib_images, other.val_images) == (16, 5)
    assert other.calib_x.shape[0] == 16
    explicit = SupernetEvaluator.from_run(tiny_run, recalib_images=32, val_images=None)
    assert (explicit.recalib_images, explicit.val_images) == (32, whole_split(explicit))


def whole_split(ev) -> int:
    return len(ev.splits.split("val")[1])


def test_export_matches_supernet_on_that_path(tiny_run, tmp_path):
    ev = SupernetEvaluator.from_run(tiny_run, recalib_images=300)
    arch = ev.space.parse("21002120")
    out = export_arch(tiny_run, arch, tmp_path / "exp", {"supernet_accuracy": 1.0}, evaluator=ev)
    module, metrics = load_exported(out)
    # every spelling of a network exports (and scores) its canonical path
    assert metrics["arch"] == "21020120" and metrics["canonical"] == "21020120"
    assert metrics["flops"] == ev.space.cost(arch).flops
    arch = ev.space.canonical(arch)
    x = Normalizer(ev.splits.mean, ev.splits.std)(ev.splits.val_x[:17])
    ev.prepare(arch)
    with torch.no_grad():
        expected = ev.model(x, arch)
        got = module(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # plain PyTorch also reloads the weights into a freshly built network
    from evonas.supernet.chain import build_standalone

    net = build_standalone(ev.space, arch).eval()
    net.load_state_dict(torch.load(out / "state_dict.pt"))
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-5)


def test_bad_recalibration_size_is_an_error(tiny_run):
    from evonas.errors import ConfigError

    with pytest.raises(ConfigError, match="The 'recalib_images' parameter must be an integer >= 1; got 0"):
        SupernetEvaluator.from_run(tiny_run, recalib_images=0)


def test_finetuned_scoring_trains_each_path_alone_and_restores_the_shared_weights(tiny_run):
    plain = SupernetEvaluator.from_run(tiny_run, recalib_images=64)
    tuned = SupernetEvaluator.from_run(tiny_run, recalib_images=64, finetune_steps=3, finetune_lr=0.05)
    original = {k: v.clone() for k, v in tuned.model.state_dict().items()}
    a, b = tuned.space.parse("12012200"), tuned.space.parse("21020120")
    first = tuned.evaluate(a)
    assert first != plain.evaluate(a)  # the path was trained before it was scored
    moved = [k for k, v in tuned.model.state_dict().items() if not torch.equal(v, original[k])]
    assert any(k.startswith("stem") for k in moved)  # the shared stem too, while this path is prepared
    tuned.evaluate(b)
    tuned._restore()
    for k, v in tuned.model.state_dict().items():  # every shared weight and BN statistic is back
        assert torch.equal(v, original[k]), k
    # the same batches for every architecture: a score does not depend on what was scored before
    fresh = SupernetEvaluator.from_run(tiny_run, recalib_images=64, finetune_steps=3, finetune_lr=0.05)
    assert fresh.evaluate(a) == first
    prov = tuned.provenance()
    assert (prov["finetune_steps"], prov["finetune_lr"]) == (3, 0.05)  # fine-tuned scores are their own records
    assert "finetune_steps" not in plain.provenance()  # and plain scores keep the records they had


@pytest.mark.parametrize("kwargs, bad", [({"finetune_steps": -1}, "finetune_steps"), ({"finetune_steps": 2.5}, "finetune_steps"),
                                         ({"finetune_steps": 2, "finetune_lr": 0}, "finetune_lr")])
def test_bad_finetune_settings_are_errors(tiny_run, kwargs, bad):
    from evonas.errors import ConfigError

    with pytest.raises(ConfigError, match=f"The '{bad}' parameter must be"):
        SupernetEvaluator.from_run(tiny_run, **kwargs)
