"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

A cell is a DAG of 4 nodes; each of its 6 edges ``j -> i`` (j < i) carries one of 5
ops. The official string lists, node by node, the op of every incoming edge:
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. Dimension labels are ``e{i}{j}`` (edge
into node i from node j).

Costs follow the CIFAR-10 network of the benchmark: a 3x3 stem of 16 channels,
three stages of 5 cells at 16/32/64 channels (32x32, 16x16, 8x8), residual
reduction blocks between stages, BN + ReLU, global pooling and a linear classifier.
``nor_conv_kxk`` is ReLU-conv-BN; pooling, skip and none cost nothing. The counts
give 7.78 to 220.12 MFLOPs, as the benchmark reports.

Canonicalisation is the identity here: cells that are isomorphic (or differ only on
edges that cannot reach the output) keep their own strings, as in the benchmark's
own table, so every row of ``nb201.csv`` stays addressable.
"""

from __future__ import annotations

from .base import Arch, Cost, Dim, Space
from .errors import ArchStringError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), string order
STAGE_CHANNELS = (16, 32, 64)
STAGE_SIZES = (32, 16, 8)
CELLS_PER_STAGE = 5
NUM_CLASSES = 10


class NB201Space(Space):
    name = "nb201"
    summary = "NAS-Bench-201 cell: 6 edges, 5 ops (table scoring on CIFAR-10/100, ImageNet16)"

    def __init__(self) -> None:
        self.dims = tuple(
            Dim(label=f"e{to}{frm}", options=tuple(range(len(OPS))), names=OPS) for to, frm in EDGES
        )

    def format(self, arch: Arch) -> str:
        nodes = []
        k = 0
        for to in (1, 2, 3):
            parts = []
            for frm in range(to):
                parts.append(f"{OPS[arch.choices[k]]}~{frm}")
                k += 1
            nodes.append("|" + "|".join(parts) + "|")
        return "+".join(nodes)

    def parse(self, text: str) -> Arch:
        text = text.strip()
        example = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
        nodes = text.split("+")
        if len(nodes) != 3:
            raise ArchStringError(
                f"an nb201 cell string has 3 node groups joined by '+', e.g. {example!r}; got "
                f"{len(nodes)} in {text!r}"
            )
        choices = []
        for to, group in enumerate(nodes, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise ArchStringError(f"node group {to} of {text!r} must start and end with '|'; got {group!r}")
            edges = group[1:-1].split("|")
            if len(edges) != to:
                raise ArchStringError(f"node {to} of {text!r} needs {to} incoming edges; got {len(edges)} in {group!r}")
            for frm, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if not sep or src != str(frm):
                    raise ArchStringError(
                        f"edge {edge!r} into node {to} of {text!r} must read 'op~{frm}'"
                    )
                if op not in OPS:
                    raise ArchStringError(
                        f"unknown op {op!r} on edge {frm}->{to} of {text!r}; allowed: {', '.join(OPS)}"
                    )
                choices.append(OPS.index(op))
        return Arch(self.name, tuple(choices))

    def _layer_costs(self) -> tuple[Cost, list[dict[int, Cost]]]:
        def conv(cin: int, cout: int, k: int, size_out: int) -> Cost:
            return Cost(cin * cout * k * k * size_out**2, cin * cout * k * k)

        flops = params = 0
        stem = conv(3, 16, 3, 32)
        flops += stem.flops
        params += stem.params + 2 * 16
        for cin, cout, size_out in ((16, 32, 16), (32, 64, 8)):  # residual reduction blocks
            for c in (conv(cin, cout, 3, size_out), conv(cout, cout, 3, size_out)):
                flops += c.flops
                params += c.params + 2 * cout
            down = conv(cin, cout, 1, size_out)
            flops += down.flops
            params += down.params
        params += 2 * 64  # final BN
        flops += 64 * NUM_CLASSES
        params += 64 * NUM_CLASSES + NUM_CLASSES
        fixed = Cost(flops, params)

        per_edge: dict[int, Cost] = {}
        for code, op in enumerate(OPS):
            f = p = 0
            if op.startswith("nor_conv"):
                k = int(op[-1])
                for c, size in zip(STAGE_CHANNELS, STAGE_SIZES):
                    f += CELLS_PER_STAGE * c * c * k * k * size**2
                    p += CELLS_PER_STAGE * (c * c * k * k + 2 * c)
            per_edge[code] = Cost(f, p)
        return fixed, [dict(per_edge) for _ in EDGES]


NB201 = NB201Space()
