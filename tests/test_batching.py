"""Device-resident batches and the DataLoader path yield the same samples, seeded; channels-last
survives the gather and the augmentation; auto chooses the path from the GPU's total memory."""

import pytest
import torch

from sweepkit.augment import crop_flip
from sweepkit.batching import (
    DeviceBatches,
    LoaderBatches,
    check_batch_size,
    choose_data_path,
    gather,
    make_batches,
)
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
    batches = LoaderBatches(
        SPLIT, 32, torch.device("cpu"), num_workers=0, host_generator=torch.Generator().manual_seed(0)
    )
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


IMAGES = TensorSplit(torch.randn(64, 3, 8, 8), torch.randint(0, 10, (64,)))
CHANNELS_LAST = torch.channels_last


def test_gather_keeps_channels_last():
    # index_select alone returns NCHW: a layout copy per step on tensor cores' NHWC path.
    x = IMAGES.x.contiguous(memory_format=CHANNELS_LAST)
    index = torch.tensor([5, 2, 9])
    rows = gather(x, index)
    assert rows.is_contiguous(memory_format=CHANNELS_LAST) and torch.equal(rows, x[index])
    assert gather(IMAGES.x, index).is_contiguous()  # NCHW stays NCHW


@pytest.mark.parametrize("augment", [None, crop_flip], ids=["plain", "crop_flip"])
def test_device_batches_stay_channels_last_through_gather_and_augmentation(augment):
    batches = DeviceBatches(
        IMAGES, 16, torch.device("cpu"), torch.Generator().manual_seed(0), augment=augment, channels_last=True
    )
    assert all(x.is_contiguous(memory_format=CHANNELS_LAST) for x, _ in batches)


def test_loader_batches_arrive_channels_last_and_augmented_that_way():
    batches = LoaderBatches(
        IMAGES,
        16,
        torch.device("cpu"),
        0,
        torch.Generator().manual_seed(0),
        torch.Generator().manual_seed(1),
        augment=crop_flip,
        channels_last=True,
    )
    assert all(x.is_contiguous(memory_format=CHANNELS_LAST) for x, _ in batches)


GPU, GIB = torch.device("cuda", 0), 2**30
PART = TensorSplit(torch.zeros(GIB // 4 // 4, dtype=torch.float32), torch.zeros(0))  # 0.25 GiB


def test_auto_puts_data_on_the_gpu_when_it_fits_a_quarter_of_its_total_memory():
    # The total, not the memory free at that moment: the same config takes the same path every time.
    path = choose_data_path("auto", [PART], GPU, total_memory=16 * GIB)
    assert (
        path.kind == "device"
        and path.reason == "the data set (256 MiB) fits in 25% of cuda:0's 16.0 GiB total memory"
    )
    assert choose_data_path("auto", [PART], GPU, total_memory=1 * GIB).kind == "device"
    assert choose_data_path("auto", [PART], GPU, total_memory=GIB - 1).kind == "dataloader"


def test_auto_counts_all_splits_of_a_run_together():
    # Train, validation and test all go to the device, so together they must fit.
    path = choose_data_path("auto", [PART, PART, PART], GPU, total_memory=2 * GIB)
    assert (
        path.kind == "dataloader" and "the data set (768 MiB) exceeds 25% of cuda:0's 2.0 GiB" in path.reason
    )


def test_explicit_loader_choices_win_and_files_need_the_dataloader():
    assert choose_data_path("device", [PART], GPU, total_memory=GIB // 2).kind == "device"
    assert choose_data_path("dataloader", [PART], torch.device("cpu"), None).kind == "dataloader"
    files = torch.utils.data.TensorDataset(torch.zeros(4, 1))  # a Dataset, not tensors in memory
    assert choose_data_path("auto", [files], GPU, 16 * GIB).kind == "dataloader"
    with pytest.raises(ConfigError, match="data.loader=device needs an in-memory data set"):
        choose_data_path("device", [files], GPU, 16 * GIB)
