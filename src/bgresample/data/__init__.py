"""Datasets: ID sets, background pools and OOD sets, as batched uint8 tensors."""

from bgresample.data.base import ImageArray, LabeledImages
from bgresample.data.embedded import EmbeddedBenchmark, EmbeddedConfig, load_embedded
from bgresample.data.mnist_bench import MnistBenchConfig, MnistBenchmark, load_mnist_bench

__all__ = [
    "EmbeddedBenchmark",
    "EmbeddedConfig",
    "ImageArray",
    "LabeledImages",
    "MnistBenchConfig",
    "MnistBenchmark",
    "load_embedded",
    "load_mnist_bench",
]
