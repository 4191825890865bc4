# shellcheck shell=bash
# The environment of every recipe (sourced by its path.sh): salign's virtual environment and quiet, reproducible
# defaults. SALIGN_ROOT: the salign checkout (default: the one holding this file).
SALIGN_ROOT=${SALIGN_ROOT:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)}
export SALIGN_ROOT
# shellcheck disable=SC1091
. "${SALIGN_ROOT}/tools/venv/bin/activate"
export PYTHONUNBUFFERED=1
# ESPnet's own entry points (--model_family espnet) start without nltk data downloads (utils/pyhooks/sitecustomize.py)
export PYTHONPATH=${SALIGN_ROOT}/utils/pyhooks${PYTHONPATH:+:${PYTHONPATH}}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
