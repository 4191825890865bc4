# shellcheck shell=bash
# Environment of every MuST-C pair (sourced by run_pair.sh): the shared recipe environment (../TEMPLATE/path.sh);
# add what these recipes need besides it here.
# shellcheck disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/../TEMPLATE/path.sh"
