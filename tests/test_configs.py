"""Every file of every config group composes with the real tree and instantiates into a run's parts."""

from pathlib import Path

import pytest
import torchvision
from conftest import CONFIG_DIR
from datafiles import write_cifar10, write_image_folder, write_mnist

from sweepkit.training import build

RUN_GROUPS = ("model", "data", "optimizer", "scheduler", "loss", "trainer", "tracking", "debug", "experiment")
REGRESSION_LOSSES = (
    "mse",
    "l1",
    "smooth_l1",
)  # composed with regression data; the others with the default digits


def _options():
    return [
        (group, path.stem) for group in RUN_GROUPS for path in sorted((CONFIG_DIR / group).glob("*.yaml"))
    ]


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """Small files for every data set that is not bundled (torchvision's md5 check is for real CIFAR)."""
    root = tmp_path / "data"
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST")
    write_cifar10(root)
    write_image_folder(root / "images")
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    return root


def _overrides_for(group: str, option: str, data_root: Path) -> list[str]:
    overrides = [f"{group}={option}", "tracking=none"] if group != "tracking" else [f"{group}={option}"]
    if group == "data" and option in ("mnist", "fashion_mnist", "cifar10"):
        overrides.append(f"data.root={data_root}")
    if group == "data" and option == "image_folder":
        overrides += [
            f"data.root={data_root / 'images'}",
            "data.num_workers=0",
            "data.source.image_size=16",
            "data.batch_size=8",
        ]
    if group == "data" and option == "cifar10":
        overrides.append("data.batch_size=64")
    if group == "loss" and option in REGRESSION_LOSSES:
        overrides.append("data=sine")
    return overrides


@pytest.mark.parametrize(("group", "option"), _options())
def test_group_option_composes_and_builds(group, option, data_root, tmp_path, make_cfg):
    # Composing `group=option` and building the run instantiates the data, model, optimizer,
    # scheduler, loss and precision it names.
    cfg = make_cfg(*_overrides_for(group, option, data_root), fast=False)
    setup = build(cfg, output_dir=None)
    assert setup.parameters > 0
    assert setup.lr_effective > 0
    x, y = next(iter(setup.loop.train_batches))
    output = setup.loop.model(x)
    assert output.shape[0] == len(y)


def test_every_config_file_opens_with_a_command():
    # Each file tells how it is used: its first comment lines name the command.
    for path in CONFIG_DIR.rglob("*.yaml"):
        head = [line for line in path.read_text().splitlines()[:3] if line.startswith("#")]
        assert any("sweepkit-" in line for line in head), f"{path} does not open with a command"
