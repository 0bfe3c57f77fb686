import torch
from torch import nn
from evonas.nn import Choice


class Shift(nn.Module):
    """An op of our own: shift half the channels one pixel sideways, then mix them with a 1x1 conv."""
    def __init__(self, c):
        super().__init__()
        self.mix = nn.Conv2d(c, c, 1)

    def forward(self, x):
        half = x.shape[1] // 2
        return self.mix(torch.cat([x[:, :half].roll(1, dims=3), x[:, half:]], dim=1))


def conv(c, k):
    return nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2), nn.BatchNorm2d(c), nn.ReLU())


def build(in_channels=1, num_classes=10):
    blocks = [Choice({"conv3": conv(16, 3), "conv5": conv(16, 5), "shift": Shift(16), "skip": nn.Identity()},
                     label=f"block{i}") for i in range(3)]
    pool = Choice({"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1)}, label="pool")
    return nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.MaxPool2d(2), *blocks, pool, nn.Flatten(), nn.Linear(16, num_classes))
