"""Device-resident batches and the DataLoader path yield the same samples, seeded."""

import pytest
import torch

from sweepkit.batching import DeviceBatches, LoaderBatches, check_batch_size, make_batches
from sweepkit.datasets import TensorSplit
from sweepkit.errors import ConfigError

SPLIT = TensorSplit(torch.arange(100.0).unsqueeze(1), torch.arange(100))


def _epoch(batches):
    return torch.cat([y for _, y in batches])


def test_device_batches_visit_every_sample_once_per_epoch():
    batches = DeviceBatches(SPLIT, 32, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert len(batches) == 4
    first, second = _epoch(batches), _epoch(batches)
    assert sorted(first.tolist()) == list(range(100)) and not torch.equal(first, second)


def test_device_batches_follow_their_seed():
    a = DeviceBatches(SPLIT, 32, torch.device("cpu"), torch.Generator().manual_seed(5))
    b = DeviceBatches(SPLIT, 32, torch.device("cpu"), torch.Generator().manual_seed(5))
    assert torch.equal(_epoch(a), _epoch(b))


def test_evaluation_batches_come_in_order():
    assert torch.equal(_epoch(DeviceBatches(SPLIT, 30, torch.device("cpu"))), SPLIT.y)


def test_dataloader_path_yields_every_sample():
    batches = LoaderBatches(SPLIT, 32, torch.device("cpu"), num_workers=0, host_generator=torch.Generator().manual_seed(0))
    assert sorted(_epoch(batches).tolist()) == list(range(100)) and batches.num_samples == 100


def test_auto_keeps_in_memory_data_on_the_device():
    assert isinstance(make_batches(SPLIT, 10, torch.device("cpu"), "auto", 0), DeviceBatches)
    assert isinstance(make_batches(SPLIT, 10, torch.device("cpu"), "dataloader", 0), LoaderBatches)


def test_unknown_loader_lists_the_choices():
    with pytest.raises(ConfigError, match="data.loader=disk is not one of: auto, device, dataloader"):
        make_batches(SPLIT, 10, torch.device("cpu"), "disk", 0)


@pytest.mark.parametrize("batch_size", [0, -3, 101])
def test_batch_size_must_fit_the_training_set(batch_size):
    with pytest.raises(ConfigError, match=f"data.batch_size={batch_size} must be between 1 and the 100"):
        check_batch_size(batch_size, 100)
