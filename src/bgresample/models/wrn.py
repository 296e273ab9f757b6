"""Wide ResNet (Zagoruyko & Komodakis, 2016) for 32x32 inputs, pre-activation basic blocks.

Two layouts:

- :class:`WideResNet` (``wrn40_2``, ``wrn40_4``): our own variant, bias-free convolutions, the
  stride on a block's first convolution, dropout between its two convolutions after BN-ReLU, a
  projection shortcut on the block's pre-activation, Kaiming-normal init (WRN-40-4: 8,949,210
  parameters at 10 classes).
- :class:`AuthorsWideResNet` (``wrn40_4_authors``): the layout of Li & Vasconcelos' released code
  (``models/wide_resnet.py`` of JerryYLi/bg-resample-ood), with parameter names equal to the keys
  of their saved state dicts, so that their checkpoints load as they are (``bgresample convert``;
  WRN-40-4: 8,955,050 parameters at 10 classes).
"""

import torch.nn.functional as F
from torch import Tensor, nn

from bgresample.models.base import Classifier, init_weights, register_model


def wrn_shape(depth: int, widen: int) -> tuple[int, list[int]]:
    """Blocks per group and the widths (stem, three groups) of a WRN-``depth``-``widen``."""
    if (depth - 4) % 6 != 0:
        raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
    return (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]


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
        # A projection shortcut takes the block's pre-activation (the authors' code applies it to
        # the raw input instead: _AuthorsBlock).
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(Classifier):
    """WRN-depth-widen: three groups of (depth - 4) / 6 blocks at widths 16k, 32k, 64k.

    Our variant, not the authors' layout (:class:`AuthorsWideResNet`): bias-free convolutions,
    the stride on the block's first convolution, dropout after the second BN-ReLU, a projection
    shortcut on the pre-activation, a final BN of default momentum and Kaiming-normal init.
    """

    def __init__(self, num_classes: int, depth: int, widen: int, dropout: float = 0.3) -> None:
        super().__init__()
        n, widths = wrn_shape(depth, widen)
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
    """WRN-40-4, our variant (8,949,210 parameters at 10 classes); the authors' layout is
    ``wrn40_4_authors``."""
    return WideResNet(num_classes, depth=40, widen=4, dropout=dropout)


class _AuthorsBlock(nn.Module):
    """The authors' block: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3 (biases on, stride on the
    second convolution), plus the raw input ``x`` or a strided 1x1 convolution (with bias) of it.
    The shortcut is an ``nn.Sequential`` (empty for identity), so its key is ``shortcut.0``."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut.append(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class AuthorsWideResNet(Classifier):
    """The Wide ResNet of the authors' code, parameter for parameter: modules ``conv1``,
    ``layer1``-``layer3`` (``nn.Sequential`` of :class:`_AuthorsBlock`), ``bn1`` and ``linear``,
    so that ``state_dict()`` has exactly the keys of the checkpoints their ``train.py`` saves.

    As in their code: the first convolution has a bias, the final BatchNorm has
    ``momentum=0.9`` (what their checkpoints were trained with; it matters only in training
    mode), and the weights keep PyTorch's default init (their ``conv_init`` is never applied).
    Their ``avg_pool2d`` kernel is ``in_size // 4``, the side of the last feature map for inputs
    of side ``in_size``; here it is that side itself: the same pooling at their size, and a
    global pooling at any ``data.size``.

    The classifier layer is ``linear``; ``fc`` (the :class:`Classifier` interface) is the same
    module, not a copy, and assigning ``model.fc = head`` replaces ``linear``
    (:func:`bgresample.losses.add_background_class` does), so it never appears twice in
    ``state_dict()``.
    """

    def __init__(self, num_classes: int, depth: int, widen: int, dropout: float = 0.3) -> None:
        super().__init__()
        n, widths = wrn_shape(depth, widen)
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=True)
        self.layer1 = self._group(widths[0], widths[1], n, 1, dropout)
        self.layer2 = self._group(widths[1], widths[2], n, 2, dropout)
        self.layer3 = self._group(widths[2], widths[3], n, 2, dropout)
        self.bn1 = nn.BatchNorm2d(widths[3], momentum=0.9)
        self.linear = nn.Linear(widths[3], num_classes)
        self.feature_dim = widths[3]

    @staticmethod
    def _group(c_in: int, c_out: int, n: int, stride: int, dropout: float) -> nn.Sequential:
        return nn.Sequential(
            *(
                _AuthorsBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, dropout)
                for i in range(n)
            )
        )

    @property
    def fc(self) -> nn.Linear:
        """The classifier layer, ``linear`` (one module under the authors' name)."""
        return self.linear

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__("linear" if name == "fc" else name, value)

    def features(self, x: Tensor) -> Tensor:
        """``64 * widen``-d features: the final BN-ReLU, average-pooled over the whole map."""
        out = F.relu(self.bn1(self.layer3(self.layer2(self.layer1(self.conv1(x))))))
        return F.avg_pool2d(out, out.shape[-2:]).flatten(1)


@register_model("wrn40_4_authors")
def wrn40_4_authors(num_classes: int, dropout: float = 0.3) -> AuthorsWideResNet:
    """WRN-40-4 in the authors' layout, their ``wrn40`` (8,955,050 parameters at 10 classes),
    with the keys of their checkpoints (``bgresample convert --authors``)."""
    return AuthorsWideResNet(num_classes, depth=40, widen=4, dropout=dropout)
