"""DenseNet-BC (Huang et al., 2017) for 32x32 inputs: bottleneck layers, compressed transitions."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.models.base import Classifier, init_weights, register_model


class _DenseLayer(nn.Module):
    """BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k); the k new maps are concatenated to the input."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class _Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (channel compression) then 2x2 average pooling."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.AvgPool2d(2),
        )


class DenseNetBC(Classifier):
    """Three dense blocks of (depth - 4) / 6 bottleneck layers, separated by transitions."""

    def __init__(
        self, num_classes: int, depth: int = 100, growth: int = 12, compression: float = 0.5
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        channels = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(n):
                layers.append(_DenseLayer(channels, growth))
                channels += growth
            if block < 2:
                compressed = int(channels * compression)
                layers.append(_Transition(channels, compressed))
                channels = compressed
        self.body = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(channels)
        self.feature_dim = channels
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_weights(self)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled features (342-d for depth 100, growth 12) after the final BN-ReLU."""
        out = F.relu(self.bn(self.body(x)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


@register_model("densenet100")
def densenet100(num_classes: int) -> DenseNetBC:
    """DenseNet-BC-100 with growth rate 12 (~0.8M parameters)."""
    return DenseNetBC(num_classes, depth=100, growth=12, compression=0.5)
