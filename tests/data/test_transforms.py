"""Batched augmentation equals the per-image definition."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bgresample.data.transforms import normalize, random_crop_flip


def test_batched_crop_flip_matches_per_image_reference():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, gen, pad=4, flip=True)
    # Replay the same random draws and crop each image by hand.
    gen = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 9, (64,), generator=gen)
    dx = torch.randint(0, 9, (64,), generator=gen)
    flips = torch.rand(64, generator=gen) < 0.5
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(64):
        ref = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        if flips[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref), i
    assert out.dtype == torch.uint8
    assert flips.any() and (~flips).any() and (dy != 4).any()


def test_no_flip_and_normalisation():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), pad=0, flip=False)
    assert torch.equal(out, x)
    n = normalize(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2))
    torch.testing.assert_close(n[0, 0, 0], torch.tensor([-2.0, 2.0]))


def test_fast_batched_path_is_bit_identical_to_per_image_torchvision():
    """The fp32 batch from ``prepare`` (one gather over the batch) equals torchvision's
    per-image pad / crop / flip followed by the same normalisation, bit for bit."""
    from torchvision.transforms.v2 import functional as TF

    from bgresample.data.transforms import CropFlip, prepare

    x = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8)
    aug = CropFlip.draw(48, torch.Generator().manual_seed(3), pad=4, flip=True)
    fast = prepare(x, aug=aug)
    slow = []
    for i in range(48):
        img = TF.crop(TF.pad(x[i], [4]), int(aug.dy[i]), int(aug.dx[i]), 32, 32)
        slow.append(TF.horizontal_flip(img) if aug.flips[i] else img)
    ref = normalize(torch.stack(slow))
    assert fast.dtype == torch.float32
    assert torch.equal(fast, ref)
    # Memory format of the input does not change the values.
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(prepare(cl, aug=aug), ref)
