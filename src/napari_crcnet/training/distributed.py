"""Training on several processes with DistributedDataParallel, as ``torchrun`` starts them.

``torchrun --nproc-per-node=N crcnet train ...`` (or any launcher that sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``, e.g. multi-node torchrun) makes :func:`~napari_crcnet.training.train` train one model on N
processes: gloo on CPUs, NCCL on GPUs (process ``LOCAL_RANK`` on GPU ``LOCAL_RANK``). The global batch is
split evenly across the processes, each draws its own crops, DDP averages the gradients (so a step equals
one step on the whole batch), and only rank 0 validates and writes the log, the checkpoints and the model.
Without ``WORLD_SIZE`` (or with 1) nothing here changes a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Processes:
    """Which process this is: ``rank`` of ``world_size`` (``world_size`` 1: an ordinary run)."""

    rank: int = 0
    world_size: int = 1
    initialised_here: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, logs and writes files."""
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (a stop request, a non-finite loss)."""
        if not self.distributed:
            return bool(flag)
        value = torch.tensor([1.0 if flag else 0.0])
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes."""
        if not self.distributed:
            return float(value)
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def seed_step(self, synthesizer: Any, seed: int, step: int) -> None:
        """Reseed the synthesizer's generators from ``(seed, step, rank)``: each process draws other crops,
        and a run resumed on any number of processes continues with well-defined draws."""
        if not self.distributed:
            return
        synthesizer.rng = np.random.default_rng([int(seed), int(step), self.rank])
        synthesizer.generator.manual_seed(int(np.random.default_rng([int(seed), int(step), self.rank, 1])
                                              .integers(2**62)))

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model to train: wrapped in DistributedDataParallel when distributed (the weights of rank 0
        are broadcast to the others), else ``model`` itself."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.initialised_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """On CUDA under torchrun, the GPU of this process (``LOCAL_RANK``); else ``device``."""
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def start_processes(device: torch.device, batch: int) -> Processes:
    """Join the process group that torchrun described (``WORLD_SIZE`` > 1), or return an ordinary run."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    if batch % world:
        raise ValueError(f"batch ({batch}) must be divisible by the number of processes ({world})")
    import torch.distributed as dist

    here = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        here = True
    return Processes(dist.get_rank(), dist.get_world_size(), here)
