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
  progress_interval=${SALIGN_PROGRESS_INTERVAL:-60}
  while [ $# -gt 0 ]; do
    case "$1" in
      --help|-h) queue_usage; exit 0 ;;
      --*=*) opt=${1%%=*}; val=${1#*=}; shift ;;
      --*) [ $# -ge 2 ] || queue_die "option '$1' needs a value (fix: $1 VALUE)"; opt=$1; val=$2; shift 2 ;;
      *) break ;;
    esac
    case "${opt}" in
      --progress_interval|--progress-interval) progress_interval=${val} ;;
      *) set_option "${opt}" "${val}" ||
           queue_die "unknown option '${opt}' (fix: one of ${valid_options} --progress_interval)" ;;
    esac
  done
  [[ ${progress_interval} =~ ^[0-9]+$ ]] || queue_die "--progress_interval must be a whole number of seconds, got" \
    "'${progress_interval}' (fix: e.g. --progress_interval 60, or 0 for no progress summary)"
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

# The progress summary while the jobs run: tools that report progress (salign.utils.progress: feature extraction,
# decoding) write lines "LABEL: DONE/TOTAL UNIT (P%), ELAPSED[, ETA T | , done]" into their job logs; every
# --progress_interval seconds (default 60, or env SALIGN_PROGRESS_INTERVAL; 0: none) the launcher prints one line on
# stderr summing the latest line of each series over the jobs, e.g.
#   local.sh: dump/fbank/train/log/make_fbank.JOB.log: 1234/5000 utterances (25%), 2.5 min, ETA 7.5 min; jobs: 2
#   running, 1 done, 1 waiting
# (a total with "~" includes an estimate for jobs that have not reported yet: the mean of those that have), and once
# more when the jobs have ended if it printed any. The job logs are only read.

# progress_line: that line now, from the logs written since the jobs started (an older log is a previous run's);
# nothing before any job has reported progress.
progress_line() {
  local id log logs=()
  for ((id = first; id <= last; id++)); do
    log=$(subst "${logtmpl}" "${id}")
    if [ -f "${log}" ] && [ "${log}" -nt "${progress_marker}" ]; then logs+=("${log}"); fi
  done
  [ "${#logs[@]}" -gt 0 ] || return 0
  awk -v now="$(date +%s)" -v start="${progress_t0}" -v waiting="$((njobs - ${#logs[@]}))" \
      -v prog="${prog}" -v name="${logtmpl}" '
    function dur(s) {
      if (s < 90) return sprintf("%.0f s", s)
      if (s < 5400) return sprintf("%.1f min", s / 60)
      return sprintf("%.1f h", s / 3600)
    }
    match($0, /: [0-9]+\/[0-9]+ [A-Za-z_]+ \([0-9]+%\), /) {
      split(substr($0, RSTART + 2, RLENGTH - 2), f, /[\/ ]/)
      key = FILENAME SUBSEP substr($0, 1, RSTART - 1)
      done[key] = f[1]; total[key] = f[2]
      if (unit == "") unit = f[3]
      reported[FILENAME] = 1
    }
    /^# Ended \(code / { ended[FILENAME] = 1 }
    END {
      for (k in done) { d += done[k]; t += total[k] }
      for (i = 1; i < ARGC; i++) {
        if (ARGV[i] in ended) finished++; else running++
        if (ARGV[i] in reported) nrep++; else if (!(ARGV[i] in ended)) unknown++
      }
      if (!nrep) exit
      unknown += waiting
      approx = ""
      if (unknown > 0) { t += unknown * t / nrep; approx = "~" }
      t = int(t + 0.5)
      el = now - start
      line = sprintf("%s: %s: %d/%s%d %s (%d%%), %s", prog, name, d, approx, t, unit, t ? 100 * d / t : 0, dur(el))
      if (d > 0 && d < t) line = line ", ETA " approx dur(el * (t - d) / d)
      printf "%s; jobs: %d running, %d done, %d waiting\n", line, running - 0, finished - 0, waiting
    }' "${logs[@]}"
}

# progress_start: start the summary loop in the background (not one of the launcher's jobs: it is disowned, so the
# launcher's `jobs` and `wait` do not see it); it ends with the launcher. progress_stop ends it, with a last line if
# it printed any.
progress_start() {
  progress_pid='' progress_marker=''
  [ "${progress_interval}" -gt 0 ] || return 0
  progress_t0=$(date +%s)
  progress_marker=$(mktemp "${TMPDIR:-/tmp}/queue_progress.XXXXXX") || return 0
  # a log counts when it is newer than this: a second back, as file times are coarser than the jobs' start
  touch -d "@$((progress_t0 - 1))" "${progress_marker}"
  local parent=$$
  (
    trap 'kill "${s:-}" 2>/dev/null; exit 0' TERM
    while kill -0 "${parent}" 2>/dev/null; do
      sleep "${progress_interval}" > /dev/null 2>&1 &
      s=$!
      wait "${s}"
      line=$(progress_line)
      if [ -n "${line}" ]; then echo "${line}" >&2; : > "${progress_marker}.said"; fi
    done
  ) &
  progress_pid=$!
  disown "${progress_pid}"
}

progress_stop() {
  [ -n "${progress_pid:-}" ] || return 0
  kill "${progress_pid}" 2>/dev/null
  local i
  for ((i = 0; i < 40; i++)); do kill -0 "${progress_pid}" 2>/dev/null || break; sleep 0.05; done
  if [ -f "${progress_marker}.said" ]; then progress_line >&2; fi
  rm -f "${progress_marker}" "${progress_marker}.said"
  progress_pid=''
}
