"""The study plots drawn by a process of their own (``_plot_process``), on a real journal study."""

from __future__ import annotations

import optuna
import pytest
from test_sweeper_study_plots import make_study

from hydra_plugins.sweepkit_sweeper._plot_process import PlotProcess
from sweepkit import studies


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> str:
    """A finished study of the sweep's parameters in a journal file, as a sweep leaves it."""
    url = str(tmp_path_factory.mktemp("study") / "optuna.journal")
    source = make_study(n_trials=20)
    optuna.copy_study(
        from_study_name=source.study_name,
        from_storage=source._storage,
        to_storage=studies.open_storage(url),
        to_study_name="sweep",
    )
    return url


def test_the_process_draws_the_finished_study_when_asked(journal, tmp_path):
    # Started first, asked later (as the sweep does): every plot of the study, as PNGs in the folder.
    with PlotProcess() as plotter:
        drawn = plotter.draw(journal, "sweep", tmp_path / "plots")
    assert drawn is not None
    assert {p.stem for p in drawn} == {
        "optimization_history",
        "intermediate_values",
        "parallel_coordinate",
        "param_importances",
        "contour_lr_batch_size",
    }
    assert all(p.parent == tmp_path / "plots" and p.stat().st_size > 0 for p in drawn)


def test_a_sweep_that_ends_without_asking_leaves_no_process_and_no_plots(tmp_path):
    # A sweep refused at its checks (or dead) closes the process: nothing is drawn, nothing lingers.
    with PlotProcess() as plotter:
        pass
    assert plotter._process.poll() is not None
    assert not (tmp_path / "plots").exists()


def test_a_process_that_cannot_draw_answers_none_so_the_sweep_draws_itself(journal, tmp_path):
    # Killed (or failed) before the end: draw() says so instead of returning no plots.
    with PlotProcess() as plotter:
        plotter._process.kill()
        plotter._process.wait()
        assert plotter.draw(journal, "sweep", tmp_path / "plots") is None
    with PlotProcess() as plotter:
        assert plotter.draw(journal, "no-such-study", tmp_path / "plots") is None  # its error: exit code 1
