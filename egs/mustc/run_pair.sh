#!/usr/bin/env bash
# Settings shared by every MuST-C pair, called by egs/mustc/en-<tgt>/run.sh from its own directory (whose conf/ it
# uses); the environment and the job launchers of every pair are ./path.sh and ./cmd.sh beside this script. Any
# ../TEMPLATE/st.sh option given after these overrides them, e.g.
#   ./run.sh --feats_type raw --st_config conf/<model>.yaml   # 16 kHz audio (wav.scp) instead of fbank, for a config
#                                                              # that reads the wave: `frontend: default` or an encoder
#                                                              # with `input_size: 1` such as `encoder: hubert`
set -euo pipefail
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck disable=SC1091
. "${here}/path.sh"
# shellcheck disable=SC1091
. "${here}/cmd.sh"

# --model_family llm: the speech-LLM config (a pretrained LM needs no pre-training; a tiny one is pre-trained on the
# text with this same config), on the 16 kHz wave (its HuBERT encoder reads it: --feats_type raw); an explicit
# --st_config/--mt_config/--feats_type given after these still wins
confs=(--mt_config "${SALIGN_ROOT}/conf/train_mt.yaml" --st_config "${SALIGN_ROOT}/conf/train_st_salign.yaml")
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --model_family ] && [ "${args[i + 1]}" = llm ]; then
    confs=(--mt_config "" --st_config "${SALIGN_ROOT}/conf/train_st_llm.yaml" --feats_type raw)
  fi
done

# the reproduce command the driver records for each stage: the options, quoted (printf %q), less the stage range
run_cmd=./run.sh
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --stage|--stop_stage) i=$((i + 1)) ;;
    --stage=*|--stop_stage=*) ;;
    *) run_cmd+=" $(printf '%q' "${args[i]}")" ;;
  esac
done

"${here}/../TEMPLATE/st.sh" \
  --run_cmd "${run_cmd}" \
  --src_lang en \
  --train_set train --valid_set dev --test_sets "tst-COMMON tst-HE" \
  --nbpe 10000 --token_joint true --speed_perturb_factors "0.9 1.0 1.1" \
  "${confs[@]}" \
  --inference_config "${SALIGN_ROOT}/conf/decode_st.yaml" --inference_nj 8 \
  --nj 16 --ngpu 1 \
  "$@"
