"""Data sources: the bundled digits, torchvision's loaders on IDX files written here, image folders."""

import subprocess
import sys

import pytest
import torch
from datafiles import write_image_folder, write_mnist

from sweepkit import datasets
from sweepkit.errors import ConfigError
from sweepkit.progress import SilentProgress
from sweepkit.training import build


def test_digits_split_is_seeded_and_disjoint():
    a, b = datasets.digits(seed=1), datasets.digits(seed=1)
    assert torch.equal(a.pool.x, b.pool.x) and len(a.pool) + len(a.test) == 1797
    train, val = datasets.split_train_val(a.pool, 0.15, seed=1)
    assert len(train) + len(val) == len(a.pool)
    other = datasets.digits(seed=2)
    assert not torch.equal(a.test.y, other.test.y)


def test_digits_are_decoded_once_and_a_run_cannot_change_the_next_ones():
    # Trials in one worker share the decoded digits; what a run holds is its own.
    first = datasets.digits(seed=0)
    expected = first.pool.x.clone()
    first.pool.x.add_(1.0), first.test.x.zero_(), first.pool.y.zero_()
    again = datasets.digits(seed=0)
    assert torch.equal(again.pool.x, expected) and again.pool.y.unique().numel() == 10
    assert datasets._digits_tensors.cache_info().hits >= 1


def test_digits_are_scikit_learns_read_without_importing_it():
    # The file load_digits reads, read directly: the same images and labels, and no scikit-learn import
    # (1.5-2 s) in a process that trains on digits.
    from sklearn.datasets import load_digits

    images, labels = datasets._read_digits_file()
    bunch = load_digits()
    assert (images == bunch.data).all() and (labels == bunch.target).all()
    code = "import sys; from sweepkit import datasets; datasets.digits(0); print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("class_name", "data_option"), [("MNIST", "mnist"), ("FashionMNIST", "fashion_mnist")]
)
def test_idx_files_load_through_torchvision_and_train_a_step(class_name, data_option, tmp_path, make_cfg):
    # Four uncompressed IDX files under <root>/<ClassName>/raw/ are all torchvision needs.
    write_mnist(tmp_path / "data", class_name)
    source = datasets.torchvision_dataset(
        seed=0, name=class_name, root=str(tmp_path / "data"), download=False
    )
    assert source.input_shape == (1, 28, 28) and source.num_outputs == 10 and len(source.test) == 64

    cfg = make_cfg(f"data={data_option}", f"data.root={tmp_path / 'data'}", "data.batch_size=32", "model=cnn")
    loop = build(cfg, output_dir=None).loop
    loss_first, _ = loop.train_epoch(progress=SilentProgress())
    loss_second, _ = loop.train_epoch(progress=SilentProgress())
    assert loss_second < loss_first


def test_missing_root_without_download_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.root=.* does not exist"):
        datasets.torchvision_dataset(seed=0, name="MNIST", root=str(tmp_path / "nowhere"), download=False)


def test_root_without_files_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="holds no readable MNIST files"):
        datasets.torchvision_dataset(seed=0, name="MNIST", root=str(tmp_path), download=False)


def test_image_folder_reads_train_and_test_folders(tmp_path):
    write_image_folder(tmp_path / "images", classes=3, per_class=4)
    source = datasets.image_folder(
        seed=0, root=str(tmp_path / "images"), image_size=16, grayscale=False, test_fraction=0.2
    )
    x, _y = source.pool[0]
    assert x.shape == (3, 16, 16) and source.num_outputs == 3 and len(source.test) == 12


def test_image_folder_without_test_folder_holds_out_a_seeded_share(tmp_path):
    write_image_folder(tmp_path / "images", classes=2, per_class=10, with_test=False)
    source = datasets.image_folder(
        seed=0, root=str(tmp_path / "images"), image_size=8, grayscale=True, test_fraction=0.25
    )
    assert len(source.test) == 5 and source.input_shape == (1, 8, 8)


def test_regression_sources_have_one_target_column():
    for source in (datasets.sine(0, 100, 0.1, 0.2), datasets.linear(0, 100, 4, 0.1, 0.2)):
        assert source.task == "regression" and source.num_outputs == 1 and source.pool.y.shape[1] == 1
