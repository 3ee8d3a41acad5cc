"""The LR range test: sane suggestions on digits, early stop on divergence, clear errors for bad
ranges, the plot, the MLflow curve and the command line. Real configs, real training, on a CPU."""

from __future__ import annotations

import itertools
import math
import statistics
import sys
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, FAST
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from omegaconf import DictConfig, open_dict

from sweepkit.errors import ConfigError
from sweepkit.loop import evaluate
from sweepkit.lr_find import (
    Curve,
    RangeTestFailed,
    RangeTestSettings,
    cli,
    find_lr,
    range_test,
    steepest,
    suggest,
    valley,
)
from sweepkit.training import build, run


@pytest.fixture
def lr_find_cfg(tmp_path):
    """``lr_find_cfg("optimizer=sgd", ...)``: the lr_find config, fast and untracked, writing into ``tmp_path/run``."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("lr_find", overrides=[*FAST, *overrides])
        with open_dict(cfg):
            cfg.output_dir = str(output_dir or tmp_path / "run")
        return cfg

    return make


def first_fall_lr(curve: Curve) -> float:
    """The lr at which the raw loss first drops below its flat start by more than its noise there
    (three standard deviations of the first ten losses)."""
    start = curve.losses[:10]
    threshold = statistics.mean(start) - 3 * statistics.stdev(start)
    return next(lr for lr, loss in zip(curve.lrs, curve.losses) if loss < threshold)


# -- suggestions on digits -----------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_suggestions_lie_between_the_first_fall_and_divergence(optimizer, lr_find_cfg):
    # Neither suggestion sits in the flat start, where nothing is learnt, nor near divergence (within
    # a factor 3 of the lr at which the test stopped).
    result = find_lr(lr_find_cfg(f"optimizer={optimizer}"))
    assert result.curve.stop_reason == "diverged"
    fall, diverged = first_fall_lr(result.curve), result.curve.lrs[-1]
    for name, suggestion in result.suggestions.items():
        assert fall <= suggestion.lr < diverged / 3, (name, fall, suggestion.lr, diverged)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_epoch_at_either_suggestion_lowers_the_loss(optimizer, lr_find_cfg, make_cfg):
    # Pasted into optimizer.lr, each suggestion trains: one epoch cuts the untrained validation loss.
    result = find_lr(lr_find_cfg(f"optimizer={optimizer}"))
    untrained = build(make_cfg(f"optimizer={optimizer}"), output_dir=None).loop
    initial = evaluate(
        untrained.forward_model,
        untrained.val_batches,
        untrained.loss_fn,
        untrained.precision,
        "classification",
    )["loss"]
    for name, suggestion in result.suggestions.items():
        cfg = make_cfg(
            f"optimizer={optimizer}",
            f"optimizer.lr={suggestion.reference_lr}",
            "trainer.max_epochs=1",
            "trainer.save_checkpoints=false",
        )
        trained = run(cfg)
        assert trained["val/loss"] < 0.95 * initial, (name, suggestion, trained["val/loss"], initial)


def test_suggestions_convert_to_the_reference_batch_size_through_lr_scaling(lr_find_cfg):
    # At batch 256 with base 64, SGD's linear rule makes optimizer.lr a quarter of the tested lr.
    result = find_lr(lr_find_cfg("optimizer=sgd", "data.batch_size=256", "lr_scaling.base_batch_size=64"))
    assert result.rule == "linear"
    for suggestion in result.suggestions.values():
        assert suggestion.reference_lr == pytest.approx(suggestion.lr / 4)


def test_same_seed_same_curve(lr_find_cfg):
    # The test starts from the seeded initial weights and batches: on a CPU it repeats exactly.
    first, second = find_lr(lr_find_cfg("lr_find.num_steps=30")), find_lr(lr_find_cfg("lr_find.num_steps=30"))
    assert first.curve.losses == second.curve.losses


# -- the schedule and the stop rule ----------------------------------------------------------------


def test_lr_grows_exponentially_from_min_to_max_cycling_epochs(lr_find_cfg):
    # 40 batches at batch size 512 (three per epoch): epochs repeat, lrs are geometric from min to max.
    result = find_lr(
        lr_find_cfg(
            "data.batch_size=512", "lr_find.num_steps=40", "lr_find.min_lr=1e-6", "lr_find.max_lr=1e-3"
        )
    )
    lrs = result.curve.lrs
    assert len(lrs) == 40 and result.curve.stop_reason == "completed"
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1e-3)
    ratios = [b / a for a, b in itertools.pairwise(lrs)]
    assert max(ratios) == pytest.approx(min(ratios))


def test_divergence_stops_the_test_early(lr_find_cfg):
    # With a huge max_lr the loss blows up: the test stops at once instead of using all batches.
    result = find_lr(lr_find_cfg("optimizer=sgd", "lr_find.max_lr=1e6", "lr_find.num_steps=100"))
    curve = result.curve
    assert curve.stop_reason == "diverged" and len(curve.lrs) < 100
    last, best = curve.smoothed[-1], min(curve.smoothed[:-1])
    assert not math.isfinite(last) or last > 4.0 * best


def test_too_early_a_divergence_is_an_error_not_a_suggestion(lr_find_cfg):
    # A range that starts past divergence leaves no curve to read: the error says what to change.
    with pytest.raises(RangeTestFailed, match="lower lr_find.min_lr"):
        find_lr(lr_find_cfg("optimizer=sgd", "lr_find.min_lr=1e3", "lr_find.max_lr=1e9"))


def test_a_range_that_ends_mid_fall_says_to_raise_max_lr(lr_find_cfg, caplog):
    # Still falling at max_lr, the curve has no bottom yet: the suggestions come with a warning.
    result = find_lr(lr_find_cfg("lr_find.min_lr=1e-5", "lr_find.max_lr=3e-3", "lr_find.num_steps=30"))
    assert result.curve.stop_reason == "completed"
    assert "raise lr_find.max_lr" in caplog.text


@pytest.mark.parametrize(
    "scheduler",
    [["scheduler=cosine", "scheduler.warmup_epochs=1"], ["scheduler=onecycle"]],
    ids=["cosine-warmup", "onecycle"],
)
def test_a_configured_scheduler_changes_nothing(scheduler, lr_find_cfg):
    # Neither its lr nor what building it does to the optimizer (OneCycleLR sets the momentum) reaches the test.
    plain = find_lr(lr_find_cfg("optimizer=sgd", "lr_find.num_steps=30"))
    scheduled = find_lr(lr_find_cfg("optimizer=sgd", "lr_find.num_steps=30", *scheduler))
    assert scheduled.curve.lrs == plain.curve.lrs and scheduled.curve.losses == plain.curve.losses


def test_the_range_test_leaves_the_loops_scheduler_alone(lr_find_cfg):
    # range_test on a loop that has one sets the lr itself and never steps the scheduler.
    cfg = lr_find_cfg(
        "scheduler=cosine", "scheduler.warmup_epochs=1", "lr_find.num_steps=20", "lr_find.max_lr=1e-2"
    )
    loop = build(cfg, output_dir=None).loop
    steps_before = loop.scheduler.last_epoch
    curve = range_test(loop, RangeTestSettings.from_config(cfg))
    assert loop.optimizer.param_groups[0]["lr"] == curve.lrs[-1] == pytest.approx(1e-2)
    assert loop.scheduler.last_epoch == steps_before


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_optimizer_gets_finite_suggestions(optimizer, lr_find_cfg):
    # The range test sets the param group's lr itself, whichever optimizer holds it.
    result = find_lr(lr_find_cfg(f"optimizer={optimizer}"))
    assert all(math.isfinite(s.lr) and s.lr > 0 for s in result.suggestions.values())


MODELS = {
    "linear": ["model=linear"],
    "cnn-bf16": ["model=cnn", "trainer.precision=bf16"],
    "torchvision": ["model=torchvision", "model.arch=resnet18", "lr_find.num_steps=12"],
}


@pytest.mark.parametrize("overrides", MODELS.values(), ids=MODELS.keys())
def test_every_model_gets_finite_suggestions(overrides, lr_find_cfg):
    # bf16 autocast on a CPU goes through the same train_step as training.
    result = find_lr(lr_find_cfg(*overrides, "lr_find.max_lr=1"))
    assert all(math.isfinite(s.lr) and s.lr > 0 for s in result.suggestions.values())


@pytest.mark.gpu
def test_fp16_with_a_grad_scaler_on_cuda(lr_find_cfg):
    # fp16 steps go through the loop's GradScaler (steps it skips on overflow still give a loss).
    result = find_lr(lr_find_cfg("trainer.device=cuda", "trainer.precision=16", "model=cnn"))
    assert all(math.isfinite(s.lr) for s in result.suggestions.values())


# -- the two rules on known curves ------------------------------------------------------------------

LRS = [10.0 ** (k / 2) for k in range(-8, 1)]  # 1e-4 ... 1, half a decade apart


def test_steepest_is_the_fastest_fall_per_log_lr():
    # Central differences over log lr: the biggest drop across a point's two neighbours wins.
    smoothed = [2.3, 2.3, 2.2, 1.9, 1.0, 0.8, 0.7, 0.7, 0.9]
    assert steepest(LRS, smoothed) == 3  # the central slope is -1.2 per half decade at index 3


def test_steepest_ignores_a_fall_after_the_lowest_loss():
    # The drop from 5 to 1.5 is a recovery on the way to divergence, not an lr to train at.
    smoothed = [2.3, 2.2, 2.0, 1.8, 1.0, 5.0, 1.5, 6.0, 9.0]
    assert steepest(LRS, smoothed) == 3


def test_valley_is_a_tenth_of_the_lr_at_the_lowest_loss():
    # Smith's rule of thumb: an order of magnitude below the bottom of the curve.
    smoothed = [2.3, 2.3, 2.2, 1.9, 1.0, 0.8, 0.7, 0.9, 3.0]
    assert valley(LRS, smoothed) == pytest.approx(LRS[6] / 10)


def test_suggestions_skip_the_first_tenth_and_the_last_five_points():
    # A deep dip in the skipped start or end must not be chosen.
    lrs = [10.0 ** (-6 + k / 5) for k in range(30)]
    smoothed = [0.1, 0.1, 0.1, *(2.0 - 0.05 * k for k in range(22)), 0.01, 0.01, 0.01, 0.01, 0.01]
    suggestions = suggest(Curve(lrs, smoothed, smoothed), num_steps=30, to_reference=lambda lr: lr)
    assert suggestions["valley"].lr == pytest.approx(lrs[24] / 10)


# -- bad ranges ----------------------------------------------------------------------------------

BAD_RANGES = [
    (["lr_find.min_lr=0.1", "lr_find.max_lr=0.01"], "lr_find.min_lr=0.1 must be < lr_find.max_lr=0.01"),
    (["lr_find.min_lr=0.01", "lr_find.max_lr=0.01"], "lr_find.min_lr=0.01 must be < lr_find.max_lr=0.01"),
    (["lr_find.min_lr=0"], "lr_find.min_lr=0 must be > 0"),
    (["lr_find.max_lr=-1"], "lr_find.max_lr=-1 must be > 0"),
    (["lr_find.num_steps=1"], "lr_find.num_steps=1 must be >= 10"),
    (["lr_find.smoothing=1"], "lr_find.smoothing=1 must be in [0, 1)"),
    (["lr_find.diverge_factor=1"], "lr_find.diverge_factor=1 must be > 1"),
    (["lr_find.min_lr=abc"], "lr_find.min_lr=abc must be a finite number > 0"),
    (["lr_find.num_steps=20.5"], "lr_find.num_steps=20.5 must be an integer >= 10"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_RANGES, ids=[" ".join(o) for o, _ in BAD_RANGES])
def test_bad_range_is_a_config_error_naming_key_and_value(overrides, message, lr_find_cfg, tmp_path):
    # Checked before any training: the message names the key, the value as typed and what is allowed.
    with pytest.raises(ConfigError) as error:
        find_lr(lr_find_cfg(*overrides))
    assert str(error.value).startswith(message)
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    BAD_RANGES[:1] + BAD_RANGES[4:5] + BAD_RANGES[-2:-1],
    ids=["min>=max", "num_steps", "abc"],
)
def test_bad_range_from_the_shell_is_one_line_nonzero_exit_and_nothing_written(
    overrides, message, tmp_path, monkeypatch, capsys
):
    # As sweepkit-train: one line on stderr, exit 2, no plot, checkpoint or tracked run.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sweepkit-lr-find", "trainer=debug", *overrides])
    with pytest.raises(SystemExit) as exit_info:
        cli()
    assert exit_info.value.code == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err_lines == [f"sweepkit-lr-find: error: {message}"]
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob("*.pt"))
    assert not (tmp_path / "mlflow.db").exists()


# -- what is written --------------------------------------------------------------------------------


def test_plot_is_written_to_the_run_folder_and_no_checkpoint(lr_find_cfg, tmp_path):
    # lr_find.png lands in cfg.output_dir; the trained weights are thrown away, never saved.
    result = find_lr(lr_find_cfg(output_dir=tmp_path / "run"))
    assert result.plot == tmp_path / "run" / "lr_find.png"
    assert result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.pt")), "a range test leaves no checkpoint"


def test_mlflow_run_holds_the_curve_per_batch_and_the_suggestions(lr_find_cfg, tmp_path):
    # One finished run: the curve with step = batch (from 1), the suggestions as metrics, the plot.
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = find_lr(lr_find_cfg("tracking=mlflow", f"tracking.uri={store}", "lr_find.num_steps=30"))
    client = MlflowClient(store)
    found = client.get_run(result.mlflow_run_id)
    assert found.info.status == "FINISHED" and found.info.run_name.startswith("lr-find-")
    history = sorted(client.get_metric_history(result.mlflow_run_id, "lr_find/lr"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(1, len(result.curve.lrs) + 1))
    assert [m.value for m in history] == pytest.approx(result.curve.lrs)
    losses = sorted(
        client.get_metric_history(result.mlflow_run_id, "lr_find/smoothed_loss"), key=lambda m: m.step
    )
    assert [m.value for m in losses] == pytest.approx(result.curve.smoothed)
    assert len(client.get_metric_history(result.mlflow_run_id, "lr_find/loss")) == len(result.curve.lrs)
    assert found.data.metrics["lr_find/valley_reference_lr"] == pytest.approx(result.valley.reference_lr)
    assert found.data.metrics["lr_find/steepest_lr"] == pytest.approx(result.steepest.lr)
    assert [a.path for a in client.list_artifacts(result.mlflow_run_id, "plots")] == ["plots/lr_find.png"]


def test_cli_prints_both_suggestions_and_the_line_to_paste(tmp_path, monkeypatch, capsys):
    # `sweepkit-lr-find` prints both suggestions and writes the plot into its run folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sweepkit-lr-find", "trainer=debug", "tracking=none", "optimizer=sgd"])
    cli()
    out = capsys.readouterr().out
    assert "valley" in out and "steepest" in out and "paste: optimizer.lr=" in out
    assert "mlflow run" not in out  # tracking=none: no MLflow run to name (not "mlflow run None")
    assert len(list(tmp_path.glob("lr_find/*/*/lr_find.png"))) == 1
