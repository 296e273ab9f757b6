"""Step-seeded global batches: which ID items and background items each step trains on, and
this rank's share of them."""

from __future__ import annotations

import torch

from bgresample import dist
from bgresample.data.base import LabeledImages
from bgresample.data.transforms import CropFlip
from bgresample.errors import UserError
from bgresample.rng import Stream, generator
from bgresample.runtime.accel import Accel


class EpochBatches:
    """Global mini-batches of ``range(n)`` as a function of the step: epochs of shuffled indices
    (a fresh permutation per epoch, from ``(seed, ID_ORDER, epoch)``), the last partial batch
    dropped (kept when ``n < batch_size``) unless ``drop_last=False``. The current epoch's
    permutation is cached."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = True) -> None:
        if n == 0:
            raise UserError("cannot draw batches from an empty set")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = steps_per_epoch(n, batch_size, drop_last)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def at(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = generator(self.seed, Stream.ID_ORDER, epoch)
            self._perm = torch.randperm(self.n, generator=gen)
            self._epoch = epoch
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]


class ShuffledPasses:
    """Background batches of ``batch_size`` from a working set of ``k`` items in passes without
    replacement, each in a fresh shuffled order, the last partial batch dropped (the authors'
    fine-tuning loader: ``shuffle=True, drop_last=True``, cycled). A pass that starts at step
    ``s`` takes the permutation of ``(seed, BACKGROUND_ORDER, s)``, so any step's batch is a
    function of the seed (resume, torchrun ranks). A set smaller than one batch is repeated."""

    def __init__(self, batch_size: int, seed: int) -> None:
        self.batch_size, self.seed = batch_size, seed
        self._key: tuple[int, int] | None = None
        self._perm = torch.empty(0, dtype=torch.long)

    def at(self, k: int, first: int, step: int) -> torch.Tensor:
        """Positions in the working set (``range(k)``) of the batch at ``step``, the set's
        passes counted from step ``first``."""
        bs = self.batch_size
        per = steps_per_epoch(k, bs)
        start = first + (step - first) // per * per
        if self._key != (k, start):
            gen = generator(self.seed, Stream.BACKGROUND_ORDER, start)
            self._perm = torch.randperm(k, generator=gen)
            self._key = (k, start)
        if k < bs:
            return self._perm.repeat(-(-bs // k))[:bs]
        pos = step - start
        return self._perm[pos * bs : (pos + 1) * bs]


def id_batch(
    train: LabeledImages,
    batches: EpochBatches,
    step: int,
    flip: bool,
    accel: Accel,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of the ID batch of ``step``: images augmented from the step's own
    stream and ready for the model, and their labels on the device."""
    gidx = batches.at(step)
    sl = local_slice(len(gidx))
    aug = crop_flip(len(gidx), batches.seed, Stream.ID_AUG, step, flip).shard(sl)
    idx = gidx[sl]
    y = train.targets[idx.to(train.targets.device)].to(accel.device, non_blocking=True)
    return accel.batch(train, idx, aug), y


def crop_flip(n: int, seed: int, stream: Stream, step: int, flip: bool) -> CropFlip:
    """The augmentation of a global batch of ``n`` at ``step``, from ``stream``."""
    return CropFlip.draw(n, generator(seed, stream, step), flip=flip)


def uniform_batch(n: int, batch_size: int, seed: int, stream: Stream, step: int) -> torch.Tensor:
    """``batch_size`` indices drawn uniformly with replacement from ``range(n)`` at ``step``:
    O(batch) for pools of any size (background batches of a fixed subset)."""
    return torch.randint(n, (batch_size,), generator=generator(seed, stream, step))


def local_slice(n_global: int) -> slice:
    """The slice of a global batch of ``n_global`` that this rank processes."""
    info = dist.info()
    if n_global % info.world_size:
        raise UserError(
            f"global batch of {n_global} is not divisible by {info.world_size} processes; "
            "choose batch sizes that are multiples of --nproc_per_node"
        )
    k = n_global // info.world_size
    return slice(info.rank * k, (info.rank + 1) * k)


def steps_per_epoch(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Optimiser steps in one pass over ``n`` items (at least 1): the last partial batch
    dropped, or kept with ``drop_last=False``."""
    return max(n // batch_size if drop_last else -(-n // batch_size), 1)
