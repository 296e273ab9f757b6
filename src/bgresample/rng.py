"""Every random stream of a run, named once.

Each loop draws its randomness from a CPU generator seeded by ``(seed, stream, step)``
(:func:`generator`), so a run is a function of its seed: it resumes exactly at any step, and
every torchrun rank draws the same global batches. A stream is one kind of randomness
(:class:`Stream`); two uses of the same stream at the same step draw the same numbers, which is
how the variants of one seed share their ID batches and how ``run`` and ``compare-selectors``
share their subsets.
"""

from __future__ import annotations

from enum import IntEnum

import torch


class Stream(IntEnum):
    """The random streams of the run's loops. The values are part of every seed's results: never
    renumber. Selectors declare their own streams (``Selector.streams``: 101 for ``random``,
    201-216 for the mining selectors), which the selector registry keeps distinct from these."""

    ID_ORDER = 1
    """The shuffled order of the ID training set, one permutation per ID epoch."""
    ID_AUG = 2
    """Crop offsets and flips of each ID batch."""
    BACKGROUND = 3
    """Background batches: Algorithm 1's draws (eq. 11) and fine-tuning's picks from a subset."""
    BACKGROUND_AUG = 4
    """Crop offsets and flips of each background batch."""
    SELECT = 5
    """The subset chosen from learned weights (``select``, the ``resampled`` selector)."""
    BACKGROUND_ORDER = 6
    """The shuffled order of a background subset, one permutation per pass over it, keyed by
    the pass's first step (``finetune.background_order=shuffle``)."""
    PROJECTION_HEAD = 7
    """The initialisation of a Hopfield projection head (``finetune.loss=hopfield``), one per
    seed: every variant of a seed starts from the same head."""
    DROPOUT = 97
    """torch's global generator, re-seeded each step (dropout)."""


def _key(seed: int, stream: int, step: int) -> int:
    return (seed * 1_000_003 + int(stream)) * 1_000_033 + step


def generator(seed: int, stream: Stream | int, step: int = 0) -> torch.Generator:
    """A CPU generator for ``stream`` of ``seed`` at ``step`` (or epoch, or any integer key)."""
    return torch.Generator().manual_seed(_key(seed, stream, step))


def seed_step(seed: int, step: int) -> None:
    """Seed torch's global RNG (dropout) for one training step."""
    torch.manual_seed(_key(seed, Stream.DROPOUT, step))


# -- seeds derived outside the step streams -------------------------------------------------------
# Each formula below is part of every run's data (which items are held out, which noise images a
# set holds): never change one.

#: Salt of the background pool's validation hold-out in :func:`split_generator` (the ID split
#: salts each class by its label).
POOL_SPLIT_SALT = 7919


def split_generator(seed: int, salt: int) -> torch.Generator:
    """The generator of a validation split (``data.validation.seed``; ``salt``: the ID class,
    or :data:`POOL_SPLIT_SALT` for the pool)."""
    return torch.Generator().manual_seed(seed * 1009 + salt)


def noise_set_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th generated noise OOD set of a run (or embedded benchmark)
    with seed ``seed``."""
    return seed * 1000 + index


def trace_generator(seed: int) -> torch.Generator:
    """The generator of the pool items Algorithm 1's report traces (apart from every training
    stream, so tracing never changes a result)."""
    return torch.Generator().manual_seed(seed)
