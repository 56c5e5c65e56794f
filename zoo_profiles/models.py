"""The zoo's model families: plain-torch image classifiers from logistic regression to a VGG.

Each family is a constructor ``(in_shape=(C, H, W), num_classes) -> nn.Module`` in the plain
registry :data:`ARCHS`; a profile's ``arch`` field names one. The families span a wide range of
accuracy and latency, as the model zoos of INFaaS (Romero et al., ATC'21) and Clockwork (Gujarati
et al., OSDI'20) do, so that a request's accuracy/latency target selects different models:

- ``logreg``: multinomial logistic regression (one linear layer);
- ``mlp_small`` / ``mlp_large``: fully connected nets, one hidden layer of 32 / two of 256-128;
- ``cnn_small`` / ``cnn_wide``: two 3x3 conv + max-pool stages (8-16 / 32-64 channels), then
  one linear layer;
- ``lenet5``: LeNet-5 (LeCun et al., Proc. IEEE 1998), ReLU and max-pool in place of the
  original squashing and sub-sampling units;
- ``resnet_small``: ResNet-8, the n = 1 member of He et al.'s (CVPR 2016) 6n+2 CIFAR family:
  3x3 stem, three stages of one basic residual block (16/32/64 channels, stride 2 between
  stages), global average pooling;
- ``vgg_small``: a small VGG (Simonyan and Zisserman, ICLR 2015): stacked 3x3 conv+BN+ReLU
  blocks of 64 / 128-128 / 256 channels, each stage max-pooled, global average pooling;
- ``cnn1d_8`` / ``cnn1d_25`` / ``cnn1d_64``: the 1-D CNN of MNIST-1D (Greydanus, 2020) with
  8 / 25 / 64 channels, for signals stored as one-row images ``(C, 1, L)``; ``cnn1d_64_deep``
  adds three stride-1 convs to ``cnn1d_64`` (in no default zoo: :data:`ARCHS_1D_EXTRA`).

:func:`default_archs` picks the 2-D families (:data:`ARCHS_2D`) for images and the 1-D ones
(:data:`ARCHS_1D`, with the shape-agnostic logistic regression and MLPs) for signals.

No dropout: training draws randomness only from the explicit generators of
:mod:`zoo_profiles.train`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Shape = tuple[int, int, int]
MNIST_SHAPE: Shape = (1, 28, 28)


def _flat(in_shape: Shape) -> int:
    c, h, w = in_shape
    return c * h * w


def _features_out(features: nn.Module, in_shape: Shape) -> int:
    """Number of features a conv trunk emits for one input (a shape-only dry run)."""
    with torch.no_grad():
        return int(features(torch.zeros(1, *in_shape)).numel())


def logreg(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """Multinomial logistic regression on the raw pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat(in_shape), num_classes))


def mlp_small(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """One hidden layer of 32 ReLU units."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat(in_shape), 32), nn.ReLU(),
                         nn.Linear(32, num_classes))


def mlp_large(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """Two hidden layers of 256 and 128 ReLU units."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat(in_shape), 256), nn.ReLU(),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, num_classes))


def _two_stage_cnn(in_shape: Shape, num_classes: int, c1: int, c2: int) -> nn.Module:
    features = nn.Sequential(
        nn.Conv2d(in_shape[0], c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    return nn.Sequential(*features, nn.Linear(_features_out(features, in_shape), num_classes))


def cnn_small(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """Conv 8 -> pool -> conv 16 -> pool -> linear (9,098 parameters on MNIST)."""
    return _two_stage_cnn(in_shape, num_classes, 8, 16)


def cnn_wide(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """Conv 32 -> pool -> conv 64 -> pool -> linear."""
    return _two_stage_cnn(in_shape, num_classes, 32, 64)


def lenet5(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """LeNet-5: conv 6@5x5 (padded to keep 28x28) -> pool -> conv 16@5x5 -> pool -> 120-84."""
    features = nn.Sequential(
        nn.Conv2d(in_shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    n = _features_out(features, in_shape)
    return nn.Sequential(*features, nn.Linear(n, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, num_classes))


class BasicBlock(nn.Module):
    """He et al.'s basic block: two 3x3 conv+BN, identity or 1x1-projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet_small(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """ResNet-8: stem 16, stages 16/32/64 of one basic block each, GAP, linear."""
    layers: list[nn.Module] = [nn.Conv2d(in_shape[0], 16, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for c_out, stride in ((16, 1), (32, 2), (64, 2)):
        layers.append(BasicBlock(c_in, c_out, stride))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def vgg_small(in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """A VGG-style net: [64, M, 128, 128, M, 256, M] of 3x3 conv+BN+ReLU, GAP, linear."""
    layers: list[nn.Module] = []
    c_in = in_shape[0]
    for v in (64, "M", 128, 128, "M", 256, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(c_in, v, 3, padding=1, bias=False), nn.BatchNorm2d(v),
                       nn.ReLU()]
            c_in = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


class Conv1dNet(nn.Module):
    """Greydanus's MNIST-1D ConvBase: three 1-D convs (kernel 5/3/3, stride 2) and a linear head.

    Takes signals shaped ``(N, C, 1, L)`` (a 1-D signal stored as a one-row image). ``layers``
    > 3 appends convs of kernel 3, stride 1 (length kept) before the head.
    """

    def __init__(self, in_shape: Shape, num_classes: int, channels: int,
                 layers: int = 3) -> None:
        super().__init__()
        if layers < 3:
            raise ValueError(f"layers must be >= 3, got {layers}")
        c = in_shape[0] * in_shape[1]
        convs: list[nn.Module] = [
            nn.Conv1d(c, channels, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU()]
        for _ in range(layers - 3):
            convs += [nn.Conv1d(channels, channels, 3, stride=1, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*convs, nn.Flatten())
        with torch.no_grad():
            n = self.features(torch.zeros(1, c, in_shape[2])).shape[1]
        self.head = nn.Linear(n, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x.flatten(1, 2)))
        return out


def cnn1d_8(in_shape: Shape = (1, 1, 40), num_classes: int = 10) -> nn.Module:
    """MNIST-1D CNN with 8 channels."""
    return Conv1dNet(in_shape, num_classes, 8)


def cnn1d_25(in_shape: Shape = (1, 1, 40), num_classes: int = 10) -> nn.Module:
    """MNIST-1D CNN with 25 channels (Greydanus's default)."""
    return Conv1dNet(in_shape, num_classes, 25)


def cnn1d_64(in_shape: Shape = (1, 1, 40), num_classes: int = 10) -> nn.Module:
    """MNIST-1D CNN with 64 channels."""
    return Conv1dNet(in_shape, num_classes, 64)


def cnn1d_64_deep(in_shape: Shape = (1, 1, 40), num_classes: int = 10) -> nn.Module:
    """MNIST-1D CNN with 64 channels and six convs (three more, stride 1): slower than the
    three-conv nets at batch size 1, so it sorts above them on a zoo's latency axis."""
    return Conv1dNet(in_shape, num_classes, 64, layers=6)


ArchFn = Callable[[Shape, int], nn.Module]

ARCHS: dict[str, ArchFn] = {
    "logreg": logreg,
    "mlp_small": mlp_small,
    "mlp_large": mlp_large,
    "cnn_small": cnn_small,
    "lenet5": lenet5,
    "cnn_wide": cnn_wide,
    "resnet_small": resnet_small,
    "vgg_small": vgg_small,
    "cnn1d_8": cnn1d_8,
    "cnn1d_25": cnn1d_25,
    "cnn1d_64": cnn1d_64,
    "cnn1d_64_deep": cnn1d_64_deep,
}
"""Model families by name, roughly from cheapest to most expensive."""

ARCHS_2D = ["logreg", "mlp_small", "mlp_large", "cnn_small", "lenet5", "cnn_wide",
            "resnet_small", "vgg_small"]
ARCHS_1D = ["logreg", "mlp_small", "mlp_large", "cnn1d_8", "cnn1d_25", "cnn1d_64"]
ARCHS_1D_EXTRA = ["cnn1d_64_deep"]
"""1-D families in no default zoo (``--archs`` names them; mnist1d-regime-cpu uses one)."""


def default_archs(in_shape: Shape) -> list[str]:
    """The zoo for an input shape: 1-D families for ``(C, 1, L)`` signals, else 2-D ones."""
    return list(ARCHS_1D if in_shape[1] == 1 else ARCHS_2D)


def build_model(arch: str, in_shape: Shape = MNIST_SHAPE, num_classes: int = 10) -> nn.Module:
    """A freshly initialised ``arch`` (initialisation draws from torch's current RNG state)."""
    from sim.errors import UserError

    if arch not in ARCHS:
        raise UserError(f"unknown model architecture {arch!r}; choose one of {sorted(ARCHS)}")
    return ARCHS[arch](in_shape, num_classes)


def count_params(model: nn.Module) -> int:
    """Number of parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
