"""Batches of a background pool or OOD set read ahead in DataLoader worker processes.

Only sources that decode image files (``decodes = True``: folders of JPEG / PNG files) need
workers; arrays and memmaps are gathered in the main process, where a worker would only add a
copy. The batches are those the training loop asks for, in its order, so the results are the
same with any number of workers (the images, and the files found unreadable, do not depend on
which process decodes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from bgresample.data.pools import ImageSource
from bgresample.errors import UserError


class _Decode(Dataset):
    """Item ``key`` (a tensor of indices) is ``source.get_batch(key)``, with the unreadable files
    this call met (recorded in the worker's copy of the source, handed back to the main one).

    A UserError (e.g. no file of a folder is readable) is handed back as its message, in place of
    the batch, for the main process to raise: raised in the worker, torch would re-raise it with
    the worker's traceback pasted into the message.
    """

    def __init__(self, source: ImageSource) -> None:
        self.source = source

    def __getitem__(
        self, key: torch.Tensor
    ) -> tuple[torch.Tensor | None, list[tuple[int, str, str]], str | None]:
        seen = len(self.source.bad_items())
        try:
            x = self.source.get_batch(key)
        except UserError as e:
            return None, self.source.bad_items(seen), str(e)
        return x, self.source.bad_items(seen), None


def decodes(source: ImageSource) -> bool:
    """Whether ``source`` decodes files when read (and so gains from worker processes)."""
    return bool(getattr(source, "decodes", False))


def batches(
    source: ImageSource,
    keys: Iterable[torch.Tensor],
    workers: int = 0,
    pin_memory: bool = False,
    prefetch: int = 4,
) -> Iterator[torch.Tensor]:
    """uint8 batches ``source.get_batch(k)`` for the index tensors ``keys``, in order.

    With ``workers > 0`` and a decoding source they are decoded in that many DataLoader worker
    processes, up to ``prefetch`` batches per worker ahead of the consumer (``keys`` is iterated
    in this process, ahead of the batches it yields: it must not depend on them), and pinned for
    non-blocking copies to a GPU with ``pin_memory``. Otherwise each is read when asked for.
    """
    if workers <= 0 or not decodes(source):
        for key in keys:
            yield source.get_batch(key)
        return
    loader = DataLoader(
        _Decode(source),
        sampler=keys,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch,
    )
    for x, bad, error in loader:
        source.add_bad_items(bad)
        if error is not None:
            raise UserError(error)
        yield x
