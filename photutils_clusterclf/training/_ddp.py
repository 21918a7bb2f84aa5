"""The DistributedDataParallel context of one training process (torchrun).

Not to be confused with `~photutils_clusterclf.many` (many galaxies on
Dask): this is one training run spread over several devices.
`DDPContext` reads ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK``, joins (or
initialises) the process group (NCCL on GPUs, gloo on the CPU) and
reduces tensors across ranks.
"""

import os

import torch
import torch.distributed as dist

from ..models import resolve_device

__all__ = []


class DDPContext:
    """Rank, world size and device of this process; initialises the process group if needed."""

    def __init__(self, device):
        device = resolve_device(device)
        self.owns_group = False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.owns_group = True
        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.world = dist.get_world_size() if self.active else 1
        self.rank = dist.get_rank() if self.active else 0
        if self.active and device.type == "cuda" and device.index is None:
            # One GPU per process, as torchrun lays them out.
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device

    @property
    def main(self):
        return self.rank == 0

    def all_reduce(self, tensor):
        if self.active:
            # NCCL reduces tensors on the GPU only.
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            tensor = moved.cpu()
        return tensor

    def close(self):
        if self.owns_group:
            dist.destroy_process_group()
