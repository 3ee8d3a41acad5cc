"""``run(cfg)``: build everything a config names, train, test with the best weights, return metrics.

All checks of the config happen while building, before anything is written, so bad input leaves no
checkpoint and no tracked run behind.
"""

from __future__ import annotations

import copy
import logging
import random
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from sweepkit import checkpoint, lr_scaling, provenance
from sweepkit.augment import build_augment
from sweepkit.batching import check_batch_size, choose_data_path, device_memory, make_batches
from sweepkit.datasets import DataSource, split_train_val
from sweepkit.devices import (
    DeviceOutOfMemory,
    configure_backends,
    resolve_device,
    resolve_precision,
    use_channels_last,
)
from sweepkit.errors import ConfigError, RunFailed, flag, integer, number, writable_folder
from sweepkit.loop import (
    Checkpoints,
    EpochData,
    LoopState,
    Objective,
    Optimization,
    PruningReporter,
    TrainingLoop,
    evaluate,
)
from sweepkit.models import count_parameters
from sweepkit.noise_scale import NoiseScaleProbe
from sweepkit.optim import build_optimizer, build_scheduler
from sweepkit.progress import build_progress
from sweepkit.tasks import (
    NOISE_SCALE,
    SAMPLES_PER_S,
    build_loss,
    check_objective,
    objective_metrics,
    objective_modes,
)
from sweepkit.tracking import NoTracker, RunTracker, build_tracker, flatten, tracker_builders, tracker_names

log = logging.getLogger("sweepkit")
CONFIG_GROUPS = ("model", "data", "optimizer", "scheduler", "trainer", "tracking")


class TrainingDiverged(RunFailed):
    """The loss became NaN or infinite: the run cannot go on."""


@dataclass
class Setup:
    """A run's parts, built and checked, before anything is trained or written."""

    loop: TrainingLoop
    test_batches: Any
    source: DataSource
    lr_effective: float
    rule: str
    objective: Objective
    parameters: int
    device: torch.device


def seed_everything(seed: int) -> None:
    """One seed for Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _generators(seed: int, device: torch.device) -> dict[str, torch.Generator]:
    """Shuffling and augmentation draw from their own seeded generators, saved in checkpoints."""
    generators = {"device": torch.Generator(device).manual_seed(seed)}
    if device.type != "cpu":
        generators["host"] = torch.Generator().manual_seed(seed)
    return generators


def instantiate_checked(node: DictConfig, **kwargs: Any) -> Any:
    """Hydra's instantiate, but a ConfigError raised by the target reaches the user unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, ConfigError):
            raise err.__cause__ from None
        raise


def check_settings(cfg: DictConfig) -> None:
    """The type and range of every scalar knob of the run, before any is used: ``trainer.max_epochs=2.5``
    or ``data.batch_size=abc`` is one line, not a traceback or a silently rounded value. (Values that
    need the data or the device to judge, such as a batch larger than the training set, are checked
    where they are used.)"""
    trainer, data = cfg.trainer, cfg.data
    integer("seed", cfg.seed)
    integer("trainer.max_epochs", trainer.max_epochs, at_least=1)
    integer("data.batch_size", data.batch_size, at_least=1)
    integer("data.eval_batch_size", data.eval_batch_size, at_least=1)
    integer("data.num_workers", data.num_workers, at_least=0)
    number("data.val_fraction", data.val_fraction)
    number("optimizer.lr", cfg.optimizer.lr, above=0)
    integer("lr_scaling.base_batch_size", cfg.lr_scaling.base_batch_size, at_least=1)
    number("trainer.log_every_s", trainer.log_every_s, above=0)
    number("trainer.early_stopping.min_delta", trainer.early_stopping.min_delta, at_least=0)
    if trainer.early_stopping.patience is not None:
        integer("trainer.early_stopping.patience", trainer.early_stopping.patience, at_least=1)
    if trainer.grad_clip_norm is not None:
        number("trainer.grad_clip_norm", trainer.grad_clip_norm, above=0)
    number(
        "trainer.noise_scale_share", trainer.noise_scale_share, above=0
    )  # upper bounds: sweepkit.noise_scale
    number("trainer.noise_scale_budget", trainer.noise_scale_budget, above=0)
    for key in ("compile", "channels_last", "deterministic", "save_checkpoints", "noise_scale"):
        flag(f"trainer.{key}", trainer[key])


def check_config(cfg: DictConfig) -> None:
    """The checks of a run's config that need neither its data nor its model: a sweep runs them on its
    first trial's config before it writes anything (build runs them first too)."""
    check_settings(cfg)
    tracker_builders(cfg.tracking)  # each selected tracker importable (TensorBoard installed)
    resolve_precision(cfg.trainer.precision, resolve_device(cfg.trainer.device, claim=False))
    objective_modes(cfg.objective.mode, len(objective_metrics(cfg.objective.metric)))


def build(cfg: DictConfig, output_dir: Path | None) -> Setup:
    """Build and check every part of a run from its config; raises ConfigError on bad input."""
    check_config(cfg)
    device = resolve_device(cfg.trainer.device)
    precision = resolve_precision(cfg.trainer.precision, device)
    configure_backends(device, cfg.trainer.deterministic)
    seed_everything(cfg.seed)
    source: DataSource = instantiate_checked(cfg.data.source, seed=cfg.seed)
    check_objective(cfg.objective.metric, source.task)
    metrics = objective_metrics(cfg.objective.metric)
    modes = objective_modes(cfg.objective.mode, len(metrics))
    objective = Objective(metrics[0], modes[0], cfg.trainer.early_stopping.min_delta)
    loss_fn = build_loss(cfg.loss, source.task, source.num_outputs, device)

    train_split, val_split = split_train_val(source.pool, cfg.data.val_fraction, cfg.seed)
    check_batch_size(cfg.data.batch_size, len(train_split))
    lr = lr_scaling.effective_lr(
        cfg.optimizer.lr,
        cfg.data.batch_size,
        cfg.lr_scaling.base_batch_size,
        cfg.lr_scaling.rule,
        cfg.optimizer.auto_rule,
    )
    rule = lr_scaling.resolve_rule(cfg.lr_scaling.rule, cfg.optimizer.auto_rule)

    model = instantiate_checked(
        cfg.model, in_shape=source.input_shape, num_outputs=source.num_outputs, _convert_="all"
    )
    channels_last = use_channels_last(cfg.trainer.channels_last, device, precision, len(source.input_shape))
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    compiled = torch.compile(model) if cfg.trainer.compile else None

    generators = _generators(cfg.seed, device)
    augment = build_augment(cfg.data.augment)
    data_path = choose_data_path(
        cfg.data.loader, [train_split, val_split, source.test], device, device_memory(device)
    )
    log.info("data path %s: %s", data_path.kind, data_path.reason)
    batching = dict(
        device=device, loader=data_path.kind, num_workers=cfg.data.num_workers, channels_last=channels_last
    )
    train_batches = make_batches(
        train_split,
        cfg.data.batch_size,
        generator=generators["device"],
        host_generator=generators.get("host", generators["device"]),
        augment=augment,
        **batching,
    )
    val_batches = make_batches(val_split, cfg.data.eval_batch_size, **batching)
    test_batches = make_batches(source.test, cfg.data.eval_batch_size, **batching)

    optimizer = build_optimizer(model.parameters(), cfg.optimizer, lr)
    scheduler = build_scheduler(optimizer, cfg.scheduler, len(train_batches), cfg.trainer.max_epochs, lr)
    noise_probe = (
        NoiseScaleProbe.for_batches(
            train_batches,
            cfg.data.batch_size,
            cfg.trainer.noise_scale_share,
            cfg.seed,
            cfg.trainer.noise_scale_budget,
        )
        if cfg.trainer.noise_scale
        else None
    )
    loop = TrainingLoop(
        model,
        Optimization(optimizer, scheduler, precision, loss_fn, cfg.trainer.grad_clip_norm),
        EpochData(train_batches, val_batches, source.task),
        generators,
        Checkpoints(
            output_dir / "checkpoints" if output_dir is not None and cfg.trainer.save_checkpoints else None,
            {
                "config_yaml": OmegaConf.to_yaml(cfg, resolve=True),
                "provenance": {"git_commit": provenance.git_commit(), **provenance.versions()},
            },
        ),
        compiled=compiled,
        noise_probe=noise_probe,
    )
    return Setup(loop, test_batches, source, lr, rule, objective, count_parameters(model), device)


def resume_path(resume: str | None, output_dir: Path | None) -> Path | None:
    """``trainer.resume``: null, ``auto`` (this run's last.pt when present) or a checkpoint path."""
    if resume is None:
        return None
    if resume == "auto":
        candidate = output_dir / "checkpoints" / "last.pt" if output_dir is not None else None
        return candidate if candidate is not None and candidate.exists() else None
    path = Path(resume).expanduser()
    if not path.is_file():
        raise ConfigError(
            "trainer.resume", resume, "is not a checkpoint file; use null, auto or a path to last.pt"
        )
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint to resume from; an unreadable one is a ConfigError naming ``trainer.resume``."""
    try:
        return checkpoint.load(path)
    except checkpoint.CheckpointError as err:
        raise ConfigError("trainer.resume", str(path), str(err)) from None


def resume(loop: TrainingLoop, path: Path) -> None:
    """Continue ``loop`` from ``path`` (a last.pt) and the best.pt beside it."""
    state = load_checkpoint(path)
    best_path = path.parent / "best.pt"
    best = load_checkpoint(best_path)["model"] if best_path.exists() else None
    try:
        not_restored = loop.load_state_dict(state, best)
    except (RuntimeError, KeyError, ValueError) as err:
        raise ConfigError(
            "trainer.resume", str(path), f"does not fit this run's model and optimizer ({err})"
        ) from err
    log.info("resumed from %s after epoch %d", path, loop.state.epoch)
    if not_restored:  # a checkpoint from another kind of device: its generators' states do not fit
        log.warning(
            "resumed on %s from a checkpoint written on %s: weights, optimizer, scheduler and progress restored; "
            "%s not (drawing again from the seed)",
            loop.device,
            state.get("device", "another device"),
            " and ".join(not_restored),
        )


def without_hydra_node(cfg: DictConfig) -> tuple[DictConfig, dict[str, str] | None]:
    """A config from Hydra's compose API with ``return_hydra_config=True`` carries Hydra's own node:
    its group choices tag the run as the command's do (``model=cnn``, not the class's ``lenet``);
    the node itself is Hydra's, not the run's, and goes, as the command's task never sees it."""
    if "hydra" not in cfg:
        return cfg, None
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices) if "runtime" in cfg.hydra else None
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def group_choices(cfg: DictConfig, choices: Mapping[str, str] | None) -> dict[str, str]:
    """The chosen option of each config group (from Hydra when it ran; else read off the config)."""
    if choices:
        groups = (*CONFIG_GROUPS, "experiment")  # an experiment preset is a choice worth filtering runs by
        chosen = {g: str(choices[g]) for g in groups if g in choices and choices[g] is not None}
        chosen.setdefault(
            "tracking", ",".join(tracker_names(cfg.tracking)) or "none"
        )  # Hydra lists no choice for tracking=[a,b]
        return chosen
    return {
        "model": str(cfg.model._target_).rsplit(".", 1)[-1].lower(),
        "data": cfg.data.name,
        "optimizer": cfg.optimizer.name,
        "scheduler": cfg.scheduler.name,
        "tracking": ",".join(tracker_names(cfg.tracking)) or "none",
    }


def default_run_name(cfg: DictConfig, choices: Mapping[str, str]) -> str:
    """``mlp-digits-adam-bs64-lr0.002``: model, data, optimizer, batch size and reference lr."""
    return f"{choices.get('model', 'model')}-{cfg.data.name}-{cfg.optimizer.name}-bs{cfg.data.batch_size}-lr{cfg.optimizer.lr:g}"


def run_params(cfg: DictConfig, setup: Setup) -> dict[str, Any]:
    """The params of a tracked run: the flattened resolved config plus derived values and provenance."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = dict(flatten(resolved))
    params.update(
        {
            "lr_effective": setup.lr_effective,
            "lr_scaling.rule_resolved": setup.rule,
            "model.parameters": setup.parameters,
            "git_commit": provenance.git_commit(),
            "torch_version": torch.__version__,  # with the build's CUDA tag (2.5.1+cu124), unlike the package version
            "device": str(setup.device),
            "precision": str(cfg.trainer.precision),
            "data.loader_resolved": setup.loop.train_batches.kind,  # what data.loader=auto chose
        }
    )
    return params


def _epoch_values(history: list[dict[str, float]], epoch: int, names: list[str]) -> dict[str, float]:
    return {f"best/{name}": history[epoch - 1][name] for name in names} if epoch else {}


def results(
    cfg: DictConfig, setup: Setup, state: LoopState, test: dict[str, float], output_dir: Path | None
) -> dict[str, Any]:
    """What ``run`` returns: last-epoch and best-epoch metrics, test metrics, and how the run ended."""
    last = state.history[-1] if state.history else {}
    best_ckpt = (
        output_dir / "checkpoints" / "best.pt"
        if output_dir is not None and cfg.trainer.save_checkpoints
        else None
    )
    return {
        **{k: v for k, v in last.items() if "/" in k and k != SAMPLES_PER_S},
        **_epoch_values(state.history, state.best_epoch, objective_metrics(cfg.objective.metric)),
        **{f"test/{name}": value for name, value in test.items()},
        "lr_effective": setup.lr_effective,
        "best_epoch": state.best_epoch,
        "epochs_run": len(state.history),
        "stop_reason": state.stop_reason,
        "checkpoint": str(best_ckpt) if best_ckpt is not None and best_ckpt.exists() else None,
        **(
            {NOISE_SCALE: [m.get(NOISE_SCALE) for m in state.history]}
            if any(NOISE_SCALE in m for m in state.history)
            else {}
        ),
    }


def log_start(cfg: DictConfig, setup: Setup) -> None:
    """Derived quantities, printed before training (nanoGPT's habit)."""
    log.info(
        "lr_effective %.6g = optimizer.lr %g x (batch %d / base %d) ^ %s  [rule %s, optimizer %s]",
        setup.lr_effective,
        cfg.optimizer.lr,
        cfg.data.batch_size,
        cfg.lr_scaling.base_batch_size,
        lr_scaling.RULE_EXPONENTS[setup.rule],
        setup.rule,
        cfg.optimizer.name,
    )
    log.info(
        "device %s  precision %s  parameters %d  train %d  val %d  test %d  batches/epoch %d",
        setup.device,
        cfg.trainer.precision,
        setup.parameters,
        setup.loop.train_batches.num_samples,
        setup.loop.val_batches.num_samples,
        setup.test_batches.num_samples,
        len(setup.loop.train_batches),
    )


def launch_dir() -> Path:
    """The directory the command was started in (Hydra's runtime.cwd inside a Hydra job)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.cwd) if HydraConfig.initialized() else Path.cwd()


def run(
    cfg: DictConfig,
    make_tracker: Callable[[], RunTracker] | None = None,
    reporter: PruningReporter | None = None,
    choices: Mapping[str, str] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train and test one model as ``cfg`` describes; returns its metrics.

    ``make_tracker`` builds the run's tracker once the config has passed every check (default: the
    one ``cfg.tracking`` names); ``reporter`` may prune the run after any epoch; ``choices`` are
    Hydra's chosen config-group options (for tags and the run name; a ``cfg`` composed with
    ``return_hydra_config=True`` carries them itself); ``stop_requested`` is polled at safe points
    (preemption).
    """
    cfg, composed_choices = without_hydra_node(cfg)
    choices = choices or composed_choices
    output_dir = Path(cfg.output_dir) if cfg.output_dir is not None else None
    setup = build(cfg, output_dir)
    checkpoint_to_resume = resume_path(cfg.trainer.resume, output_dir)
    if checkpoint_to_resume is not None:
        resume(setup.loop, checkpoint_to_resume)
    if output_dir is not None:
        writable_folder("output_dir", output_dir)
    log_start(cfg, setup)

    tracker = make_tracker() if make_tracker is not None else build_tracker(cfg.tracking, launch_dir())
    chosen = group_choices(cfg, choices)
    tracker.start(
        run_name or cfg.tracking.get("run_name") or default_run_name(cfg, chosen),
        run_params(cfg, setup),
        {**chosen, **(tags or {})},
    )
    try:
        tracker.watch(
            setup.loop.model, lambda: next(iter(setup.loop.val_batches))[0]
        )  # validation inputs: in order, unaugmented
        outcome = _train_and_test(cfg, setup, tracker, reporter, output_dir, stop_requested)
    except BaseException as err:
        record_failure(tracker, output_dir, err)
        raise
    tracker.end("FINISHED")
    return {**outcome, "mlflow_run_id": tracker.run_id}


def record_failure(tracker: RunTracker, output_dir: Path | None, err: BaseException) -> None:
    """End the tracked run KILLED (Ctrl-C, SIGTERM, preemption) or FAILED, the error as its tag; a
    failure's traceback goes to ``error.txt`` in the run folder and the tracked run.

    A tracker that fails here too (say, an unreachable server) is only logged: ``err`` is what the
    caller must see.
    """
    interrupted = isinstance(err, KeyboardInterrupt)
    if not interrupted:
        with tempfile.TemporaryDirectory() as scratch:
            path = (output_dir or Path(scratch)) / "error.txt"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(traceback.format_exception(err)))
                tracker.log_artifact(path)
            except Exception as also:
                log.warning("could not record error.txt for the tracked run: %s", also)
    try:
        tracker.end(
            "KILLED" if interrupted else "FAILED",
            f"{type(err).__name__}: {err}" if str(err) else type(err).__name__,
        )
    except Exception as also:
        log.warning("could not end the tracked run %s: %s", tracker.run_id, also)


def _train_and_test(
    cfg: DictConfig,
    setup: Setup,
    tracker: RunTracker,
    reporter: PruningReporter | None,
    output_dir: Path | None,
    stop_requested: Callable[[], bool] | None,
) -> dict[str, Any]:
    loop = setup.loop
    progress = build_progress(cfg.trainer.progress, cfg.trainer.log_every_s)
    state = loop.fit(
        cfg.trainer.max_epochs,
        setup.objective,
        cfg.trainer.early_stopping.patience,
        tracker,
        reporter,
        progress,
        stop_requested,
    )
    test: dict[str, float] = {}
    if state.stop_reason not in ("pruned", "diverged", "oom"):  # a stopped trial is not worth a test pass
        loop.restore_best_weights()
        test = evaluate(
            loop.forward_model, setup.test_batches, loop.loss_fn, loop.precision, setup.source.task
        )
    outcome = results(cfg, setup, state, test, output_dir)
    tracker.log_metrics({k: v for k, v in outcome.items() if k.startswith(("test/", "best/"))})
    tracker.set_tags({"stop_reason": state.stop_reason, "best_epoch": str(state.best_epoch)})
    _log_artifacts(cfg, tracker, state, output_dir)
    if state.stop_reason == "diverged" and reporter is None:
        # Alone, a diverged run has failed; in a sweep it is a result (pruned, reason "diverged").
        bad = {k: v for k, v in state.history[-1].items() if "loss" in k}
        raise TrainingDiverged(
            f"training diverged at epoch {state.epoch}: {bad}; lower optimizer.lr or set trainer.grad_clip_norm"
        )
    if (
        state.stop_reason == "oom" and reporter is None
    ):  # in a sweep: pruned, reason "oom", so the sampler learns
        raise DeviceOutOfMemory(state.stop_detail)
    return outcome


def _log_artifacts(cfg: DictConfig, tracker: RunTracker, state: LoopState, output_dir: Path | None) -> None:
    """Checkpoints, the resolved config, Hydra's folder and the learning curve, once at the end (a
    run without a folder still records its config and curve, written to a temporary one)."""
    if isinstance(tracker, NoTracker):
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = output_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        tracker.log_artifact(config_path)
        if state.history:
            from sweepkit.plots import learning_curve  # matplotlib costs 0.4 s to import: tracked runs only

            objective = objective_metrics(cfg.objective.metric)[0]
            tracker.log_artifact(
                learning_curve(state.history, objective, folder / "learning_curve.png"), "plots"
            )
    if output_dir is not None:
        for name in ("best.pt", "last.pt"):
            tracker.log_artifact(output_dir / "checkpoints" / name, "checkpoints")
        tracker.log_artifact(output_dir / ".hydra", "hydra")
