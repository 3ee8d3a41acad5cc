"""studies.py: a lock that every process sharing a study's storage respects."""

import optuna


def test_study_mutex_lets_one_holder_in_at_a_time_across_storage_handles(tmp_path):
    # Each thread opens the journal on its own, as separate worker processes would.
    import threading
    import time

    from sweepkit.studies import open_storage, study_mutex

    url = str(tmp_path / "optuna.journal")
    optuna.create_study(study_name="s", storage=open_storage(url))
    inside, most_inside, lock = [0], [0], threading.Lock()

    def worker():
        study = optuna.load_study(study_name="s", storage=open_storage(url))
        with study_mutex(study, "test"):
            with lock:
                inside[0] += 1
                most_inside[0] = max(most_inside[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert most_inside[0] == 1
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == [
        "s"
    ]  # no lock left behind


def test_a_lock_left_by_a_dead_holder_is_taken_over(tmp_path):
    from sweepkit.studies import open_storage, study_mutex

    storage = open_storage(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(study_name="s", storage=storage)
    optuna.create_study(study_name="s:lock:test", storage=storage)  # its holder died
    with study_mutex(study, "test", takeover_after=0.3):
        pass
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["s"]


def test_a_held_lock_is_a_study_that_listings_can_tell_apart(tmp_path):
    from sweepkit.studies import is_lock_study, open_storage, study_mutex

    storage = open_storage(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(study_name="s", storage=storage)
    with study_mutex(study, "test"):
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        assert len(names) == 2 and [n for n in names if not is_lock_study(n)] == ["s"]


# -- opening a study from Python: studies.load ---------------------------------------------------------


def _journal_with(tmp_path, *names):
    from sweepkit.studies import open_storage

    path = tmp_path / "optuna.journal"
    for name in names:
        study = optuna.create_study(study_name=name, storage=open_storage(str(path)), direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return path


def test_load_opens_a_journal_file_that_optuna_load_study_cannot(tmp_path):
    # optuna.load_study(storage="optuna.journal") fails (a path is not a URL); studies.load opens it,
    # taking the only study when no name is given.
    import pytest

    from sweepkit.studies import load

    path = _journal_with(tmp_path, "s")
    with pytest.raises(Exception):
        optuna.load_study(study_name="s", storage=str(path))
    study = load(path)
    assert study.study_name == "s" and len(study.trials) == 2


def test_load_opens_a_sweep_folder_through_its_study_yaml(tmp_path):
    # A sweep folder (multirun/<study>) names its study and storage in study.yaml.
    from sweepkit.studies import load

    path = _journal_with(tmp_path, "a", "b")
    folder = tmp_path / "multirun" / "b"
    folder.mkdir(parents=True)
    (folder / "study.yaml").write_text(f"study_name: b\nstorage: {path}\n")
    assert load(folder).study_name == "b"


def test_load_opens_a_sqlite_url(tmp_path, monkeypatch):
    # An RDB URL, a relative SQLite path taken from the working directory.
    from sweepkit.studies import load

    optuna.create_study(study_name="q", storage=f"sqlite:///{tmp_path / 'study.db'}")
    monkeypatch.chdir(tmp_path)
    assert load("sqlite:///study.db").study_name == "q"


def test_load_without_a_name_among_several_studies_lists_them_in_one_line(tmp_path):
    # Several studies and no name: a ConfigError whose one line lists the names (not the lock studies).
    import pytest

    from sweepkit.errors import ConfigError
    from sweepkit.studies import load, open_storage

    path = _journal_with(tmp_path, "first", "second")
    optuna.create_study(study_name="first:lock:join", storage=open_storage(str(path)))  # a held lock
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "\n" not in str(err.value) and "first, second" in str(err.value) and "lock" not in str(err.value)
    assert load(path, "second").study_name == "second"


def test_load_of_a_missing_journal_creates_nothing(tmp_path):
    # A path that does not exist is an error, not a new empty journal (read only).
    import pytest

    from sweepkit.errors import ConfigError
    from sweepkit.studies import load

    for target in (tmp_path / "optuna.journal", f"sqlite:///{tmp_path / 'none.db'}"):
        with pytest.raises(ConfigError, match="does not exist"):
            load(target)
    assert list(tmp_path.iterdir()) == []


# -- metric names ------------------------------------------------------------------------------------


def test_name_metrics_names_an_unnamed_study_and_refuses_other_names(tmp_path):
    # A study made before names were recorded gets them; one that records others is refused.
    import pytest

    from sweepkit.errors import ConfigError
    from sweepkit.studies import metric_names, name_metrics

    study = optuna.create_study(direction="maximize")
    assert metric_names(study) == ["Objective Value"]
    name_metrics(study, ["val/acc"])
    name_metrics(study, ["val/acc"])  # a resume: the same names
    assert study.metric_names == ["val/acc"] and metric_names(study) == ["val/acc"]
    with pytest.raises(ConfigError, match="objective.metric"):
        name_metrics(study, ["val/loss"])


def test_a_lock_study_is_made_and_removed_without_a_log_line(tmp_path):
    # Optuna logs "A new study created ... with name: <study>:lock:<purpose>" for every lock: not shown.
    import logging

    from sweepkit.studies import open_storage, study_mutex

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.addHandler(handler)
    level = optuna_logger.level
    optuna_logger.setLevel(logging.INFO)
    try:
        study = optuna.create_study(study_name="s", storage=open_storage(str(tmp_path / "optuna.journal")))
        with study_mutex(study, "mlflow-parent"):
            pass
    finally:
        optuna_logger.removeHandler(handler)
        optuna_logger.setLevel(level)
    messages = [r.getMessage() for r in records]
    assert any("with name: s" in m for m in messages)  # the study itself is still announced
    assert not [m for m in messages if ":lock:" in m]
