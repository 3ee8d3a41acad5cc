"""Models fit the data's input shape and number of outputs."""

import pytest
import torch

from sweepkit.errors import ConfigError
from sweepkit.models import MLP, LeNet, Linear, count_parameters, torchvision_classifier


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (3, 32, 32), (1, 28, 28)])
def test_lenet_adapts_its_head_to_the_image_size(in_shape):
    model = LeNet(in_shape, 10, channels=(4, 8), hidden=(16,))
    assert model(torch.randn(2, *in_shape)).shape == (2, 10)


def test_mlp_and_linear_flatten_any_input():
    assert MLP((1, 8, 8), 10, hidden=(16, 8), dropout=0.2)(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert Linear((5,), 1)(torch.randn(4, 5)).shape == (4, 1)
    assert count_parameters(Linear((5,), 1)) == 6


@pytest.mark.parametrize(("arch", "channels"), [("resnet18", 1), ("resnet18", 3), ("mobilenet_v3_small", 1)])
def test_torchvision_model_gets_the_right_channels_and_classes(arch, channels):
    model = torchvision_classifier((channels, 32, 32), 7, arch).eval()
    assert model(torch.randn(2, channels, 32, 32)).shape == (2, 7)


def test_unknown_torchvision_arch_is_a_config_error():
    with pytest.raises(ConfigError, match="model.arch=resnet9000 is not a torchvision classification model"):
        torchvision_classifier((3, 32, 32), 10, "resnet9000")


def test_cnn_on_flat_data_is_a_config_error():
    with pytest.raises(ConfigError, match="needs image inputs"):
        LeNet((8,), 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, "model.activation=swish is not one of"),
        ({"dropout": 1.0}, "model.dropout=1.0 must be in"),
    ],
)
def test_bad_model_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MLP((4,), 2, **kwargs)
