"""Atomic checkpoints: an interrupted save leaves the previous file loadable."""

import pytest
import torch

from sweepkit import checkpoint


def test_round_trip_loads_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "config_yaml": "seed: 1\n"}
    checkpoint.save_atomic(state, tmp_path / "last.pt")
    loaded = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 2


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    # A crash while writing (here: after half the bytes) must not touch the file readers use.
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"epoch": 1, "w": torch.ones(1000)}, path)
    real_save = torch.save

    def save_half_then_die(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(100)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(checkpoint.torch, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({"epoch": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "the temporary file is cleaned up"


def test_rng_capture_and_restore_repeat_the_same_draws():
    generators = {"device": torch.Generator().manual_seed(3)}
    state = checkpoint.capture_rng(generators)
    first = torch.rand(3), torch.rand(3, generator=generators["device"])
    checkpoint.restore_rng(state, generators)
    second = torch.rand(3), torch.rand(3, generator=generators["device"])
    assert all(torch.equal(a, b) for a, b in zip(first, second))
