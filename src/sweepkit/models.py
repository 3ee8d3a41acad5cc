"""Models. Each takes the data's ``in_shape`` and ``num_outputs`` plus its own config keys.

``model._target_`` names the class or function, so a user's own model plugs in the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from sweepkit.errors import ConfigError, one_of

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise one_of("model.activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError("model.dropout", dropout, "must be in [0, 1)")


def _dense_stack(widths: Sequence[int], activation: str, dropout: float) -> list[nn.Module]:
    """Linear + activation (+ dropout) for each consecutive pair of widths."""
    layers: list[nn.Module] = []
    for width_in, width_out in itertools.pairwise(widths):
        layers += [nn.Linear(width_in, width_out), _activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class Linear(nn.Sequential):
    """One linear layer on the flattened input: linear regression, or logistic regression on classes."""

    def __init__(self, in_shape: Sequence[int], num_outputs: int) -> None:
        super().__init__(nn.Flatten(), nn.Linear(math.prod(in_shape), num_outputs))


class MLP(nn.Sequential):
    """A multilayer perceptron on the flattened input."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        hidden: Sequence[int] = (128, 64),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        _check_dropout(dropout)
        widths = [math.prod(in_shape), *hidden]
        super().__init__(
            nn.Flatten(), *_dense_stack(widths, activation, dropout), nn.Linear(widths[-1], num_outputs)
        )


class LeNet(nn.Module):
    """LeNet-style CNN: 3x3 conv, activation and 2x2 max-pool per block, then a dense head."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (16, 32),
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ConfigError(
                "model", "cnn", f"needs image inputs (C, H, W); this data has shape {tuple(in_shape)}"
            )
        _check_dropout(dropout)
        blocks: list[nn.Module] = []
        for c_in, c_out in zip([in_shape[0], *channels[:-1]], channels):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), _activation(activation), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks, nn.Flatten())
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *in_shape)).shape[1]
        widths = [flat, *hidden]
        self.head = nn.Sequential(
            *_dense_stack(widths, activation, dropout), nn.Linear(widths[-1], num_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d for one with ``in_channels`` inputs and otherwise the same settings."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.in_channels != in_channels:
                    setattr(
                        parent,
                        name,
                        nn.Conv2d(
                            in_channels,
                            child.out_channels,
                            child.kernel_size,
                            child.stride,
                            child.padding,
                            child.dilation,
                            child.groups,
                            child.bias is not None,
                        ),
                    )
                return


def torchvision_classifier(in_shape: Sequence[int], num_outputs: int, arch: str) -> nn.Module:
    """Any torchvision classification model by name, fitted to the input channels and classes."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ConfigError(
            "model.arch",
            arch,
            "is not a torchvision classification model (see torchvision.models.list_models())",
        )
    if len(in_shape) != 3:
        raise ConfigError(
            "model.arch", arch, f"needs image inputs (C, H, W); this data has shape {tuple(in_shape)}"
        )
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_outputs)
    _replace_first_conv(model, in_shape[0])
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
