"""GPU claims: runs on one machine take the free GPUs first, share evenly after, and a dead process
frees its GPU. Real flocks on real files; GPUs named by made-up uuids (no GPU needed)."""

import subprocess
import sys
import textwrap

from sweepkit.device_claims import claim

GPUS = ["gpu-aaaa", "gpu-bbbb"]


def test_runs_take_free_gpus_first_then_share_them_evenly(tmp_path):
    # Slot s is GPU s % n: three runs on two GPUs land on 0, 1, then 0 again (shared with one run).
    claims = [claim(GPUS, tmp_path) for _ in range(4)]
    assert [(c.index, c.share) for c in claims] == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_a_released_claim_frees_its_gpu_for_the_next_run(tmp_path):
    # The end of a run (release) makes its GPU the first free one again.
    first, second = claim(GPUS, tmp_path), claim(GPUS, tmp_path)
    first.release()
    third = claim(GPUS, tmp_path)
    assert (third.index, third.share, second.index) == (0, 0, 1)


def test_a_process_goes_back_to_its_previous_gpu_when_it_is_free(tmp_path):
    # A reused worker that trained on GPU 1 keeps it (one CUDA context, not two), even with GPU 0 free.
    kept = claim(GPUS, tmp_path, prefer=1)
    other = claim(GPUS, tmp_path, prefer=1)  # GPU 1 taken now: the free one wins over the preference
    assert (kept.index, other.index) == (1, 0)


def test_processes_that_see_different_gpus_agree_on_which_is_taken(tmp_path):
    # A job that sees GPU b alone (CUDA_VISIBLE_DEVICES) and one that sees both do not collide on b.
    only_b = claim(["gpu-bbbb"], tmp_path)
    both = [claim(GPUS, tmp_path) for _ in range(2)]
    assert only_b.index == 0 and [(c.index, c.share) for c in both] == [(0, 0), (0, 1)]


def test_a_killed_process_frees_its_gpu(tmp_path):
    # The kernel drops a process's flock when it dies, however it dies: no stale claim stays behind.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from sweepkit.device_claims import claim
            held = claim({GPUS!r}, Path({str(tmp_path)!r}))
            print(held.index, flush=True)
            time.sleep(600)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "0"
        taken = claim(GPUS, tmp_path)
        assert taken.index == 1
        taken.release()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert claim(GPUS, tmp_path).index == 0
