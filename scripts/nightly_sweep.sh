#!/usr/bin/env bash
# Resume a sweep every night until its study holds N_TRIALS finished trials: one sweep worker
# (scripts/slurm_sweep_array.sbatch, run here outside an array) started by scrontab or cron.
# The same command resumes the same study, so each night adds trials; once the study is full,
# a night's run launches none and ends at once (then remove the line).
#
# Slurm (scrontab -e); the #SCRON lines are the job's sbatch options:
#   #SCRON --job-name=sweepkit-nightly --time=07:00:00 --signal=B:USR1@120 --gres=gpu:1 --cpus-per-task=4 --mem=16G
#   0 22 * * * LAUNCH_DIR=/shared/sweeps STUDY=cifar_lr N_TRIALS=300 /shared/sweepkit/scripts/nightly_sweep.sh
# cron (crontab -e), on a machine of its own; timeout warns the run (USR1: the trial saves and
# stops) before the day starts, and kills it 5 minutes later if it is still going:
#   0 22 * * * LAUNCH_DIR=$HOME/sweeps STUDY=cifar_lr N_TRIALS=300 SWEEPKIT_TRAIN=$HOME/sweepkit/.venv/bin/sweepkit-train timeout -s USR1 -k 5m 9h $HOME/sweepkit/scripts/nightly_sweep.sh
#
# Environment: as scripts/slurm_sweep_array.sbatch (LAUNCH_DIR, PRESET, STUDY, STORAGE, N_TRIALS,
# SAMPLER_SEED, EXTRA_OVERRIDES, SWEEPKIT_TRAIN); LAUNCH_DIR is required here, since cron starts
# in the home folder. Each night's output goes to $LAUNCH_DIR/nightly/<study>-<date>.log.
set -euo pipefail

if [[ -z "${LAUNCH_DIR:-}" ]]; then
    echo "nightly_sweep.sh: set LAUNCH_DIR to the sweep's launch directory (where multirun/ and the study live)" >&2
    exit 2
fi
export LAUNCH_DIR
STUDY="${STUDY:-${PRESET:-lr_batch_optimizer}}"
export STUDY

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$LAUNCH_DIR/nightly"
log="$LAUNCH_DIR/nightly/$STUDY-$(date +%Y-%m-%d).log"

# One night's run at a time: if yesterday's is still going, tonight's is skipped.
exec 9> "$LAUNCH_DIR/nightly/$STUDY.lock"
if ! flock --nonblock 9; then
    echo "nightly_sweep.sh: a run of study $STUDY is still going; not starting another" | tee -a "$log" >&2
    exit 0
fi

echo "nightly_sweep.sh: $(date --iso-8601=seconds) resuming study $STUDY" >> "$log"
# exec: the sweep becomes the job's main process (Slurm's and timeout's signals reach it) and
# keeps the lock (file descriptor 9) until it ends.
exec "$here/slurm_sweep_array.sbatch" >> "$log" 2>&1
