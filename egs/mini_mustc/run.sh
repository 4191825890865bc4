#!/usr/bin/env bash
# Mini MuST-C (en-es), the main job: generates a small real corpus in MuST-C v1 layout (stage 0), then runs every
# stage of the shared driver (../TEMPLATE/st.sh) with small configs and prints the ST/MT/ASR results table.
#   ./run.sh                         # everything, installing what it needs first
#   ./run.sh --stage 11              # from training on;  any option of ../TEMPLATE/st.sh can be given
#   ./run.sh --debug true            # tiny model and a few steps (CI)
#   ./run.sh --corpus_opts "--n_train 300 --n_dev 40 --n_tst 40 --n_tst_unseen 40 --n_mt_extra -1 --nj 2" \
#     --test_sets "tst-COMMON tst-HE tst-UNSEEN"   # + a test set of held-out voices, every usable MT text pair
#   ./run.sh --model_family llm      # the speech-LLM family (conf/train_st_llm.yaml: small LM + AI-STA)
#   ./run.sh --model_family llm --lm hf [--lm_path DIR]   # ... with a local Hugging Face LLM + LoRA
#                                    # (conf/train_st_llm_hf.yaml; default DIR downloads/Qwen2.5-0.5B; with
#                                    # --debug true a tiny random Qwen2 written to exp/tiny_hf_lm stands in)
set -euo pipefail
cd "$(dirname "$0")"
debug=false
lm=small
lm_path=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug|--lm|--lm_path)
      [ $# -ge 2 ] || { echo "ERROR [run.sh]: $1 needs a value" >&2; exit 2; }
      declare "${1#--}=$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
case "${lm}" in
  small|hf) ;;
  *) echo "ERROR [run.sh]: --lm ${lm}: unknown (fix: small (our LM, pre-trained here) or hf (a local HF LLM))" >&2
     exit 2 ;;
esac
root=${SALIGN_ROOT:-$(cd ../.. && pwd)}
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh

conf=conf
corpus="--n_train 300 --n_dev 40 --n_tst 40 --n_mt_extra 300 --nj 2"
own=()  # this script's own options, for the reproduce command
[ "${lm}" = small ] || own+=(--lm "${lm}")
[ -z "${lm_path}" ] || own+=(--lm_path "${lm_path}")
if [ "${debug}" = true ]; then
  conf=conf/debug
  corpus="--n_train 40 --n_dev 8 --n_tst 8 --n_mt_extra 200 --nj 2"
  own=(--debug true "${own[@]}")
fi
run_cmd="./run.sh${own[*]:+ ${own[*]}}${args[*]:+ ${args[*]}}"  # the reproduce command under the results table

# the model family's configs (an explicit --st_config/--mt_config given after this still wins)
family=salign
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --model_family ]; then family=${args[i + 1]}; fi
done
model_confs=(--mt_config "${conf}/train_mt.yaml" --st_config "${conf}/train_st_salign.yaml")
# llm: the LM is pre-trained on the corpus text with the speech-LLM config itself (text-only batches); a Hugging
# Face LM (--lm hf) is not: it is pre-trained already (in debug mode a tiny random one stands in, built here)
if [ "${family}" = llm ] && [ "${lm}" = hf ]; then
  model_confs=(--mt_config "" --st_config "${conf}/train_st_llm_hf.yaml")
  if [ -n "${lm_path}" ]; then
    model_confs+=(--st_args "--lm_conf path=${lm_path}")
  elif [ "${debug}" = true ]; then
    python -m salign.bin.make_tiny_hf_lm --out exp/tiny_hf_lm --family qwen2 --tokenizer bytelevel
  fi
elif [ "${family}" = llm ]; then
  model_confs=(--mt_config "" --st_config "${conf}/train_st_llm.yaml")
elif [ "${lm}" != small ] || [ -n "${lm_path}" ]; then
  echo "ERROR [run.sh]: --lm/--lm_path are options of the speech-LLM family (fix: add --model_family llm)" >&2
  exit 2
fi

../TEMPLATE/st.sh --run_cmd "${run_cmd}" \
  --corpus_opts "${corpus}" --mustc_root corpus --tgt_lang es \
  --nj 2 --inference_nj 1 --train_eval_size 40 \
  --nbpe 1000 --token_joint true \
  --mt_extra_src corpus/en-es/mt-extra/mt-extra.en --mt_extra_tgt corpus/en-es/mt-extra/mt-extra.es \
  "${model_confs[@]}" \
  --inference_config "${conf}/decode.yaml" --mt_init_model train.acc.best.pth --inference_model train.acc.ave.pth \
  "${args[@]}"
if [ -f RESULTS.md ]; then cat RESULTS.md; fi
