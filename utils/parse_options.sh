# shellcheck shell=bash
# Kaldi-compatible command-line option parser, to be *sourced* by a script after it sets its defaults:
#
#   nj=4                 # number of parallel jobs
#   stage=1
#   . utils/parse_options.sh || exit 1
#   # "$@" now holds only the positional arguments
#
# For every leading "--name value" or "--name=value" argument it sets the existing shell variable "name"
# ("--src-lang" sets "src_lang"). A name whose variable is not set is an error that lists the valid options
# (the variables the calling script assigns at the start of a line). "--help" (or "-h") prints $help_message
# if the script sets it, else the script's header comment, and exits 0. "--config FILE" sources FILE when the
# script has no "config" variable of its own. "--" ends the options. A variable holding true/false only
# accepts true/false. An error is one line on stderr, "ERROR [<script>]: what (fix: ...)", and exit status 2.
# Positional arguments are left to the script: one that takes none should check `[ $# -eq 0 ]` (st.sh does), since
# parsing stops at the first argument that is not an option.

_po_script=${BASH_SOURCE[1]:-$0}
_po_die() { echo "ERROR [$(basename "$0")]: $*" >&2; exit 2; }

_po_print_help() {
  if [ -n "${help_message:-}" ]; then
    printf '%s\n' "${help_message}"
    return
  fi
  # The header comment: the first block of comment lines after an optional shebang.
  awk 'NR == 1 && /^#!/ { next } !seen && /^[[:space:]]*$/ { next }
       /^#/ { sub(/^# ?/, ""); print; seen = 1; next } { exit }' \
    "${_po_script}"
}

_po_valid_options() {
  local names n
  names=$(grep -oE '^[[:space:]]*[a-z_][a-zA-Z0-9_]*=' "${_po_script}" 2>/dev/null | tr -d ' \t=' | sort -u)
  for n in ${names}; do
    if [ -n "${!n+x}" ]; then printf -- '--%s ' "${n}"; fi
  done
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      _po_print_help
      exit 0 ;;
    --)
      shift
      break ;;
    --*=*)
      _po_name=${1%%=*}
      _po_value=${1#*=}
      shift ;;
    --?*)
      _po_name=$1
      if [ $# -lt 2 ]; then
        _po_die "option '$1' needs a value (fix: $1 VALUE, or $1=VALUE)"
      fi
      _po_value=$2
      shift 2 ;;
    *)
      break ;;
  esac
  _po_name=${_po_name#--}
  _po_name=${_po_name//-/_}
  if [[ ! ${_po_name} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    _po_die "invalid option name '--${_po_name}' (fix: options are --name value, the name a shell variable's)"
  fi
  if [ "${_po_name}" = config ] && [ -z "${config+x}" ]; then
    if [ ! -f "${_po_value}" ]; then
      _po_die "config file '${_po_value}' does not exist (fix: check the path given to --config)"
    fi
    # shellcheck disable=SC1090
    . "${_po_value}" || exit 1
    continue
  fi
  if [ -z "${!_po_name+x}" ]; then
    _po_die "unknown option '--${_po_name}' (fix: one of $(_po_valid_options | sed 's/ $//'))"
  fi
  case "${!_po_name}" in
    true|false)
      if [ "${_po_value}" != true ] && [ "${_po_value}" != false ]; then
        _po_die "option '--${_po_name}' takes true or false, got '${_po_value}' (fix: --${_po_name} true|false)"
      fi ;;
  esac
  printf -v "${_po_name}" '%s' "${_po_value}"
done

unset _po_name _po_value _po_script
unset -f _po_print_help _po_valid_options _po_die
true
