"""Datasets: ID sets, background pools and OOD sets, as batched uint8 tensors."""

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.embedded import EmbeddedBenchmark, EmbeddedConfig, load_embedded

__all__ = ["EmbeddedBenchmark", "EmbeddedConfig", "ImageArray", "LabeledImages", "load_embedded"]
