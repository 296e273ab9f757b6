"""Distributed execution (torchrun / PyTorch DDP). World size 1 is the same code path.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init` reads them, picks the
backend (nccl on CUDA, gloo on CPU) and the device. Every global batch is computed identically on
every rank (same seeds), and each rank takes a contiguous shard, so N ranks with global batch B
see exactly the items a single process with batch B sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


_INFO = DistInfo()


def info() -> DistInfo:
    """The current process's :class:`DistInfo`."""
    return _INFO


def init(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    global _INFO
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        _INFO = DistInfo()
        return _INFO
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if use_cuda else "gloo")
    _INFO = DistInfo(rank, world, local)
    return _INFO


def shutdown(ok: bool = True) -> None:
    """Leave the process group. After work that succeeded (``ok``) the ranks first meet at a
    barrier, so no rank starts tearing down, or exits, while rank 0 still writes results;
    after a failure they do not (the barrier could wait for a rank that is gone)."""
    if not tdist.is_initialized():
        return
    if ok:
        try:
            tdist.barrier()
        except RuntimeError:  # a rank left early: the launcher reports it; tear down all the same
            pass
    tdist.destroy_process_group()


def device_for(name: str) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` under torchrun on CUDA."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and _INFO.enabled:
        return torch.device("cuda", _INFO.local_rank)
    return torch.device(name)


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate equally-sized tensors from every rank, in rank order."""
    if not _INFO.enabled:
        return t
    parts = [torch.empty_like(t) for _ in range(_INFO.world_size)]
    tdist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def all_gather_grad(t: torch.Tensor) -> torch.Tensor:
    """:func:`all_gather_cat` that back-propagates: each rank's share of the gradient of the
    result (summed over the ranks' losses) flows back to the rank that holds it, so a loss
    over the global batch, averaged by DDP, has the single-process gradient."""
    if not _INFO.enabled:
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t.contiguous()))


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, small), in rank order, on every rank."""
    if not _INFO.enabled:
        return [obj]
    out: list[Any] = [None] * _INFO.world_size
    tdist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not _INFO.enabled:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _INFO.enabled:
        tdist.barrier()


def all_equal(t: torch.Tensor) -> bool:
    """Whether ``t`` is bit-identical on every rank (compares a checksum and the max/min)."""
    if not _INFO.enabled:
        return True
    probe = torch.stack([t.double().sum(), t.double().abs().sum(), t.double().max()]).to(t.device)
    parts = all_gather_cat(probe[None])
    return bool((parts == parts[0]).all())


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else ``model`` itself."""
    if not _INFO.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
