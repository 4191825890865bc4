#!/usr/bin/env bash
# Run a command as a Slurm job array and wait for it (the interface of Kaldi's run.pl / utils/queue/local.sh).
#
#   utils/queue/slurm.sh [options] JOB=1:N LOGFILE command args...   # LOGFILE and command contain JOB
#   utils/queue/slurm.sh [options] LOGFILE command args...           # a single job
#
# Options (--opt value or --opt=value):
#   --max_jobs_run K   at most K array tasks at a time (--array=1-N%K)
#   --mem X            memory per task, e.g. 8G (sbatch --mem)
#   --gpu N            GPUs per task (sbatch --gres=gpu:N; 0 = none)
#   --time T           time limit, e.g. 4:00:00 (sbatch --time)
#   --num_threads T    CPUs per task (sbatch --cpus-per-task; also OMP_NUM_THREADS)
#   --num_nodes N      nodes per task (sbatch --nodes=N --ntasks-per-node=1; default 1): the command starts its
#                      processes on them itself, e.g. with srun (ESPnet's espnet2.bin.launch does so for multi-node
#                      DDP when its --cmd is slurm.pl: utils/queue/slurm.pl is this script under that name)
#   --name NAME        Slurm job name (default: the log file's name without .log)
#   --partition P      partition (default: $SLURM_PARTITION, else the cluster's default)
#   --config F         accepted and ignored (Kaldi compatibility)
#   --progress_interval S   seconds between progress summaries while the tasks run (default 60, or env
#                      SALIGN_PROGRESS_INTERVAL; 0: none): counts and ETA summed from the tasks' logs (see common.sh)
# Environment: SBATCH (default sbatch) and SCANCEL (default scancel) name the Slurm commands; tests point
# SBATCH at a stand-in that runs the array locally.
#
# Each task's stdout and stderr go to its log, with the same header and footer as local.sh; Slurm's own
# messages go to DIR/q/NAME.TASK.slurm.out beside the logs. The submission blocks (sbatch --wait). Exit 0 if
# every task succeeded; otherwise print "slurm.sh: M/N jobs failed; first failing log: LOG" and the last 20 lines
# of that log to stderr, and exit 1.
set -uo pipefail

prog=$(basename "$0")
sbatch=${SBATCH:-sbatch}
scancel=${SCANCEL:-scancel}
partition=${SLURM_PARTITION:-}
max_jobs_run='' mem='' gpu=0 time_limit='' num_threads=1 num_nodes=1 job_name=''
valid_options="--max_jobs_run --mem --gpu --time --num_threads --num_nodes --partition --name --config"
common=$(dirname "$(readlink -f "$0")")/common.sh
# shellcheck source-path=SCRIPTDIR source=common.sh
. "${common}"

set_option() {
  case "$1" in
    --max_jobs_run|--max-jobs-run) max_jobs_run=$2 ;;
    --mem) mem=$2 ;;
    --gpu) gpu=$2 ;;
    --time) time_limit=$2 ;;
    --num_threads|--num-threads) num_threads=$2 ;;
    --partition) partition=$2 ;;
    --num_nodes|--num-nodes) num_nodes=$2 ;;
    --name) job_name=$2 ;;
    --config) ;;
    *) return 1 ;;
  esac
}
queue_parse "$@"
[[ ${gpu} =~ ^[0-9]+$ ]] || queue_die "--gpu must be a number, got '${gpu}' (fix: e.g. --gpu 1)"
[[ ${num_nodes} =~ ^[1-9][0-9]*$ ]] || queue_die "--num_nodes must be a positive integer, got '${num_nodes}' (fix: e.g. --num_nodes 1)"
command -v "${sbatch}" > /dev/null ||
  queue_die "'${sbatch}' not found (fix: run on a Slurm login node, or use utils/queue/local.sh in cmd.sh)"

logdir=$(dirname "$(subst "${logtmpl}" "${first}")")
name=$(basename "${logtmpl}")
name=${name%.log}
[ -z "${jobvar}" ] || name=${name//${jobvar}/x}
qdir=${logdir}/q
mkdir -p "${qdir}" || queue_die "cannot create ${qdir}"
qdir=$(cd "${qdir}" && pwd)
wrapper=${qdir}/${name}.sh
rm -f "${qdir}/${name}".*.rc

# The per-task script: substitute the task id, run the command with local.sh's header/footer, record the exit code.
{
  echo '#!/usr/bin/env bash'
  printf 'jobvar=%q\nlogtmpl=%q\ncmd=%q\nrcbase=%q\nnum_threads=%q\ncd %q || exit 1\n. %q || exit 1\n' \
    "${jobvar}" "${logtmpl}" "${cmd}" "${qdir}/${name}" "${num_threads}" "$(pwd)" "${common}"
  cat <<'TASK'
id=${SLURM_ARRAY_TASK_ID:?not run as a Slurm array task}
# SRUN_CPUS_PER_TASK: an srun in the job (multi-node) gets the task's CPUs too (Slurm >= 22.05 does not pass them)
export SRUN_CPUS_PER_TASK=${num_threads}
run_logged "$(subst "${logtmpl}" "${id}")" "$(subst "${cmd}" "${id}")" "${num_threads}" \
  " on $(hostname), Slurm job ${SLURM_JOB_ID:-?}"
rc=$?
echo "${rc}" > "${rcbase}.${id}.rc"
exit "${rc}"
TASK
} > "${wrapper}" || queue_die "cannot write ${wrapper}"
chmod +x "${wrapper}"

array="${first}-${last}"
[ -z "${max_jobs_run}" ] || array+="%${max_jobs_run}"
opts=(--wait --parsable --job-name="${job_name:-${name}}" --array="${array}"
      --output="${qdir}/${name}.%a.slurm.out" --cpus-per-task="${num_threads}")
[ "${num_nodes}" -eq 1 ] || opts+=(--nodes="${num_nodes}" --ntasks-per-node=1)
[ -z "${mem}" ] || opts+=(--mem="${mem}")
[ "${gpu}" -eq 0 ] || opts+=(--gres="gpu:${gpu}")
[ -z "${time_limit}" ] || opts+=(--time="${time_limit}")
[ -z "${partition}" ] || opts+=(--partition="${partition}")

submit_out=${qdir}/${name}.submit
progress_start
"${sbatch}" "${opts[@]}" "${wrapper}" > "${submit_out}" 2>&1 &
sbatch_pid=$!
# shellcheck disable=SC2317  # invoked by the trap
on_signal() {
  local jobid
  jobid=$(grep -m1 -oE '^[0-9]+' "${submit_out}" 2>/dev/null)
  [ -z "${jobid}" ] || "${scancel}" "${jobid}" 2>/dev/null
  kill "${sbatch_pid}" 2>/dev/null
  progress_stop
  exit 130
}
trap on_signal INT TERM
wait "${sbatch_pid}"
sbatch_rc=$?
progress_stop

# shellcheck disable=SC2317  # called by count_failures and report_failures
job_rc() { cat "${qdir}/${name}.$1.rc" 2>/dev/null || echo missing; }
# shellcheck disable=SC2317
more_report() {
  if ! grep -q '^# Ended (code' "${first_failed}" 2>/dev/null; then
    echo "${prog}: the task ended without a footer (killed by Slurm? time or memory limit); see" \
      "${qdir}/${name}.${first_id}.slurm.out"
  fi
}
count_failures job_rc
if [ "${failed}" -eq "${njobs}" ] && [ "${sbatch_rc}" -ne 0 ] && ! grep -qE '^[0-9]+' "${submit_out}"; then
  queue_die "submission failed (${sbatch} exit ${sbatch_rc}): $(tail -n 5 "${submit_out}" | tr '\n' ' ')(fix: check" \
    "the sbatch options --partition, --gpu, --mem, --time of the launcher in cmd.sh)"
fi
report_failures
exit 0
