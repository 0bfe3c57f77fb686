"""Supernet training on several processes: the process group, PyTorch's launcher, gradient averaging.

The ranks of a run split every step's batch, not the epoch: a step still trains on
``batch_size`` images drawn from the epoch's permutation (the same one as a single
process), and rank ``r`` of ``n`` takes the images ``r, r + n, r + 2n, ...`` of it,
so over an epoch each rank sees a disjoint slice of the permutation, as with
``DistributedSampler``. Steps per epoch, the schedule and the images seen do not
depend on the number of ranks, which is why a checkpoint written with N ranks
resumes on M and a run's numbers compare with a single process's.

All ranks draw the same paths (one path RNG seeded by the config), so the same
parameters get gradients on every rank. Instead of wrapping the model in
``DistributedDataParallel`` (which with single-path steps needs
``find_unused_parameters=True``, a graph walk every forward, and would have to be
rebuilt when few-shot splits the model), :func:`average_gradients` does DDP's work
by hand after the step's backward passes: one ``all_reduce`` of the gradients that
exist, weighted by each rank's share of the batch. Parameters a step did not use
keep ``grad=None`` and are skipped by SGD, exactly as in a single process.

BatchNorm keeps per-rank batch statistics (each rank normalises its own shard, the
default of DDP); the running statistics are averaged over the ranks at the end of
every epoch so that the checkpoint does not depend on which rank wrote it. Scoring
recalibrates BN per architecture anyway. ``SyncBatchNorm`` would add a collective
to every BN layer of every path and is CUDA-only.

Workers are started by ``torch.distributed.launcher.api.elastic_launch`` (what
``torchrun`` runs); a process started by ``torchrun`` itself is recognised by the
environment it sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from evonas.errors import ConfigError, EvonasError

DEVICES = ("cpu", "cuda", "auto")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """Where this process stands among the ranks of one training run."""

    rank: int = 0  # global rank, 0 writes the run directory
    size: int = 1  # number of ranks
    local_rank: int = 0  # rank on this machine (picks the GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This rank's slice of a step's batch: rows ``rank, rank + size, ...`` of each tensor."""
        if self.size == 1:
            return tensors
        return tuple(t[self.rank :: self.size] for t in tensors)


SINGLE = World()


def launched_by_torchrun() -> bool:
    """Whether this process is a worker that ``torchrun`` (or ``elastic_launch``) started."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def env_world() -> World:
    """The rank, world size and local rank that the launcher put in the environment."""
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))


def resolve_device(name: str) -> torch.device:
    """The torch device of ``--device`` (cpu, cuda, cuda:N, auto); a GPU that is not there is a ConfigError."""
    from evonas.device import resolve_device as resolve

    return resolve(name)


def check_world(nproc: int, device: torch.device) -> None:
    """Refuse a process count below 1, or more GPU processes than GPUs."""
    if not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"The 'nproc_per_node' parameter must be an integer >= 1; got {nproc!r}.", param="nproc_per_node")
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(
            f"The 'nproc_per_node' parameter must be at most the {torch.cuda.device_count()} GPUs here with "
            f"--device cuda; got {nproc}.",
            param="nproc_per_node",
        )


def check_batch(world_size: int, images_per_step: int) -> None:
    """Every rank needs at least one image of each step."""
    if images_per_step < world_size:
        raise ConfigError(
            f"The 'batch_size' parameter must be at least the number of training processes ({world_size}); "
            f"a step has {images_per_step} images.",
            param="batch_size",
        )


def init(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group the launcher set up: ``nccl`` on GPUs, ``gloo`` on CPU.

    Returns this process's :class:`World` and its device (``cuda:LOCAL_RANK`` on GPUs).
    """
    import torch.distributed as dist

    world = env_world()
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def shutdown() -> None:
    """Leave the process group (when there is one)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; for the config, a checkpoint, an error)."""
    if world.size == 1:
        return obj
    import torch.distributed as dist

    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_module(model: nn.Module, world: World) -> None:
    """Give every rank rank 0's parameters and buffers (DDP does this when it wraps a model)."""
    if world.size == 1:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def _params_with_grads(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.grad is not None]


def average_gradients(opt: torch.optim.Optimizer, world: World, local_images: int, step_images: int) -> None:
    """Turn each rank's gradients into the gradient of the whole step's batch.

    Every loss is a mean over the rank's ``local_images``; weighting by
    ``local_images / step_images`` and summing over the ranks gives the mean over the
    step's batch, also when the batch does not divide evenly. All ranks trained the
    same paths, so the same parameters hold gradients, in the same order.
    """
    if world.size == 1:
        return
    import torch.distributed as dist

    params = _params_with_grads(p for group in opt.param_groups for p in group["params"])
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params]) * (local_images / step_images)
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def average_buffers(model: nn.Module, world: World) -> None:
    """Average the floating-point buffers (BN running mean and variance) over the ranks."""
    if world.size == 1:
        return
    import torch.distributed as dist

    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers]) / world.size
    dist.all_reduce(flat)
    offset = 0
    with torch.no_grad():
        for b in buffers:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()


def sum_over_ranks(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (epoch statistics)."""
    if world.size == 1:
        return list(values)
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


class WorkerFailedError(EvonasError):
    """A training process started by the launcher failed; the message is its error."""


def launch(nproc: int, entrypoint: Callable[..., Any], *args: Any) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` in ``nproc`` processes on this machine with PyTorch's elastic launcher.

    The same launcher ``torchrun --standalone`` uses (c10d rendezvous on a free local
    port, no restarts); workers find their rank in the environment. Returns each
    rank's return value; a failed worker stops the others and becomes a
    :class:`WorkerFailedError` carrying the first failure's message.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"evonas-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    try:
        return elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = failure.message.get("message", "") if isinstance(failure.message, dict) else failure.message
        message = " ".join(str(message).split()) or f"exit code {failure.exitcode}"
        raise WorkerFailedError(f"training process of rank {rank} failed: {message}") from None
