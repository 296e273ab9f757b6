"""A small, fast CNN for the embedded 3x32x32 benchmark (~61k parameters)."""

import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.models.base import Classifier, init_weights, register_model


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(Classifier):
    """Four conv-BN-ReLU stages (32 -> 16 -> 8 -> 4 px), global average pool, dropout, linear."""

    def __init__(self, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(3, 16, stride=2),
            _conv_bn_relu(16, 32),
            nn.MaxPool2d(2),
            _conv_bn_relu(32, 64),
            nn.MaxPool2d(2),
            _conv_bn_relu(64, 64),
        )
        self.feature_dim = 64
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_weights(self)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled 64-d features."""
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits; dropout acts between features and ``fc`` in training mode only."""
        return self.fc(self.dropout(self.features(x)))


@register_model("small_cnn")
def small_cnn(num_classes: int, dropout: float = 0.0) -> SmallCNN:
    """Small CNN with optional dropout before the classifier."""
    return SmallCNN(num_classes, dropout=dropout)
