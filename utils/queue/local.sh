#!/usr/bin/env bash
# Run a command as N parallel jobs on this machine (the interface of Kaldi's run.pl).
#
#   utils/queue/local.sh [options] JOB=1:N LOGFILE command args...   # LOGFILE and command contain JOB
#   utils/queue/local.sh [options] LOGFILE command args...           # a single job
#
# Options (--opt value or --opt=value):
#   --max_jobs_run K   run at most K jobs at a time (default: min(N, number of cores))
#   --num_threads T    OMP_NUM_THREADS of each job (default: the cores shared by the jobs running at once, i.e.
#                      cores / min(N, K), at least 1; an OMP_NUM_THREADS set by the caller caps the cores)
#   --progress_interval S   seconds between progress summaries (default 60, or env SALIGN_PROGRESS_INTERVAL; 0: none)
#   --num_nodes N      1 (the default) only: this machine is one node (more nodes: utils/queue/slurm.sh)
#   --mem X, --gpu N, --time T, --config F, --partition P, --name NAME   accepted for the Slurm launcher's sake
#                      (and for ESPnet's espnet2.bin.launch, which passes --gpu, --num_threads, --num_nodes and,
#                      from its --cmd, --name); ignored
#
# Each job's stdout and stderr go to its log, with a header (the command, start time) and a footer
# ("# Accounting: time=S threads=T" and "# Ended (code C) at DATE, elapsed time S seconds").
# A command given as one argument is run as shell code ('a JOB | b'); otherwise an argument with whitespace is
# quoted and one without is passed as-is, so a separate "|" or ">" acts as in a shell command (like run.pl).
# While the jobs run, a one-line summary of their progress (counts, ETA) from their logs on stderr every
# --progress_interval seconds (default 60; 0: none; see common.sh).
# Exit 0 if every job succeeded; otherwise print "local.sh: M/N jobs failed; first failing log: LOG" and the
# last 20 lines of that log to stderr, and exit 1. A usage error (unknown option, a job range that is not
# JOB=FIRST:LAST with whole numbers >= 1) is one line "ERROR [local.sh]: ... (fix: ...)", exit 2, before any job.
set -uo pipefail

prog=$(basename "$0")
max_jobs_run=
num_threads=
valid_options="--max_jobs_run --num_threads --num_nodes --mem --gpu --time --config --partition --name"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"

set_option() {
  case "$1" in
    --max_jobs_run|--max-jobs-run) max_jobs_run=$2 ;;
    --num_threads|--num-threads) num_threads=$2 ;;
    --num_nodes|--num-nodes)
      [ "$2" = 1 ] || queue_die "--num_nodes $2: local.sh runs jobs on this machine only" \
        "(fix: --num_nodes 1, or a cluster launcher such as utils/queue/slurm.sh)" ;;
    --mem|--gpu|--time|--config|--partition|--name) ;;
    *) return 1 ;;
  esac
}
queue_parse "$@"

if [ -z "${max_jobs_run}" ]; then
  max_jobs_run=$(nproc 2>/dev/null || echo 1)
fi
[[ ${max_jobs_run} =~ ^[1-9][0-9]*$ ]] || queue_die "--max_jobs_run must be a positive integer, got '${max_jobs_run}'" \
  "(fix: e.g. --max_jobs_run 4)"
if [ -z "${num_threads}" ]; then
  cores=${OMP_NUM_THREADS:-$(nproc 2>/dev/null || echo 1)}
  [[ ${cores} =~ ^[1-9][0-9]*$ ]] || cores=1
  at_once=$(( njobs < max_jobs_run ? njobs : max_jobs_run ))
  num_threads=$(( cores / at_once ))
  [ "${num_threads}" -ge 1 ] || num_threads=1
fi
[[ ${num_threads} =~ ^[1-9][0-9]*$ ]] || queue_die "--num_threads must be a positive integer, got '${num_threads}'" \
  "(fix: e.g. --num_threads 1)"

statusdir=$(mktemp -d "${TMPDIR:-/tmp}/local.sh.XXXXXX") || queue_die "cannot create a temporary dir"
# shellcheck disable=SC2317  # invoked by the traps below
cleanup() { progress_stop; rm -rf "${statusdir}"; }
# shellcheck disable=SC2317
on_signal() {
  local pids
  pids=$(jobs -pr)
  if [ -n "${pids}" ]; then
    # shellcheck disable=SC2086
    kill ${pids} 2>/dev/null
  fi
  cleanup
  exit 130
}
trap on_signal INT TERM
trap cleanup EXIT

run_job() {
  run_logged "$(subst "${logtmpl}" "$1")" "$(subst "${cmd}" "$1")" "${num_threads}"
  echo "$?" > "${statusdir}/$1"
}
# shellcheck disable=SC2317  # called by count_failures
job_rc() { cat "${statusdir}/$1" 2>/dev/null || echo missing; }

progress_start
for ((id = first; id <= last; id++)); do
  while [ "$(jobs -pr | wc -l)" -ge "${max_jobs_run}" ]; do
    wait -n
  done
  run_job "${id}" &
done
wait
progress_stop

count_failures job_rc
report_failures
exit 0
