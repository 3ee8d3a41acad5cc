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
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["s"]  # no lock left behind


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
