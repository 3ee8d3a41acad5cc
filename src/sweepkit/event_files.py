"""Run tracking as TensorBoard event files in the run folder (``tracking=tensorboard``).

One run folder is one TensorBoard run, so ``tensorboard --logdir outputs`` shows every single run
and ``tensorboard --logdir multirun/<study>`` every trial of a sweep. The scalars have MLflow's
names and steps (step = epoch; final metrics at step 0); the resolved config is text; image data
gets a grid of input images and every model its graph, once at the start. A sweep trial adds its
sampled params and outcome for the HParams dashboard once the study knows it.

TensorBoard is an optional extra (``pip install 'sweepkit[tensorboard]'``). This module is imported
only when ``tracking.trackers`` names it; without TensorBoard, importing it is the one-line error
that says what to install (a sweep checks that before its first trial).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweepkit.errors import ConfigError

INSTALL_HINT = "needs the tensorboard package: pip install 'sweepkit[tensorboard]'"
try:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.writer import FileWriter
except ImportError:
    raise ConfigError("tracking", "tensorboard", INSTALL_HINT) from None

log = logging.getLogger("sweepkit")
MIN_IMAGE_SIDE = 32  # smaller inputs (8x8 digits) are drawn larger, pixel for pixel, to be seen at all
IMAGE_SUFFIXES = (".png",)  # artifacts drawn as images: the learning curve, the LR range test
TEXT_SUFFIXES = (".txt",)  # artifacts shown as text: a failed run's traceback (error.txt)
# The HParams dashboard knows four session states; a pruned trial ran as it should and stopped early
# (its own optuna.state column says PRUNED), a failed one did not.
SESSION_STATUS = {"COMPLETE": "STATUS_SUCCESS", "PRUNED": "STATUS_SUCCESS", "FAIL": "STATUS_FAILURE"}


def tensorboard_tracker(cfg: Mapping[str, Any], launch_dir: Path) -> TensorBoardTracker:
    """The tracker that ``tracking.tensorboard`` describes, checked (the folder writable, the settings
    in range); nothing is written until the run starts."""
    settings = cfg["tensorboard"]
    log_dir = settings["log_dir"]
    if not isinstance(log_dir, str) or not log_dir.strip():
        raise ConfigError(
            "tracking.tensorboard.log_dir",
            repr(log_dir),
            "must be a folder (default: the run folder, ${output_dir})",
        )
    folder = Path(log_dir).expanduser()
    folder = folder if folder.is_absolute() else launch_dir / folder
    check_writable(folder, "tracking.tensorboard.log_dir")
    images = settings["images"]
    if isinstance(images, bool) or not isinstance(images, int) or images < 0:
        raise ConfigError(
            "tracking.tensorboard.images", images, "must be an integer >= 0 (0: no input images)"
        )
    if not isinstance(settings["graph"], bool):
        raise ConfigError("tracking.tensorboard.graph", settings["graph"], "must be true or false")
    return TensorBoardTracker(folder, images=images, graph=settings["graph"])


def check_writable(folder: Path, key: str) -> None:
    """Refuse a folder that cannot be made or written to, without making it."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(folder), f"cannot be written ({existing} is not a writable folder)")


class TensorBoardTracker:
    """Event files for one run, written through PyTorch's ``SummaryWriter``."""

    run_id: str | None = None  # TensorBoard names a run by its folder: self.log_dir

    def __init__(self, log_dir: Path, images: int = 16, graph: bool = True) -> None:
        self.log_dir, self.images, self.graph = Path(log_dir), images, graph
        self.writer = None
        self.tags: dict[str, str] = {}

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self.writer = SummaryWriter(str(self.log_dir))
        self.writer.add_text("config", code_block(f"{key}: {value}" for key, value in params.items()), 0)
        self.tags = {"run_name": run_name, **tags}

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, epoch)
        self.writer.flush()  # a curve grows in an open TensorBoard as the run trains

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, 0)  # step 0, as MLflow's log_metrics

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Images and text files are shown (TensorBoard keeps no files); checkpoints and folders are
        left where they are, in the run folder beside the event files."""
        path = Path(path)
        if not path.is_file():
            return
        tag = f"{artifact_path}/{path.name}" if artifact_path else path.name
        if path.suffix in IMAGE_SUFFIXES:
            from PIL import Image  # torchvision's dependency

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(tag, pixels, 0, dataformats="HWC")
        elif path.suffix in TEXT_SUFFIXES:
            self.writer.add_text(tag, code_block(path.read_text(errors="replace").splitlines()), 0)

    def watch(self, model: torch.nn.Module, sample_inputs: Callable[[], Any]) -> None:
        """A grid of input images (image data) and the model graph, once. The random streams are
        put back after: the run trains exactly as it would without TensorBoard."""
        if not (self.images or self.graph):
            return
        with torch.random.fork_rng(devices=cuda_devices(model)):  # a DataLoader draws a seed per iteration
            inputs = sample_inputs()
            if not isinstance(inputs, torch.Tensor):
                return
            if self.images and is_image_batch(inputs):
                self.writer.add_image("inputs", image_grid(inputs[: self.images]), 0)
            if self.graph:
                self._add_graph(model, inputs[:2])

    def _add_graph(self, model: torch.nn.Module, inputs: torch.Tensor) -> None:
        """The model's graph, traced in eval mode (dropout and batch statistics untouched)."""
        was_training = model.training
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer warnings
                model.eval()
                # check_trace=False: the check imports torch.distributed (a second) and runs the model again;
                # SummaryWriter.add_graph takes an already traced module as it is.
                traced = torch.jit.trace(model, inputs, check_trace=False)
                self.writer.add_graph(traced, inputs)
        except Exception as err:
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            log.info("tensorboard: no model graph (tracing %s failed: %s)", type(model).__name__, first_line)
        finally:
            model.train(was_training)

    def end(self, status: str, error: str | None = None) -> None:
        """Write the run's tags and status as text and close the event file (once)."""
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        lines = [
            f"{k}: {v}"
            for k, v in {**self.tags, "status": status, **({"error": error} if error else {})}.items()
        ]
        writer.add_text("tags", code_block(lines), 0)
        writer.close()

    def record_trial(
        self, number: int, params: Mapping[str, Any], state: str, details: Mapping[str, Any]
    ) -> None:
        """The trial as one HParams session: its sampled params, its state (and pruned epoch and
        reason) as columns, its scalars as metrics. Written once, when the study knows the outcome:
        TensorBoard keeps the first session record a run has."""
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        hparams = {
            name: hparam_value(value) for name, value in {**params, "optuna.state": state, **details}.items()
        }
        end_info = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(
                status=SESSION_STATUS[state], end_time_secs=time.time()
            )
        )
        # The dashboard shows five hparam columns until more are ticked; its Trial ID column is always
        # shown, so it tells the outcome too: "trial 3 PRUNED (pruned_epoch 2, prune_reason pruner)".
        outcome = ", ".join(f"{name.rsplit('.', 1)[-1]} {value}" for name, value in details.items())
        label = f"trial {number} {state}" + (f" ({outcome})" if outcome else "")
        with contextlib.closing(
            FileWriter(str(self.log_dir))
        ) as writer:  # a second event file beside the run's
            writer.add_summary(hparams_pb(hparams, trial_id=label))
            writer.add_summary(session_summary(metadata, metadata.SESSION_END_INFO_TAG, end_info))


def session_summary(metadata, tag: str, data):
    """A summary carrying one hparams-plugin record, as the plugin's own summary functions make it."""
    from tensorboard.compat.proto import summary_pb2

    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary


def hparam_value(value: Any) -> bool | int | float | str:
    """A value as the HParams dashboard takes it: a bool, a number or a string."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return "null" if value is None else str(value)


def code_block(lines) -> str:
    """Lines as one Markdown code block: TensorBoard's text view renders Markdown."""
    return "```\n" + "\n".join(lines) + "\n```"


def cuda_devices(model: torch.nn.Module) -> list[int]:
    """The CUDA devices that ``model``'s parameters are on (their random streams to keep)."""
    cuda = [p.device for p in model.parameters() if p.device.type == "cuda"]
    return sorted({torch.cuda.current_device() if device.index is None else device.index for device in cuda})


def is_image_batch(inputs: torch.Tensor) -> bool:
    """A batch of images: N x C x H x W with 1 (grey) or 3 (colour) channels."""
    return inputs.ndim == 4 and inputs.shape[1] in (1, 3) and inputs.is_floating_point()


def image_grid(images: torch.Tensor) -> torch.Tensor:
    """Images as one C x H x W grid, scaled to [0, 1] over the grid (inputs are normalized), small
    ones enlarged by a whole factor."""
    from torchvision.utils import make_grid

    images = images.detach().float().cpu().contiguous()
    factor = math.ceil(MIN_IMAGE_SIDE / min(images.shape[-2:]))
    if factor > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=factor, mode="nearest")
    return make_grid(images, nrow=math.ceil(math.sqrt(len(images))), normalize=True, pad_value=1.0)
