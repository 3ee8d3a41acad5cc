"""A model of the user's own: sweepkit builds it as ``RingNet(in_shape=..., num_outputs=..., width=...)``."""

import math

from torch import nn


class RingNet(nn.Sequential):
    """Two hidden layers: enough to bend a boundary around a ring."""

    def __init__(self, in_shape, num_outputs, width=32):
        super().__init__(
            nn.Flatten(),
            nn.Linear(math.prod(in_shape), width),
            nn.Tanh(),
            nn.Linear(width, width),
            nn.Tanh(),
            nn.Linear(width, num_outputs),
        )
