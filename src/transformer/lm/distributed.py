"""Data-parallel training with ``torch.distributed``, as started by ``torchrun``.

Every process (rank) holds the whole model and samples the same global batch from the same
generator; each takes its own contiguous slice of rows (``World.shard``), runs forward and
backward on it, and ``DistributedDataParallel`` all-reduces the gradients before the one
update. With no torchrun environment there is one rank and no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` ranks (rank 0 writes every file)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: Tensor) -> Tensor:
        """batch (B, ...) -> this rank's rows (B / size, ...), a contiguous slice."""
        per_rank = batch.shape[0] // self.size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]

    def sum(self, value: float, device: torch.device) -> float:
        """``value`` summed over every rank (itself with one rank)."""
        if self.size == 1:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.item()


SINGLE = World()


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def world_from_environment() -> World:
    """The world torchrun describes in the environment, or one rank without it."""
    if not launched_by_torchrun():
        return SINGLE
    return World(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    )


def join(world: World, device: torch.device) -> torch.device:
    """Join torchrun's process group (gloo on the CPU, NCCL on CUDA) and return the device
    this rank trains on (``cuda:<local rank>`` on CUDA). Nothing to do with one rank."""
    if world.size == 1 and not launched_by_torchrun():
        return device
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module | None:
    """``model`` (already on its device) in ``DistributedDataParallel``; None with one rank."""
    if world.size == 1:
        return None
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
