"""The sweepkit sweeper: asks Optuna for trials, launches them as Hydra jobs, settles their outcome.

A sweep is built in two steps, as a run is: first every check (settings, search space, study name,
journal, sweep folder, the first trial's config), with nothing written; then the writes (the journal's
torn tail cut, the study, its parent run, ``study.yaml``), and the trials.

Each trial job runs the app's task function inside ``sweepkit.trial.TrialTask``, which reconnects to
the study, reports, obeys the pruner and tells its own outcome, whatever the app. The sweeper keeps
the study honest around the jobs: it marks the trials it waits for as alive, settles trials whose
job could not tell (a crash, a lost worker), fails and retries trials of dead processes, resumes
preempted ones first, stops at ``n_trials`` results in total, and on SIGTERM or Ctrl-C stops between
trials, the trials in flight left to be resumed and its parent run ended KILLED.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus, configure_log
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from hydra_plugins.sweepkit_sweeper import _warm_workers as warm_workers
from hydra_plugins.sweepkit_sweeper._lr_range import (
    LR,
    OPTIMIZER,
    LrCentres,
    RangeTestError,
    lr_centres,
    optimizer_choices,
    run_range_tests,
    trial_optimizer,
)
from hydra_plugins.sweepkit_sweeper._lr_range import check_settings as check_lr_range_settings
from hydra_plugins.sweepkit_sweeper._names import check_study_name, derive_study_name, override_value
from hydra_plugins.sweepkit_sweeper._plot_process import PlotProcess
from hydra_plugins.sweepkit_sweeper._results_file import save_results
from hydra_plugins.sweepkit_sweeper._search_space import (
    as_record,
    check_unchanged,
    params_as_overrides,
    parse_search_space,
)
from hydra_plugins.sweepkit_sweeper._settings import SweepSettings
from hydra_plugins.sweepkit_sweeper._slots import Slots
from hydra_plugins.sweepkit_sweeper._trial_configs import loader_for_trials
from sweepkit import journal, scaling_law, studies, sweep_summary
from sweepkit.errors import ConfigError, RunFailed, one_of, writable_folder
from sweepkit.mlflow_runs import ParentRun, close_child
from sweepkit.optuna_parts import build_optuna_part
from sweepkit.preemption import SweepStop, relay_through_the_sweep
from sweepkit.progress import SweepProgress
from sweepkit.tasks import objective_metrics, objective_modes
from sweepkit.trial import TrialStopped, TrialTask

log = logging.getLogger("sweepkit")
DIRECTIONS = {"max": "maximize", "min": "minimize"}
RESULT_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
PREFLIGHT = "sweepkit_preflight"  # attribute of a task function: its check of a trial's config (no writes)
PRELOAD = "sweepkit_preload"  # attribute of a task function: the modules its trials import, given the config


BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def available_cores() -> int:
    """The CPU cores this process may run on (a scheduler's allocation, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runs_in_process(launcher: DictConfig) -> bool:
    """Whether a launcher runs its jobs in the sweep's own process (then one at a time)."""
    target = launcher.get("_target_")
    return target == BASIC_LAUNCHER or (target == JOBLIB_LAUNCHER and launcher.get("n_jobs") == 1)


def quiet_launcher(launcher: Any, verbose: Any) -> None:
    """A launcher's INFO lines ("Launching jobs, sweep output dir ...", "#0 : <overrides>", joblib's
    "is launching 1 jobs") come with every trial and say less than its trial line: warnings only, unless
    ``hydra.verbose`` asks for them. A trial's overrides stay in its folder (``.hydra/overrides.yaml``)."""
    module = type(launcher).__module__
    name = (
        ".".join(module.split(".")[:2]) if module.startswith("hydra_plugins.") else module
    )  # the plugin's package
    asked = [verbose] if isinstance(verbose, str) else list(verbose) if not isinstance(verbose, bool) else []
    if verbose is True or any(
        name == str(n) or name.startswith(f"{n}.") for n in asked
    ):  # it, or a logger above it
        return
    logging.getLogger(name).setLevel(logging.WARNING)


class SweepFailed(RunFailed):
    """Too many trials failed: the sweep stops instead of burning the budget."""


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Draw one param through Optuna's public suggest API."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise ConfigError(
        "hydra.sweeper.params", name, f"has a distribution the sweeper cannot draw from: {distribution}"
    )


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


@dataclass
class Plan:
    """What a sweep will do, every part checked, before anything is written."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, str]
    directions: list[str]
    study_name: str
    storage_url: str
    sweep_dir: Path
    launch_dir: Path


class SweepkitSweeperImpl(Sweeper):
    def __init__(self, **settings: Any) -> None:
        settings.pop("trial_number", None), settings.pop("parent_run_id", None)  # job-side keys
        self.settings = SweepSettings.check(settings)
        self.lr_centres: LrCentres | None = None
        self.config: DictConfig | None = None
        self.sampler_seed: int | None = None  # set when the study is opened

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # trials' configs composed once per set of group choices, in the launcher and in the checks here
        hydra_context = HydraContext(loader_for_trials(hydra_context.config_loader), hydra_context.callbacks)
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.n_jobs = self._gpu_capped(config, self.settings.n_jobs or available_cores())
        with open_dict(config):
            config.hydra.sweeper.n_jobs = self.n_jobs  # what launcher presets read (local_parallel)
            if self.n_jobs > 1 and config.hydra.launcher.get("_target_") == BASIC_LAUNCHER:
                # The basic launcher runs jobs one after another in this process: parallel trials need
                # processes of their own, which joblib's loky workers are (started once, reused).
                config.hydra.launcher = OmegaConf.structured(JobLibLauncherConf(n_jobs=self.n_jobs))
        self.asynchronous = self.n_jobs > 1 and not runs_in_process(config.hydra.launcher)
        if self.asynchronous and config.hydra.launcher.get("_target_") == JOBLIB_LAUNCHER:
            warm_workers.start(self._worker_modules(config, task_function), self.n_jobs)
        # Every job runs the app's task as a trial (sweepkit.trial), in whatever process the launcher uses.
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=TrialTask(task_function)
        )
        quiet_launcher(self.launcher, config.hydra.verbose)

    @staticmethod
    def _worker_modules(config: DictConfig, task_function: TaskFunction) -> list[str]:
        """The app's module and what its task declares its trials import (``PRELOAD``)."""
        module = getattr(task_function, "__module__", "__main__")
        declared = getattr(task_function, PRELOAD, None)
        return ([] if module == "__main__" else [module]) + (list(declared(config)) if declared else [])

    def _gpu_capped(self, config: DictConfig, n_jobs: int) -> int:
        """No more parallel trials than ``trials_per_gpu`` per GPU of this machine that they train on:
        more would share GPUs and race each other into out-of-memory errors."""
        from sweepkit.devices import parallel_trials, trial_gpus, visible_gpu_count

        launcher = config.hydra.launcher
        device = OmegaConf.select(
            config, "trainer.device", default="cpu"
        )  # another app's trials: not ours to place
        gpus = trial_gpus(
            str(launcher.get("_target_", "")), launcher.get("gpus_per_node"), str(device), visible_gpu_count()
        )
        capped, note = parallel_trials(n_jobs, gpus, self.settings.trials_per_gpu)
        if note:
            log.warning(note)
        return capped

    # -- entry ---------------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        """Run the study to ``n_trials`` results. Bad settings raise ConfigError before anything is
        written; a stop signal ends the sweep between trials (sweepkit.preemption)."""
        with SweepStop() as self.stop, PlotProcess() as self.plotter:  # its imports overlap all that follows
            plan = self._plan(arguments)
            self.stop.raise_if_requested()
            study = self._open_study(plan)
            self._enqueue_known_good(study)
            if self.settings.lr_range_test["enabled"]:
                self.lr_centres = self._centre_lr_search(study, plan)
            self.stop.raise_if_requested()
            parent = (
                ParentRun.open(self.config.tracking, plan.launch_dir, study, self._parent_params(plan))
                if self._tracks_mlflow()
                else None
            )
            self.parent_run_id = parent.run_id if parent else None
            self._write_study_file(plan)
            self._log_start(study, plan)
            self.console = SweepProgress(self.settings.n_trials, studies.summarize(study).finished)
            status = "FAILED"
            try:
                self._run_trials(study, plan)
                status = "FINISHED"
            except KeyboardInterrupt:  # a stop signal (Stopped), or Ctrl-C twice
                status = "KILLED"
                raise
            finally:
                self.console.close()
                self._finish(study, parent, status, plan)

    # -- step 1: every check, nothing written --------------------------------------------------------
    def _plan(self, arguments: list[str]) -> Plan:
        assert self.config is not None
        launch_dir = Path(self.config.hydra.runtime.cwd)
        distributions, fixed = parse_search_space(params_as_overrides(self.settings.params) + list(arguments))
        self.grammar_params = set(distributions)
        directions = self._directions()
        fixed_cli = [
            a
            for a in arguments
            if a.split("=", 1)[0].lstrip("+~") in fixed and not a.startswith("hparams_search=")
        ]
        study_name = check_study_name(
            self.settings.study_name
            or derive_study_name(self.config.hydra.runtime.choices.get("hparams_search"), fixed_cli)
        )
        storage_url = studies.storage_url(self.settings.storage, launch_dir)
        if "://" not in storage_url:
            journal.check(Path(storage_url))
        with open_dict(
            self.config
        ):  # the sweep folder may name the study: multirun/${hydra.sweeper.study_name}
            self.config.hydra.sweeper.study_name = study_name
            self.config.hydra.sweeper.storage = storage_url
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir = sweep_dir if sweep_dir.is_absolute() else launch_dir / sweep_dir
        self._check_group_choices(distributions)
        self._check_first_trial(distributions, fixed)
        if self.settings.lr_range_test["enabled"]:
            check_lr_range_settings(self.settings.lr_range_test, distributions)
        writable_folder("hydra.sweep.dir", sweep_dir)  # the last check: it makes the (empty) folder
        return Plan(distributions, fixed, directions, study_name, storage_url, sweep_dir, launch_dir)

    def _directions(self) -> list[str]:
        """``direction``/``directions``, or derived from ``objective.mode``; they must agree."""
        objective = self.config.get("objective")
        derived = None
        if objective is not None:
            metrics = objective_metrics(objective.metric)
            derived = [DIRECTIONS[m] for m in objective_modes(objective.mode, len(metrics))]
        direction = self.settings.direction
        if direction is None:
            if derived is None:
                raise ConfigError(
                    "hydra.sweeper.direction", None, "is needed when the task config has no objective.mode"
                )
            return derived
        given = [direction] if isinstance(direction, str) else list(direction)
        for d in given:
            if d not in DIRECTIONS.values():
                raise one_of("hydra.sweeper.direction", d, DIRECTIONS.values())
        if derived is not None and given != derived:
            raise ConfigError(
                "hydra.sweeper.direction",
                given,
                f"disagrees with objective.mode={objective.mode} (which means {derived})",
            )
        return given

    def _check_group_choices(self, distributions: dict[str, BaseDistribution]) -> None:
        """Each choice of a searched config group is an option of it on the whole search path."""
        loader = self.hydra_context.config_loader
        for name, distribution in distributions.items():
            if not isinstance(distribution, CategoricalDistribution):
                continue
            options = loader.get_group_options(name) if "." not in name else []
            if not options:  # not a config group
                continue
            for choice in distribution.choices:
                if str(choice) not in options:
                    raise one_of(name, choice, sorted(options))

    def _check_first_trial(self, distributions: dict[str, BaseDistribution], fixed: dict[str, str]) -> None:
        """Compose one trial's config and let the task check it, so a typo or a bad value fails at once,
        in one line, and not in every trial."""
        from sweepkit.console import one_line

        sample = {
            name: (d.choices[0] if isinstance(d, CategoricalDistribution) else d.low)
            for name, d in distributions.items()
        }
        overrides = [f"{k}={override_value(v)}" for k, v in sample.items()] + [
            f"{k}={v}" for k, v in fixed.items()
        ]
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        except Exception as err:
            found = one_line(err)
            raise ConfigError(
                "hydra.sweeper.params", " ".join(overrides), f"do not compose: {found[0] if found else err}"
            ) from err
        preflight = getattr(self.task_function, PREFLIGHT, None)
        if preflight is not None:
            preflight(cfg)

    # -- step 2: the study ---------------------------------------------------------------------------
    def _open_study(self, plan: Plan) -> optuna.Study:
        """The study, created or loaded; a resume must keep its directions and search space. Each sweep
        process of a study samples with its own seed (studies.process_seed): none replays another's."""
        if "://" not in plan.storage_url:
            journal.repair(Path(plan.storage_url))
        storage = studies.open_storage(plan.storage_url)
        pruner = build_optuna_part("pruner", self.settings.pruner)
        try:
            study = optuna.load_study(study_name=plan.study_name, storage=storage, pruner=pruner)
        except KeyError:
            study = optuna.create_study(
                study_name=plan.study_name,
                storage=storage,
                pruner=pruner,
                directions=plan.directions,
                load_if_exists=True,
            )
        existing = [d.name.lower() for d in study.directions]
        if existing != plan.directions:
            raise ConfigError(
                "hydra.sweeper.direction",
                plan.directions,
                f"differs from study {plan.study_name}'s {existing}; use a new study_name",
            )
        if self.config.get("objective") is not None:  # another app's sweep may name no metric
            studies.name_metrics(study, objective_metrics(self.config.objective.metric))
        recorded = study.user_attrs.get(studies.SEARCH_SPACE)
        if recorded is None:
            study.set_user_attr(studies.SEARCH_SPACE, as_record(plan.distributions))
        else:
            check_unchanged(plan.study_name, recorded, plan.distributions)
        index = studies.join_study(study)
        self.sampler_seed = studies.process_seed(self._configured_seed(), index)  # this process's own
        study.sampler = build_optuna_part("sampler", self.settings.sampler, seed=self.sampler_seed)
        if len(plan.directions) > 1 and not isinstance(pruner, optuna.pruners.NopPruner):
            log.warning(
                "pruning is off: Optuna cannot prune multi-objective studies (trial.report is single-objective)"
            )
        return study

    def _configured_seed(self) -> int:
        seed = self.settings.sampler.get("seed")
        return int(seed) if seed is not None else 0

    def _enqueue_known_good(self, study: optuna.Study) -> None:
        for params in self.settings.enqueue_trials:
            study.enqueue_trial(dict(params), skip_if_exists=True)

    def _default_optimizer(self) -> str:
        return str(self.config.hydra.runtime.choices.get(OPTIMIZER))

    def _centre_lr_search(self, study: optuna.Study, plan: Plan) -> LrCentres:
        """Range tests (or the study's stored results) that centre each optimizer's lr range."""
        optimizers = optimizer_choices(plan.distributions, plan.fixed, self._default_optimizer())
        overrides = [f"{k}={v}" for k, v in plan.fixed.items() if k not in (OPTIMIZER, LR, "data.batch_size")]

        def compose(extra: list[str]) -> DictConfig:
            return self.hydra_context.config_loader.load_sweep_config(self.config, extra)

        def run_tests(names: list[str]) -> dict[str, float]:
            try:
                return run_range_tests(
                    compose, names, overrides, self.settings.lr_range_test, plan.sweep_dir / "lr_range_test"
                )
            except RangeTestError as err:
                raise SweepFailed(str(err)) from err

        return lr_centres(study, self.settings.lr_range_test["decades"], optimizers, run_tests)

    def _lr_distribution(
        self, trial: optuna.Trial, fixed: dict[str, str], default: BaseDistribution
    ) -> BaseDistribution:
        if self.lr_centres is None:
            return default
        return self.lr_centres.distribution(trial_optimizer(trial.params, fixed, self._default_optimizer()))

    def _tracks_mlflow(self) -> bool:
        from sweepkit.tracking import tracks_to_mlflow

        return "tracking" in self.config and tracks_to_mlflow(self.config.tracking)

    def _parent_params(self, plan: Plan) -> dict[str, Any]:
        params = {f"search.{name}": repr(d) for name, d in plan.distributions.items()}
        if self.lr_centres is not None:
            params.update({f"lr_range_test.{name}": lr for name, lr in self.lr_centres.by_optimizer.items()})
        params.update({f"fixed.{name}": value for name, value in plan.fixed.items()})
        params.update(
            {
                "study_name": plan.study_name,
                "storage": plan.storage_url,
                "directions": ",".join(plan.directions),
                "sampler": self.settings.sampler["_target_"].rsplit(".", 1)[-1],
                "pruner": type(build_optuna_part("pruner", self.settings.pruner)).__name__,
            }
        )
        return params

    def _write_study_file(self, plan: Plan) -> None:
        """``study.yaml`` in the sweep folder lets ``sweepkit-report <folder>`` find the study."""
        plan.sweep_dir.mkdir(parents=True, exist_ok=True)
        (plan.sweep_dir / "study.yaml").write_text(
            OmegaConf.to_yaml({"study_name": plan.study_name, "storage": plan.storage_url})
        )

    def _log_start(self, study: optuna.Study, plan: Plan) -> None:
        done = studies.summarize(study).finished
        log.info(
            "study %s in %s: %d of %d trials done",
            plan.study_name,
            plan.storage_url,
            done,
            self.settings.n_trials,
        )
        log.info(
            "sampler %s (seed %s), pruner %s, directions %s",
            type(study.sampler).__name__,
            self.sampler_seed,
            type(study.pruner).__name__,
            plan.directions,
        )
        for name, d in plan.distributions.items():
            if name == LR and self.lr_centres is not None:  # the written range is replaced
                for optimizer in self.lr_centres.by_optimizer:
                    log.info(
                        "  search %s for %s: %s (centred on its LR range test)",
                        name,
                        optimizer,
                        self.lr_centres.distribution(optimizer),
                    )
            else:
                log.info("  search %s: %s", name, d)
        for name, value in plan.fixed.items():
            log.info("  fixed  %s=%s", name, value)

    # -- the loop ------------------------------------------------------------------------------------
    def _run_trials(self, study: optuna.Study, plan: Plan) -> None:
        """Keep up to ``n_jobs`` trials in flight until the study holds ``n_trials`` results."""
        self.start_time = time.monotonic()
        n_trials = self.settings.n_trials
        slots = Slots(self.n_jobs)
        with Heartbeat(plan.storage_url, self.settings.heartbeat_interval) as heartbeat:
            try:
                while True:
                    self.stop.raise_if_requested()
                    self._recover_stale(study)
                    self._check_failures(study)
                    finished, running = self._counts(study)
                    if finished >= n_trials or self._timed_out():
                        if not slots:
                            log.info("study %s holds %d finished trials: done", plan.study_name, finished)
                            return
                        slots.wait(0.2)
                        continue
                    if not slots.free:
                        slots.wait(0.2)
                        continue
                    trials = self._adopt_preempted(study, heartbeat, slots.free) or self._ask_for(
                        study, slots, plan, heartbeat, finished, running
                    )
                    if trials:
                        self._dispatch(study, trials, plan.fixed, heartbeat, slots)
                    elif slots:
                        slots.wait(0.2)
                    else:  # other workers hold the remaining trials: wait for them (or their death)
                        self._pause(min(self.settings.heartbeat_interval, 5.0))
            finally:
                slots.drain(
                    on_wait=lambda: None
                )  # trials in flight end (stopped, if a signal came) before the sweep does

    def _timed_out(self) -> bool:
        timeout = self.settings.timeout
        if timeout is None or time.monotonic() - self.start_time <= timeout:
            return False
        if not getattr(self, "_said_timeout", False):
            log.info("timeout of %ss reached: no new trials", timeout)
            self._said_timeout = True
        return True

    def _ask_for(
        self, study: optuna.Study, slots: Slots, plan: Plan, heartbeat: Heartbeat, finished: int, running: int
    ) -> list[optuna.Trial]:
        wanted = min(slots.free, self.settings.n_trials - finished - running)
        return self._ask(study, wanted, plan, heartbeat) if wanted > 0 else []

    def _dispatch(
        self,
        study: optuna.Study,
        trials: Sequence[optuna.Trial | FrozenTrial],
        fixed: dict[str, str],
        heartbeat: Heartbeat,
        slots: Slots,
    ) -> None:
        """Launch trials: each on its own thread where the launcher runs jobs in other processes (a
        free worker starts the next trial at once); as one batch, here, where jobs run in this process."""
        if not self.asynchronous:
            self._launch(study, trials, fixed, heartbeat)
            return
        for trial in trials:
            slots.start(trial.number, lambda trial=trial: self._launch_apart(study, trial, fixed, heartbeat))

    def _launch_apart(
        self,
        study: optuna.Study,
        trial: optuna.Trial | FrozenTrial,
        fixed: dict[str, str],
        heartbeat: Heartbeat,
    ) -> None:
        """One trial, from a launch thread: the worker processes started from here take stop signals
        from the sweep only (a group's Ctrl-C killing an idle joblib worker would break the pool)."""
        relay_through_the_sweep()
        self._launch(study, [trial], fixed, heartbeat)

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake for a stop signal within a fraction of a second."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.stop.raise_if_requested()
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    def _counts(self, study: optuna.Study) -> tuple[int, int]:
        trials = study.get_trials(deepcopy=False, states=(*RESULT_STATES, TrialState.RUNNING))
        running = sum(t.state == TrialState.RUNNING for t in trials)
        return len(trials) - running, running

    def _recover_stale(self, study: optuna.Study) -> None:
        """Fail RUNNING trials of dead processes and enqueue their params once more."""
        for trial in studies.stale_trials(study, self.settings.grace_period):
            if studies.fail_trial(study, trial, studies.STALE):
                retried = studies.retry_once(study, trial)
                log.warning(
                    "trial %d had no sign of life for %.0fs: failed%s",
                    trial.number,
                    self.settings.grace_period,
                    ", its params are tried again" if retried else " (a retry already; not tried again)",
                )
                self._close_child_run(study, trial, studies.STALE)

    def _adopt_preempted(self, study: optuna.Study, heartbeat: Heartbeat, limit: int) -> list[FrozenTrial]:
        """Preempted trials nobody resumed: relaunched first, under their own number and folder."""
        adopted = studies.preempted_trials(study, self.settings.heartbeat_interval)[:limit]
        for trial in adopted:
            log.info("trial %d was preempted: resuming it from its last checkpoint", trial.number)
            studies.take_up(study._storage, trial)  # no other worker adopts it meanwhile
            heartbeat.trial_ids.add(trial._trial_id)
        heartbeat.beat_now()
        return adopted

    def _check_failures(self, study: optuna.Study) -> None:
        failed = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if studies.is_counted_failure(t)
        ]
        rate, n_trials = self.settings.max_failure_rate, self.settings.n_trials
        if len(failed) > rate * n_trials:
            last = failed[-1].user_attrs.get(studies.FAIL_REASON, "unknown")
            raise SweepFailed(
                f"{len(failed)} trials failed, more than hydra.sweeper.max_failure_rate={rate} x n_trials={n_trials} allows; "
                f"last (trial {failed[-1].number}): {last}"
            )

    def _ask(self, study: optuna.Study, count: int, plan: Plan, heartbeat: Heartbeat) -> list[optuna.Trial]:
        trials: list[optuna.Trial] = []
        for _ in range(count):
            if self.stop.requested:
                break
            trial = study.ask()
            trial_id = studies.trial_id(study, trial.number)
            heartbeat.trial_ids.add(trial_id)
            heartbeat.beat_now()
            if self._is_surplus(study, trial.number):
                studies.fail_trial(study, study.get_trials(deepcopy=False)[trial.number], studies.SURPLUS)
                heartbeat.trial_ids.discard(trial_id)
                break
            # the optimizer before its lr: a centred lr range depends on the optimizer drawn
            for name in sorted(plan.distributions, key=lambda n: n == LR):
                distribution = (
                    self._lr_distribution(trial, plan.fixed, plan.distributions[name])
                    if name == LR
                    else plan.distributions[name]
                )
                suggest(trial, name, distribution)
            if self.settings.custom_search_space is not None:
                self.settings.custom_search_space(self.config, trial)
            trials.append(trial)
        if self.stop.requested:  # asked, never launched: say so, and do not count them
            for trial in trials:
                studies.fail_trial(study, study.get_trials(deepcopy=False)[trial.number], studies.NOT_STARTED)
                heartbeat.trial_ids.discard(studies.trial_id(study, trial.number))
            self.stop.raise_if_requested()
        return trials

    def _is_surplus(self, study: optuna.Study, number: int) -> bool:
        """Whether ``n_trials`` trials that count were already taken before this one (a race between
        workers that checked the count at the same moment); trial numbers settle who came first."""
        ahead = study.get_trials(deepcopy=False, states=(*RESULT_STATES, TrialState.RUNNING))
        return sum(t.number < number for t in ahead) >= self.settings.n_trials

    def _job_overrides(self, trial: optuna.Trial | FrozenTrial, fixed: dict[str, str]) -> list[str]:
        # Choices of the grammar are override text already (Hydra encoded them); values a custom
        # search space drew are plain Python values and are quoted when needed.
        overrides = [
            f"{name}={value if name in self.grammar_params and isinstance(value, str) else override_value(value)}"
            for name, value in trial.params.items()
        ]
        overrides += [f"{name}={value}" for name, value in fixed.items() if name not in trial.params]
        return [
            *overrides,
            f"hydra.sweeper.study_name={override_value(self.config.hydra.sweeper.study_name)}",
            f"hydra.sweeper.storage={override_value(self.config.hydra.sweeper.storage)}",
            f"hydra.sweeper.trial_number={trial.number}",
            f"hydra.sweeper.parent_run_id={override_value(self.parent_run_id)}",
            f"hydra.sweep.subdir={trial.number}",
        ]

    def _launch(
        self,
        study: optuna.Study,
        trials: Sequence[optuna.Trial | FrozenTrial],
        fixed: dict[str, str],
        heartbeat: Heartbeat,
    ) -> None:
        batch = [self._job_overrides(t, fixed) for t in trials]
        returns: Sequence[JobReturn] = []
        launch_error = None
        try:
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
        except Exception as err:  # a worker process died, or the launcher itself failed
            launch_error = f"{type(err).__name__}: {err}"
            log.error("launcher failed for trials %s: %s", [t.number for t in trials], launch_error)
        if runs_in_process(
            self.config.hydra.launcher
        ):  # the job set up its own logging here (its log file): undo
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        for i, trial in enumerate(trials):
            heartbeat.trial_ids.discard(studies.trial_id(study, trial.number))
            self._settle(study, trial.number, returns[i] if i < len(returns) else None, launch_error)
            self._log_progress(study, trial.number)

    # -- settling outcomes ---------------------------------------------------------------------------
    def _settle(
        self, study: optuna.Study, number: int, ret: JobReturn | None, launch_error: str | None
    ) -> None:
        """Tell the trial's outcome when its job could not (crash, lost worker)."""
        if ret is None and not self.stop.requested:
            self._wait_while_alive(study, number)  # the job may still run (e.g. a sibling job's crash)
        trial = study.get_trials(deepcopy=False)[number]
        if trial.state.is_finished():
            return
        if (ret is not None and isinstance(ret._return_value, TrialStopped)) or trial.system_attrs.get(
            studies.PREEMPTED
        ):
            return  # stopped by a signal: left RUNNING, preempted, to be resumed first
        if ret is not None and ret.status == JobStatus.COMPLETED:
            studies.fail_trial(
                study, trial, f"the job returned {ret._return_value!r} without telling its trial"
            )
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

    def _wait_while_alive(self, study: optuna.Study, number: int) -> None:
        while True:
            trial = study.get_trials(deepcopy=False)[number]
            if (
                trial.state.is_finished()
                or time.time() - studies.last_sign_of_life(trial) > self.settings.grace_period
            ):
                return
            self._pause(min(self.settings.heartbeat_interval, 2.0))

    def _close_child_run(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
        run_id, uri = trial.user_attrs.get(studies.MLFLOW_RUN_ID), study.user_attrs.get(studies.MLFLOW_URI)
        if run_id and uri:
            close_child(uri, run_id, reason)

    def _log_progress(self, study: optuna.Study, number: int) -> None:
        """One line per finished trial (its state, value, the best so far: sweepkit.sweep_summary)."""
        trial = study.get_trials(deepcopy=False)[number]
        summary = studies.summarize(study)
        self.console.line(
            sweep_summary.trial_line(
                trial, summary, self.settings.n_trials, time.monotonic() - self.start_time
            )
        )
        self.console.advance(summary.finished, sweep_summary.best_so_far(summary))

    # -- the end -------------------------------------------------------------------------------------
    def _finish(self, study: optuna.Study, parent: ParentRun | None, status: str, plan: Plan) -> None:
        """Plots, ``optimization_results.yaml`` and the parent run's summary, whatever the outcome; the
        parent run ends with ``status`` even if a second signal cuts the plots short."""
        try:
            summary = studies.summarize(study)
            plots = plan.sweep_dir / sweep_summary.PLOTS_FOLDER
            artifacts = [
                *self._save_plots(study, plots, plan),
                save_results(study, plan.sweep_dir / sweep_summary.RESULTS_FILE),
            ]
            scaling = scaling_law.at_sweep_end(
                study, plots, str(self.config.get("objective", {}).get("metric", "value"))
            )
            if parent is not None:
                parent.log_summary(
                    summary,
                    self.settings.n_trials,
                    artifacts + ([scaling.plot] if scaling and scaling.plot else []),
                )
                if scaling is not None:
                    parent.log_scaling(scaling.fits)
                if (plan.sweep_dir / "lr_range_test").is_dir():
                    parent.log_folder(plan.sweep_dir / "lr_range_test", "lr_range_test")
        finally:
            if parent is not None:
                parent.end(status)
        self._print_summary(study, parent, plan)

    def _save_plots(self, study: optuna.Study, folder: Path, plan: Plan) -> list[Path]:
        """The study plots, drawn by the plot process (its imports done while the trials ran), or here."""
        drawn = self.plotter.draw(plan.storage_url, plan.study_name, folder)
        if drawn is None:
            from hydra_plugins.sweepkit_sweeper._study_plots import save_plots

            drawn = save_plots(study, folder)
        return drawn

    def _print_summary(self, study: optuna.Study, parent: ParentRun | None, plan: Plan) -> None:
        """The closing lines: best value by its metric's name and params, trials by state, epochs saved,
        and where to look (sweep folder, MLflow parent run and UI, the report command)."""
        objective = self.config.get("objective")
        names = sweep_summary.metric_names(
            study, objective_metrics(objective.metric) if objective is not None else None
        )
        where = sweep_summary.Where(plan.sweep_dir, plan.launch_dir)
        if parent is not None:
            where.mlflow_uri, where.parent_run_id = study.user_attrs.get(studies.MLFLOW_URI), parent.run_id
            where.mlflow_experiment_id = study.user_attrs.get(studies.MLFLOW_EXPERIMENT_ID)
        for line in sweep_summary.closing_lines(study, studies.summarize(study), names, where):
            self.console.line(line)
