"""BackgroundPool: a tensor or a user's Dataset serves as a pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from bgresample import BackgroundPool


class PILImages(Dataset):
    """A labelled dataset of PIL images, as torchvision's datasets are."""

    def __init__(self, n: int) -> None:
        self.x = torch.randint(0, 256, (n, 8, 8, 3), dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.x[i].numpy()), i % 3


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(__import__("numpy").asarray(img).copy()).permute(2, 0, 1)


def test_tensor_pool_indexes_the_tensor():
    data = torch.randn(10, 3, 4, 4)
    pool = BackgroundPool(data)
    idx = torch.tensor([3, 3, 9])
    assert len(pool) == 10 and torch.equal(pool[idx], data[idx])


def test_memory_mapped_numpy_pool_is_read_per_item(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "pool.npy", x)
    pool = BackgroundPool(np.load(tmp_path / "pool.npy", mmap_mode="r"))
    batch = pool[torch.tensor([5, 0, 5])]
    assert batch.dtype == torch.uint8 and torch.equal(batch, torch.from_numpy(x[[5, 0, 5]]))


def test_labelled_dataset_drops_labels():
    x = torch.randn(6, 2)
    pool = BackgroundPool(TensorDataset(x, torch.arange(6)))
    assert torch.equal(pool[torch.tensor([5, 0])], x[[5, 0]])


def test_pil_dataset_needs_a_transform():
    ds = PILImages(5)
    with pytest.raises(TypeError, match="transform=torchvision.transforms.ToTensor"):
        BackgroundPool(ds)[torch.tensor([0])]
    batch = BackgroundPool(ds, transform=_to_tensor)[torch.tensor([4, 1])]
    assert batch.shape == (2, 3, 8, 8)
    assert torch.equal(batch[0], ds.x[4].permute(2, 0, 1))


def test_batches_in_worker_processes_equal_inline():
    pool = BackgroundPool(PILImages(12), transform=_to_tensor)
    keys = [torch.tensor([0, 1, 2]), torch.tensor([11, 5]), torch.tensor([7])]
    inline = list(pool.batches(keys))
    ahead = list(pool.batches(keys, num_workers=2))
    assert all(torch.equal(a, b) for a, b in zip(inline, ahead, strict=True))


def test_bad_pools_and_indices():
    with pytest.raises(TypeError, match="map-style Dataset"):
        BackgroundPool(42)
    with pytest.raises(ValueError, match="empty"):
        BackgroundPool(torch.empty(0, 3))
    pool = BackgroundPool(torch.zeros(4, 2))
    with pytest.raises(IndexError, match=r"\[0, 3\]"):
        pool[torch.tensor([4])]
    with pytest.raises(TypeError, match="integer tensor"):
        pool[torch.tensor([0.5])]
