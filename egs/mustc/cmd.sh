# shellcheck shell=bash
# Job launchers of every MuST-C pair (sourced by run_pair.sh; Kaldi's run.pl interface: JOB=1:N LOG command).
# local.sh runs on this machine; for a Slurm cluster use slurm.sh (partition from $SLURM_PARTITION) and add e.g.
# --mem 8G, --gpu 1, --time 24:00:00.
export train_cmd="${SALIGN_ROOT}/utils/queue/local.sh"
export decode_cmd="${SALIGN_ROOT}/utils/queue/local.sh"
export cuda_cmd="${SALIGN_ROOT}/utils/queue/local.sh"
# export train_cmd="${SALIGN_ROOT}/utils/queue/slurm.sh --mem 4G"
# export decode_cmd="${SALIGN_ROOT}/utils/queue/slurm.sh --mem 4G"
# export cuda_cmd="${SALIGN_ROOT}/utils/queue/slurm.sh --gpu 1 --mem 16G"
