"""The sweepkit sweeper: asks Optuna for trials, launches them as Hydra jobs, settles their outcome.

A trial job reconnects to the study itself (``sweepkit.trial``): it reports every epoch, asks the
pruner, and tells its own result. The sweeper keeps the study honest around the jobs: it marks the
trials it waits for as alive, settles trials whose job could not tell (a crash, a foreign task
function), fails and retries trials of dead processes, and stops at ``n_trials`` results in total.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.sweepkit_sweeper._lr_range import (
    LR, OPTIMIZER, LrCentres, RangeTestError, lr_centres, optimizer_choices, run_range_tests, trial_optimizer,
)
from hydra_plugins.sweepkit_sweeper._lr_range import check_settings as check_lr_range_settings
from hydra_plugins.sweepkit_sweeper._parent_run import ParentRun, close_child
from hydra_plugins.sweepkit_sweeper._search_space import params_as_overrides, parse_search_space
from hydra_plugins.sweepkit_sweeper._study_plots import save_plots, save_results
from sweepkit import studies
from sweepkit.optuna_parts import build_optuna_part
from sweepkit.errors import ConfigError, RunFailed, one_of
from sweepkit.tasks import objective_metrics, objective_modes

log = logging.getLogger("sweepkit")
DIRECTIONS = {"max": "maximize", "min": "minimize"}
SAFE_OVERRIDE_VALUE = re.compile(r"[\w.:/@+-]+")
RESULT_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class SweepFailed(RunFailed):
    """Too many trials failed: the sweep stops instead of burning the budget."""


def override_value(value: Any) -> str:
    """A trial value as Hydra override text (strings quoted when the grammar needs it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str) and not SAFE_OVERRIDE_VALUE.fullmatch(value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Draw one param through Optuna's public suggest API."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise ConfigError("hydra.sweeper.params", name, f"has a distribution the sweeper cannot draw from: {distribution}")


def derive_study_name(preset: str | None, fixed_overrides: Sequence[str]) -> str:
    """``<preset>`` plus the fixed overrides (or their hash when long): one study per fixed config."""
    base = preset or "sweep"
    if not fixed_overrides:
        return base
    text = ",".join(sorted(fixed_overrides))
    if len(text) <= 60 and re.fullmatch(r"[\w.=,-]+", text):
        return f"{base}-{text}"
    return f"{base}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


class Heartbeat:
    """Marks the trials this process waits for as alive, from a background thread."""

    def __init__(self, storage_url: str, interval: float) -> None:
        self.storage, self.interval = studies.open_storage(storage_url), interval
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sweepkit-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat_now(self) -> None:
        for trial_id in list(self.trial_ids):
            studies.record_heartbeat(self.storage, trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat_now()


class SweepkitSweeperImpl(Sweeper):
    def __init__(
        self,
        direction: Any,
        directions: Any,
        study_name: str | None,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        timeout: float | None,
        sampler: Any,
        pruner: Any,
        params: DictConfig | None,
        custom_search_space: str | None,
        enqueue_trials: Any,
        max_failure_rate: float,
        lr_range_test: Any,
        heartbeat_interval: float,
        grace_period: float,
        trial_number: int | None = None,
    ) -> None:
        if n_trials < 1:
            raise ConfigError("hydra.sweeper.n_trials", n_trials, "must be >= 1")
        if n_jobs < 1:
            raise ConfigError("hydra.sweeper.n_jobs", n_jobs, "must be >= 1")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ConfigError("hydra.sweeper.max_failure_rate", max_failure_rate, "must be in [0, 1]")
        if not 0 < heartbeat_interval < grace_period:
            raise ConfigError("hydra.sweeper.grace_period", grace_period, f"must exceed heartbeat_interval={heartbeat_interval} > 0")
        if direction is not None and directions is not None:
            raise ConfigError("hydra.sweeper.directions", directions, "and hydra.sweeper.direction cannot both be set")
        self.direction = directions if directions is not None else direction
        self.study_name, self.storage = study_name, storage
        self.n_trials, self.n_jobs, self.timeout = n_trials, n_jobs, timeout
        self.sampler = build_optuna_part("sampler", sampler)
        self.pruner = build_optuna_part("pruner", pruner)
        self.params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else params
        self.custom_search_space = get_method(custom_search_space) if custom_search_space else None
        self.enqueue_trials = OmegaConf.to_container(enqueue_trials, resolve=True) if enqueue_trials is not None and not isinstance(enqueue_trials, list) else enqueue_trials
        self.max_failure_rate = max_failure_rate
        self.lr_range_test = OmegaConf.to_container(lr_range_test, resolve=True) if isinstance(lr_range_test, DictConfig) else dict(lr_range_test)
        self.lr_centres: LrCentres | None = None
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context, task_function=task_function)

    # -- entry ---------------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        """Run the study to ``n_trials`` results; bad settings end in one line and exit status 2."""
        self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> None:
        assert self.config is not None
        launch_dir = Path(self.config.hydra.runtime.cwd)
        distributions, fixed = parse_search_space(params_as_overrides(self.params) + list(arguments))
        self.grammar_params = set(distributions)
        directions = self._directions()
        fixed_cli = [a for a in arguments if a.split("=", 1)[0].lstrip("+~") in fixed and not a.startswith("hparams_search=")]
        self.study_name = self.study_name or derive_study_name(self.config.hydra.runtime.choices.get("hparams_search"), fixed_cli)
        self.storage_url = studies.storage_url(self.storage, launch_dir)
        with open_dict(self.config):  # the sweep folder may name the study: multirun/${hydra.sweeper.study_name}
            self.config.hydra.sweeper.study_name = self.study_name
            self.config.hydra.sweeper.storage = self.storage_url
        self.sweep_dir = Path(self.config.hydra.sweep.dir)
        self.sweep_dir = self.sweep_dir if self.sweep_dir.is_absolute() else launch_dir / self.sweep_dir

        if self.lr_range_test["enabled"]:
            check_lr_range_settings(self.lr_range_test, distributions)
        study = self._open_study(directions)
        self._enqueue_known_good(study)
        self._check_first_trial_composes(distributions, fixed)
        if self.lr_range_test["enabled"]:
            self.lr_centres = self._centre_lr_search(study, distributions, fixed)
        parent = ParentRun.open(self.config.tracking, launch_dir, study, self._parent_params(distributions, fixed, directions)) if "tracking" in self.config else None
        self._write_study_file()
        self._log_start(study, distributions, fixed, directions)
        status = "FAILED"
        try:
            self._run_trials(study, distributions, fixed)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._finish(study, parent, status)

    # -- study ---------------------------------------------------------------------------------------
    def _directions(self) -> list[str]:
        """``direction``/``directions``, or derived from ``objective.mode``; they must agree."""
        objective = self.config.get("objective")
        derived = None
        if objective is not None:
            metrics = objective_metrics(objective.metric)
            derived = [DIRECTIONS[m] for m in objective_modes(objective.mode, len(metrics))]
        if self.direction is None:
            if derived is None:
                raise ConfigError("hydra.sweeper.direction", None, "is needed when the task config has no objective.mode")
            return derived
        given = [self.direction] if isinstance(self.direction, str) else list(self.direction)
        for d in given:
            if d not in DIRECTIONS.values():
                raise one_of("hydra.sweeper.direction", d, DIRECTIONS.values())
        if derived is not None and given != derived:
            raise ConfigError("hydra.sweeper.direction", given, f"disagrees with objective.mode={objective.mode} (which means {derived})")
        return given

    def _open_study(self, directions: list[str]) -> optuna.Study:
        storage = studies.open_storage(self.storage_url)
        study = optuna.create_study(
            study_name=self.study_name, storage=storage, sampler=self.sampler, pruner=self.pruner,
            directions=directions, load_if_exists=True,
        )
        existing = [d.name.lower() for d in study.directions]
        if existing != directions:
            raise ConfigError("hydra.sweeper.direction", directions, f"differs from study {self.study_name}'s {existing}; use a new study_name")
        if len(directions) > 1 and not isinstance(self.pruner, optuna.pruners.NopPruner):
            log.warning("pruning is off: Optuna cannot prune multi-objective studies (trial.report is single-objective)")
        return study

    def _enqueue_known_good(self, study: optuna.Study) -> None:
        for params in self.enqueue_trials or []:
            study.enqueue_trial(dict(params), skip_if_exists=True)

    def _check_first_trial_composes(self, distributions: dict[str, BaseDistribution], fixed: dict[str, str]) -> None:
        """Compose one trial's config before anything runs, so a typo fails fast and in one line."""
        sample = {name: (d.choices[0] if isinstance(d, CategoricalDistribution) else d.low) for name, d in distributions.items()}
        overrides = [f"{k}={override_value(v)}" for k, v in sample.items()] + [f"{k}={v}" for k, v in fixed.items()]
        try:
            self.validate_batch_is_legal([overrides])
        except Exception as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError("hydra.sweeper.params", " ".join(overrides), f"do not compose: {first_line}") from err

    def _default_optimizer(self) -> str:
        return str(self.config.hydra.runtime.choices.get(OPTIMIZER))

    def _centre_lr_search(self, study: optuna.Study, distributions: dict[str, BaseDistribution], fixed: dict[str, str]) -> LrCentres:
        """Range tests (or the study's stored results) that centre each optimizer's lr range."""
        optimizers = optimizer_choices(distributions, fixed, self._default_optimizer())
        overrides = [f"{k}={v}" for k, v in fixed.items() if k not in (OPTIMIZER, LR, "data.batch_size")]

        def compose(extra: list[str]) -> DictConfig:
            return self.hydra_context.config_loader.load_sweep_config(self.config, extra)

        def run_tests(names: list[str]) -> dict[str, float]:
            try:
                return run_range_tests(compose, names, overrides, self.lr_range_test, self.sweep_dir / "lr_range_test")
            except RangeTestError as err:
                raise SweepFailed(str(err)) from err

        return lr_centres(study, self.lr_range_test["decades"], optimizers, run_tests)

    def _lr_distribution(self, trial: optuna.Trial, fixed: dict[str, str], default: BaseDistribution) -> BaseDistribution:
        if self.lr_centres is None:
            return default
        return self.lr_centres.distribution(trial_optimizer(trial.params, fixed, self._default_optimizer()))

    def _parent_params(self, distributions, fixed, directions) -> dict[str, Any]:
        params = {f"search.{name}": repr(d) for name, d in distributions.items()}
        if self.lr_centres is not None:
            params.update({f"lr_range_test.{name}": lr for name, lr in self.lr_centres.by_optimizer.items()})
        params.update({f"fixed.{name}": value for name, value in fixed.items()})
        params.update({
            "study_name": self.study_name, "storage": self.storage_url, "directions": ",".join(directions),
            "sampler": type(self.sampler).__name__, "pruner": type(self.pruner).__name__,
        })
        return params

    def _write_study_file(self) -> None:
        """``study.yaml`` in the sweep folder lets ``sweepkit-report <folder>`` find the study."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        (self.sweep_dir / "study.yaml").write_text(OmegaConf.to_yaml({"study_name": self.study_name, "storage": self.storage_url}))

    def _log_start(self, study, distributions, fixed, directions) -> None:
        done = studies.summarize(study).finished
        log.info("study %s in %s: %d of %d trials done", self.study_name, self.storage_url, done, self.n_trials)
        log.info("sampler %s, pruner %s, directions %s", type(self.sampler).__name__, type(self.pruner).__name__, directions)
        for name, d in distributions.items():
            if name == LR and self.lr_centres is not None:  # the written range is replaced
                for optimizer in self.lr_centres.by_optimizer:
                    log.info("  search %s for %s: %s (centred on its LR range test)", name, optimizer, self.lr_centres.distribution(optimizer))
            else:
                log.info("  search %s: %s", name, d)
        for name, value in fixed.items():
            log.info("  fixed  %s=%s", name, value)

    # -- the loop ------------------------------------------------------------------------------------
    def _run_trials(self, study: optuna.Study, distributions: dict[str, BaseDistribution], fixed: dict[str, str]) -> None:
        self.start_time = time.monotonic()
        with Heartbeat(self.storage_url, self.heartbeat_interval) as heartbeat:
            while True:
                self._recover_stale(study)
                self._check_failures(study)
                finished, running = self._counts(study)
                if finished >= self.n_trials:
                    log.info("study %s holds %d finished trials: done", self.study_name, finished)
                    return
                if self.timeout is not None and time.monotonic() - self.start_time > self.timeout:
                    log.info("timeout of %ss reached: no new trials", self.timeout)
                    return
                adopted = self._adopt_preempted(study, heartbeat)
                if adopted:
                    self._launch(study, adopted, fixed, heartbeat)
                    continue
                slots = min(self.n_jobs, self.n_trials - finished - running)
                if slots <= 0:  # other workers hold the remaining trials: wait for them (or their death)
                    time.sleep(min(self.heartbeat_interval, 5.0))
                    continue
                trials = self._ask(study, slots, distributions, fixed, heartbeat)
                if trials:
                    self._launch(study, trials, fixed, heartbeat)

    def _counts(self, study: optuna.Study) -> tuple[int, int]:
        trials = study.get_trials(deepcopy=False, states=(*RESULT_STATES, TrialState.RUNNING))
        running = sum(t.state == TrialState.RUNNING for t in trials)
        return len(trials) - running, running

    def _recover_stale(self, study: optuna.Study) -> None:
        """Fail RUNNING trials of dead processes and enqueue their params once more."""
        for trial in studies.stale_trials(study, self.grace_period):
            if studies.fail_trial(study, trial, studies.STALE):
                retried = studies.retry_once(study, trial)
                log.warning("trial %d had no sign of life for %.0fs: failed%s", trial.number, self.grace_period,
                            ", its params are tried again" if retried else " (a retry already; not tried again)")
                self._close_child_run(study, trial, studies.STALE)

    def _adopt_preempted(self, study: optuna.Study, heartbeat: Heartbeat) -> list[FrozenTrial]:
        """Preempted trials nobody resumed: relaunched under their own number and folder."""
        adopted = studies.preempted_trials(study, self.heartbeat_interval)[: self.n_jobs]
        for trial in adopted:
            log.info("trial %d was preempted: resuming it from its last checkpoint", trial.number)
            heartbeat.trial_ids.add(trial._trial_id)
        heartbeat.beat_now()
        return adopted

    def _check_failures(self, study: optuna.Study) -> None:
        failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if studies.is_counted_failure(t)]
        allowed = self.max_failure_rate * self.n_trials
        if len(failed) > allowed:
            last = failed[-1].user_attrs.get(studies.FAIL_REASON, "unknown")
            raise SweepFailed(
                f"{len(failed)} trials failed, more than hydra.sweeper.max_failure_rate={self.max_failure_rate} x n_trials={self.n_trials} allows; "
                f"last (trial {failed[-1].number}): {last}"
            )

    def _ask(self, study: optuna.Study, count: int, distributions, fixed: dict[str, str], heartbeat: Heartbeat) -> list[optuna.Trial]:
        trials = []
        for _ in range(count):
            trial = study.ask()
            trial_id = studies.trial_id(study, trial.number)
            heartbeat.trial_ids.add(trial_id)
            heartbeat.beat_now()
            if self._is_surplus(study, trial.number):
                studies.fail_trial(study, study.get_trials(deepcopy=False)[trial.number], studies.SURPLUS)
                heartbeat.trial_ids.discard(trial_id)
                break
            # the optimizer before its lr: a centred lr range depends on the optimizer drawn
            for name in sorted(distributions, key=lambda n: n == LR):
                distribution = self._lr_distribution(trial, fixed, distributions[name]) if name == LR else distributions[name]
                suggest(trial, name, distribution)
            if self.custom_search_space is not None:
                self.custom_search_space(self.config, trial)
            trials.append(trial)
        return trials

    def _is_surplus(self, study: optuna.Study, number: int) -> bool:
        """Whether ``n_trials`` trials that count were already taken before this one (a race between
        workers that checked the count at the same moment); trial numbers settle who came first."""
        ahead = study.get_trials(deepcopy=False, states=(*RESULT_STATES, TrialState.RUNNING))
        return sum(t.number < number for t in ahead) >= self.n_trials

    def _job_overrides(self, trial: optuna.Trial | FrozenTrial, fixed: dict[str, str]) -> list[str]:
        # Choices of the grammar are override text already (Hydra encoded them); values a custom
        # search space drew are plain Python values and are quoted when needed.
        overrides = [
            f"{name}={value if name in self.grammar_params and isinstance(value, str) else override_value(value)}"
            for name, value in trial.params.items()
        ]
        overrides += [f"{name}={value}" for name, value in fixed.items() if name not in trial.params]
        return overrides + [
            f"hydra.sweeper.study_name={override_value(self.study_name)}",
            f"hydra.sweeper.storage={override_value(self.storage_url)}",
            f"hydra.sweeper.trial_number={trial.number}",
            f"hydra.sweep.subdir={trial.number}",
        ]

    def _launch(self, study: optuna.Study, trials: Sequence[optuna.Trial | FrozenTrial], fixed: dict[str, str], heartbeat: Heartbeat) -> None:
        batch = [self._job_overrides(t, fixed) for t in trials]
        returns: Sequence[JobReturn] = []
        launch_error = None
        try:
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
        except Exception as err:  # a worker process died, or the launcher itself failed
            launch_error = f"{type(err).__name__}: {err}"
            log.error("launcher failed for trials %s: %s", [t.number for t in trials], launch_error)
        for i, trial in enumerate(trials):
            heartbeat.trial_ids.discard(studies.trial_id(study, trial.number))
            self._settle(study, trial.number, returns[i] if i < len(returns) else None, launch_error)
            self._log_progress(study, trial.number)

    # -- settling outcomes ---------------------------------------------------------------------------
    def _settle(self, study: optuna.Study, number: int, ret: JobReturn | None, launch_error: str | None) -> None:
        """Tell the trial's outcome when its job could not (crash, lost worker, foreign task function)."""
        if ret is None:
            self._wait_while_alive(study, number)  # the job may still run (e.g. a sibling job's crash)
        trial = study.get_trials(deepcopy=False)[number]
        if trial.state.is_finished():
            return
        if ret is not None and ret.status == JobStatus.COMPLETED:
            self._tell_return_value(study, number, ret.return_value)
        elif ret is not None and isinstance(ret._return_value, optuna.TrialPruned):
            study.tell(number, state=TrialState.PRUNED)
        elif ret is not None:
            reason = f"{type(ret._return_value).__name__}: {ret._return_value}"
            studies.fail_trial(study, trial, reason)
            self._close_child_run(study, trial, reason)
        else:  # its worker died, or a sibling's death took it down: one more try
            reason = f"lost: {launch_error or 'the launcher returned no result'}"
            if studies.fail_trial(study, trial, reason) and studies.retry_once(study, trial):
                log.warning("trial %d was lost with its worker; its params are tried once more", number)
            self._close_child_run(study, trial, reason)

    def _tell_return_value(self, study: optuna.Study, number: int, value: Any) -> None:
        try:
            values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
            study.tell(number, values=values if len(values) > 1 else values[0])
        except (TypeError, ValueError) as err:
            studies.fail_trial(study, study.get_trials(deepcopy=False)[number], f"the task returned {value!r}, not the objective: {err}")

    def _wait_while_alive(self, study: optuna.Study, number: int) -> None:
        while True:
            trial = study.get_trials(deepcopy=False)[number]
            if trial.state.is_finished() or time.time() - studies.last_sign_of_life(trial) > self.grace_period:
                return
            time.sleep(min(self.heartbeat_interval, 2.0))

    def _close_child_run(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
        run_id, uri = trial.user_attrs.get(studies.MLFLOW_RUN_ID), study.user_attrs.get(studies.MLFLOW_URI)
        if run_id and uri:
            close_child(uri, run_id, reason)

    def _log_progress(self, study: optuna.Study, number: int) -> None:
        """One line per finished trial: number, state, value, best so far, elapsed time."""
        trial = study.get_trials(deepcopy=False)[number]
        value = "-" if trial.values is None else ", ".join(f"{v:.4f}" for v in trial.values)
        detail = trial.user_attrs.get(studies.PRUNE_REASON) or trial.user_attrs.get(studies.FAIL_REASON) or ""
        if trial.state == TrialState.PRUNED:
            detail = f"{detail} at epoch {trial.user_attrs.get(studies.PRUNED_EPOCH, '?')}"
        summary = studies.summarize(study)
        best = f"{summary.best_values[0]:.4f} (trial {summary.best_number})" if summary.best_values else "-"
        elapsed = time.monotonic() - self.start_time
        log.info(
            "trial %d %s value %s %s| best %s | %d/%d finished | %dm%02ds",
            number, trial.state.name, value, f"[{detail.strip()[:80]}] " if detail.strip() else "", best,
            summary.finished, self.n_trials, elapsed // 60, elapsed % 60,
        )

    # -- the end -------------------------------------------------------------------------------------
    def _finish(self, study: optuna.Study, parent: ParentRun | None, status: str) -> None:
        """Plots, ``optimization_results.yaml`` and the parent run's summary, whatever the outcome."""
        summary = studies.summarize(study)
        artifacts = save_plots(study, self.sweep_dir / "plots") + [save_results(study, self.sweep_dir / "optimization_results.yaml")]
        if summary.best_values is not None:
            best = study.best_trial
            log.info("best trial %d: %s = %s  params %s", best.number, "value", best.value, best.params)
        log.info(
            "trials %s | epochs run %d of %d budgeted (%.0f%% saved by pruning)",
            summary.counts, summary.epochs_run, summary.epochs_budget, 100 * summary.epochs_saved_share,
        )
        if parent is not None:
            parent.log_summary(summary, self.n_trials, artifacts)
            if (self.sweep_dir / "lr_range_test").is_dir():
                parent.log_folder(self.sweep_dir / "lr_range_test", "lr_range_test")
            parent.end(status)
