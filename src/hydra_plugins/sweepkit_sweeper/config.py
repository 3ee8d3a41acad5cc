"""The sweeper's config schema, registered as ``hydra/sweeper=sweepkit``.

    sweepkit-train -m hparams_search=lr_batch_optimizer hydra.sweeper.n_trials=50

Every key is a ``hydra.sweeper.<key>`` override; the presets in ``conf/hparams_search/`` set most.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from sweepkit import sweep_grids


@dataclass
class LrRangeTestConf:
    # run an LR range test (sweepkit-lr-find) per optimizer choice before the first trial and search
    # optimizer.lr around its suggestion instead of the range in params (which must still list it)
    enabled: bool = False
    # width of the searched lr range in decades, centred (log scale) on the suggestion: 1.0 searches
    # suggestion / 10**0.5 .. suggestion * 10**0.5
    decades: float = 1.0
    # which suggestion is the centre: valley (the cautious one) or steepest
    suggestion: str = "valley"
    # the range test itself (run at lr_scaling.base_batch_size, where optimizer.lr applies): the
    # lr_find block's keys; null takes lr_find.yaml's value, the one home of their defaults
    min_lr: float | None = None
    max_lr: float | None = None
    num_steps: int | None = None
    smoothing: float | None = None
    diverge_factor: float | None = None


@dataclass
class SweepkitSweeperConf:
    _target_: str = "hydra_plugins.sweepkit_sweeper.sweepkit_sweeper.SweepkitSweeper"
    # maximize | minimize, or a list for a multi-objective study; null: from objective.mode
    direction: Any = None
    # the same as a list (either key; not both)
    directions: Any = None
    # null: derived from the hparams_search preset and the fixed overrides, so that different
    # fixed configs never share a study, while the same command resumes its own
    study_name: str | None = None
    # null: optuna.journal in the launch directory; a path (journal file) or an Optuna RDB URL
    # (sqlite:///study.db, postgresql://user@host/db) shared by several sweep processes
    storage: str | None = None
    # COMPLETE + PRUNED trials the study should hold in the end, counted over all runs and workers
    n_trials: int = 20
    # trials running at once; null: one per available CPU core. Above 1 each trial runs in a worker
    # process of its own (the basic launcher is replaced by joblib's, whose workers are reused), a
    # freed worker taking the next trial at once; 1: one trial after another in the sweep process
    n_jobs: int | None = None
    # stop launching new trials after this many seconds; null: no limit
    timeout: float | None = None
    # sampler and pruner are built by the sweeper (one-line errors), not by Hydra's instantiate
    _recursive_: bool = False
    # an Optuna sampler as a _target_ config, or a class of optuna.samplers by name, with literal
    # keyword arguments or without: RandomSampler, "QMCSampler(seed=1)"; null: TPESampler(seed=42,
    # constant_liar=true). A seeded sampler's seed is that of the study's first sweep process; each later
    # one (a resume, a retry, another worker) derives its own, so that none replays points already tried
    sampler: Any = None
    # an Optuna pruner, the same ways: NopPruner (no pruning), "PercentilePruner(percentile=25.0)";
    # null: MedianPruner(n_startup_trials=5, n_warmup_steps=1). Every trial job rebuilds it (Optuna
    # does not store it)
    pruner: Any = None
    # the search space in the Hydra Optuna sweeper grammar: {key: "tag(log, interval(1e-4, 1e-1))"}
    params: dict[str, Any] | None = None
    # "module.function" called as function(cfg, trial) to suggest more (e.g. conditional) params
    custom_search_space: str | None = None
    # known-good points tried first (once per study): [{optimizer: adam, optimizer.lr: 0.001}]
    enqueue_trials: list[Any] | None = None
    # stop the sweep once more than max_failure_rate * n_trials trials have failed (0: first failure)
    max_failure_rate: float = 0.2
    # parallel trials per GPU when trials train on this machine's GPUs (joblib, submitit_local):
    # n_jobs is capped at GPUs x trials_per_gpu, each trial claims its own GPU; null: no cap
    trials_per_gpu: int | None = 1
    # centre the optimizer.lr search on an LR range test: hydra.sweeper.lr_range_test.enabled=true
    lr_range_test: LrRangeTestConf = field(default_factory=LrRangeTestConf)
    # seconds between liveness marks of running trials
    heartbeat_interval: float = 10.0
    # a RUNNING trial silent this long belongs to a dead process: it is failed and retried once
    grace_period: float = 120.0
    # set by the sweeper on each trial job; leave null: the trial it runs as, and the MLflow parent
    # run its child run goes under (null: the sweep does not track to MLflow)
    trial_number: int | None = None
    parent_run_id: str | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="sweepkit", node=SweepkitSweeperConf, provider="sweepkit"
)
sweep_grids.register()  # ${sweepkit.log_grid:...} in presets resolve from the first compose on


def _visible_gpus() -> int:
    from sweepkit.devices import visible_gpu_count  # imports torch: only when a config asks

    return visible_gpu_count()


# ${sweepkit.visible_gpus:}: the GPUs this process sees (conf/hydra/launcher/submitit_local_gpus.yaml
# gives each job all of them); registered here because Hydra imports every plugin module at start
OmegaConf.register_new_resolver("sweepkit.visible_gpus", _visible_gpus, replace=True)
