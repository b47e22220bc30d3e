"""ResNet-18 in plain torch, with torchvision's parameter names.

torchvision is not a dependency (its compiled operators must match the torch build
exactly), but a ResNet-18 ``state_dict`` saved from torchvision (``resnet18(weights=
"IMAGENET1K_V1").state_dict()``) loads into this network unchanged, so pretrained
ImageNet weights can be used by pointing ``image_weights`` at such a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from recsdk.errors import ConfigurationError

#: Channels and first stride of ResNet-18's four stages.
STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))
EMBEDDING_DIM = 512


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Backbone(nn.Module):
    """ResNet-18 without its classifier: images in, 512-dimensional embeddings out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = 64
        for number, (channels, stride) in enumerate(STAGES, start=1):
            stage = nn.Sequential(BasicBlock(in_channels, channels, stride),
                                  BasicBlock(channels, channels, 1))
            setattr(self, f"layer{number}", stage)
            in_channels = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for number in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{number}")(x)
        return torch.flatten(self.avgpool(x), 1)


def load_backbone(path: str | Path, device: str) -> ResNet18Backbone:
    """Build the backbone from a ResNet-18 ``state_dict`` file, read with weights_only.

    ``torch.load(..., weights_only=True)`` refuses files that would run code when
    unpickled, so a tampered weights file cannot execute anything. The classifier
    (``fc.*``) is ignored; any other missing or unexpected key is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"image_weights: {path} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigurationError(
            f"image_weights: {path} is not a torch state_dict loadable with "
            f"weights_only=True: {exc}") from exc
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ConfigurationError(
            f"image_weights: {path} holds a {type(state).__name__}, not a state_dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    model = ResNet18Backbone()
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigurationError(
            f"image_weights: {path} is not a ResNet-18 state_dict: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return model.to(device).eval()
