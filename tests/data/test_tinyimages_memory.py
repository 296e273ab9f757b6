"""Opening the full 80M-record Tiny Images file costs almost no memory (sparse file, no data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bgresample.data.pools import RECORD_BYTES, TINYIMAGES_RECORDS, TinyImages


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_full_size_file_is_memory_mapped(tmp_path):
    path = tmp_path / "tiny_images.bin"
    last = np.arange(RECORD_BYTES, dtype=np.uint32).astype(np.uint8)
    try:
        with open(path, "wb") as f:
            f.truncate(TINYIMAGES_RECORDS * RECORD_BYTES)  # sparse: no blocks written
            f.seek((TINYIMAGES_RECORDS - 1) * RECORD_BYTES)
            f.write(last.tobytes())
    except OSError as e:
        pytest.skip(f"no sparse file of 244 GB here: {e}")
    try:
        # 1-based entries: the first record and one near the end
        (tmp_path / "80mn_cifar_idxs.txt").write_text(f"1\n{TINYIMAGES_RECORDS - 5}\n")
        before = _rss_bytes()
        pool = TinyImages(path)
        assert len(pool) == TINYIMAGES_RECORDS - 2
        batch = pool.get_batch(torch.tensor([len(pool) - 1, 0, 12_345_678]))
        grown = _rss_bytes() - before
        assert grown < 50 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB"
        assert pool.record_index(torch.tensor([len(pool) - 1])).tolist() == [TINYIMAGES_RECORDS - 1]
        expected = torch.from_numpy(last.reshape(3, 32, 32).transpose(0, 2, 1).copy())
        assert torch.equal(batch[0], expected)  # the last record: item 79,302,013 here
        assert not batch[1:].any()
        assert torch.equal(
            TinyImages(path, exclude=None).get_batch(torch.tensor([79_302_015]))[0], expected
        )
    finally:
        path.unlink()
