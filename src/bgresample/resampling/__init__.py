"""Adversarial background resampling (Section B): weights, samplers, the resampler that a
training loop drives, a user's data as a pool, and subset selection."""

from bgresample.resampling.pool import BackgroundPool
from bgresample.resampling.resampler import BackgroundResampler
from bgresample.resampling.sampler import UniformSampler, WeightedSampler
from bgresample.resampling.selection import (
    MANIFEST_HEADER,
    METHODS,
    composition,
    read_manifest,
    select,
    select_authors,
    select_full,
    select_random,
    select_topk,
    select_weighted,
    subset_size,
    write_manifest,
)
from bgresample.resampling.weights import W_FLOOR, BackgroundWeights

__all__ = [
    "MANIFEST_HEADER",
    "METHODS",
    "W_FLOOR",
    "BackgroundPool",
    "BackgroundResampler",
    "BackgroundWeights",
    "UniformSampler",
    "WeightedSampler",
    "composition",
    "read_manifest",
    "select",
    "select_authors",
    "select_full",
    "select_random",
    "select_topk",
    "select_weighted",
    "subset_size",
    "write_manifest",
]
