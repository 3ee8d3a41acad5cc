"""The learning-rate scaling rule: one function, every optimizer, every rule."""

import math

import pytest

from sweepkit.errors import ConfigError
from sweepkit.lr_scaling import AUTO_RULE_BY_OPTIMIZER, effective_lr, reference_lr, resolve_rule
from sweepkit.optim import OPTIMIZERS

# (batch, base, rule) -> multiplier on optimizer.lr
TABLE = [
    (512, 128, "linear", 4.0),
    (512, 128, "sqrt", 2.0),
    (512, 128, "none", 1.0),
    (32, 128, "linear", 0.25),
    (32, 128, "sqrt", 0.5),
    (128, 128, "linear", 1.0),
    (200, 50, "sqrt", 2.0),
]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize(("batch", "base", "rule", "factor"), TABLE)
def test_explicit_rules_scale_every_optimizer_alike(optimizer, batch, base, rule, factor):
    # An explicit rule ignores the optimizer: the batch ratio alone sets the factor.
    assert effective_lr(0.1, batch, base, rule, optimizer) == pytest.approx(0.1 * factor)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_auto_is_linear_for_sgd_and_sqrt_for_adaptive(optimizer):
    # auto: linear for the SGD family, square root for adaptive optimizers.
    expected = 4.0 if optimizer == "sgd" else 2.0
    assert effective_lr(0.1, 512, 128, "auto", optimizer) == pytest.approx(0.1 * expected)
    assert resolve_rule("auto", optimizer) == AUTO_RULE_BY_OPTIMIZER[optimizer]


def test_every_built_in_optimizer_has_an_auto_rule():
    # A new optimizer must say which family it belongs to.
    assert set(AUTO_RULE_BY_OPTIMIZER) == set(OPTIMIZERS)


def test_issue_examples():
    # sgd 0.1 at base 128 and batch 512, linear: 0.4; adam with auto: 0.2.
    assert effective_lr(0.1, 512, 128, "linear", "sgd") == pytest.approx(0.4)
    assert effective_lr(0.1, 512, 128, "auto", "adam") == pytest.approx(0.2)


def test_reference_lr_inverts_effective_lr():
    # The lr finder converts a found lr back to the reference batch size through this inverse.
    lr = effective_lr(0.03, 256, 64, "sqrt", "adam")
    assert reference_lr(lr, 256, 64, "sqrt", "adam") == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 64, 64, "linear", "sgd"), "optimizer.lr=0.0 must be > 0"),
        ((-1e-3, 64, 64, "linear", "sgd"), "optimizer.lr=-0.001 must be > 0"),
        ((math.nan, 64, 64, "linear", "sgd"), "optimizer.lr=nan must be a finite number > 0"),
        ((math.inf, 64, 64, "linear", "sgd"), "optimizer.lr=inf must be a finite number > 0"),
        ((0.1, 0, 64, "linear", "sgd"), "data.batch_size=0 must be >= 1"),
        ((0.1, 64, 0, "linear", "sgd"), "lr_scaling.base_batch_size=0 must be >= 1"),
        ((0.1, 64, 64, "cubic", "sgd"), "lr_scaling.rule=cubic is not one of: linear, sqrt, none, auto"),
        ((0.1, 64, 64, "auto", "lion"), "lr_scaling.rule=auto has no family for optimizer.name=lion"),
    ],
)
def test_bad_values_name_key_and_value(args, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        effective_lr(*args)
