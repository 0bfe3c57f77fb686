"""Chain spaces: a stem, stages of searchable layers, and a classifier head.

Each searchable layer picks one op from the space's op table: an identity (or, on
the first layer of a stage, where the shape changes, a 1x1 projection) or a
MobileNetV2 inverted-residual block ``MB{e}_K{k}`` (1x1 expand conv, BN, ReLU;
depthwise kxk conv, BN, ReLU; 1x1 project conv, BN; residual add when the input and
output shapes match). The first layer of a stage carries the stage's stride and
changes the width.

Two presets families live here:

* ``macro-*``: NAS-Bench-Macro (Su et al., CVPR 2021), 8 layers in stages of 2, 3
  and 3; each layer is ``0`` identity, ``1`` MB3_K3 or ``2`` MB6_K5. An identity on a
  stage's first layer is a strided 1x1 conv plus BN.
* ``mobilenet-*``: a MobileNetV2-style chain of 16 layers, kernels 3/5/7,
  expansions 3/6, and a skip on every layer whose shapes allow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Arch, Cost, Dim, Space
from .errors import ArchStringError, SpaceError


@dataclass(frozen=True)
class OpSpec:
    """One candidate op of a layer. ``expansion is None`` means identity/skip."""

    name: str
    expansion: int | None = None
    kernel: int | None = None

    @property
    def is_identity(self) -> bool:
        return self.expansion is None


@dataclass(frozen=True)
class StageSpec:
    """A stage: its output width, number of searchable layers, and its first stride."""

    width: int
    depth: int
    stride: int


@dataclass(frozen=True, kw_only=True)
class ChainNet:
    """The fixed part of a chain network (everything but the searched ops)."""

    in_channels: int  # image channels (1 for Fashion-MNIST, 3 for CIFAR-10)
    image_size: int  # square input side in pixels
    stem_channels: int  # width of the 3x3 stem conv (stride 1)
    stages: tuple[StageSpec, ...]
    head_channels: int  # width of the 1x1 conv before global pooling
    num_classes: int
    dataset: str  # default dataset name for training this preset


def conv_out(size: int, stride: int) -> int:
    """Output side of a 'same'-padded conv (odd kernel, padding k//2)."""
    return (size - 1) // stride + 1


def mb_cost(cin: int, cout: int, expansion: int, kernel: int, size_in: int, stride: int) -> Cost:
    """Cost of an inverted-residual block; the hidden width is ``cin * expansion``."""
    mid = cin * expansion
    size_out = conv_out(size_in, stride)
    params = cin * mid + 2 * mid + mid * kernel * kernel + 2 * mid + mid * cout + 2 * cout
    flops = cin * mid * size_in**2 + (mid * kernel * kernel + mid * cout) * size_out**2
    return Cost(flops, params)


def projection_cost(cin: int, cout: int, size_in: int, stride: int) -> Cost:
    """Cost of the 1x1 conv + BN that stands for an identity where shapes change."""
    size_out = conv_out(size_in, stride)
    return Cost(cin * cout * size_out**2, cin * cout + 2 * cout)


@dataclass(frozen=True)
class LayerSlot:
    """Where a searchable layer sits: its input/output widths, stride, input size."""

    stage: int
    block: int
    cin: int
    cout: int
    stride: int
    size_in: int

    @property
    def changes_shape(self) -> bool:
        return self.cin != self.cout or self.stride != 1


class ChainSpace(Space):
    """A chain of searchable layers over a fixed stem and head."""

    def __init__(
        self,
        *,
        name: str,
        net: ChainNet,
        ops: tuple[OpSpec, ...],
        first_layer_identity: bool,
        summary: str,
    ) -> None:
        self.name = name
        self.net = net
        self.ops = ops
        self.first_layer_identity = first_layer_identity
        self.summary = summary
        self.slots = self._make_slots()
        dims = []
        for slot in self.slots:
            codes = tuple(
                c
                for c, op in enumerate(ops)
                if not (op.is_identity and slot.changes_shape and not first_layer_identity)
            )
            dims.append(
                Dim(
                    label=f"s{slot.stage}_b{slot.block}_op",
                    options=codes,
                    names=tuple(ops[c].name for c in codes),
                )
            )
        self.dims = tuple(dims)
        for op in ops:
            if not isinstance(op, OpSpec) or (op.expansion is None) != (op.kernel is None):
                raise SpaceError(f"The 'ops' parameter of ChainSpace holds {op!r}: a chain op is an identity (no expansion, "
                                 "no kernel) or an inverted-residual block (both expansion and kernel). For any other op, "
                                 "write your model with evonas.nn.Choice and pass --space PATH.py:FACTORY.")
        if len(ops) > 10:
            raise SpaceError(f"The 'ops' parameter of ChainSpace must list at most 10 ops (one digit per layer); "
                             f"got {len(ops)}.")

    def _make_slots(self) -> tuple[LayerSlot, ...]:
        slots = []
        cin, size = self.net.stem_channels, self.net.image_size
        for s, stage in enumerate(self.net.stages):
            for b in range(stage.depth):
                stride = stage.stride if b == 0 else 1
                slots.append(LayerSlot(s, b, cin, stage.width, stride, size))
                cin, size = stage.width, conv_out(size, stride)
        return tuple(slots)

    @property
    def final_size(self) -> int:
        last = self.slots[-1]
        return conv_out(last.size_in, last.stride)

    # --- encoding -------------------------------------------------------------------
    def format(self, arch: Arch) -> str:
        return "".join(str(c) for c in arch.choices)

    def parse(self, text: str) -> Arch:
        text = text.strip()
        if len(text) != len(self.dims):
            raise ArchStringError(
                f"a {self.name!r} architecture is {len(self.dims)} digits, one per layer "
                f"(e.g. {self.format(self.sample_example())!r}); got {text!r} with {len(text)} "
                "characters"
            )
        choices = []
        for i, (ch, dim) in enumerate(zip(text, self.dims)):
            if not ch.isdigit() or int(ch) not in dim.options:
                allowed = ", ".join(f"{o}={n}" for o, n in zip(dim.options, dim.names))
                raise ArchStringError(
                    f"character {ch!r} at position {i} ({dim.label}) of {text!r} is not an op "
                    f"of space {self.name!r}; allowed: {allowed}"
                )
            choices.append(int(ch))
        return Arch(self.name, tuple(choices))

    def sample_example(self) -> Arch:
        return Arch(self.name, tuple(d.options[-1] for d in self.dims))

    def canonical(self, arch: Arch) -> Arch:
        """Move identity layers after a stage's first layer to the stage's end."""
        out: list[int] = []
        i = 0
        for stage in self.net.stages:
            codes = list(arch.choices[i : i + stage.depth])
            head, rest = codes[:1], codes[1:]
            kept = [c for c in rest if not self.ops[c].is_identity]
            idents = [c for c in rest if self.ops[c].is_identity]
            out.extend(head + kept + idents)
            i += stage.depth
        return Arch(self.name, tuple(out))

    # --- cost -------------------------------------------------------------------------
    def _layer_costs(self) -> tuple[Cost, list[dict[int, Cost]]]:
        n = self.net
        size = n.image_size
        stem = Cost(n.in_channels * n.stem_channels * 9 * size**2, n.in_channels * n.stem_channels * 9 + 2 * n.stem_channels)
        last_width = n.stages[-1].width
        fs = self.final_size
        head = Cost(
            last_width * n.head_channels * fs**2 + n.head_channels * n.num_classes,
            last_width * n.head_channels + 2 * n.head_channels + n.head_channels * n.num_classes + n.num_classes,
        )
        fixed = Cost(stem.flops + head.flops, stem.params + head.params)
        per_dim = []
        for slot, dim in zip(self.slots, self.dims):
            table = {}
            for code in dim.options:
                op = self.ops[code]
                if op.is_identity:
                    table[code] = (
                        projection_cost(slot.cin, slot.cout, slot.size_in, slot.stride)
                        if slot.changes_shape
                        else Cost(0, 0)
                    )
                else:
                    table[code] = mb_cost(slot.cin, slot.cout, op.expansion, op.kernel, slot.size_in, slot.stride)
            per_dim.append(table)
        return fixed, per_dim


MACRO_OPS = (OpSpec("id"), OpSpec("mb3_k3", 3, 3), OpSpec("mb6_k5", 6, 5))

MOBILENET_OPS = (
    OpSpec("skip"),
    OpSpec("mb3_k3", 3, 3),
    OpSpec("mb6_k3", 6, 3),
    OpSpec("mb3_k5", 3, 5),
    OpSpec("mb6_k5", 6, 5),
    OpSpec("mb3_k7", 3, 7),
    OpSpec("mb6_k7", 6, 7),
)


def macro_space(name: str, net: ChainNet, summary: str) -> ChainSpace:
    return ChainSpace(name=name, net=net, ops=MACRO_OPS, first_layer_identity=True, summary=summary)


MACRO_CIFAR10 = macro_space(
    "macro-cifar10",
    ChainNet(
        in_channels=3,
        image_size=32,
        stem_channels=32,
        stages=(StageSpec(64, 2, 2), StageSpec(128, 3, 2), StageSpec(256, 3, 2)),
        head_channels=1280,
        num_classes=10,
        dataset="cifar10",
    ),
    "NAS-Bench-Macro on CIFAR-10 (the published benchmark network)",
)

MACRO_FMNIST = macro_space(
    "macro-fmnist",
    ChainNet(
        in_channels=1,
        image_size=28,
        stem_channels=8,
        stages=(StageSpec(16, 2, 2), StageSpec(32, 3, 2), StageSpec(64, 3, 2)),
        head_channels=128,
        num_classes=10,
        dataset="fmnist",
    ),
    "NAS-Bench-Macro layout, narrowed for Fashion-MNIST (the default)",
)

MOBILENET_FMNIST = ChainSpace(
    name="mobilenet-fmnist",
    net=ChainNet(
        in_channels=1,
        image_size=28,
        stem_channels=16,
        stages=(StageSpec(24, 4, 2), StageSpec(40, 4, 2), StageSpec(64, 4, 2), StageSpec(96, 4, 1)),
        head_channels=256,
        num_classes=10,
        dataset="fmnist",
    ),
    ops=MOBILENET_OPS,
    first_layer_identity=False,
    summary="MobileNetV2-style chain of 16 layers (kernel 3/5/7, expansion 3/6, skip) for Fashion-MNIST",
)
