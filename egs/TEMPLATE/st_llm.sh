# shellcheck shell=bash disable=SC2154  # the driver's options and state (st.sh) are set where this is sourced
# Stage 11 of the speech-LLM family (salign.bin.llm_train on the same dumps, shapes and token lists as S-Align),
# sourced by st.sh before it runs; it uses the driver's options and helpers (train_once, fresh, log, text_data):
#   11a  with `lm: tiny` (our small LM) and --pretrain_mt true: the LM is pre-trained on the recipe's text -- the
#        model's text-only batches (transcript -> translation behind the MT prompt), the counterpart of S-Align's MT
#        pre-training -- and the ST training starts from its LM (--init_param <model>:lm:lm). A pretrained Hugging
#        Face LM (`lm: hf`) is not pre-trained again.
#   11b  with `align: ot` (AI-STA): a warm-up without the alignment loss (${llm_warmup_args}), then
#   11c  salign.bin.select_layers on the warm-up model: per-LM-layer speech->transcript retrieval on the dev set
#        -> ${st_exp}/layers.yaml (stamped: redone only when the warm-up model, the dev set or the options change);
#   11d  the training, with --align_conf layers_file=<that file>: no hand-fixed layer list. Another --align method
#        trains with its config as is (only `ot` reads a layers file).
llm_stage11() {
  local vals lm align input_args=() norm_args=() init=() align_args=() inputs td tv
  vals=$(python -m salign.bin.config_value --config "${st_config}" lm align) || exit 2
  local v=()
  mapfile -t v <<< "${vals}"  # one line per key; $(...) dropped a trailing empty one (an absent align)
  lm=${v[0]:-}; align=${v[1]:-}
  [ -n "${lm}" ] || lm=tiny
  # the prompts name the recipe's languages, whatever the config says
  local langs=(--model_conf "src_lang=${src_lang}" --model_conf "tgt_lang=${tgt_lang}")
  if [ "${feats_type}" != raw ]; then
    input_args=(--input_size "$(head -n 1 "${stats}/${train_data}/speech_shape" | cut -d, -f2)")
    norm_args=(--normalize global_mvn --normalize_conf "stats_file=${featdir}/${train_data}/cmvn.npz")
  fi
  if [ "${pretrain_mt}" = true ] && [ "${lm}" = tiny ]; then
    local mt_input=("${input_args[@]}")
    [ "${#mt_input[@]}" -gt 0 ] || mt_input=(--input_size 80)
    read -ra td <<< "$(text_data train "${filtdir}/mt_train")"
    read -ra tv <<< "$(text_data valid "${filtdir}/${valid_set}")"
    # shellcheck disable=SC2086
    train_once 11a "LM pre-training on the recipe's text (text-only batches)" "${mt_exp}" \
      "${mt_exp}/${mt_init_model}" "" \
      python -m salign.bin.llm_train --config "${mt_config:-${st_config}}" --output_dir "${mt_exp}" \
        "${token_args[@]}" "${mt_input[@]}" "${langs[@]}" --resume true --align none "${td[@]}" "${tv[@]}" \
        --train_shape_file "${stats}/mt_train/src_text_shape" --train_shape_file "${stats}/mt_train/text_shape" \
        --valid_shape_file "${stats}/${valid_set}/src_text_shape" --valid_shape_file "${stats}/${valid_set}/text_shape" \
        --fold_length 150 --fold_length 150 ${mt_args}
    init=(--init_param "${mt_exp}/${mt_init_model}:lm:lm")
  elif [ "${pretrain_mt}" = true ]; then
    log "stage 11a: skipped: lm: ${lm} is a pre-trained LM (only our small LM, lm: tiny, is pre-trained here)"
  fi
  if [ "${train_st}" != true ]; then log "stage 11b-d: skipped: --train_st false"; return 0; fi
  # the acoustic encoder (and CTC head, where the model has one) from the ASR pre-training (st.sh --pretrain_asr)
  local asr_model
  if [ "${pretrain_asr}" = true ]; then asr_model=$(asr_init); init+=(--init_from_asr "${asr_model}"); fi
  speech_data_args
  local data=("${input_args[@]}" "${norm_args[@]}" "${init[@]}" "${langs[@]}" "${speech_data[@]}")
  inputs="${featdir}/${train_data}/.done ${featdir}/${valid_set}/.done"
  local logs=("${st_exp}/train.log")
  [ "${pretrain_asr}" = true ] && logs=("${asr_exp}/train.log" "${logs[@]}")
  [ "${pretrain_mt}" = true ] && [ "${lm}" = tiny ] && logs=("${mt_exp}/train.log" "${logs[@]}")
  if [ "${align}" = ot ]; then
    local warm=${st_exp}_warmup layers=${st_exp}/layers.yaml
    local dev_scp=${filtdir}/${valid_set}/${speech_scp} dev_src=${filtdir}/${valid_set}/text.${src_lang}
    # shellcheck disable=SC2086
    train_once 11b "warm-up of the speech LLM without the alignment loss" "${warm}" "${warm}/${inference_model}" \
      "${inputs}" python -m salign.bin.llm_train --config "${st_config}" --output_dir "${warm}" "${token_args[@]}" \
        --resume true "${data[@]}" ${st_args} --align none ${llm_warmup_args}
    local sel=(--stamp "${st_exp}/.layers.stamp" --input "${warm}/config.yaml" "${warm}/${inference_model}"
               "${dev_scp}" "${dev_src}" --option "select_layers_args=${select_layers_args}")
    if fresh "${sel[@]}" --what "${layers}"; then
      log "stage 11c: ${layers} is complete (its stamp is up to date: same warm-up model, dev set and options)"
    else
      log "stage 11c: LM layers for OT by speech->transcript retrieval on ${valid_set} -> ${layers} (${reason})"
      mkdir -p "${st_exp}"
      # shellcheck disable=SC2086
      python -m salign.bin.select_layers --st_train_config "${warm}/config.yaml" \
        --st_model_file "${warm}/${inference_model}" --feats "${dev_scp}" --src_text "${dev_src}" \
        --out "${layers}" ${select_layers_args}
      python -m salign.bin.stamp write "${sel[@]}" --output "${layers}"
    fi
    align_args=(--align_conf "layers_file=${layers}")
    inputs="${inputs} ${layers}"
    logs=("${warm}/train.log" "${logs[@]}")
  fi
  # shellcheck disable=SC2086
  train_once 11d "speech-LLM training (align: ${align:-none})" "${st_exp}" "${st_exp}/${inference_model}" \
    "${inputs}" python -m salign.bin.llm_train --config "${st_config}" --output_dir "${st_exp}" "${token_args[@]}" \
      --resume true "${data[@]}" "${align_args[@]}" ${st_args}
  python -m salign.bin.train_summary "${logs[@]}"
}
