# shellcheck shell=bash
# Job launchers of the code-switch recipe (Kaldi's run.pl interface: JOB=1:N LOG command): all on this machine.
# For a Slurm cluster see ../mustc/cmd.sh.
export train_cmd="${SALIGN_ROOT}/utils/queue/local.sh"
export decode_cmd="${SALIGN_ROOT}/utils/queue/local.sh"
export cuda_cmd="${SALIGN_ROOT}/utils/queue/local.sh"
