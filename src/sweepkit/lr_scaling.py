"""The learning-rate scaling rule: the one place where the reference lr becomes the effective lr.

``optimizer.lr`` is stated at ``lr_scaling.base_batch_size``. When the batch grows by k, SGD's lr
grows by k (linear rule, Goyal et al., 2017) and an adaptive optimizer's by sqrt(k) (square-root
rule, Malladi et al., 2022). Each optimizer config says which family it belongs to
(``optimizer.auto_rule``), and ``lr_scaling.rule=auto`` follows it.
"""

from __future__ import annotations

from sweepkit.errors import ConfigError, integer, number, one_of

RULE_EXPONENTS = {"linear": 1.0, "sqrt": 0.5, "none": 0.0}
AUTO_RULES = ("linear", "sqrt")  # what optimizer.auto_rule may say: SGD-like or adaptive


def resolve_rule(rule: str, auto_rule: str | None) -> str:
    """The concrete rule (linear, sqrt or none) that ``rule`` means for an optimizer whose config
    says ``auto_rule`` (``optimizer.auto_rule``: linear for SGD-like optimizers, sqrt for adaptive ones)."""
    if rule not in (*RULE_EXPONENTS, "auto"):
        raise one_of("lr_scaling.rule", rule, [*RULE_EXPONENTS, "auto"])
    if auto_rule is not None and auto_rule not in AUTO_RULES:
        raise one_of("optimizer.auto_rule", auto_rule, AUTO_RULES)
    if rule != "auto":
        return rule
    if auto_rule is None:
        raise ConfigError(
            "optimizer.auto_rule",
            "null",
            "must say what lr_scaling.rule=auto means for this optimizer: linear (SGD-like) or sqrt (adaptive); "
            "or set lr_scaling.rule to linear, sqrt or none",
        )
    return auto_rule


def effective_lr(lr: float, batch_size: int, base_batch_size: int, rule: str, auto_rule: str | None) -> float:
    """``lr * (batch_size / base_batch_size) ** p`` with p = 1, 0.5 or 0 for linear, sqrt, none."""
    number("optimizer.lr", lr, above=0)
    integer("data.batch_size", batch_size, at_least=1)
    integer("lr_scaling.base_batch_size", base_batch_size, at_least=1)
    exponent = RULE_EXPONENTS[resolve_rule(rule, auto_rule)]
    return lr * (batch_size / base_batch_size) ** exponent


def reference_lr(
    lr_at_batch: float, batch_size: int, base_batch_size: int, rule: str, auto_rule: str | None
) -> float:
    """The inverse of :func:`effective_lr`: the ``optimizer.lr`` that gives ``lr_at_batch`` at ``batch_size``."""
    return lr_at_batch / effective_lr(1.0, batch_size, base_batch_size, rule, auto_rule)
