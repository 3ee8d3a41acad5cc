"""Atomic checkpoints: an interrupted save leaves the previous file loadable."""

import os

import pytest
import torch

from sweepkit import checkpoint


def test_round_trip_loads_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "loop": {}, "epoch": 2, "config_yaml": "seed: 1\n"}
    checkpoint.save_atomic(state, tmp_path / "last.pt")
    loaded = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 2


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    # A crash while writing (here: after half the bytes) must not touch the file readers use.
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"model": {}, "loop": {}, "epoch": 1, "w": torch.ones(1000)}, path)
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


@pytest.mark.parametrize(
    "content", [b"", os.urandom(3000), b"plain text, not a checkpoint\n"], ids=["empty", "random", "text"]
)
def test_a_file_that_is_no_checkpoint_is_one_line_without_unsafe_advice(tmp_path, content):
    # Empty, random or foreign bytes: a CheckpointError saying so, never torch's weights_only=False advice.
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError) as raised:
        checkpoint.load(path)
    message = str(raised.value)
    assert "checkpoint" in message and "weights_only" not in message and "\n" not in message


def test_a_truncated_checkpoint_is_called_damaged(tmp_path):
    # Half a checkpoint (a copy cut short) is named as damaged, not blamed on the model.
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"model": {"w": torch.ones(5000)}, "loop": {"epoch": 1}}, path)
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(
        checkpoint.CheckpointError, match="corrupt or not a sweepkit checkpoint .a truncated or damaged file"
    ):
        checkpoint.load(path)


def test_a_torch_file_that_is_not_a_sweepkit_checkpoint_is_refused(tmp_path):
    # A valid torch file without the model and loop state is not something to resume from.
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(3)}, path)
    with pytest.raises(checkpoint.CheckpointError, match="is not a sweepkit checkpoint"):
        checkpoint.load(path)


def test_checkpoints_honour_the_umask(tmp_path):
    # Under umask 022 a checkpoint is 0644, as any file the user writes: a team sharing the store reads it.
    old = os.umask(0o022)
    checkpoint.file_mode.cache_clear()
    try:
        path = checkpoint.save_atomic({"model": {}, "loop": {}}, tmp_path / "best.pt")
    finally:
        os.umask(old)
        checkpoint.file_mode.cache_clear()
    assert path.stat().st_mode & 0o777 == 0o644


CUDA_GENERATOR_STATE = torch.zeros(
    16, dtype=torch.uint8
)  # what a CUDA generator's get_state() returns: seed and offset


def test_a_cpu_run_keeps_no_cuda_rng_state():
    # Only the training device's CUDA state is kept (none on a CPU; one, not one per visible GPU, on CUDA).
    state = checkpoint.capture_rng({"device": torch.Generator()}, torch.device("cpu"))
    assert "cuda" not in state


def test_states_from_another_kind_of_device_are_reported_not_raised():
    # A checkpoint written on a GPU, resumed on a CPU: the torch and Python states are restored, the
    # device generator (a CUDA one then) is named as not restored and keeps drawing from its seed.
    saved = checkpoint.capture_rng({"device": torch.Generator()}, torch.device("cpu"))
    saved["generators"] = {"device": CUDA_GENERATOR_STATE, "host": torch.Generator().get_state()}
    saved["cuda"] = CUDA_GENERATOR_STATE
    generator = torch.Generator().manual_seed(5)
    assert checkpoint.restore_rng(saved, {"device": generator}, torch.device("cpu")) == [
        "the device generator"
    ]
    assert torch.equal(
        torch.rand(3, generator=generator), torch.rand(3, generator=torch.Generator().manual_seed(5))
    )


def test_a_background_save_writes_the_state_as_it_was_when_saved(tmp_path):
    # The loop goes on training while the file is written: what lands is the state at the save, the
    # later of two saves to one path wins, and every file is there once wait() returns.
    writer = checkpoint.CheckpointWriter()
    weights = torch.zeros(1000)
    writer.save({"model": {"w": weights}, "loop": {"epoch": 1}}, tmp_path / "best.pt")
    weights += 1  # the next step changes the weights in place
    writer.save({"model": {"w": weights}, "loop": {"epoch": 2}}, tmp_path / "last.pt")
    writer.save({"model": {"w": weights}, "loop": {"epoch": 3}}, tmp_path / "last.pt")
    writer.wait()
    assert checkpoint.load(tmp_path / "best.pt")["model"]["w"].sum() == 0
    assert checkpoint.load(tmp_path / "last.pt")["loop"]["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_a_background_write_that_fails_raises_at_the_wait(tmp_path):
    # A checkpoint that cannot be written stops the run as an inline write would, not silently.
    (tmp_path / "file").write_text("not a folder")
    writer = checkpoint.CheckpointWriter()
    writer.save({"model": {}, "loop": {}}, tmp_path / "file" / "last.pt")
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # the error is raised once
