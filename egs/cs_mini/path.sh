# shellcheck shell=bash
# Environment of this recipe: the shared recipe environment (../TEMPLATE/path.sh); add what it needs besides it here.
# shellcheck disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/../TEMPLATE/path.sh"
