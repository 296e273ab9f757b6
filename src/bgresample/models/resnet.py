"""ResNet-18 (He et al., 2016) with the CIFAR stem: 3x3 stride-1 conv, no max-pool."""

import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.models.base import Classifier, init_weights, register_model


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus an identity or 1x1-conv-BN shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Classifier):
    """Four stages of two basic blocks at widths 64, 128, 256, 512."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        blocks = []
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = 512
        self.fc = nn.Linear(self.feature_dim, num_classes)
        init_weights(self)

    def features(self, x: Tensor) -> Tensor:
        """Globally pooled 512-d features."""
        return F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1)


@register_model("resnet18")
def resnet18(num_classes: int) -> ResNet18:
    """CIFAR ResNet-18 (~11.2M parameters)."""
    return ResNet18(num_classes)
