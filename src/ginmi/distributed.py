"""Data-parallel training with ``torch.distributed`` (``torchrun``), used by :func:`ginmi.training.train`.

Launch any command under ``torchrun``; training then runs on every process with
``DistributedDataParallel`` (gloo on CPU, nccl on GPU, one GPU per process)::

    torchrun --nproc-per-node 4 -m ginmi synthetic --out runs/ddp

How the processes share the work (the distributed sampler): the data sit in memory on every
process; each epoch all processes draw the same permutation and input noise from the same seeded
generators, so they agree on every global batch of ``--batch-size`` samples, and process ``r``
of ``R`` takes rows ``r, r + R, ...`` of it. Each process's loss is its share of the global-batch
mean (times ``R``, since DDP averages gradients), so the gradient, and hence the trained model,
is that of one process with the same batch size, up to rounding. With batch statistics
(``--stats batch``) the per-class means and stds of the global batch are formed with autograd-
aware all-reduces, so they too equal the one-process values. Trainable class statistics are
ordinary parameters, synchronised by DDP. Only rank 0 writes checkpoints, logs and run files.

Example:
    >>> from ginmi.distributed import init_from_env, is_main_process
    >>> ctx = init_from_env("cpu")  # no torchrun: a single process
    >>> ctx.world_size, is_main_process()
    (1, True)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn

if TYPE_CHECKING:
    from ginmi.model import GINModel

__all__ = [
    "DistContext",
    "init_from_env",
    "is_main_process",
    "rank",
    "world_size",
    "shard",
    "wrap_objective",
    "broadcast_object",
    "cleanup",
]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, number of processes, and its device."""

    rank: int
    world_size: int
    device: torch.device


def _initialized() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    """Rank of this process (0 without torch.distributed)."""
    return tdist.get_rank() if _initialized() else 0


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return tdist.get_world_size() if _initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single-process run): the process that writes files."""
    return rank() == 0


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment, once.

    Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing is initialised. The backend is
    nccl when the process uses a GPU, else gloo; a GPU process uses ``cuda:LOCAL_RANK``.
    """
    use_cuda = torch.cuda.is_available() and device != "cpu" and not device.startswith("cpu")
    if not _initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        tdist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if not _initialized():
        return DistContext(0, 1, torch.device("cpu"))
    if use_cuda:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    else:
        dev = torch.device("cpu")
    return DistContext(tdist.get_rank(), tdist.get_world_size(), dev)


def shard(batch: Tensor, ctx: DistContext) -> Tensor:
    """This process's rows of a global batch: ``r, r + R, r + 2R, ...``."""
    return batch[ctx.rank :: ctx.world_size]


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a checkpoint read once, by rank 0)."""
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup() -> None:
    """Leave the process group (end of a ``torchrun`` command)."""
    if _initialized():
        tdist.destroy_process_group()


class _ShardLoss(nn.Module):
    """This process's part of the global-batch loss (times the world size, as DDP averages)."""

    def __init__(self, model: GINModel, world: int) -> None:
        super().__init__()
        self.model = model
        self.world = world

    def forward(self, x: Tensor, u: Tensor, n_global: int) -> Tensor:
        model = self.model
        weight = self.world / n_global
        if model.stats == "trainable":
            if len(x) == 0:  # keep every parameter in the graph so DDP's reduction still runs
                return torch.stack([p.sum() for p in model.parameters() if p.requires_grad]).sum() * 0.0
            return model.loss(x, u) * (len(x) * weight)
        # batch statistics of the global batch (GINModel.loss, with all-reduced class sums)
        from torch.distributed.nn.functional import all_reduce

        from ginmi.model import gaussian_nll

        w, log_det = model.flow(model.prepare(x))
        w = w.reshape(w.shape[0], -1)
        onehot = torch.nn.functional.one_hot(u, model.n_classes).to(w.dtype)
        counts = onehot.sum(0)
        tdist.all_reduce(counts)
        mean = all_reduce(onehot.T @ w) / counts[:, None]
        var = all_reduce(onehot.T @ (w - mean[u]) ** 2) / counts[:, None]
        std = torch.sqrt(var + 1e-12)  # as class_statistics
        return gaussian_nll(w, torch.log(std[u]), None, log_det).sum() * weight


def wrap_objective(model: GINModel, ctx: DistContext) -> Callable[[Tensor, Tensor], tuple[Tensor, float]]:
    """``objective(x_global, u_global) -> (local loss to backpropagate, global mean loss)`` under DDP."""
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(
        _ShardLoss(model, ctx.world_size),
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        broadcast_buffers=False,  # buffers (standardisation, permutations) are equal on every rank
    )

    def objective(x: Tensor, u: Tensor) -> tuple[Tensor, float]:
        loss = ddp(shard(x, ctx), shard(u, ctx), len(x))
        total = loss.detach().clone()
        tdist.all_reduce(total)
        return loss, float(total) / ctx.world_size

    return objective
