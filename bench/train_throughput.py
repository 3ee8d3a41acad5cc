"""Training throughput on the CPU: sweepkit's loop against the textbook loop and the floor.

    python bench/train_throughput.py [--repeats 5]

MLP 784-256-10 on 60,000 x 784 synthetic samples, batch 128, SGD:
- sweepkit: TrainingLoop.train_epoch over device-resident batches (no sync per step);
- textbook: TensorDataset + DataLoader(shuffle) + loss.item() every batch;
- floor:    sweepkit's train_step repeated on one pre-made batch (no data handling at all).
Then the LeNet-style CNN on 1x28x28 inputs at batch 128, precision 32 against bf16.
All contenders alternate within one process; medians and spread over the repeats are printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from common import alternate, ratio, summary

from sweepkit.batching import DeviceBatches
from sweepkit.datasets import TensorSplit
from sweepkit.devices import resolve_precision, use_channels_last
from sweepkit.loop import EpochData, Optimization, TrainingLoop, train_step
from sweepkit.models import MLP, LeNet
from sweepkit.progress import SilentProgress

BATCH = 128
CPU = torch.device("cpu")


def synthetic(n: int, shape: tuple[int, ...]) -> TensorSplit:
    g = torch.Generator().manual_seed(0)
    return TensorSplit(torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))


def sweepkit_epoch(model: nn.Module, data: TensorSplit, precision_name: str = "32") -> float:
    """Samples/s of one epoch of sweepkit's loop, with the memory format sweepkit would choose."""
    precision = resolve_precision(precision_name, CPU)
    channels_last = use_channels_last(True, CPU, precision, data.x.dim() - 1)
    model = model.to(memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = DeviceBatches(data, BATCH, CPU, torch.Generator().manual_seed(1), channels_last=channels_last)
    loop = TrainingLoop(
        model,
        Optimization(optimizer, None, precision, nn.CrossEntropyLoss()),
        EpochData(batches, batches, "classification"),
        {},
    )
    _, seconds = loop.train_epoch(SilentProgress())
    return len(data) / seconds


def textbook_epoch(model: nn.Module, data: TensorSplit) -> float:
    """Samples/s of the loop most tutorials write."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=BATCH, shuffle=True)
    criterion, total = nn.CrossEntropyLoss(), 0.0
    start = time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return len(data) / (time.perf_counter() - start)


def floor_epoch(model: nn.Module, data: TensorSplit) -> float:
    """Samples/s of the bare step on one batch: what any loop at best approaches."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = data.x[:BATCH].clone(), data.y[:BATCH].clone()
    precision, scaler, criterion = (
        resolve_precision("32", CPU),
        torch.amp.GradScaler("cpu", enabled=False),
        nn.CrossEntropyLoss(),
    )
    steps = -(-len(data) // BATCH)
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, x, y, criterion, optimizer, scaler, precision)
    loss.item()
    return steps * BATCH / (time.perf_counter() - start)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return MLP((784,), 10, hidden=(256,), dropout=0.0)


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return LeNet((1, 28, 28), 10, channels=(16, 32), hidden=(128,), dropout=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    flat = synthetic(60_000, (784,))
    mlp_results = alternate(
        {
            "sweepkit": lambda: sweepkit_epoch(mlp(), flat),
            "textbook": lambda: textbook_epoch(mlp(), flat),
            "floor": lambda: floor_epoch(mlp(), flat),
        },
        args.repeats,
    )
    print("\nMLP 784-256-10, 60,000 samples, batch 128 (samples/s, median (min..max)):")
    for name, values in mlp_results.items():
        print(f"  {name:9s} {summary(values)}")
    print(
        f"  sweepkit / textbook = {ratio(mlp_results['sweepkit'], mlp_results['textbook'])}   (target >= 1.25x)"
    )
    print(
        f"  sweepkit / floor    = {ratio(mlp_results['sweepkit'], mlp_results['floor'])}   (target >= 0.90x)"
    )

    images = synthetic(10_000, (1, 28, 28))
    cnn_results = alternate(
        {
            "fp32": lambda: sweepkit_epoch(lenet(), images, "32"),
            "bf16": lambda: sweepkit_epoch(lenet(), images, "bf16"),
        },
        args.repeats,
    )
    print("\nLeNet-style CNN, 1x28x28, 10,000 samples, batch 128 (samples/s):")
    for name, values in cnn_results.items():
        print(f"  {name:9s} {summary(values)}")
    print(f"  bf16 / fp32 = {ratio(cnn_results['bf16'], cnn_results['fp32'])}   (target >= 1.8x)")


if __name__ == "__main__":
    main()
