"""The learning-rate scaling rule: the one place where the reference lr becomes the effective lr.

``optimizer.lr`` is stated at ``lr_scaling.base_batch_size``. When the batch grows by k, SGD's lr
grows by k (linear rule, Goyal et al., 2017) and an adaptive optimizer's by sqrt(k) (square-root
rule, Malladi et al., 2022).
"""

from __future__ import annotations

from sweepkit.errors import ConfigError, integer, number, one_of

RULE_EXPONENTS = {"linear": 1.0, "sqrt": 0.5, "none": 0.0}
AUTO_RULE_BY_OPTIMIZER = {
    "sgd": "linear",
    "adam": "sqrt",
    "adamw": "sqrt",
    "rmsprop": "sqrt",
    "adagrad": "sqrt",
}


def resolve_rule(rule: str, optimizer_name: str) -> str:
    """The concrete rule (linear, sqrt or none) that ``rule`` means for this optimizer."""
    if rule == "auto":
        if optimizer_name not in AUTO_RULE_BY_OPTIMIZER:
            raise ConfigError(
                "lr_scaling.rule", rule,
                f"has no family for optimizer.name={optimizer_name}: set lr_scaling.rule to linear, sqrt or none",
            )
        return AUTO_RULE_BY_OPTIMIZER[optimizer_name]
    if rule not in RULE_EXPONENTS:
        raise one_of("lr_scaling.rule", rule, [*RULE_EXPONENTS, "auto"])
    return rule


def effective_lr(lr: float, batch_size: int, base_batch_size: int, rule: str, optimizer_name: str) -> float:
    """``lr * (batch_size / base_batch_size) ** p`` with p = 1, 0.5 or 0 for linear, sqrt, none."""
    number("optimizer.lr", lr, above=0)
    integer("data.batch_size", batch_size, at_least=1)
    integer("lr_scaling.base_batch_size", base_batch_size, at_least=1)
    exponent = RULE_EXPONENTS[resolve_rule(rule, optimizer_name)]
    return lr * (batch_size / base_batch_size) ** exponent


def reference_lr(lr_at_batch: float, batch_size: int, base_batch_size: int, rule: str, optimizer_name: str) -> float:
    """The inverse of :func:`effective_lr`: the ``optimizer.lr`` that gives ``lr_at_batch`` at ``batch_size``."""
    return lr_at_batch / effective_lr(1.0, batch_size, base_batch_size, rule, optimizer_name)
