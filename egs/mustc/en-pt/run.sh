#!/usr/bin/env bash
# MuST-C English->Portuguese (v1; v2 layout read too): S-Align on the shared stage driver.
#   MUSTC_ROOT=/path/to/MUSTC_v1.0 ./run.sh [--stage N] [--stop_stage N] [--ngpu 1] [...any ../../TEMPLATE/st.sh option]
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh
export SALIGN_RUN_CMD="./run.sh${*:+ $*}"

../../TEMPLATE/st.sh \
  --src_lang en --tgt_lang pt \
  --train_set train --valid_set dev --test_sets "tst-COMMON tst-HE" \
  --nbpe 10000 --token_joint true --speed_perturb_factors "0.9 1.0 1.1" \
  --mt_config "${SALIGN_ROOT}"/conf/train_mt.yaml --st_config "${SALIGN_ROOT}"/conf/train_st_salign.yaml \
  --inference_config "${SALIGN_ROOT}"/conf/decode_st.yaml --inference_nj 8 \
  --nj 16 --ngpu 1 \
  "$@"
