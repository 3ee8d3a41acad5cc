"""The gradient noise scale probe: unbiased against per-sample gradients, and invisible to training."""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from sweepkit.batching import DeviceBatches
from sweepkit.datasets import TensorSplit
from sweepkit.devices import Precision
from sweepkit.errors import ConfigError
from sweepkit.noise_scale import NoiseScaleProbe, estimate, probe_sizes
from sweepkit.tasks import NOISE_SCALE
from sweepkit.training import build

FP32 = Precision("32", "cpu")


def _linear_regression(n=512, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.randn(d, 1, generator=g) + 0.5 * torch.randn(n, 1, generator=g)
    model = nn.Linear(d, 1)
    with torch.no_grad():  # part of the way to the solution: a gradient and noise of similar size
        model.weight.copy_(0.8 * torch.linalg.lstsq(x, y).solution.T)
        model.bias.zero_()
    return model, x, y


def _exact_b_simple(model, x, y, loss_fn):
    """tr(Σ)/|G|² over the whole data set from every per-sample gradient (torch.func)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sample_loss(p, xi, yi):
        return loss_fn(functional_call(model, p, (xi[None],)), yi[None])

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
    flat = torch.cat([g.reshape(len(y), -1) for g in per_sample.values()], dim=1)
    mean = flat.mean(dim=0)
    trace = (flat - mean).square().sum(dim=1).mean()  # population variance: the probe draws with replacement
    return (trace / mean.square().sum()).item()


def test_probe_agrees_with_per_sample_gradients_within_20_percent():
    # The probe's |G|² and tr(Σ) (two batch sizes, McCandlish et al. appendix A) are unbiased: their
    # averages over repeated probes give the exact B_simple of a linear regression to within 20%.
    model, x, y = _linear_regression()
    loss_fn = nn.MSELoss()
    exact = _exact_b_simple(model, x, y, loss_fn)
    batches = DeviceBatches(
        TensorSplit(x, y), batch_size=32, device=torch.device("cpu"), generator=torch.Generator()
    )
    probe = NoiseScaleProbe.for_batches(batches, batch_size=32, share=1.0, seed=0)
    readings = [probe.measure(model, loss_fn, FP32) for _ in range(30)]
    grad_sq = sum(r.grad_sq for r in readings) / len(readings)
    trace = sum(r.trace for r in readings) / len(readings)
    assert 5 < exact < 500  # a regime the probe can resolve, not a degenerate one
    assert trace / grad_sq == pytest.approx(exact, rel=0.2)


def test_estimate_inverts_the_expected_norms():
    # With E|G_b|² = |G|² + tr(Σ)/b exactly, the two-batch formulas give |G|² and tr(Σ) back.
    g2, trace = 2.0, 300.0
    found = estimate(g2 + trace / 8, g2 + trace / 256, 8, 256)
    assert found.grad_sq == pytest.approx(g2) and found.trace == pytest.approx(trace)
    assert found.b_simple == pytest.approx(150.0)


def test_unresolved_gradient_norm_reads_nan_not_a_number():
    # Noise that swamps |G|² makes its estimate <= 0: B_simple is then NaN, never negative.
    assert math.isnan(estimate(10.0, 10.5, 8, 64).b_simple)


def test_probe_restores_batchnorm_statistics_and_leaves_grad_alone():
    # Measuring must not move BatchNorm's running statistics nor fill .grad.
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(200, 4), torch.randint(0, 3, (200,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = DeviceBatches(
        TensorSplit(x, y), batch_size=16, device=torch.device("cpu"), generator=torch.Generator()
    )
    NoiseScaleProbe.for_batches(batches, 16, 0.5, seed=1).measure(model, nn.CrossEntropyLoss(), FP32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_noise_scale_on_logs_the_metric_and_trains_exactly_as_off(make_cfg):
    # trainer.noise_scale=true adds grad_noise_scale to every epoch; losses are bit-identical to a
    # run without it (the probe has its own generator and forks the dropout RNG).
    histories = {}
    for on in ("false", "true"):
        setup = build(
            make_cfg("trainer.max_epochs=2", f"trainer.noise_scale={on}", "trainer.noise_scale_budget=1"),
            output_dir=None,
        )
        histories[on] = setup.loop.fit(2, setup.objective).history
    assert all(NOISE_SCALE in m for m in histories["true"]) and not any(
        NOISE_SCALE in m for m in histories["false"]
    )
    assert histories["true"][0][NOISE_SCALE] > 0
    for off, on in zip(histories["false"], histories["true"]):
        assert (off["train/loss"], off["val/loss"]) == (on["train/loss"], on["val/loss"])


def test_probe_keeps_to_its_time_budget_by_skipping_epochs(make_cfg):
    # With a budget of 1% of training time, the probe measures the first epoch and then only once its
    # time is back under budget; what it spent is at most the budget plus one measurement.
    setup = build(
        make_cfg(
            "trainer.max_epochs=6",
            "data.batch_size=256",
            "trainer.noise_scale=true",
            "trainer.noise_scale_budget=0.01",
        ),
        output_dir=None,
    )
    history = setup.loop.fit(6, setup.objective).history
    probe = setup.loop.noise_probe
    assert (
        NOISE_SCALE in history[0]
        and probe.skipped > 0
        and probe.measured == sum(NOISE_SCALE in m for m in history)
    )
    assert probe.spent_s <= 0.01 * probe.epochs_s + probe.longest_s


def test_probe_sizes_keep_small_batches_within_the_training_batch():
    # A small batch never exceeds the training batch (it fits in memory); the probe draws its share.
    small, count = probe_sizes(train_samples=50_000, batch_size=128, share=0.05)
    assert small == 128 and small * count >= 2500
    assert probe_sizes(train_samples=1000, batch_size=512, share=0.05) == (32, 2)  # 64 samples at least


def test_bad_share_and_budget_are_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"^trainer.noise_scale_share=0 must be in \(0, 10\]$"):
        probe_sizes(1000, 32, 0)
    with pytest.raises(ConfigError, match=r"^trainer.noise_scale_budget=0 must be in \(0, 1\]$"):
        NoiseScaleProbe(lambda n: None, 8, 4, budget=0)
