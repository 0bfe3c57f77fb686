"""Zero-cost scores of sub-networks with the supernet's inherited weights: cheap extra signals for the gap corrector.

Each score needs one or two forward/backward passes on a few fixed training
batches, on a copy of the architecture's path (``supernet.extract(arch)``), so the
supernet's weights, BN statistics and gradients are never touched:

* ``grad_norm``: sum over conv/linear weights of the L2 norm of the cross-entropy
  gradient (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021);
* ``snip``: sum of ``|w * dL/dw|`` (Lee et al., ICLR 2019, as a network score);
* ``synflow``: log of the sum of ``|w * dR/dw|`` where ``R`` is the output summed
  for an all-ones input through the path with absolute weights and batch norm
  removed, in float64 (Tanaka et al., NeurIPS 2020); the log keeps it in range;
* ``naswot``: log-determinant of the kernel ``K[i, j] = N_A - hamming(c_i, c_j)``
  of the binary ReLU activation codes ``c`` of a batch (Mellor et al., ICML 2021).

The supernet's validation loss, the fifth signal, comes from
``SupernetEvaluator.evaluate(arch)["loss"]`` (BN recalibrated); ``feature_table``
puts it beside these scores under ``"supernet_loss"``. Paths run in training mode
(batch statistics), so the scores do not depend on stale running statistics.

>>> zc = ZeroCostScorer(evaluator.model, space, images, labels)   # doctest: +SKIP
>>> zc.scores(space.parse("12012200"))                               # doctest: +SKIP
{'grad_norm': ..., 'snip': ..., 'synflow': ..., 'naswot': ...}
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces import Arch, Space

from evonas.errors import ConfigError

SCORES = ("grad_norm", "snip", "synflow", "naswot")


def _weights(module: nn.Module) -> list[nn.Parameter]:
    """Conv and linear weights (the parameters zero-cost scores sum over)."""
    return [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _without_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every batch-norm layer of ``module`` (in place) with an identity."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)
    return module


class ZeroCostScorer:
    """Zero-cost scores of architectures of ``space`` with the inherited weights of ``supernet``.

    ``images`` (N, C, H, W), normalised as the supernet sees them, and ``labels``
    (N,): ``n_batches`` batches of ``batch_size`` are drawn once with ``seed`` and
    reused for every architecture, so a score depends only on the architecture.
    ``supernet`` must offer ``extract(arch)`` (a standalone copy of the path).
    """

    def __init__(self, supernet: nn.Module, space: Space, images: torch.Tensor, labels: torch.Tensor, *,
                 batch_size: int = 64, n_batches: int = 2, seed: int = 0) -> None:
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise ConfigError(f"images must be (N, C, H, W) and labels (N,) with the same N; got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        if batch_size < 2 or n_batches < 1:
            raise ConfigError(f"The 'batch_size' (>= 2) and 'n_batches' (>= 1) parameters of ZeroCostScorer are out of "
                             f"range. Got {batch_size!r} and {n_batches!r} instead.")
        self.supernet = supernet
        self.space = space
        self.seed = seed
        g = torch.Generator().manual_seed(seed)
        take = min(len(images), batch_size * n_batches)
        idx = torch.randperm(len(images), generator=g)[:take]
        x, y = images[idx].float(), labels[idx].long()
        self.batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, take, batch_size)]
        self.batches = [b for b in self.batches if len(b[1]) >= 2]

    def _path(self, arch: Arch) -> nn.Module:
        """A trainable-mode copy of ``arch``'s path with the inherited weights."""
        path = self.supernet.extract(self.space.validate(arch))
        path.train()
        for p in path.parameters():
            p.requires_grad_(True)
            p.grad = None
        return path

    def scores(self, arch: Arch) -> dict[str, float]:
        """``grad_norm``, ``snip``, ``synflow`` and ``naswot`` of ``arch``, each a finite float."""
        torch.manual_seed(self.seed)  # nothing here draws random numbers; kept for any module that would
        out = self._gradient_scores(arch)
        out["synflow"] = self._synflow(arch)
        out["naswot"] = self._naswot(arch)
        return out

    def _gradient_scores(self, arch: Arch) -> dict[str, float]:
        path = self._path(arch)
        weights = _weights(path)
        for xb, yb in self.batches:
            loss = F.cross_entropy(path(xb), yb) / len(self.batches)  # gradients averaged over the batches
            loss.backward()
        grad_norm = sum(float(w.grad.norm()) for w in weights if w.grad is not None)
        snip = sum(float((w.detach() * w.grad).abs().sum()) for w in weights if w.grad is not None)
        return {"grad_norm": grad_norm, "snip": snip}

    def _synflow(self, arch: Arch) -> float:
        path = _without_batchnorm(self._path(arch)).double()
        with torch.no_grad():
            for p in path.parameters():
                p.abs_()
        x = torch.ones((1, *self.batches[0][0].shape[1:]), dtype=torch.float64)
        path(x).sum().backward()
        total = sum(float((w.detach() * w.grad).abs().sum()) for w in _weights(path) if w.grad is not None)
        return math.log(total) if total > 0 else math.log(torch.finfo(torch.float64).tiny)

    @torch.no_grad()
    def _naswot(self, arch: Arch) -> float:
        path = self._path(arch)
        xb = self.batches[0][0]
        codes: list[torch.Tensor] = []

        def keep(_module, _inputs, output):
            codes.append((output.detach() > 0).flatten(1).double())  # (B, units) binary activation code

        hooks = [m.register_forward_hook(keep) for m in path.modules() if isinstance(m, nn.ReLU)]
        try:
            path(xb)
        finally:
            for h in hooks:
                h.remove()
        c = torch.cat(codes, dim=1)  # (B, N_A)
        # K = N_A - hamming = (agreements on 1s) + (agreements on 0s)
        kernel = c @ c.T + (1.0 - c) @ (1.0 - c).T  # (B, B)
        sign, logdet = torch.linalg.slogdet(kernel)
        return float(logdet) if float(sign) > 0 and math.isfinite(float(logdet)) else 0.0


def feature_table(scorer: ZeroCostScorer, archs: Iterable[Arch], evaluator=None) -> dict[str, dict[str, float]]:
    """Feature name -> {canonical arch string -> value} for ``fit_gap_model(extra_features=...)``.

    With ``evaluator`` (a ``SupernetEvaluator``) the table also holds its BN-recalibrated
    validation loss as ``"supernet_loss"``.
    """
    table: dict[str, dict[str, float]] = {name: {} for name in SCORES}
    if evaluator is not None:
        table["supernet_loss"] = {}
    space = scorer.space
    for arch in archs:
        key = str(space.canonical(arch))
        for name, value in scorer.scores(arch).items():
            table[name][key] = value
        if evaluator is not None:
            table["supernet_loss"][key] = float(evaluator.evaluate(arch)["loss"])
    return table


def as_columns(table: Mapping[str, Mapping[str, float]], keys: Iterable[str]) -> dict[str, list[float]]:
    """The ``extra`` argument of ``GapModel.predict`` for canonical archs ``keys``."""
    keys = list(keys)
    return {name: [float(values[k]) for k in keys] for name, values in table.items()}
