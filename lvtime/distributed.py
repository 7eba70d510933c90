"""torchrun process groups: each rank on its device, sums across ranks.

Under ``torchrun`` each process takes a slice of every batch; gradients and losses are
summed across processes, so the updates equal a single-process run's. NCCL on GPUs
(each rank on ``cuda:LOCAL_RANK``), gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str | None = None  # this rank's device under torchrun: cuda:LOCAL_RANK (NCCL) or cpu (gloo)
    owns_group: bool = False  # init_distributed made the process group, so it ends it

    def close(self) -> None:
        """End the process group this run made. Left to interpreter exit, gloo's worker
        threads can be torn down while joinable, and a rank dies by SIGABRT ("terminate
        called without an active exception") after finishing its work."""
        if self.owns_group:
            torch.distributed.destroy_process_group()
            self.owns_group = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        # NCCL reduces only tensors on the rank's own GPU; gloo takes CPU tensors
        t = torch.tensor(values, dtype=torch.float64, device=self.device or "cpu")
        torch.distributed.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag))[0] > 0


def init_distributed(device: str) -> Dist:
    """Join the process group torchrun set up: NCCL with each rank on ``cuda:LOCAL_RANK``,
    gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), f"cuda:{local}" if cuda else "cpu", owns)
