"""Parts by ``_target_``: import, settings, signature checks and the name used in run names."""

import pytest
import torch
from omegaconf import OmegaConf

import sweepkit  # noqa: F401  (registers the name resolver, as every sweepkit command does)
from sweepkit.errors import ConfigError
from sweepkit.targets import accepts, import_target, settings, target_name


@pytest.mark.parametrize(
    ("path", "name"), [("torch.optim.AdamW", "adamw"), ("mypkg.optim.Lion", "lion"), (None, "none")]
)
def test_a_target_is_named_by_its_last_part_lowercased(path, name):
    assert target_name(path) == name


def test_the_name_resolver_reads_the_sibling_target():
    # train.yaml's optimizer.name: written nowhere else, follows an overridden _target_.
    cfg = OmegaConf.create(
        {"optimizer": {"name": "${sweepkit.target_name:${._target_}}", "_target_": "torch.optim.NAdam"}}
    )
    assert cfg.optimizer.name == "nadam"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("torch.optim.Adamx", "opt._target_=torch.optim.Adamx cannot be imported"),
        ("", "opt._target_= must name a class or function"),
        ("torch.__version__", "opt._target_=torch.__version__ is not a class or function"),
    ],
)
def test_a_bad_target_is_one_line_naming_the_key(path, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        import_target("opt._target_", path)


def test_settings_are_the_other_keys_with_lists_as_tuples():
    node = OmegaConf.create(
        {"_target_": "torch.optim.Adam", "name": "adam", "lr": 0.1, "betas": [0.9, 0.99], "eps": 1e-8}
    )
    assert settings(node, ("name", "lr")) == {"betas": (0.9, 0.99), "eps": 1e-8}


def test_accepts_reads_a_constructors_keywords():
    assert accepts(torch.optim.SGD, "nesterov") and not accepts(torch.optim.Adam, "nesterov")
