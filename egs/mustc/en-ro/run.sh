#!/usr/bin/env bash
# MuST-C English->Romanian (v1; the v2 layout is read too): S-Align on the shared stage driver.
#   MUSTC_ROOT=/path/to/MUSTC_v1.0 ./run.sh [--stage N] [--stop_stage N] [--ngpu 1] [...any ../../TEMPLATE/st.sh option]
# Shared MuST-C settings: ../run_pair.sh (environment: ../path.sh, job launchers: ../cmd.sh, one for every pair);
# language-specific overrides go here (after --tgt_lang) and in conf/.
set -euo pipefail
cd "$(dirname "$0")"
exec ../run_pair.sh --tgt_lang ro "$@"
