"""Wide ResNet (Zagoruyko & Komodakis, 2016) for 32x32 inputs, pre-activation basic blocks."""

import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.models.base import Classifier, init_weights, register_model


class _WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 with an identity or 1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        # A projection shortcut shares the block's pre-activation, as in the authors' code.
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(Classifier):
    """WRN-depth-widen: three groups of (depth - 4) / 6 blocks at widths 16k, 32k, 64k."""

    def __init__(self, num_classes: int, depth: int, widen: int, dropout: float = 0.3) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        blocks = []
        for group, stride in enumerate((1, 2, 2)):
            c_in, c_out = widths[group], widths[group + 1]
            for i in range(n):
                blocks.append(
                    _WideBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, dropout)
                )
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.feature_dim = widths[-1]
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_weights(self)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled ``64 * widen``-d features after the final BN-ReLU."""
        out = F.relu(self.bn(self.blocks(self.conv(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


@register_model("wrn40_2")
def wrn40_2(num_classes: int, dropout: float = 0.3) -> WideResNet:
    """WRN-40-2 (~2.2M parameters)."""
    return WideResNet(num_classes, depth=40, widen=2, dropout=dropout)


@register_model("wrn40_4")
def wrn40_4(num_classes: int, dropout: float = 0.3) -> WideResNet:
    """WRN-40-4 (~8.9M parameters)."""
    return WideResNet(num_classes, depth=40, widen=4, dropout=dropout)
