"""Your model. sweepkit builds it as ``TinyNet(in_shape=..., num_outputs=..., <the keys of conf/model/tiny.yaml>)``.

Change the layers freely; keep the two arguments sweepkit passes (the input shape without the batch
dimension, and the number of classes or regression targets) and return an ``nn.Module`` whose forward
takes a batch of inputs and returns one row of outputs per sample (logits for classification).
"""

import math

from torch import nn


class TinyNet(nn.Sequential):
    """Flatten, one hidden layer of ``width`` units, then the output layer."""

    def __init__(self, in_shape, num_outputs, width=64, dropout=0.0):
        super().__init__(
            nn.Flatten(),
            nn.Linear(math.prod(in_shape), width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, num_outputs),
        )
