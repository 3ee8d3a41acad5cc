"""The learning-rate scaling rule: one function, every rule, auto as each optimizer's config says."""

import logging
import math
from pathlib import Path

import pytest
from conftest import compose_config, shipped_options

from sweepkit.errors import ConfigError
from sweepkit.lr_scaling import AUTO_RULES, effective_lr, reference_lr, resolve_rule
from sweepkit.training import run

OWN_CONF = Path(__file__).parent / "optim_conf"  # an own optimizer config, found through hydra.searchpath

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


@pytest.mark.parametrize("auto_rule", [*AUTO_RULES, None])
@pytest.mark.parametrize(("batch", "base", "rule", "factor"), TABLE)
def test_explicit_rules_scale_every_optimizer_alike(auto_rule, batch, base, rule, factor):
    # An explicit rule ignores the optimizer's auto_rule (even a missing one): the batch ratio alone sets the factor.
    assert effective_lr(0.1, batch, base, rule, auto_rule) == pytest.approx(0.1 * factor)


@pytest.mark.parametrize(("auto_rule", "factor"), [("linear", 4.0), ("sqrt", 2.0)])
def test_auto_follows_the_optimizers_auto_rule(auto_rule, factor):
    assert resolve_rule("auto", auto_rule) == auto_rule
    assert effective_lr(0.1, 512, 128, "auto", auto_rule) == pytest.approx(0.1 * factor)


@pytest.mark.parametrize("option", shipped_options("optimizer"))
def test_every_shipped_optimizer_says_what_auto_means(option):
    # SGD-like: linear (Goyal et al.); the adaptive ones: sqrt (Malladi et al.).
    auto_rule = compose_config([f"optimizer={option}"], None).optimizer.auto_rule
    assert auto_rule == ("linear" if option == "sgd" else "sqrt")


def test_issue_examples():
    # sgd 0.1 at base 128 and batch 512, linear: 0.4; adam with auto: 0.2.
    assert effective_lr(0.1, 512, 128, "linear", "linear") == pytest.approx(0.4)
    assert effective_lr(0.1, 512, 128, "auto", "sqrt") == pytest.approx(0.2)


def test_reference_lr_inverts_effective_lr():
    # The lr finder converts a found lr back to the reference batch size through this inverse.
    lr = effective_lr(0.03, 256, 64, "auto", "sqrt")
    assert reference_lr(lr, 256, 64, "auto", "sqrt") == pytest.approx(0.03)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 64, 64, "linear", "linear"), "optimizer.lr=0.0 must be > 0"),
        ((-1e-3, 64, 64, "linear", "linear"), "optimizer.lr=-0.001 must be > 0"),
        ((math.nan, 64, 64, "linear", "linear"), "optimizer.lr=nan must be a finite number > 0"),
        ((math.inf, 64, 64, "linear", "linear"), "optimizer.lr=inf must be a finite number > 0"),
        ((0.1, 0, 64, "linear", "linear"), "data.batch_size=0 must be >= 1"),
        ((0.1, 64, 0, "linear", "linear"), "lr_scaling.base_batch_size=0 must be >= 1"),
        ((0.1, 64, 64, "cubic", "linear"), "lr_scaling.rule=cubic is not one of: linear, sqrt, none, auto"),
        ((0.1, 64, 64, "linear", "cubic"), "optimizer.auto_rule=cubic is not one of: linear, sqrt"),
        (
            (0.1, 64, 64, "auto", None),
            "optimizer.auto_rule=null must say what lr_scaling.rule=auto means for this optimizer",
        ),
    ],
)
def test_bad_values_name_key_and_value(args, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        effective_lr(*args)


def test_an_optimizer_config_without_auto_rule_under_auto_is_one_line(make_cfg, tmp_path):
    # An own optimizer file that does not say its family: refused before anything is written.
    cfg = make_cfg(f"hydra.searchpath=[file://{OWN_CONF}]", "optimizer=nadam_no_family")
    with pytest.raises(
        ConfigError, match=r"^optimizer\.auto_rule=null must say what lr_scaling\.rule=auto means"
    ):
        run(cfg)
    assert not (tmp_path / "run").exists()


def test_an_optimizer_config_without_auto_rule_runs_under_an_explicit_rule(make_cfg):
    cfg = make_cfg(
        f"hydra.searchpath=[file://{OWN_CONF}]",
        "optimizer=nadam_no_family",
        "lr_scaling.rule=linear",
        "data.batch_size=128",
        "trainer.max_epochs=1",
        "trainer.save_checkpoints=false",
    )
    assert run(cfg)["lr_effective"] == pytest.approx(0.002)


def test_an_own_optimizer_config_prints_lr_effective_by_its_auto_rule(make_cfg, caplog):
    # tests/optim_conf/optimizer/nadam.yaml (torch.optim.NAdam, lr 0.001, auto_rule sqrt), from a config
    # folder of the user's: batch 256 over base 64 gives 0.001 * sqrt(4) = 0.002.
    cfg = make_cfg(
        f"hydra.searchpath=[file://{OWN_CONF}]",
        "optimizer=nadam",
        "data.batch_size=256",
        "trainer.max_epochs=1",
        "trainer.save_checkpoints=false",
    )
    with caplog.at_level(logging.INFO, logger="sweepkit"):
        metrics = run(cfg)
    assert metrics["lr_effective"] == pytest.approx(0.002)
    assert (
        "lr_effective 0.002 = optimizer.lr 0.001 x (batch 256 / base 64) ^ 0.5  [rule sqrt, optimizer nadam]"
        in caplog.text
    )
