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
#   --num_nodes N      1 (the default) only: this machine is one node (more nodes: utils/queue/slurm.sh)
#   --mem X, --gpu N, --time T, --config F, --partition P, --name NAME   accepted for the Slurm launcher's sake
#                      (and for ESPnet's espnet2.bin.launch, which passes --gpu, --num_threads, --num_nodes and,
#                      from its --cmd, --name); ignored
#
# Each job's stdout and stderr go to its log, with a header (the command, start time) and a footer
# ("# Accounting: time=S threads=T" and "# Ended (code C) at DATE, elapsed time S seconds").
# A command given as one argument is run as shell code ('a JOB | b'); otherwise an argument with whitespace is
# quoted and one without is passed as-is, so a separate "|" or ">" acts as in a shell command (like run.pl).
# Exit 0 if every job succeeded; otherwise print "local.sh: M/N jobs failed; first failing log: LOG" and the
# last 20 lines of that log to stderr, and exit 1.
set -uo pipefail

prog=$(basename "$0")
max_jobs_run=
num_threads=

usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p;}' "$0"; }
die() { echo "${prog}: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --*=*) opt=${1%%=*}; val=${1#*=}; shift ;;
    --*) [ $# -ge 2 ] || die "option '$1' needs a value"; opt=$1; val=$2; shift 2 ;;
    *) break ;;
  esac
  case "${opt}" in
    --max_jobs_run|--max-jobs-run) max_jobs_run=${val} ;;
    --num_threads|--num-threads) num_threads=${val} ;;
    --num_nodes|--num-nodes)
      [ "${val}" = 1 ] || die "--num_nodes ${val}: local.sh runs jobs on this machine only" \
        "(fix: --num_nodes 1, or a cluster launcher such as utils/queue/slurm.sh)" ;;
    --mem|--gpu|--time|--config|--partition|--name) ;;
    *) die "unknown option '${opt}'; valid: --max_jobs_run --num_threads --num_nodes --mem --gpu --time --config" \
         "--partition --name" ;;
  esac
done

jobvar='' first=1 last=1
if [[ $# -gt 0 && $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+):([0-9]+)$ ]]; then
  jobvar=${BASH_REMATCH[1]} first=${BASH_REMATCH[2]} last=${BASH_REMATCH[3]}
  shift
  [ "${first}" -le "${last}" ] || die "empty job range ${jobvar}=${first}:${last}"
fi
[ $# -ge 2 ] || { usage >&2; exit 1; }
logtmpl=$1
shift
if [ -n "${jobvar}" ] && [ "${last}" -gt "${first}" ] && [[ ${logtmpl} != *"${jobvar}"* ]]; then
  die "log file '${logtmpl}' does not contain '${jobvar}': the jobs would share one log"
fi
cmd=
if [ $# -eq 1 ]; then
  cmd=$1  # a single argument is shell code: 'a JOB | b; c'
else
  for arg in "$@"; do
    if [[ ${arg} =~ [[:space:]] || -z ${arg} ]]; then cmd+=$(printf '%q' "${arg}")' '; else cmd+="${arg} "; fi
  done
fi

njobs=$((last - first + 1))
if [ -z "${max_jobs_run}" ]; then
  max_jobs_run=$(nproc 2>/dev/null || echo 1)
fi
[[ ${max_jobs_run} =~ ^[1-9][0-9]*$ ]] || die "--max_jobs_run must be a positive integer, got '${max_jobs_run}'"
if [ -z "${num_threads}" ]; then
  cores=${OMP_NUM_THREADS:-$(nproc 2>/dev/null || echo 1)}
  [[ ${cores} =~ ^[1-9][0-9]*$ ]] || cores=1
  at_once=$(( njobs < max_jobs_run ? njobs : max_jobs_run ))
  num_threads=$(( cores / at_once ))
  [ "${num_threads}" -ge 1 ] || num_threads=1
fi
[[ ${num_threads} =~ ^[1-9][0-9]*$ ]] || die "--num_threads must be a positive integer, got '${num_threads}'"

statusdir=$(mktemp -d "${TMPDIR:-/tmp}/local.sh.XXXXXX") || die "cannot create a temporary dir"
# shellcheck disable=SC2317  # invoked by the traps below
cleanup() { rm -rf "${statusdir}"; }
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

subst() { if [ -n "${jobvar}" ]; then echo "${1//${jobvar}/$2}"; else echo "$1"; fi; }

run_job() {
  local id=$1 log c start rc end
  log=$(subst "${logtmpl}" "${id}")
  c=$(subst "${cmd}" "${id}")
  mkdir -p "$(dirname "${log}")" || { echo 1 > "${statusdir}/${id}"; return; }
  start=$(date +%s)
  {
    echo "# ${c}"
    echo "# Started at $(date)"
  } > "${log}" || { echo 1 > "${statusdir}/${id}"; return; }
  OMP_NUM_THREADS=${num_threads} bash -c "${c}" >> "${log}" 2>&1 < /dev/null
  rc=$?
  end=$(date +%s)
  {
    echo "# Accounting: time=$((end - start)) threads=${num_threads}"
    echo "# Ended (code ${rc}) at $(date), elapsed time $((end - start)) seconds"
  } >> "${log}"
  echo "${rc}" > "${statusdir}/${id}"
}

for ((id = first; id <= last; id++)); do
  while [ "$(jobs -pr | wc -l)" -ge "${max_jobs_run}" ]; do
    wait -n
  done
  run_job "${id}" &
done
wait

failed=0 first_failed=
for ((id = first; id <= last; id++)); do
  rc=$(cat "${statusdir}/${id}" 2>/dev/null || echo missing)
  if [ "${rc}" != 0 ]; then
    failed=$((failed + 1))
    [ -n "${first_failed}" ] || first_failed=$(subst "${logtmpl}" "${id}")
  fi
done
if [ "${failed}" -gt 0 ]; then
  {
    echo "${prog}: ${failed}/${njobs} jobs failed; first failing log: ${first_failed}"
    tail -n 20 "${first_failed}" 2>/dev/null | sed 's/^/  | /'
  } >&2
  exit 1
fi
exit 0
