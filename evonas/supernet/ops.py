"""Building blocks shared by supernets and exported sub-networks."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

NormLayer = Callable[[int], nn.Module]


class ConvBNAct(nn.Sequential):
    """Conv (no bias), norm, and an optional ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            norm_layer(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise kxk, 1x1 project; residual when shapes match."""

    def __init__(
        self, cin: int, cout: int, expansion: int, kernel: int, stride: int, norm_layer: NormLayer = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        mid = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvBNAct(cin, mid, 1, norm_layer=norm_layer),
            ConvBNAct(mid, mid, kernel, stride, groups=mid, norm_layer=norm_layer),
            ConvBNAct(mid, cout, 1, act=False, norm_layer=norm_layer),
        )

    def zero_init_last_bn(self) -> None:
        """Start the block as the identity (Goyal et al. 2017): the projection BN's gamma = 0."""
        nn.init.zeros_(self.body[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, H, W) -> (B, cout, H/s, W/s)
        out = self.body(x)
        return x + out if self.use_residual else out


class Head(nn.Module):
    """1x1 conv to the head width, BN, ReLU, global average pool, linear classifier."""

    def __init__(self, cin: int, width: int, num_classes: int, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, width, 1, norm_layer=norm_layer)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        x = self.conv(x)
        x = x.mean(dim=(2, 3))
        return self.classifier(x)
