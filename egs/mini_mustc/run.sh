#!/usr/bin/env bash
# Mini MuST-C (en-es), the main job: generates a small real corpus in MuST-C v1 layout (stage 0), then runs every
# stage of the shared driver (../TEMPLATE/st.sh) with small configs and prints the ST/MT/ASR results table.
#   ./run.sh                         # everything, installing what it needs first
#   ./run.sh --stage 11              # from training on;  any option of ../TEMPLATE/st.sh can be given
#   ./run.sh --debug true            # tiny model and a few steps (CI)
#   ./run.sh --model_family llm      # the speech-LLM family (conf/train_st_llm.yaml: small LM + AI-STA)
set -euo pipefail
cd "$(dirname "$0")"
debug=false
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --debug ]; then debug=$2; shift 2; else args+=("$1"); shift; fi
done
root=${SALIGN_ROOT:-$(cd ../.. && pwd)}
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh

conf=conf
corpus="--n_train 300 --n_dev 40 --n_tst 40 --n_mt_extra 300 --nj 2"
run_cmd="./run.sh${args[*]:+ ${args[*]}}"  # the reproduce command under the results table
if [ "${debug}" = true ]; then
  conf=conf/debug
  corpus="--n_train 40 --n_dev 8 --n_tst 8 --n_mt_extra 200 --nj 2"
  run_cmd="./run.sh --debug true${args[*]:+ ${args[*]}}"
fi

# the model family's configs (an explicit --st_config/--mt_config given after this still wins)
family=salign
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --model_family ]; then family=${args[i + 1]}; fi
done
model_confs=(--mt_config "${conf}/train_mt.yaml" --st_config "${conf}/train_st_salign.yaml")
# llm: the LM is pre-trained on the corpus text with the speech-LLM config itself (text-only batches)
[ "${family}" = llm ] && model_confs=(--mt_config "" --st_config "${conf}/train_st_llm.yaml")

../TEMPLATE/st.sh --run_cmd "${run_cmd}" \
  --corpus_opts "${corpus}" --mustc_root corpus --tgt_lang es \
  --nj 2 --inference_nj 1 --train_eval_size 40 \
  --nbpe 1000 --token_joint true \
  --mt_extra_src corpus/en-es/mt-extra/mt-extra.en --mt_extra_tgt corpus/en-es/mt-extra/mt-extra.es \
  "${model_confs[@]}" \
  --inference_config "${conf}/decode.yaml" --mt_init_model train.acc.best.pth --inference_model train.acc.ave.pth \
  "${args[@]}"
if [ -f RESULTS.md ]; then cat RESULTS.md; fi
