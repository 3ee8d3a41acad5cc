"""The sweeper's study plots and results file (``_study_plots``), drawn from real Optuna studies:
small in-memory studies of the sweep's own parameters, with real reports and a real pruner."""

from __future__ import annotations

import math
import warnings

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pytest
import yaml
from matplotlib.collections import PathCollection
from matplotlib.text import Text
from optuna.trial import TrialState

from hydra_plugins.sweepkit_sweeper._results_file import results
from hydra_plugins.sweepkit_sweeper._study_plots import draw_plots, save_plots

OPTIMIZERS = ["sgd", "adam", "adamw", "rmsprop"]


def make_study(n_trials: int = 40, named: bool = True) -> optuna.Study:
    """A study of the lr_batch_optimizer space: accuracy climbs per epoch towards a peak at lr 1e-2
    (per optimizer, shifted), and the median pruner stops the hopeless ones."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    if named:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.set_metric_names(["val/acc"])

    def objective(trial: optuna.Trial) -> float:
        optimizer = trial.suggest_categorical("optimizer", OPTIMIZERS)
        lr = trial.suggest_float("optimizer.lr", 1e-4, 1.0, log=True)
        trial.suggest_categorical("data.batch_size", [16, 32, 64, 128, 256])
        trial.suggest_categorical("lr_scaling.rule", ["linear", "sqrt", "none"])
        quality = 1 - abs(math.log10(lr) + 2 + OPTIMIZERS.index(optimizer) / 2) / 5
        for epoch in range(1, 5):
            value = quality * (1 - 0.5**epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=n_trials)
    return study


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    return make_study()


@pytest.fixture(scope="module")
def figures(study):
    drawn = dict(draw_plots(study))
    yield drawn
    plt.close("all")


def texts(figure) -> list[Text]:
    figure.canvas.draw()
    return [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]


def scatter_points(ax) -> list[tuple[float, float]]:
    return [tuple(p) for c in ax.collections if isinstance(c, PathCollection) for p in c.get_offsets()]


def test_every_plot_names_the_metric_not_objective_value(figures):
    # The study's metric name labels every single-objective plot; Optuna's generic name appears nowhere.
    assert set(figures) == {
        "optimization_history",
        "intermediate_values",
        "parallel_coordinate",
        "param_importances",
        "contour_lr_batch_size",
    }
    for name, figure in figures.items():
        words = " ".join(t.get_text() for t in texts(figure))
        assert "val/acc" in words, name
        assert "Objective Value" not in words, name


def test_a_study_without_metric_names_still_draws_every_plot(tmp_path):
    # A study from an older journal has no metric names: the plots fall back to Optuna's generic name.
    study = make_study(n_trials=12, named=False)
    saved = save_plots(study, tmp_path)
    assert {p.stem for p in saved} >= {"optimization_history", "intermediate_values", "parallel_coordinate"}
    assert results(study)["metric"] == "Objective Value"


def test_optimization_history_shows_pruned_trials_at_their_last_reported_value(study, figures):
    # Pruned trials are drawn too (their last reported value, a marker of their own), not dropped.
    ax = figures["optimization_history"].axes[0]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(pruned) >= 10
    expected = {(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in pruned}
    crosses = [c for c in ax.collections if "pruned" in c.get_label()]
    assert len(crosses) == 1 and {tuple(p) for p in crosses[0].get_offsets()} == expected
    complete = [c for c in ax.collections if "complete" in c.get_label()]
    assert len(complete[0].get_offsets()) == sum(t.state == TrialState.COMPLETE for t in study.trials)


def test_intermediate_values_legend_has_one_entry_per_state_inside_the_figure(study, figures):
    # 40 trials: the legend is not a list of trials cut after 25, but one entry per state with its count.
    figure = figures["intermediate_values"]
    legend = figure.axes[0].get_legend()
    entries = [t.get_text() for t in legend.get_texts()]
    counts = {
        s.name.lower(): sum(t.state == s for t in study.trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED)
    }
    assert entries == [f"{state} ({n})" for state, n in counts.items()]
    figure.canvas.draw()
    assert figure.bbox.contains(*legend.get_window_extent().p0) and figure.bbox.contains(
        *legend.get_window_extent().p1
    )


def test_parallel_coordinate_labels_do_not_overlap(figures):
    # No two texts of the parallel-coordinate plot (axis names, tick labels, title) overlap.
    figure = figures["parallel_coordinate"]
    renderer = figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(figure)]
    overlapping = [
        (a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)
    ]
    assert not overlapping


def test_lr_batch_contour_has_one_panel_per_optimizer_with_only_its_trials(study, figures):
    # Optimizers are not mixed in one map: a panel each, holding exactly that optimizer's completed trials.
    figure = figures["contour_lr_batch_size"]
    panels = [ax for ax in figure.axes if ax.get_title().startswith("optimizer ")]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [ax.get_title() for ax in panels] == [
        f"optimizer {o}" for o in sorted({t.params["optimizer"] for t in complete})
    ]
    for ax in panels:
        mine = [t for t in complete if t.params["optimizer"] == ax.get_title().removeprefix("optimizer ")]
        expected = {
            (round(math.log10(t.params["optimizer.lr"]), 9), math.log2(t.params["data.batch_size"]))
            for t in mine
        }
        assert {(round(float(x), 9), float(y)) for x, y in scatter_points(ax)} == expected


def test_results_file_names_the_metric_and_direction(study, tmp_path):
    # optimization_results.yaml says which metric best_value is of, and whether it was maximized.
    from hydra_plugins.sweepkit_sweeper._results_file import save_results

    found = yaml.safe_load(save_results(study, tmp_path / "optimization_results.yaml").read_text())
    assert found["metric"] == "val/acc" and found["direction"] == "maximize"
    assert found["best_value"] == study.best_value and found["best_params"] == study.best_params


def test_plots_leave_matplotlib_style_as_it_was(study, tmp_path):
    # Optuna's plots switch matplotlib to its ggplot style: drawing the study plots must not leak it.
    before = dict(matplotlib.rcParams)
    save_plots(study, tmp_path)
    assert matplotlib.rcParams["axes.facecolor"] == before["axes.facecolor"]
