# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # prog and valid_options come from the launcher; it reads what is set here
# What the job launchers utils/queue/local.sh and slurm.sh share (Kaldi's run.pl interface): their command line,
# the JOB substitution, the log header and footer of each job, and the failure report. Sourced by both (and by
# slurm.sh's per-task script); it only defines functions. A launcher sets `prog` and `valid_options` and defines
# `set_option OPT VALUE` (returns 1 for an option it does not know) before it calls queue_parse "$@".

queue_usage() { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p;}' "$0"; }
# a usage error: one line "ERROR [PROG]: what (fix: ...)" on stderr, exit 2, before any job starts or any log is made
queue_die() { echo "ERROR [${prog}]: $*" >&2; exit 2; }

# queue_parse [options] [JOBVAR=FIRST:LAST] LOGFILE COMMAND...: each option goes to set_option (--help prints the
# launcher's header comment); sets jobvar, first, last, njobs, logtmpl and cmd (one argument: shell code; several:
# an argument with whitespace is quoted, one without is passed as-is, so a separate "|" or ">" acts as in a shell).
queue_parse() {
  local opt val arg
  while [ $# -gt 0 ]; do
    case "$1" in
      --help|-h) queue_usage; exit 0 ;;
      --*=*) opt=${1%%=*}; val=${1#*=}; shift ;;
      --*) [ $# -ge 2 ] || queue_die "option '$1' needs a value (fix: $1 VALUE)"; opt=$1; val=$2; shift 2 ;;
      *) break ;;
    esac
    set_option "${opt}" "${val}" || queue_die "unknown option '${opt}' (fix: one of ${valid_options})"
  done
  jobvar='' first=1 last=1
  if [[ $# -gt 0 && $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([1-9][0-9]*):([1-9][0-9]*)$ ]]; then
    jobvar=${BASH_REMATCH[1]} first=$((10#${BASH_REMATCH[2]})) last=$((10#${BASH_REMATCH[3]}))
    shift
    [ "${first}" -le "${last}" ] ||
      queue_die "empty job range ${jobvar}=${first}:${last} (fix: ${jobvar}=1:N with N >= 1, e.g. --nj 1)"
  elif [[ $# -gt 0 && $1 =~ ^[A-Za-z_][A-Za-z0-9_]*=.*:.*$ ]]; then  # a range that is not FIRST:LAST of numbers
    # (not taken for the log file's name: that would write a stray file named after it)
    queue_die "bad job range '$1': FIRST and LAST must be whole numbers >= 1 (fix: e.g. JOB=1:4; --nj N >= 1)"
  fi
  [ $# -ge 2 ] || { queue_usage >&2; exit 2; }
  logtmpl=$1
  shift
  if [ -n "${jobvar}" ] && [ "${last}" -gt "${first}" ] && [[ ${logtmpl} != *"${jobvar}"* ]]; then
    queue_die "log file '${logtmpl}' does not contain '${jobvar}': the jobs would share one log" \
      "(fix: name the log with ${jobvar}, e.g. log/x.${jobvar}.log)"
  fi
  cmd=
  if [ $# -eq 1 ]; then
    cmd=$1
  else
    for arg in "$@"; do
      if [[ ${arg} =~ [[:space:]] || -z ${arg} ]]; then cmd+=$(printf '%q' "${arg}")' '; else cmd+="${arg} "; fi
    done
  fi
  njobs=$((last - first + 1))
}

# subst TEXT ID: TEXT with the job variable replaced by ID (unchanged for a single job without JOB=).
subst() { if [ -n "${jobvar}" ]; then echo "${1//${jobvar}/$2}"; else echo "$1"; fi; }

# run_logged LOG COMMAND THREADS [WHERE]: run the shell code COMMAND with OMP_NUM_THREADS=THREADS, its stdout and
# stderr in LOG between a header ("# COMMAND", "# Started at DATE[WHERE]") and a footer ("# Accounting: time=S
# threads=T", "# Ended (code C) at DATE, elapsed time S seconds"); returns its exit code (1 if LOG cannot be written).
run_logged() {
  local log=$1 c=$2 threads=$3 where=${4:-} start rc end
  mkdir -p "$(dirname "${log}")" || return 1
  start=$(date +%s)
  { echo "# ${c}"; echo "# Started at $(date)${where}"; } > "${log}" || return 1
  OMP_NUM_THREADS=${threads} bash -c "${c}" >> "${log}" 2>&1 < /dev/null
  rc=$?
  end=$(date +%s)
  {
    echo "# Accounting: time=$((end - start)) threads=${threads}"
    echo "# Ended (code ${rc}) at $(date), elapsed time $((end - start)) seconds"
  } >> "${log}"
  return "${rc}"
}

# count_failures RC_FUNCTION: the jobs FIRST..LAST whose `RC_FUNCTION ID` does not print 0; sets failed,
# first_failed (that job's log) and first_id.
count_failures() {
  local id rc
  failed=0 first_failed='' first_id=''
  for ((id = first; id <= last; id++)); do
    rc=$("$1" "${id}")
    if [ "${rc}" != 0 ]; then
      failed=$((failed + 1))
      [ -n "${first_failed}" ] || { first_failed=$(subst "${logtmpl}" "${id}"); first_id=${id}; }
    fi
  done
}

# report_failures: after count_failures, when a job failed: "PROG: M/N jobs failed; first failing log: LOG" and the
# last 20 lines of that log on stderr (and whatever the launcher's optional `more_report` adds), then exit 1.
report_failures() {
  [ "${failed}" -gt 0 ] || return 0
  {
    echo "${prog}: ${failed}/${njobs} jobs failed; first failing log: ${first_failed}"
    if [ -f "${first_failed}" ]; then
      tail -n 20 "${first_failed}" | sed 's/^/  | /'
    fi
    if declare -F more_report > /dev/null; then more_report; fi
  } >&2
  exit 1
}
