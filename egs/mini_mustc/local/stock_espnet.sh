#!/usr/bin/env bash
# The "stock ESPnet" row of compare.sh: ESPnet's own ST model (espnet2 STTask / ESPnetSTModel), trained with
# `python -m espnet2.bin.st_train` on the dumps, shape files, CMVN stats and token list the driver made
# (stages 0-10 of ../TEMPLATE/st.sh), with no MT pre-training; decoded as ST with `python -m espnet2.bin.st_inference`
# (ESPnet has no MT path in this model, and decodes ASR only in its multi-decoder variant, so there are no MT/ASR
# results); scored with `python -m salign.bin.score`. Nothing else (no packing, no gap analysis: salign's analysis
# needs a shared textual encoder). Resumable: training resumes from its checkpoint, finished decodes are skipped.
#
#   local/stock_espnet.sh [--config conf/compare/train_st_stock_espnet.yaml] [--tag stock_espnet] [--ngpu 0]
#                         [--test_sets "tst-COMMON tst-HE"] [--inference_config conf/decode.yaml] ...
#   -> exp/st_<tag>/{config.yaml,train.log,valid.acc.ave.pth}, exp/st_<tag>/decode_st_<set>/score/result.json
set -euo pipefail

config=conf/compare/train_st_stock_espnet.yaml  # ESPnet STTask training config
tag=stock_espnet        # experiment name: exp/st_<tag>
ngpu=0                  # GPUs for training (ESPnet's --ngpu)
inference_nj=1          # parallel jobs for decoding
dumpdir=dump
expdir=exp
src_lang=en
tgt_lang=es
train_set=train
valid_set=dev
test_sets="tst-COMMON tst-HE"
train_eval_set=train_subset  # also decoded when dump/filtered/<it> exists (stage 4 with --train_eval_size > 0)
token_dir=data/token_list/joint  # bpe.model + tokens.txt (joint source/target vocabulary, as in the mini recipe)
inference_config=conf/decode.yaml
inference_args=
inference_model=valid.acc.ave.pth
train_args=             # extra espnet2.bin.st_train arguments

SALIGN_ROOT=${SALIGN_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
# shellcheck disable=SC1091
. "${SALIGN_ROOT}/utils/parse_options.sh"
cuda_cmd=${cuda_cmd:-${SALIGN_ROOT}/utils/queue/local.sh}
decode_cmd=${decode_cmd:-${SALIGN_ROOT}/utils/queue/local.sh}

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [stock_espnet.sh] $*"; }
die() { echo "ERROR [stock_espnet.sh]: $*" >&2; exit 2; }

exp=${expdir}/st_${tag}
stats=${expdir}/stats/${train_set}
bpe=${token_dir}/bpe.model
tokens=${token_dir}/tokens.txt
[ -f "${config}" ] || die "${config}: config not found (fix: --config FILE)"
for f in "${bpe}" "${tokens}" "${stats}/feats_stats.npz" "${stats}/speech_shape" \
         "${dumpdir}/filtered/${train_set}/feats.scp" "${dumpdir}/filtered/${valid_set}/feats.scp"; do
  [ -f "${f}" ] || die "${f} missing (fix: run the data stages first: ./run.sh --stop_stage 10)"
done
command -v python >/dev/null 2>&1 || die "python not on PATH (fix: . ./path.sh)"

data_args() {  # $1: train|valid, $2: dump dir -> ESPnet's data triples (speech, target text, source text)
  echo "--${1}_data_path_and_name_and_type ${2}/feats.scp,speech,kaldi_ark" \
       "--${1}_data_path_and_name_and_type ${2}/text.${tgt_lang},text,text" \
       "--${1}_data_path_and_name_and_type ${2}/text.${src_lang},src_text,text"
}
shape_args() {  # $1: train|valid, $2: stats dir
  echo "--${1}_shape_file ${2}/speech_shape --${1}_shape_file ${2}/text_shape --${1}_shape_file ${2}/src_text_shape"
}

if [ ! -f "${exp}/.done" ]; then
  log "training ESPnet's stock ST model -> ${exp} (log: ${exp}/train.log)"
  # shellcheck disable=SC2046,SC2086
  ${cuda_cmd} --gpu "${ngpu}" "${exp}/train.log" \
    python -m espnet2.bin.st_train --config "${config}" --output_dir "${exp}" --ngpu "${ngpu}" \
      --token_type bpe --src_token_type bpe --token_list "${tokens}" --src_token_list "${tokens}" \
      --bpemodel "${bpe}" --src_bpemodel "${bpe}" --input_size 80 --resume true \
      --normalize global_mvn --normalize_conf "stats_file=${stats}/feats_stats.npz" \
      $(data_args train "${dumpdir}/filtered/${train_set}") $(data_args valid "${dumpdir}/filtered/${valid_set}") \
      $(shape_args train "${stats}") $(shape_args valid "${expdir}/stats/${valid_set}") \
      --fold_length 800 --fold_length 150 --fold_length 150 ${train_args}
  touch "${exp}/.done"
fi
python -m salign.bin.train_summary "${exp}/train.log"

eval_sets=${test_sets}
[ -f "${dumpdir}/filtered/${train_eval_set}/feats.scp" ] && eval_sets="${eval_sets} ${train_eval_set}"
conf=()
[ -n "${inference_config}" ] && conf=(--config "${inference_config}")
for dset in ${eval_sets}; do
  dir=${exp}/decode_st_${dset}
  if [ -f "${dir}/.done" ]; then
    log "${dir} is complete"
  else
    log "decoding ${dset} as ST with espnet2.bin.st_inference -> ${dir}"
    jobs=$(python -m salign.bin.decode_utils split --scp "${dumpdir}/filtered/${dset}/feats.scp" \
      --nj "${inference_nj}" --out "${dir}/split")
    # shellcheck disable=SC2086
    ${decode_cmd} JOB=1:"${jobs}" "${dir}/logdir/decode.JOB.log" \
      python -m espnet2.bin.st_inference --ngpu 0 "${conf[@]}" \
        --st_train_config "${exp}/config.yaml" --st_model_file "${exp}/${inference_model}" \
        --data_path_and_name_and_type "${dumpdir}/filtered/${dset}/feats.scp,speech,kaldi_ark" \
        --key_file "${dir}/split/keys.JOB" --output_dir "${dir}/output.JOB" ${inference_args}
    python -m salign.bin.decode_utils merge --out "${dir}" --nj "${jobs}" --split "${dir}/split"
    touch "${dir}/.done"
  fi
  python -m salign.bin.score --task st --hyp "${dir}/1best_recog/text" \
    --ref "${dumpdir}/filtered/${dset}/text.${tgt_lang}" --out "${dir}/score" --set "${dset}" --model "${tag}" \
    --tgt_lang "${tgt_lang}" >/dev/null
done
log "done: ${exp}"
