#!/usr/bin/env bash
# Settings shared by every MuST-C pair, called by egs/mustc/en-<tgt>/run.sh from its own directory (whose path.sh,
# cmd.sh and conf/ it uses). Any ../TEMPLATE/st.sh option given after these overrides them, e.g.
#   ./run.sh --feats_type raw --st_config conf/<model>.yaml   # 16 kHz audio (wav.scp) instead of fbank, for a config
#                                                              # that reads the wave: `frontend: default` or an encoder
#                                                              # with `input_size: 1` such as `encoder: hubert`
set -euo pipefail
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh
export SALIGN_RUN_CMD="./run.sh${*:+ $*}"

../../TEMPLATE/st.sh \
  --src_lang en \
  --train_set train --valid_set dev --test_sets "tst-COMMON tst-HE" \
  --nbpe 10000 --token_joint true --speed_perturb_factors "0.9 1.0 1.1" \
  --mt_config "${SALIGN_ROOT}/conf/train_mt.yaml" --st_config "${SALIGN_ROOT}/conf/train_st_salign.yaml" \
  --inference_config "${SALIGN_ROOT}/conf/decode_st.yaml" --inference_nj 8 \
  --nj 16 --ngpu 1 \
  "$@"
