"""DOS: k-means on planted, well-separated clusters finds them, and the diverse pick keeps
exactly one item per cluster, its most ID-like."""

import torch

from bgresample.selectors.dos import diverse_pick, kmeans

K, PER, DIM = 8, 12, 16


def _planted(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K tight clusters around orthogonal directions (90 degrees apart after normalisation),
    shuffled; returns features, planted labels and random scores."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(K).repeat_interleave(PER)
    centers = torch.eye(DIM)[:K] * 5.0
    x = centers[labels] + 0.01 * torch.randn(K * PER, DIM, generator=g)
    perm = torch.randperm(K * PER, generator=g)
    return x[perm], labels[perm], torch.rand(K * PER, generator=g)


def test_kmeans_recovers_planted_clusters():
    x, labels, _ = _planted()
    centroids, assign = kmeans(
        torch.nn.functional.normalize(x), K, torch.Generator().manual_seed(0)
    )
    assert centroids.shape == (K, DIM)
    for c in range(K):  # every found cluster is one planted cluster, whole
        assert len(set(labels[assign == c].tolist())) == 1
    assert len(set(assign.tolist())) == K


def test_diverse_pick_one_per_cluster_most_id_like():
    for seed in range(3):
        x, labels, scores = _planted(seed)
        picks = diverse_pick(x, scores, K, torch.Generator().manual_seed(seed))
        assert len(picks) == K and len(set(picks.tolist())) == K
        assert sorted(labels[picks].tolist()) == list(range(K))
        for p in picks.tolist():
            members = labels == labels[p]
            assert scores[p] == scores[members].max()


def test_diverse_pick_fills_a_batch_larger_than_the_candidates():
    x, _, scores = _planted()
    picks = diverse_pick(x[:5], scores[:5], 12, torch.Generator().manual_seed(0))
    assert len(picks) == 12 and set(picks.tolist()) == set(range(5))
    dup = torch.ones(6, 3)  # identical rows: k-means++ cannot spread; still k distinct picks
    picks = diverse_pick(dup, torch.arange(6.0), 4, torch.Generator().manual_seed(0))
    assert len(set(picks.tolist())) == 4
