# shellcheck shell=bash
# Environment for this recipe: salign's virtual environment and quiet, reproducible defaults.
SALIGN_ROOT=${SALIGN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
export SALIGN_ROOT
# shellcheck disable=SC1091
. "${SALIGN_ROOT}/tools/venv/bin/activate"
export PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
