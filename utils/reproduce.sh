# shellcheck shell=bash
# The calls behind a recipe's results (sourced by egs/TEMPLATE/st_lib.sh and egs/cs_mini/run.sh; it only defines
# functions). A run records, for each stage it finished, its own command (the recipe's command line without its stage
# range, each word quoted as printf %q quotes it) in a file of that stage; the results' "Reproduce" line is then
# made of the calls that made the stages behind them.
#
# record_call FILE COMMAND: write COMMAND to FILE (atomically).
# reproduce_line STAGE=FILE...: the calls in the FILEs, in the order given, joined by " && ": the one call when one
# made every stage (its stage range left out), else each with the --stage/--stop_stage of the stages it made in a row.
# A stage whose FILE is missing (an older version made it) is left out.

record_call() {
  mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" > "$1.tmp" && mv "$1.tmp" "$1"
}

reproduce_line() {
  local pair s f cmd prev='' line='' lo='' hi='' n=0 first='' last=''
  for pair in "$@" end=; do
    s=${pair%%=*} f=${pair#*=} cmd=''
    if [ -n "${f}" ]; then cmd=$(cat "${f}" 2> /dev/null) || cmd=''; fi
    if [ -n "${prev}" ] && [ "${cmd}" != "${prev}" ]; then  # the stages of one call in a row end here
      line="${line:+${line} && }${prev} --stage ${lo} --stop_stage ${hi}"
      n=$((n + 1)); [ -n "${first}" ] || first=${lo}
    fi
    if [ -n "${cmd}" ] && [ "${cmd}" != "${prev}" ]; then lo=${s}; fi
    prev=${cmd} hi=${s}
    [ "${s}" = end ] || last=${s}
  done
  if [ "${n}" -eq 1 ] && [ "${first}" = "${1%%=*}" ]; then line=${line% --stage "${first}" --stop_stage "${last}"}; fi
  echo "${line}"
}
