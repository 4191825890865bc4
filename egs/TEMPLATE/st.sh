#!/usr/bin/env bash
# salign's shared stage driver for MuST-C-layout speech translation recipes (ESPnet's st.sh stage numbers).
# Every stage is a few lines ending in one `python -m salign.bin.<tool>` call; the logic and its tests live in Python.
# Re-running a finished stage is a no-op; an interrupted one resumes or restarts (outputs are written atomically).
#
#   stage  0  corpus         local/corpus.sh           the recipe's own corpus step, if it has one (e.g. generation)
#   stage  1  data prep        salign.bin.prep_mustc     MuST-C yaml+txt -> data/<set>/ (Kaldi data dirs)
#   stage  2  speed perturb.   salign.bin.data_utils     data/train -> data/train_sp (only with --speed_perturb_factors)
#   stage  3  features         salign.bin.make_fbank     80-dim Kaldi fbank (kaldi-native-fbank) ark/scp + CMVN, --nj jobs
#                              salign.bin.make_raw       --feats_type raw: per-utterance 16 kHz flac files + wav.scp
#   stage  4  length filter    salign.bin.prepare_dump   dump/filtered/<set>/ (+ MT pre-training text, + train subset)
#   stage  5  token lists      salign.bin.make_tokens    SentencePiece models + ESPnet token lists (joint or separate)
#   stage 10  collect stats    salign.bin.prepare_dump   shape files + global CMVN stats (raw: no CMVN; no slow ESPnet pass)
#   stage 11  training         salign.bin.st_train       MT pre-training on text, then S-Align multi-task training
#   stage 12  decoding         salign.bin.st_inference   ST, MT and ASR with the one model, --inference_nj jobs
#   stage 13  scoring          salign.bin.score          sacreBLEU BLEU/chrF (+signatures), WER -> RESULTS.md
#   stage 14  packing          espnet2.bin.pack          ESPnet's model zip (config, model, BPE, RESULTS.md)
#   stage 15  gap analysis     salign.bin.analyze_gap    modality-gap metrics + plots on the dev set (exp/.../gap/)
#   (ESPnet's LM stages 6-9 and its upload stages have no counterpart here.)
#
# Usage: <recipe>/run.sh [--stage N] [--stop_stage N] [--nj N] [--ngpu N] [--mustc_root DIR] ...  (see options below)
set -euo pipefail

SALIGN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)

# general
stage=0                 # first stage to run
stop_stage=15           # last stage to run
nj=2                    # parallel jobs for feature extraction
inference_nj=1          # parallel jobs for decoding
ngpu=0                  # GPUs per node for training (ESPnet's --ngpu; DDP when > 1, started by espnet2.bin.launch)
num_nodes=1             # nodes for training (> 1: multi-node DDP, needs a cluster cuda_cmd, e.g. utils/queue/slurm.sh)
dumpdir=dump            # features and filtered sets
feats_type=fbank        # fbank: 80-dim fbank ark/scp, global CMVN | raw: 16 kHz audio (wav.scp, ESPnet's sound type)
audio_format=flac       # raw: file format of the per-utterance audio (flac | wav)
expdir=exp              # models, decodes, results
# data
mustc_root=${MUSTC_ROOT:-}  # MuST-C root (holds en-<tgt>/) or the en-<tgt> dir itself; or env MUSTC_ROOT
mustc_version=auto      # auto | v1 | v2
corpus_opts=            # options for the recipe's local/corpus.sh (stage 0), if it has one
src_lang=en
tgt_lang=               # de, es, fr, it, nl, pt, ro, ru, ...
train_set=train
valid_set=dev
test_sets="tst-COMMON tst-HE"
train_eval_size=0       # > 0: also decode/score this many training utterances ("train_subset": is it learning?)
speed_perturb_factors=  # e.g. "0.9 1.0 1.1"
# length filtering (10 ms frames; with --feats_type raw the same durations in 16 kHz samples, x160)
min_frames=10
max_frames=3000
max_src_tokens=200      # words
max_tgt_tokens=200      # words
# tokens
token_joint=true        # one SentencePiece model and token list for source and target
nbpe=8000               # vocabulary size (joint, or source when separate)
tgt_nbpe=               # target vocabulary size when separate (default: nbpe)
bpemode=unigram
# MT pre-training
pretrain_mt=true
mt_config=              # training config of the MT pre-training (text only)
mt_args=                # extra st_train arguments for it
mt_extra_src=           # extra plain-text parallel data for MT pre-training (source file) ...
mt_extra_tgt=           # ... and its target file
mt_init_model=valid.acc.best.pth
train_st=true           # false: stage 11 stops after the MT pre-training
# S-Align training
st_config=              # training config of the S-Align model
st_args=                # extra st_train arguments
st_tag=                 # experiment name (default: the config's basename)
# decoding and scoring
inference_config=       # decoding config (beam size, length limits, ...)
inference_args=
mt_inference_args="--maxlenratio 2.0"  # appended for MT decoding (its encoder length is the source length)
inference_model=valid.acc.ave.pth
results=RESULTS.md      # the results table stage 13 writes (and stage 14 packs)
decode_tasks="st mt asr"
train_cmd=${SALIGN_ROOT}/utils/queue/local.sh
decode_cmd=${SALIGN_ROOT}/utils/queue/local.sh
cuda_cmd=${SALIGN_ROOT}/utils/queue/local.sh

# shellcheck disable=SC1091
. "${SALIGN_ROOT}/utils/parse_options.sh"

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [st.sh] $*"; }
die() { echo "ERROR [st.sh]: $*" >&2; exit 2; }
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

# Stage 11's training launch, as ESPnet's egs2 st.sh does it: espnet2.bin.launch runs the command through
# ${cuda_cmd} (Kaldi's run.pl interface) on --ngpu GPUs per node and --num_nodes nodes, with DDP when that is more
# than one GPU or node, and appends --ngpu and --multiprocessing_distributed to the command (so it must not pass them).
# On several nodes the launcher starts one srun task per node only for a --cmd named slurm.pl, so slurm.sh is called
# by that name (utils/queue/slurm.pl). Log: EXP_DIR/train.log (a previous one is kept as train.1.log, ...).
train_job() {  # EXP_DIR COMMAND [ARGS...]
  local exp=$1 launcher rest
  shift
  read -r launcher rest <<< "${cuda_cmd}"
  if [ "${num_nodes}" -gt 1 ] && [ "$(basename "${launcher}")" = slurm.sh ]; then launcher=${launcher%.sh}.pl; fi
  mkdir -p "${exp}"
  if ! python -m espnet2.bin.launch --cmd "${launcher} ${rest} --name $(basename "${exp}")" \
      --log "${exp}/train.log" --ngpu "${ngpu}" --num_nodes "${num_nodes}" --init_file_prefix "${exp}/.dist_init_" \
      --multiprocessing_distributed true -- "$@" > "${exp}/launch.log" 2>&1; then
    # the job launcher's own report (failing log and its tail), else the end of the launcher's output
    grep -E '^((local|slurm)\.(sh|pl): |  \| )' "${exp}/launch.log" >&2 || tail -n 20 "${exp}/launch.log" >&2
    die "training failed: ${exp}/train.log (launcher output: ${exp}/launch.log)"
  fi
}

main() {
# ---------------------------------------------------------------------------------------------- checks first
valid_stages="0 1 2 3 4 5 10 11 12 13 14 15"
for s in "${stage}" "${stop_stage}"; do
  if ! [[ "${s}" =~ ^[0-9]+$ ]] || [ "${s}" -gt 15 ]; then die "unknown stage '${s}' (fix: pick from ${valid_stages})"; fi
done
[ -n "${tgt_lang}" ] || die "--tgt_lang is not set (fix: set it in the recipe's run.sh, e.g. --tgt_lang de)"
[ -x "${SALIGN_ROOT}/tools/venv/bin/python" ] || die "no virtual environment (fix: ${SALIGN_ROOT}/tools/install.sh)"
command -v python >/dev/null 2>&1 || die "python not on PATH (fix: source the recipe's path.sh)"
if run_stage 1 && ! { run_stage 0 && [ -x local/corpus.sh ]; }; then
  [ -n "${mustc_root}" ] || die "MuST-C location unknown (fix: --mustc_root DIR or export MUSTC_ROOT=DIR)"
  [ -d "${mustc_root}" ] || die "${mustc_root}: no such directory (fix: --mustc_root DIR or export MUSTC_ROOT=DIR)"
fi
for f in "${mt_config}" "${st_config}" "${inference_config}"; do
  if [ -n "${f}" ] && [ ! -f "${f}" ]; then die "${f}: config not found (fix: check the path in run.sh)"; fi
done
case "${feats_type}" in fbank|raw) ;; *) die "unknown --feats_type '${feats_type}' (fix: fbank or raw)" ;; esac
case "${audio_format}" in flac|wav) ;; *) die "unknown --audio_format '${audio_format}' (fix: flac or wav)" ;; esac
if run_stage 11; then
  [ -n "${st_config}" ] || die "--st_config is not set (fix: set it in run.sh)"
  if [ "${pretrain_mt}" = true ] && [ -z "${mt_config}" ]; then die "--mt_config is not set (fix: set it or --pretrain_mt false)"; fi
  [[ ${ngpu} =~ ^[0-9]+$ ]] || die "--ngpu must be a number, got '${ngpu}' (fix: e.g. --ngpu 1)"
  [[ ${num_nodes} =~ ^[1-9][0-9]*$ ]] || die "--num_nodes must be a positive number, got '${num_nodes}' (fix: --num_nodes 1)"
  if [ "${num_nodes}" -gt 1 ] && [[ $(basename "${cuda_cmd%% *}") == local.sh ]]; then
    die "--num_nodes ${num_nodes}, but cuda_cmd=${cuda_cmd%% *} runs on this machine only" \
      "(fix: cuda_cmd=\${SALIGN_ROOT}/utils/queue/slurm.sh in cmd.sh, or --num_nodes 1)"
  fi
fi

train_data=${train_set}
[ -n "${speed_perturb_factors}" ] && train_data=${train_set}_sp
eval_sets="${test_sets}"
[ "${train_eval_size}" -gt 0 ] && eval_sets="${eval_sets} train_subset"
[ -n "${tgt_nbpe}" ] || tgt_nbpe=${nbpe}
if [ "${token_joint}" = true ]; then
  src_bpemodel=data/token_list/joint/bpe.model; tgt_bpemodel=${src_bpemodel}
else
  src_bpemodel=data/token_list/src/bpe.model; tgt_bpemodel=data/token_list/tgt/bpe.model
fi
src_tokens=$(dirname "${src_bpemodel}")/tokens.txt
tgt_tokens=$(dirname "${tgt_bpemodel}")/tokens.txt
stats=${expdir}/stats
featdir=${dumpdir}/${feats_type}  # stage 3's output per set
if [ "${feats_type}" = raw ]; then  # ESPnet's raw convention: wav.scp of 16 kHz audio, lengths in samples
  feats_tool=make_raw; speech_scp=wav.scp; speech_type=sound; speech_fold=80000
else
  feats_tool=make_fbank; speech_scp=feats.scp; speech_type=kaldi_ark; speech_fold=800
fi
[ -n "${st_tag}" ] || st_tag=$(basename "${st_config:-st}" .yaml)
st_exp=${expdir}/st_${st_tag}
mt_exp=${expdir}/mt_$(basename "${mt_config:-mt}" .yaml)
token_args=(--token_type bpe --src_token_type bpe --token_list "${tgt_tokens}" --src_token_list "${src_tokens}"
            --bpemodel "${tgt_bpemodel}" --src_bpemodel "${src_bpemodel}")
text_data() {  # $1: train|valid, $2: dump dir
  echo "--${1}_data_path_and_name_and_type ${2}/text.${tgt_lang},text,text --${1}_data_path_and_name_and_type ${2}/text.${src_lang},src_text,text"
}

# ---------------------------------------------------------------------------------------------- stages
if run_stage 0 && [ -x local/corpus.sh ]; then
  log "stage 0: local/corpus.sh ${corpus_opts}"
  # shellcheck disable=SC2086
  local/corpus.sh ${corpus_opts}
fi

if run_stage 1; then
  log "stage 1: data prep from ${mustc_root}"
  splits=$(echo "${train_set} ${valid_set} ${test_sets}" | tr ' ' ',')
  python -m salign.bin.prep_mustc --mustc_root "${mustc_root}" --src "${src_lang}" --tgt "${tgt_lang}" \
    --splits "${splits}" --version "${mustc_version}" --out data
fi

if run_stage 2 && [ -n "${speed_perturb_factors}" ]; then
  log "stage 2: speed perturbation (${speed_perturb_factors})"
  python -m salign.bin.data_utils speed_perturb --data "data/${train_set}" --out "data/${train_data}" \
    --factors "$(echo "${speed_perturb_factors}" | tr ' ' ',')"
fi

if run_stage 3; then
  for dset in ${train_data} ${valid_set} ${test_sets}; do
    out=${featdir}/${dset}
    if [ -f "${out}/.done" ] && [ "${out}/.done" -nt "data/${dset}/segments" ]; then
      log "stage 3: ${out} is complete"; continue
    fi
    opts=()
    [ "${feats_type}" = raw ] && opts=(--audio_format "${audio_format}")
    log "stage 3: ${feats_type} for ${dset} (${nj} jobs)"
    ${train_cmd} JOB=1:"${nj}" "${out}/log/${feats_tool}.JOB.log" \
      python -m "salign.bin.${feats_tool}" --data "data/${dset}" --out "${out}" --nj "${nj}" --job JOB "${opts[@]}"
    python -m "salign.bin.${feats_tool}" --data "data/${dset}" --out "${out}" --nj "${nj}" --merge "${opts[@]}"
  done
fi

if run_stage 4; then
  log "stage 4: length filtering -> ${dumpdir}/filtered"
  # fbank dumps are filtered by frames, raw ones by the same durations in samples (10 ms = 160 samples)
  lim=(--min_frames "${min_frames}" --max_frames "${max_frames}" --max_src_tokens "${max_src_tokens}"
       --min_samples "$((min_frames * 160))" --max_samples "$((max_frames * 160))"
       --max_tgt_tokens "${max_tgt_tokens}" --src_lang "${src_lang}" --tgt_lang "${tgt_lang}")
  for dset in ${train_data} ${valid_set}; do
    python -m salign.bin.prepare_dump filter --data "data/${dset}" --feats "${featdir}/${dset}" \
      --out "${dumpdir}/filtered/${dset}" "${lim[@]}"
  done
  for dset in ${test_sets}; do
    python -m salign.bin.prepare_dump filter --keep_all --data "data/${dset}" --feats "${featdir}/${dset}" \
      --out "${dumpdir}/filtered/${dset}" "${lim[@]}"
  done
  if [ "${train_eval_size}" -gt 0 ]; then
    python -m salign.bin.prepare_dump filter --subset "${train_eval_size}" --data "data/${train_data}" \
      --feats "${featdir}/${train_data}" --out "${dumpdir}/filtered/train_subset" "${lim[@]}"
  fi
  extra=()
  [ -n "${mt_extra_src}" ] && extra=(--src_file "${mt_extra_src}" --tgt_file "${mt_extra_tgt}")
  python -m salign.bin.prepare_dump mt_text --dump "${dumpdir}/filtered/${train_data}" "${extra[@]}" \
    --out "${dumpdir}/filtered/mt_train" --src_lang "${src_lang}" --tgt_lang "${tgt_lang}"
fi

if run_stage 5; then
  log "stage 5: token lists (joint=${token_joint}, nbpe=${nbpe})"
  txt=${dumpdir}/filtered/mt_train
  tok=(--mode separate --tgt_nbpe "${tgt_nbpe}")
  [ "${token_joint}" = true ] && tok=(--mode joint)
  python -m salign.bin.make_tokens --text "${txt}/text.${src_lang}" --text "${txt}/text.${tgt_lang}" \
    "${tok[@]}" --nbpe "${nbpe}" --model_type "${bpemode}" --out data/token_list
fi

if run_stage 10; then
  log "stage 10: shape files and CMVN stats -> ${stats}"
  cmvn=()  # raw audio: no CMVN (the model config normalises whatever its frontend computes)
  [ "${feats_type}" = fbank ] && cmvn=(--cmvn "${featdir}/${train_data}/cmvn.npz")
  for dset in ${train_data} ${valid_set} mt_train; do
    python -m salign.bin.prepare_dump stats --dump "${dumpdir}/filtered/${dset}" --out "${stats}/${dset}" \
      --bpemodel "${tgt_bpemodel}" --src_bpemodel "${src_bpemodel}" --src_lang "${src_lang}" \
      --tgt_lang "${tgt_lang}" "${cmvn[@]}"
  done
fi

if run_stage 11; then
  if [ "${pretrain_mt}" = true ] && [ ! -f "${mt_exp}/.done" ]; then
    log "stage 11a: MT pre-training (text only) -> ${mt_exp} (log: ${mt_exp}/train.log)"
    # shellcheck disable=SC2046,SC2086
    train_job "${mt_exp}" \
      python -m salign.bin.st_train --config "${mt_config}" --output_dir "${mt_exp}" \
        "${token_args[@]}" --input_size 80 --resume true \
        $(text_data train "${dumpdir}/filtered/mt_train") $(text_data valid "${dumpdir}/filtered/${valid_set}") \
        --train_shape_file "${stats}/mt_train/src_text_shape" --train_shape_file "${stats}/mt_train/text_shape" \
        --valid_shape_file "${stats}/${valid_set}/src_text_shape" --valid_shape_file "${stats}/${valid_set}/text_shape" \
        --fold_length 150 --fold_length 150 ${mt_args}
    touch "${mt_exp}/.done"
  fi
  if [ "${train_st}" = true ] && [ ! -f "${st_exp}/.done" ]; then
    init=()
    [ "${pretrain_mt}" = true ] && init=(--init_from_mt "${mt_exp}/${mt_init_model}")
    # fbank: input width from the shape files, global CMVN from stage 10. raw: neither; the config decides, with
    # `frontend: default` (ESPnet computes fbank from the wave) or `input_size: 1` (the encoder reads the wave)
    input_args=(); norm_args=()
    if [ "${feats_type}" = fbank ]; then
      input_args=(--input_size "$(head -n 1 "${stats}/${train_data}/speech_shape" | cut -d, -f2)")
      norm_args=(--normalize global_mvn --normalize_conf "stats_file=${stats}/${train_data}/feats_stats.npz")
    fi
    log "stage 11b: S-Align multi-task training -> ${st_exp} (log: ${st_exp}/train.log)"
    # shellcheck disable=SC2046,SC2086
    train_job "${st_exp}" \
      python -m salign.bin.st_train --config "${st_config}" --output_dir "${st_exp}" \
        "${token_args[@]}" "${input_args[@]}" --resume true "${init[@]}" \
        "${norm_args[@]}" \
        --train_data_path_and_name_and_type "${dumpdir}/filtered/${train_data}/${speech_scp},speech,${speech_type}" \
        --valid_data_path_and_name_and_type "${dumpdir}/filtered/${valid_set}/${speech_scp},speech,${speech_type}" \
        $(text_data train "${dumpdir}/filtered/${train_data}") $(text_data valid "${dumpdir}/filtered/${valid_set}") \
        --train_shape_file "${stats}/${train_data}/speech_shape" --train_shape_file "${stats}/${train_data}/text_shape" \
        --train_shape_file "${stats}/${train_data}/src_text_shape" \
        --valid_shape_file "${stats}/${valid_set}/speech_shape" --valid_shape_file "${stats}/${valid_set}/text_shape" \
        --valid_shape_file "${stats}/${valid_set}/src_text_shape" \
        --fold_length "${speech_fold}" --fold_length 150 --fold_length 150 ${st_args}
    touch "${st_exp}/.done"
  fi
  if [ "${train_st}" = true ]; then
    python -m salign.bin.train_summary "${mt_exp}/train.log" "${st_exp}/train.log"
  fi
fi

if run_stage 12; then
  # Every set and task still to decode, in one launcher call: job J decodes its share (keys.J) of each of them in one
  # process (salign.bin.st_inference --plan: one ESPnet import and model load per job, not per set and task).
  plans=${st_exp}/decode_plans
  rm -rf "${plans}"
  todo=()
  for dset in ${eval_sets}; do
    for task in ${decode_tasks}; do
      dir=${st_exp}/decode_${task}_${dset}
      if [ -f "${dir}/.done" ]; then log "stage 12: ${dir} is complete"; continue; fi
      log "stage 12: decoding ${dset} as ${task} -> ${dir}"
      rm -rf "${dir}"
      data=${dumpdir}/filtered/${dset}/${speech_scp},speech,${speech_type}
      dec_args=${inference_args}
      if [ "${task}" = mt ]; then
        data=${dumpdir}/filtered/${dset}/text.${src_lang},src_text,text
        dec_args="${inference_args} ${mt_inference_args}"
      fi
      n=$(python -m salign.bin.decode_utils split --scp "${dumpdir}/filtered/${dset}/${speech_scp}" \
        --nj "${inference_nj}" --out "${dir}/split")
      for j in $(seq 1 "${n}"); do
        mkdir -p "${plans}"
        printf -- '--task %s --data_path_and_name_and_type %q --key_file %q --output_dir %q %s\n' "${task}" \
          "${data}" "${dir}/split/keys.${j}" "${dir}/output.${j}" "${dec_args}" >> "${plans}/plan.${j}"
      done
      echo "${n}" > "${dir}/split/nj"
      todo+=("${dir}")
    done
  done
  if [ "${#todo[@]}" -gt 0 ]; then
    jobs=$(find "${plans}" -name 'plan.*' | wc -l)
    conf=()
    [ -n "${inference_config}" ] && conf=(--config "${inference_config}")
    ${decode_cmd} JOB=1:"${jobs}" "${plans}/logdir/decode.JOB.log" \
      python -m salign.bin.st_inference --ngpu 0 "${conf[@]}" --st_train_config "${st_exp}/config.yaml" \
        --st_model_file "${st_exp}/${inference_model}" --plan "${plans}/plan.JOB"
    for dir in "${todo[@]}"; do
      python -m salign.bin.decode_utils merge --out "${dir}" --nj "$(cat "${dir}/split/nj")" --split "${dir}/split" \
        --log "${plans}/logdir/decode.JOB.log"
      touch "${dir}/.done"
    done
  fi
fi

if run_stage 13; then
  log "stage 13: scoring"
  for dset in ${eval_sets}; do
    for task in ${decode_tasks}; do
      dir=${st_exp}/decode_${task}_${dset}
      ref=${dumpdir}/filtered/${dset}/text.${tgt_lang}
      [ "${task}" = asr ] && ref=${dumpdir}/filtered/${dset}/text.${src_lang}
      python -m salign.bin.score --task "${task}" --hyp "${dir}/1best_recog/text" --ref "${ref}" \
        --out "${dir}/score" --set "${dset}" --model "${st_tag}" --tgt_lang "${tgt_lang}" >/dev/null
    done
  done
  recipe=$(pwd); recipe=${recipe#"${SALIGN_ROOT}/"}
  python -m salign.bin.score --collect "${st_exp}" --out "${results}" \
    --title "${recipe}: ${src_lang}-${tgt_lang}, ${st_tag}" --command "cd ${recipe} && ${SALIGN_RUN_CMD:-./run.sh}"
fi

if run_stage 14; then
  log "stage 14: packing -> ${st_exp}/packed/model.zip"
  mkdir -p "${st_exp}/packed"
  python -m espnet2.bin.pack st --st_train_config "${st_exp}/config.yaml" \
    --st_model_file "${st_exp}/${inference_model}" --option "${tgt_bpemodel}" --option "${results}" \
    --outpath "${st_exp}/packed/model.zip"
fi
if run_stage 15; then
  log "stage 15: modality-gap analysis on ${valid_set} -> ${st_exp}/gap"
  python -m salign.bin.analyze_gap --st_train_config "${st_exp}/config.yaml" \
    --st_model_file "${st_exp}/${inference_model}" --feats "${dumpdir}/filtered/${valid_set}/${speech_scp}" \
    --src_text "${dumpdir}/filtered/${valid_set}/text.${src_lang}" --out "${st_exp}/gap"
fi
log "done (stages ${stage}..${stop_stage})"
}

# The whole driver is parsed before it runs, so editing this file during a run cannot corrupt the run.
main
