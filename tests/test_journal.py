"""journal.py: a torn tail is cut and kept before a write; a corrupt line elsewhere is named."""

import optuna
import pytest

from sweepkit import journal, studies
from sweepkit.errors import ConfigError


def _journal_with_two_trials(path):
    study = optuna.create_study(study_name="s", storage=studies.open_storage(str(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return path.read_bytes()


def test_a_torn_tail_is_cut_kept_aside_and_the_study_takes_new_trials(tmp_path):
    # The last record cut mid-write: repaired before the next write, the tail kept beside the journal.
    path = tmp_path / "optuna.journal"
    whole = _journal_with_two_trials(path)
    path.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "para')
    kept = journal.repair(path)
    assert path.read_bytes() == whole
    assert (
        kept is not None
        and kept.name.startswith("optuna.journal.torn-")
        and kept.read_bytes().endswith(b'"para')
    )
    study = optuna.load_study(study_name="s", storage=studies.open_storage(str(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=studies.open_storage(str(path))).trials) == 4


def test_a_sound_journal_is_left_as_it_is(tmp_path):
    path = tmp_path / "optuna.journal"
    whole = _journal_with_two_trials(path)
    assert journal.repair(path) is None and path.read_bytes() == whole
    assert not list(tmp_path.glob("*.torn-*"))


def test_a_corrupt_line_before_the_end_is_named_and_nothing_is_written(tmp_path):
    # Garbage in the middle cannot be repaired by cutting: one line naming file and line number.
    path = tmp_path / "optuna.journal"
    lines = _journal_with_two_trials(path).splitlines(keepends=True)
    damaged = b"".join([*lines[:3], b"this is not json\n", *lines[3:]])
    path.write_bytes(damaged)
    with pytest.raises(
        ConfigError, match=rf"hydra.sweeper.storage={path} is corrupt at line 4 of {len(lines) + 1}"
    ):
        journal.repair(path)
    assert path.read_bytes() == damaged


def test_readers_accept_a_torn_tail_but_not_a_corrupt_line(tmp_path):
    path = tmp_path / "optuna.journal"
    whole = _journal_with_two_trials(path)
    path.write_bytes(whole + b'{"op_co')
    journal.check(path)  # Optuna skips the tail; a report can read the study
    path.write_bytes(b'{"op_co\n' + whole)
    with pytest.raises(ConfigError, match="is corrupt at line 1"):
        journal.check(path)
