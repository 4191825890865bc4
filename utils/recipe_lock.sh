# shellcheck shell=bash
# One run at a time per recipe directory (sourced by egs/TEMPLATE/st.sh, egs/mini_mustc/compare.sh and
# egs/cs_mini/run.sh; it only defines recipe_lock). Two runs in one recipe write the same data/, dump/ and exp/ files
# and overwrite each other's (one then dies on a "corrupt" checkpoint the other was writing).
#
# recipe_lock WHAT: from now until this process and the jobs it starts have ended, hold the lock of the working
# directory (./.salign.lock, flock(1)); the file says who holds it ("PID WHAT"). A second run refuses at once: one
# line "ERROR [PROG]: another run (pid N: WHAT) is working in this recipe directory ... (fix: ...)", exit status 2.
# A run started by the holder (compare.sh's ./run.sh calls, cs_mini's st.sh calls) sees SALIGN_RECIPE_LOCK naming
# this directory's lock and goes on under it. Where no lock can be taken (no flock, a read-only recipe directory:
# nothing of it to guard), the run goes on unguarded.

recipe_lock() {
  local file=${PWD}/.salign.lock holder
  [ "${SALIGN_RECIPE_LOCK:-}" != "${file}" ] || return 0
  command -v flock > /dev/null 2>&1 || return 0
  { exec {salign_lock_fd}>>"${file}"; } 2> /dev/null || return 0
  if ! flock -n "${salign_lock_fd}"; then
    holder=$(head -n 1 "${file}" 2> /dev/null) || holder=
    echo "ERROR [$(basename "$0")]: another run (pid ${holder%% *}: ${holder#* }) is working in this recipe" \
      "directory ($(pwd)); two runs here would overwrite each other's files (fix: wait until it and its jobs" \
      "have ended, or run from a copy of the recipe directory)" >&2
    exit 2
  fi
  printf '%s %s\n' "$$" "$*" > "${file}"
  export SALIGN_RECIPE_LOCK=${file}
}
