"""The PyTorch networks: small enough to train on a CPU worker in seconds.

Each carries ``input_shape`` and ``nb_classes``, so wrapping it for ART needs no more input, and
casts its input to float32 (ART's FeatureSqueezing hands over float64)."""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and two dense layers, for (C, H, W) images."""

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 8, 8),
        nb_classes: int = 10,
        channels: int = 16,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = tuple(input_shape)
        self.nb_classes = nb_classes
        self.features = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(2 * channels * (h // 2) * (w // 2), hidden),
            nn.ReLU(),
            nn.Linear(hidden, nb_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.float()))


class MLPNet(nn.Module):
    """Dense layers with ReLU (and optional dropout) over the flattened input."""

    def __init__(
        self,
        input_shape: tuple[int, ...] = (64,),
        nb_classes: int = 10,
        hidden: tuple[int, ...] = (128,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.nb_classes = nb_classes
        features = 1
        for d in input_shape:
            features *= d
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(features, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            features = width
        layers.append(nn.Linear(features, nb_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.float())
