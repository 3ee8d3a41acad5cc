"""``sweepkit-report <study name or sweep folder>``: a study's trials, its best, what pruning saved,
whether pruning was safe, and (``--scaling``) the lr-vs-batch law.

    sweepkit-report multirun/lr_batch_optimizer
    sweepkit-report lr_batch_optimizer --storage postgresql://user@db/optuna
    sweepkit-report multirun/scaling_law --scaling
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from sweepkit import pruning_audit, scaling_law, studies, sweep_summary
from sweepkit.console import one_line_errors
from sweepkit.errors import ConfigError

STATE_STYLES = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan", "WAITING": "dim"}


def locate(target: str, storage: str | None) -> tuple[str, str]:
    """(study name, storage URL) from a sweep folder's study.yaml, or a study name and a storage."""
    folder = Path(target)
    if (folder / "study.yaml").is_file():
        found = yaml.safe_load((folder / "study.yaml").read_text())
        return found["study_name"], storage or found["storage"]
    if folder.is_dir():
        raise ConfigError("sweep folder", target, "holds no study.yaml (is it a sweepkit sweep's folder?)")
    return target, studies.storage_url(storage, Path.cwd())


def _duration(trial) -> str:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return "-"
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _value(trial) -> str:
    return "-" if trial.values is None else ", ".join(f"{v:.4f}" for v in trial.values)


def trials_table(study) -> Table:
    """One row per trial: state, value, params, epochs, pruning, duration."""
    trials = study.get_trials(deepcopy=False)
    param_names = list(dict.fromkeys(name for t in trials for name in t.params))
    table = Table(title=f"study {study.study_name}", show_lines=False)
    for column in ("#", "state", "value", *param_names, "epochs", "pruned at", "reason", "duration"):
        table.add_column(
            column, justify="right" if column in ("#", "value", "epochs", "pruned at", "duration") else "left"
        )
    for t in trials:
        run, budget = studies.epochs_of(t)
        reason = t.user_attrs.get(studies.PRUNE_REASON) or t.user_attrs.get(studies.FAIL_REASON, "")
        params = [
            (f"{v:.4g}" if isinstance(v, float) else str(v))
            for v in (t.params.get(n, "") for n in param_names)
        ]
        table.add_row(
            str(t.number),
            f"[{STATE_STYLES.get(t.state.name, '')}]{t.state.name}[/]",
            _value(t),
            *params,
            f"{run}/{budget}",
            str(t.user_attrs.get(studies.PRUNED_EPOCH, "")),
            str(reason)[:60],
            _duration(t),
        )
    return table


def report(study, console: Console) -> None:
    """Print the table, the best trial and the epochs run against the budget, in the words of the
    sweep's own closing summary (sweepkit.sweep_summary)."""
    console.print(trials_table(study))
    summary = studies.summarize(study)
    lines = [
        *sweep_summary.best_lines(study, summary, sweep_summary.metric_names(study)),
        sweep_summary.counts_line(summary),
    ]
    console.print("\n".join(lines), highlight=False, markup=False)


@one_line_errors("sweepkit-report")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sweepkit-report", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a sweep folder (multirun/<study>) or a study name")
    parser.add_argument(
        "--storage", help="the study's storage (default: optuna.journal here, or the folder's)"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="fit the lr-vs-batch law (needs trials that searched data.batch_size and optimizer.lr); "
        "the plot goes to <folder>/plots/lr_vs_batch.png, or ./lr_vs_batch.png for a study name",
    )
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(*locate(args.target, args.storage))
    if args.scaling and not scaling_law.searched(study):
        raise ConfigError(
            "--scaling",
            f"(study {study.study_name})",
            "needs trials that searched both data.batch_size "
            "and optimizer.lr with one objective (hparams_search=scaling_law does)",
        )
    console = Console(width=200)
    report(study, console)
    extras(study, console, args.scaling, Path(args.target))


def extras(study, console: Console, scaling: bool, target: Path) -> None:
    """Whether pruning was safe (a study with pruned trials) and, asked for, the lr-vs-batch law."""
    audited = pruning_audit.audit(study)
    if audited is not None:
        console.print("\n".join(pruning_audit.describe(audited)), highlight=False, markup=False)
    if scaling:
        folder = target / sweep_summary.PLOTS_FOLDER if (target / "study.yaml").is_file() else Path.cwd()
        try:
            outcome = scaling_law.analyse(study, folder / "lr_vs_batch.png")
        except scaling_law.ScalingError as err:
            raise ConfigError("--scaling", f"(study {study.study_name})", str(err)) from err
        console.print("\n".join(outcome.lines), highlight=False, markup=False)
        if outcome.plot is not None:
            console.print(f"plot: {outcome.plot}", highlight=False, markup=False)


def open_study(name: str, url: str):
    """The study to report on, read only (``studies.load``): a journal that does not exist is not
    created, a corrupt one is named by its line."""
    if "://" not in url and not Path(url).is_file():
        raise ConfigError(
            "--storage",
            url,
            "does not exist: run the report in the sweep's launch directory, or give the sweep folder or --storage",
        )
    return studies.load(url, name)


if __name__ == "__main__":
    main()
