"""Subset selection from learned weights, the CSV manifest and the family composition."""

import pytest
import torch
from scipy.stats import chisquare

from bgresample.resampling import (
    METHODS,
    composition,
    read_manifest,
    select,
    select_authors,
    select_topk,
    select_weighted,
    write_manifest,
)


def _weights(n: int, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.softplus(
        torch.randn(n, generator=torch.Generator().manual_seed(seed))
    )


def test_authors_rule_size_and_preference():
    n, gamma, runs = 10_000, 0.1, 200
    w = _weights(n)
    assert (gamma * w / w.mean()).max() < 1  # no clipping, so E[size] = gamma * n exactly
    gen = torch.Generator().manual_seed(1)
    kept = torch.zeros(n)
    sizes = []
    for _ in range(runs):
        subset = select("authors", n=n, gamma=gamma, weights=w, generator=gen)
        assert subset.dtype == torch.int64 and torch.all(subset[1:] > subset[:-1])
        kept[subset] += 1
        sizes.append(subset.numel())
    assert sum(sizes) / runs == pytest.approx(gamma * n, rel=0.02)
    order = torch.argsort(w)
    assert kept[order[-1000:]].mean() > 2 * kept[order[:1000]].mean()


def test_authors_rule_clips_at_one():
    w = torch.tensor([100.0, 1.0, 1.0, 1.0])
    assert 0 in select_authors(w, 0.5, torch.Generator().manual_seed(2)).tolist()


@pytest.mark.parametrize("method", ["weighted", "topk", "random"])
@pytest.mark.parametrize("n, gamma", [(1000, 0.1), (999, 0.25), (7, 1.0), (5, 0.01)])
def test_exact_size_unique_sorted(method, n, gamma):
    subset = select(
        method, n=n, gamma=gamma, weights=_weights(n), generator=torch.Generator().manual_seed(3)
    )
    assert subset.dtype == torch.int64
    assert subset.numel() == max(1, round(gamma * n))
    assert torch.all(subset[1:] > subset[:-1])
    assert subset.min() >= 0 and subset.max() < n


def test_full_is_everything():
    assert torch.equal(select("full", n=6, gamma=1.0), torch.arange(6))


def test_random_is_uniform():
    n, gamma, runs = 50, 0.2, 4000
    gen = torch.Generator().manual_seed(4)
    counts = torch.zeros(n)
    for _ in range(runs):
        counts[select("random", n=n, gamma=gamma, generator=gen)] += 1
    freq = counts / runs
    assert torch.all((freq - gamma).abs() < 0.035)  # about 5.5 binomial sigmas
    assert chisquare(counts.numpy()).pvalue > 1e-3


def test_weighted_single_draw_is_proportional_to_w():
    # k = 1: the Gumbel top-1 must pick i with probability w_i / sum_j w_j.
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    gen = torch.Generator().manual_seed(5)
    picks = torch.cat([select_weighted(w, 0.2, gen) for _ in range(20_000)])
    counts = torch.bincount(picks, minlength=5).double()
    assert chisquare(counts.numpy(), (w / w.sum() * 20_000).double().numpy()).pvalue > 1e-3


def test_weighted_prefers_heavy_items():
    w = torch.ones(100)
    w[:5] = 1e6
    subset = select_weighted(w, 0.1, torch.Generator().manual_seed(6))
    assert set(range(5)) <= set(subset.tolist())


def test_topk_picks_largest_with_index_ties():
    w = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 0.5])
    assert select_topk(w, 2 / 6).tolist() == [1, 2]
    assert select_topk(w, 4 / 6).tolist() == [1, 2, 3, 4]
    w = _weights(1000)
    subset = select("topk", n=1000, gamma=0.1, weights=w)
    assert w[subset].min() >= torch.topk(w, 100).values.min()


@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match=r"gamma must be a number in \(0, 1\]"):
        select("random", n=10, gamma=gamma)


def test_bad_method_and_missing_weights():
    with pytest.raises(ValueError) as info:
        select("resampled", n=10, gamma=0.1)
    message = str(info.value)
    assert "'resampled'" in message and all(m in message for m in METHODS)
    assert "\n" not in message
    with pytest.raises(ValueError, match="needs learned weights"):
        select("topk", n=10, gamma=0.1)
    with pytest.raises(ValueError, match="pool has 10 items"):
        select("weighted", n=10, gamma=0.1, weights=torch.ones(9))
    with pytest.raises(ValueError, match="positive"):
        select("authors", n=3, gamma=0.1, weights=torch.tensor([1.0, 0.0, 2.0]))


def test_manifest_round_trip(tmp_path):
    n = 6
    w = _weights(n)
    family = ["imagenet", "imagenet", "tiny", "places", "tiny", "imagenet"]
    source = [
        "imagenet32/train:0",
        'imagenet32/train:1, "quoted"',
        "300K_random_images.npy:17,18",
        "places365:val/a,b:c",
        "tiny:line\nbreak",
        "imagenet32/train:5",
    ]
    indices = torch.tensor([0, 2, 3, 4])
    path = tmp_path / "subset.csv"
    write_manifest(path, indices, weights=w, family=family, source=source)
    assert path.read_text().splitlines()[0] == "index,weight,family,source"
    back = read_manifest(path)
    assert torch.equal(back["indices"], indices)
    assert torch.equal(back["weights"], w[indices].double())
    assert back["family"] == [family[i] for i in indices]
    assert back["source"] == [source[i] for i in indices]

    write_manifest(path, indices)
    bare = read_manifest(path)
    assert torch.equal(bare["indices"], indices)
    assert bare["weights"] is None and bare["family"] is None and bare["source"] is None


def test_manifest_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_manifest(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("idx,w\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        read_manifest(bad)


def test_composition():
    family = ["a"] * 6 + ["b"] * 3 + ["c"]
    comp = composition(torch.tensor([0, 6, 7, 9]), family)
    assert list(comp) == ["a", "b", "c"]
    assert sum(v["pool"] for v in comp.values()) == pytest.approx(1.0)
    assert sum(v["subset"] for v in comp.values()) == pytest.approx(1.0)
    assert comp["b"] == {"pool": 0.3, "subset": 0.5, "pool_count": 3, "subset_count": 2}
