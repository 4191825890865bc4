#!/usr/bin/env bash
# salign's shared stage driver for MuST-C-layout speech translation recipes (ESPnet's st.sh stage numbers).
# Every stage is a few lines ending in one `python -m salign.bin.<tool>` call; the logic and its tests live in Python.
# Re-running a finished stage is a no-op; an interrupted one resumes or restarts (outputs are written atomically).
# What counts as finished is one rule (salign.utils.stamp): a stamp of the inputs' content and the options. A skipped
# step says so in one line, with why; a redone one says what changed. A stage that reads an earlier one's result
# checks that stamp against what it recorded (13: the decodes; 12, 14, 15: the training), and refuses a stale one.
# Errors are one line, "ERROR [st.sh]: what, where (fix: ...)" on stderr, exit status 2, and those of the command
# line, output directories (writable, --min_free_gb free) and GPUs (--ngpu) come before any stage runs. One run at a
# time per recipe directory (./.salign.lock: a second one refuses, naming the first's pid). Each run records the
# recipe command that made each stage (a .calls/ dir beside its outputs): RESULTS.md's "Reproduce" lists every call
# behind the results.
#
#   (first)   config check     salign.bin.check_config   every config the run will read: unknown keys, types, ranges
#   stage  0  corpus         local/corpus.sh           the recipe's own corpus step, if it has one (e.g. generation)
#   stage  1  data prep        salign.bin.prep_mustc     MuST-C yaml+txt -> data/<set>/ (Kaldi data dirs)
#   stage  2  speed perturb.   salign.bin.data_utils     data/train -> data/train_sp (only with --speed_perturb_factors)
#   stage  3  features         salign.bin.make_fbank     80-dim Kaldi fbank (kaldi-native-fbank) ark/scp + CMVN, --nj jobs
#                              salign.bin.make_raw       --feats_type raw: per-utterance 16 kHz flac files + wav.scp
#                              salign.bin.make_encoder_feats  --feats_type whisper: a pretrained Whisper encoder's
#                                                        hidden states (20 ms frames) as ark/scp + CMVN, computed once
#   stage  4  length filter    salign.bin.prepare_dump   dump/<feats_tag>/filtered/<set>/ (+ MT text, + train subset)
#   stage  5  token lists      salign.bin.make_tokens    SentencePiece models + ESPnet token lists (joint or separate)
#   stage 10  collect stats    salign.bin.prepare_dump   shape files + global CMVN stats (raw: no CMVN; no slow ESPnet pass)
#   stage 11  training         salign.bin.st_train       MT pre-training on text, then S-Align multi-task training
#                              espnet2.bin.st_train      --model_family espnet: ESPnet's stock ST model (ESPnetSTModel)
#                              salign.bin.llm_train      --model_family llm: speech encoder -> projector -> LLM (tiny LM
#                                                        pre-trained on the text; warm-up + select_layers for --align ot)
#   stage 12  decoding         salign.bin.st_inference   ST, MT and ASR with the one model, --inference_nj jobs
#                              espnet2.bin.st_inference  --model_family espnet: ST only
#                              (--model_family llm decodes through salign.bin.st_inference too)
#   stage 13  scoring          salign.bin.score          sacreBLEU BLEU/chrF (+signatures), WER -> RESULTS.md (printed)
#   stage 14  packing          salign.bin.pack           ESPnet's model zip: config, model, every file the config names
#                                                        (CMVN, tokens, BPE, ...), RESULTS.md; loaded from an empty dir
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
feats_type=fbank        # fbank: 80-dim fbank ark/scp, global CMVN | raw: 16 kHz audio (wav.scp, ESPnet's sound type) |
                        # whisper: the hidden states of a pretrained Whisper encoder (--feats_encoder), 20 ms frames,
                        # computed once in stage 3 and read like fbank (ark/scp, global CMVN)
feats_tag=              # this feature type's dump: ${dumpdir}/${feats_tag}/<set> (stage 3), .../filtered/<set> (stage
                        # 4), .../stats/<set> (stage 10); default fbank (fbank_stack<N> with --feats_stack N > 1), raw,
                        # or whisper_<encoder dir>_L<layer>, so that dumps of different feature types never share a list
feats_encoder=          # whisper: the checkpoint (an HF/CTranslate2 directory or openai .pt), a model of salign's
                        # pretrained catalog by name (e.g. whisper-tiny.en: fetched, hash-checked and converted once at
                        # stage 3 into tools/pretrained/, tools/get_pretrained.sh --list), or tiny_random: a tiny random
                        # Whisper written to <expdir>/tiny_whisper at stage 3 (debug, CI)
feats_layer=-1          # whisper: the 1-based block whose output is stored (-1: the last, after its LayerNorm)
feats_dtype=float32     # whisper: float32, or float16 (Kaldi 16-bit compressed matrices: half the disk)
feats_padding=utterance # whisper: utterance (encoded alone) or window (in Whisper's 30 s window, its frames kept)
audio_format=flac       # raw: file format of the per-utterance audio (flac | wav)
feats_stack=1           # fbank: store this many consecutive 10 ms frames as one (80*N dims at N*10 ms), i.e. the
                        # frame stacking of `--preencoder stack` done once in the dump, which every model (ESPnet's
                        # stock ST model included) then reads; --min_frames/--max_frames stay in 10 ms frames
expdir=exp              # models, decodes, results
run_cmd=./run.sh        # the recipe's command (printf %q quoted, without --stage/--stop_stage): recorded for each
                        # stage it runs; the results' "Reproduce" lists the calls that made stages 0-13
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
train_st=true           # false: stage 11 stops after the pre-training(s)
# ASR pre-training: the acoustic encoder + CTC trained on speech -> transcript (salign.bin.st_train with a CTC-only
# config, e.g. a CTC head of its own: `tie_ctc: false`), stopped by the config's early stopping on the dev loss;
# every model family's ST training then starts from it (salign and llm: --init_from_asr, which reports what it
# loaded and keeps a CTC projection tied to the embeddings; espnet: ESPnet's own --init_param for encoder and ctc).
# Trained by --model_family salign (salign's st_train); the other families use the one it left.
pretrain_asr=false
asr_config=             # its config (e.g. egs/mini_mustc/conf/compare/asr.yaml merged by compare.sh)
asr_args=               # extra st_train arguments for it
asr_init_model=valid.loss.best.pth  # the checkpoint the ST trainings start from
# S-Align training
model_family=salign     # salign: salign's unified ST/MT/ASR model | espnet: ESPnet's stock ST model (espnet2 STTask,
                        # ESPnetSTModel) trained and decoded by ESPnet's own st_train/st_inference on the same dumps,
                        # shapes and token lists: no MT pre-training, decoded as ST only, no gap analysis |
                        # llm: the speech-LLM family (salign.llm, salign.bin.llm_train; see llm_stage11 below)
st_config=              # training config of the S-Align model (model_family espnet: an ESPnet STTask config)
st_args=                # extra st_train arguments
st_tag=                 # experiment name (default: the config's basename)
# speech-LLM family (--model_family llm), for a config with `align: ot` (AI-STA): a short warm-up without the
# alignment loss, salign.bin.select_layers on it (dev set), then training with the layers it wrote
llm_warmup_args="--max_epoch 1"  # llm_train arguments of the warm-up (appended last)
select_layers_args="--top_k 2"   # salign.bin.select_layers arguments
# decoding and scoring
inference_config=       # decoding config (beam size, length limits, ...)
inference_args=
mt_inference_args="--maxlenratio 2.0"  # appended for MT decoding (its encoder length is the source length)
inference_model=valid.acc.ave.pth
results=                # the results table stage 13 writes, prints (and stage 14 packs); default:
                        # ${expdir}/st_<tag>/RESULTS.md, beside the model (a recipe's committed table: its run.sh)
decode_tasks="st mt asr"
# the job launchers: the recipe's cmd.sh exports them (e.g. utils/queue/slurm.sh with its options), else local.sh
train_cmd=${train_cmd:-${SALIGN_ROOT}/utils/queue/local.sh}
decode_cmd=${decode_cmd:-${SALIGN_ROOT}/utils/queue/local.sh}
cuda_cmd=${cuda_cmd:-${SALIGN_ROOT}/utils/queue/local.sh}
# disk space: every output directory of the run needs this many GB free (checked before any stage; again before a
# training, and before stage 3 besides its own estimate of its features: their audio's duration x 32 kB/s)
min_free_gb=1

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [st.sh] $*"; }
die() { echo "ERROR [st.sh]: $*" >&2; exit 2; }
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

# shellcheck disable=SC1091
. "${SALIGN_ROOT}/utils/parse_options.sh"
# parse_options.sh stops at the first argument that is not an option: it and everything after it would be ignored
if [ $# -gt 0 ]; then
  die "unexpected argument '$1': it and all after it ('$*') would be ignored (fix: options are --name value;" \
    "quote a value with spaces, e.g. --test_sets \"tst-COMMON tst-HE\")"
fi

# the helpers: train_job, check_writable, check_space, fresh, train_once, asr_init, current_model, current_dumps
# shellcheck source-path=SCRIPTDIR source=st_lib.sh
. "${SALIGN_ROOT}/egs/TEMPLATE/st_lib.sh"

# recipe_lock: one run at a time in a recipe directory
# shellcheck source-path=SCRIPTDIR source=../../utils/recipe_lock.sh
. "${SALIGN_ROOT}/utils/recipe_lock.sh"

# stage 11 of --model_family llm (pre-training of a tiny LM, warm-up, select_layers, AI-STA training)
# shellcheck source-path=SCRIPTDIR source=st_llm.sh
. "${SALIGN_ROOT}/egs/TEMPLATE/st_llm.sh"

main() {
# ---------------------------------------------------------------------------------------------- checks first
valid_stages="0 1 2 3 4 5 10 11 12 13 14 15"
for s in "${stage}" "${stop_stage}"; do
  if ! [[ "${s}" =~ ^[0-9]+$ ]] || [ "${s}" -gt 15 ]; then die "unknown stage '${s}' (fix: pick from ${valid_stages})"; fi
done
[ "${stop_stage}" -ge "${stage}" ] ||
  die "--stop_stage ${stop_stage} is below --stage ${stage}: no stage would run (fix: --stop_stage ${stage} or higher)"
ran=; for s in ${valid_stages}; do if run_stage "${s}"; then ran="${ran} ${s}"; fi; done
[ -n "${ran}" ] || die "no stage in ${stage}-${stop_stage}: this driver has stages ${valid_stages} (ESPnet's LM stages" \
  "6-9 have no counterpart here) (fix: pick a range that holds one of them, e.g. --stage ${stage} --stop_stage 10)"
# whole numbers (bash arithmetic would read 'abc' as 0 and '-2' as a job range nobody can run)
for o in nj:1 inference_nj:1 ngpu:0 num_nodes:1 train_eval_size:0 min_frames:0 max_frames:1 max_src_tokens:1 \
         max_tgt_tokens:1 nbpe:1 min_free_gb:0 feats_stack:1; do
  name=${o%:*} low=${o#*:}
  value=${!name}
  if ! [[ ${value} =~ ^[0-9]+$ ]] || [ "$((10#${value}))" -lt "${low}" ]; then
    die "--${name} must be a whole number >= ${low}, got '${value}' (fix: e.g. --${name} ${low} or more)"
  fi
  printf -v "${name}" '%d' "$((10#${value}))"  # 08 -> 8
done
if [ -n "${tgt_nbpe}" ] && ! [[ ${tgt_nbpe} =~ ^[1-9][0-9]*$ ]]; then
  die "--tgt_nbpe must be a whole number >= 1, got '${tgt_nbpe}' (fix: e.g. --tgt_nbpe 8000, or leave it empty)"
fi
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
feats_catalog=false
case "${feats_type}" in fbank|raw) ;;
  whisper)
    [ -n "${feats_encoder}" ] || die "--feats_type whisper needs --feats_encoder (fix: e.g. --feats_encoder" \
      "${SALIGN_ROOT}/tools/pretrained/whisper-tiny.en, made by tools/get_pretrained.sh whisper-tiny.en)"
    feats_catalog=false  # a name of the pretrained catalog: fetched at stage 3
    if [ "${feats_encoder}" != tiny_random ] && [ ! -e "${feats_encoder}" ]; then
      python -m salign.bin.get_pretrained --list | cut -f1 | grep -qxF -- "${feats_encoder}" ||
        die "--feats_encoder ${feats_encoder}: no such checkpoint, nor a pretrained model's name (fix: a Whisper" \
          "checkpoint, or a name listed by ${SALIGN_ROOT}/tools/get_pretrained.sh --list, e.g. whisper-tiny.en)"
      feats_catalog=true
    fi
    case "${feats_padding}" in utterance|window) ;;
      *) die "--feats_padding '${feats_padding}': unknown (fix: utterance or window)" ;;
    esac
    feats_stack=2 ;;  # 20 ms frames: lengths as 10 ms fbank stacked by 2
  *) die "unknown --feats_type '${feats_type}' (fix: fbank, raw or whisper)" ;;
esac
if [ -z "${feats_tag}" ]; then  # every dump path below is derived from it (features, filtered lists, shapes)
  feats_tag=${feats_type}
  [ "${feats_type}" != fbank ] || [ "${feats_stack}" -eq 1 ] || feats_tag=fbank_stack${feats_stack}
  if [ "${feats_type}" = whisper ]; then  # e.g. whisper-tiny.en_last, whisper-base_L4
    feats_tag=$(basename "${feats_encoder}" .pt)_L${feats_layer}; feats_tag=${feats_tag/%_L-1/_last}
    [ "${feats_padding}" = utterance ] || feats_tag+=_window
  fi
fi
if ! [[ ${feats_tag} =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || [ "${feats_tag}" = filtered ] || [ "${feats_tag}" = stats ]
then
  die "--feats_tag '${feats_tag}': not a directory name of its own (fix: letters, digits, _ . -, e.g. fbank_pitch)"
fi
for s in ${train_set} ${valid_set} ${test_sets}; do
  case "${s}" in filtered|stats) die "a set named '${s}' would share ${dumpdir}/${feats_tag}/${s} with the dump's" \
    "own ${s}/ (fix: rename the set, e.g. ${s}_set)" ;; esac
done
# the job launchers as arrays: the launcher's path (which may hold spaces: a checkout under "My Projects") kept
# apart from its options, e.g. train_cmd="/path/utils/queue/slurm.sh --mem 4G"
train_launcher=() decode_launcher=() cuda_launcher=()
launcher_words train_cmd train_launcher
launcher_words decode_cmd decode_launcher
launcher_words cuda_cmd cuda_launcher
case "${audio_format}" in flac|wav) ;; *) die "unknown --audio_format '${audio_format}' (fix: flac or wav)" ;; esac
# the model family's training and decoding tools (both take ESPnet's st_train / st_inference flags)
case "${model_family}" in
  salign) train_module=salign.bin.st_train; inference_module=salign.bin.st_inference ;;
  espnet)
    train_module=espnet2.bin.st_train; inference_module=espnet2.bin.st_inference
    [ "${pretrain_mt}" = false ] ||
      die "--model_family espnet: ESPnet's ST model has no MT pre-training (fix: add --pretrain_mt false)"
    [ "${decode_tasks}" = st ] ||
      die "--model_family espnet decodes ST only, not '${decode_tasks}' (fix: add --decode_tasks st)" ;;
  llm) train_module=salign.bin.llm_train; inference_module=salign.bin.st_inference ;;
  *) die "unknown --model_family '${model_family}' (fix: salign, espnet or llm)" ;;
esac
if run_stage 11; then
  [ -n "${st_config}" ] || die "--st_config is not set (fix: set it in run.sh)"
  if [ "${pretrain_mt}" = true ] && [ -z "${mt_config}" ] && [ "${model_family}" != llm ]; then die "--mt_config is not set (fix: set it or --pretrain_mt false)"; fi
  case "${pretrain_asr}" in
    true) [ -n "${asr_config}" ] || die "--pretrain_asr true needs --asr_config (fix: set it, or --pretrain_asr false)" ;;
    false) ;;
    *) die "--pretrain_asr must be true or false, got '${pretrain_asr}'" ;;
  esac
  [[ ${ngpu} =~ ^[0-9]+$ ]] || die "--ngpu must be a number, got '${ngpu}' (fix: e.g. --ngpu 1)"
  [[ ${num_nodes} =~ ^[1-9][0-9]*$ ]] || die "--num_nodes must be a positive number, got '${num_nodes}' (fix: --num_nodes 1)"
  if [ "${num_nodes}" -gt 1 ] && [[ $(basename "${cuda_launcher[0]}") == local.sh ]]; then
    die "--num_nodes ${num_nodes}, but cuda_cmd=${cuda_launcher[0]} runs on this machine only" \
      "(fix: cuda_cmd=\${SALIGN_ROOT}/utils/queue/slurm.sh in cmd.sh, or --num_nodes 1)"
  fi
fi
# where this run writes: each directory must take a new file and have --min_free_gb free (checked here, before any
# stage, not at its first write; stages 3 and 11 check the space again before their large outputs)
min_free_kb=$((min_free_gb * 1048576))
outs=()
if run_stage 0 && [ -x local/corpus.sh ]; then outs+=(. "run the recipe from a copy elsewhere"); fi
if run_stage 13 && [ -n "${results}" ]; then outs+=("$(dirname "${results}")" "point --results elsewhere"); fi
if run_stage 1 || run_stage 2 || run_stage 5; then outs+=(data "run the recipe from a copy elsewhere"); fi
if run_stage 3 || run_stage 4 || run_stage 10; then outs+=("${dumpdir}" "point --dumpdir elsewhere"); fi
outs+=("${expdir}" "point --expdir elsewhere")  # (every run records there which call made its stages)
for ((i = 0; i < ${#outs[@]}; i += 2)); do check_writable "${outs[i]}" "${outs[i + 1]}"; done
for ((i = 0; i < ${#outs[@]}; i += 2)); do
  check_space "${outs[i]}" "${min_free_kb}" "stages ${stage}-${stop_stage}" "${outs[i + 1]}"
done
# training on GPUs of this machine (the local launcher): are there as many as --ngpu? Known now, not after stage 10
if run_stage 11 && [ "${ngpu}" -gt 0 ] && [ "$(basename "${cuda_launcher[0]}")" = local.sh ]; then
  gpus=$(python -c 'import torch; print(torch.cuda.device_count(), torch.version.cuda or "none")' 2>/dev/null) ||
    gpus="0 unknown"
  if [ "${gpus% *}" -lt "${ngpu}" ]; then
    die "--ngpu ${ngpu}, but torch sees ${gpus% *} CUDA GPU(s) on this machine (torch's CUDA: ${gpus#* }), so stage 11" \
      "would fail (fix: add --ngpu 0 to train on the CPU, or run where ${ngpu} GPU(s) are visible)"
  fi
fi
# one run at a time in this recipe directory: from here on this run writes (a second one refuses, naming this one)
recipe_lock "$0"
# every config this run will read, against its task's options and classes (unknown keys, types, ranges): one ERROR
# line each, before any stage runs (salign.bin.check_config; no model is built)
configs=()
if run_stage 11; then
  if [ "${pretrain_mt}" = true ] && [ -n "${mt_config}" ]; then configs+=(--config "${mt_config}"); fi
  if [ "${pretrain_asr}" = true ] && [ "${model_family}" = salign ]; then configs+=(--config "${asr_config}"); fi
  configs+=(--config "${st_config}")
fi
if run_stage 12 && [ -n "${inference_config}" ]; then configs+=(--decode_config "${inference_config}"); fi
if [ "${#configs[@]}" -gt 0 ]; then
  # configs checked before, unchanged, by the same checker: not again (each check costs an ESPnet start, ~8 s)
  check=(--stamp "${expdir}/.check_config/$(printf '%s\n' "${model_family}" "${configs[@]}" | md5sum | cut -c1-16)"
         --input "${SALIGN_ROOT}/salign/utils/config_check.py" --option "family=${model_family}")
  for a in "${configs[@]}"; do if [ -f "${a}" ]; then check+=(--input "${a}"); fi; done
  if ! fresh "${check[@]}" --what "config check" >/dev/null; then
    python -m salign.bin.check_config --task "${model_family}" --quiet "${configs[@]}"
    mkdir -p "${expdir}/.check_config" && python -m salign.bin.stamp write "${check[@]}"
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
featdir=${dumpdir}/${feats_tag}  # stage 3's output per set: this feature type's dump
filtdir=${featdir}/filtered       # stage 4: length-filtered lists (+ mt_train, train_subset), of these features
stats=${featdir}/stats            # stage 10: shape files (derived from the filtered lists, so next to them)
if [ "${feats_type}" = raw ]; then  # ESPnet's raw convention: wav.scp of 16 kHz audio, lengths in samples
  feats_tool=make_raw; speech_scp=wav.scp; speech_type=sound; speech_fold=80000
elif [ "${feats_type}" = whisper ]; then  # 20 ms frames (--feats_stack 2 above): lengths as fbank stacked by 2
  feats_tool=make_encoder_feats; speech_scp=feats.scp; speech_type=kaldi_ark; speech_fold=400
else
  feats_tool=make_fbank; speech_scp=feats.scp; speech_type=kaldi_ark; speech_fold=$((800 / feats_stack))
fi
[ "${feats_type}" != raw ] || [ "${feats_stack}" -eq 1 ] ||
  die "--feats_stack ${feats_stack} needs --feats_type fbank (fix: --feats_stack 1 for raw audio)"
[ -n "${st_tag}" ] || st_tag=$(basename "${st_config:-st}" .yaml)
st_exp=${expdir}/st_${st_tag}
[ -n "${results}" ] || results=${st_exp}/RESULTS.md
mt_exp=${expdir}/mt_$(basename "${mt_config:-mt}" .yaml)
asr_exp=${expdir}/asr_$(basename "${asr_config:-asr}" .yaml)
# llm: the LM pre-training's config is --mt_config, else the speech-LLM config itself (on text-only batches)
if [ "${model_family}" = llm ] && [ -z "${mt_config}" ]; then mt_exp=${expdir}/lm_${st_tag}; fi
token_args=(--token_type bpe --src_token_type bpe --token_list "${tgt_tokens}" --src_token_list "${src_tokens}"
            --bpemodel "${tgt_bpemodel}" --src_bpemodel "${src_bpemodel}")
# speech_data_args: sets speech_data, the training/validation speech, texts, shapes and fold lengths of every
# speech training of stage 11 (ASR pre-training, ST training, the speech-LLM family's)
speech_data_args() {
  local td tv
  read -ra td <<< "$(text_data train "${filtdir}/${train_data}")"
  read -ra tv <<< "$(text_data valid "${filtdir}/${valid_set}")"
  speech_data=(
    --train_data_path_and_name_and_type "${filtdir}/${train_data}/${speech_scp},speech,${speech_type}"
    --valid_data_path_and_name_and_type "${filtdir}/${valid_set}/${speech_scp},speech,${speech_type}"
    "${td[@]}" "${tv[@]}"
    --train_shape_file "${stats}/${train_data}/speech_shape" --train_shape_file "${stats}/${train_data}/text_shape"
    --train_shape_file "${stats}/${train_data}/src_text_shape"
    --valid_shape_file "${stats}/${valid_set}/speech_shape" --valid_shape_file "${stats}/${valid_set}/text_shape"
    --valid_shape_file "${stats}/${valid_set}/src_text_shape"
    --fold_length "${speech_fold}" --fold_length 150 --fold_length 150)
}
text_data() {  # $1: train|valid, $2: dump dir
  echo "--${1}_data_path_and_name_and_type ${2}/text.${tgt_lang},text,text --${1}_data_path_and_name_and_type ${2}/text.${src_lang},src_text,text"
}

# ---------------------------------------------------------------------------------------------- stages
if run_stage 0 && [ -x local/corpus.sh ]; then
  log "stage 0: local/corpus.sh ${corpus_opts}"
  # shellcheck disable=SC2086
  local/corpus.sh ${corpus_opts}
elif run_stage 0; then
  log "stage 0: skipped: this recipe has no local/corpus.sh (the corpus is read from --mustc_root in stage 1)"
fi
if run_stage 0; then made 0; fi

if run_stage 1; then
  log "stage 1: data prep from ${mustc_root}"
  splits=$(echo "${train_set} ${valid_set} ${test_sets}" | tr ' ' ',')
  python -m salign.bin.prep_mustc --mustc_root "${mustc_root}" --src "${src_lang}" --tgt "${tgt_lang}" \
    --splits "${splits}" --version "${mustc_version}" --out data
fi
if run_stage 1; then made 1; fi

if run_stage 2 && [ -n "${speed_perturb_factors}" ]; then
  log "stage 2: speed perturbation (${speed_perturb_factors})"
  python -m salign.bin.data_utils speed_perturb --data "data/${train_set}" --out "data/${train_data}" \
    --factors "$(echo "${speed_perturb_factors}" | tr ' ' ',')"
elif run_stage 2; then
  log "stage 2: skipped: no --speed_perturb_factors"
fi
if run_stage 2; then made 2; fi

if run_stage 3; then
  # free disk for the features still to be written (sets without a merged dump): 80 float32 per 10 ms (fbank) or
  # 16 kHz 16-bit samples (raw, at most) = 32 kB per second of audio, from the data dirs' utt2dur
  secs=0
  for dset in ${train_data} ${valid_set} ${test_sets}; do
    if [ ! -f "${featdir}/${dset}/.done" ] && [ -f "data/${dset}/utt2dur" ]; then
      secs=$(awk -v s="${secs}" '{ s += $2 } END { printf "%d", s + 1 }' "data/${dset}/utt2dur")
    fi
  done
  check_space "${dumpdir}" "$((secs * 32000 / 1024 + min_free_kb))" \
    "stage 3 (features of $((secs / 3600)) h of audio, and --min_free_gb)" "point --dumpdir to a larger disk"
  if [ "${feats_type}" = whisper ] && [ "${feats_encoder}" = tiny_random ]; then  # the debug stand-in (same each time)
    feats_encoder=${expdir}/tiny_whisper
    python -m salign.bin.make_tiny_whisper --out "${feats_encoder}"
  elif [ "${feats_type}" = whisper ] && [ "${feats_catalog}" = true ]; then  # fetched and converted once, then checked
    python -m salign.bin.get_pretrained "${feats_encoder}"
    feats_encoder=${SALIGN_PRETRAINED:-${SALIGN_ROOT}/tools/pretrained}/${feats_encoder}
  fi
  for dset in ${train_data} ${valid_set} ${test_sets}; do
    out=${featdir}/${dset}
    opts=()
    [ "${feats_type}" = raw ] && opts=(--audio_format "${audio_format}")
    [ "${feats_type}" = fbank ] && [ "${feats_stack}" -ne 1 ] && opts=(--stack "${feats_stack}")
    [ "${feats_type}" = whisper ] && opts=(--checkpoint "${feats_encoder}" --layer "${feats_layer}"
                                          --dtype "${feats_dtype}" --padding "${feats_padding}")
    # the tool decides alone what is left to do: a shard, or the merge, whose stamp (its audio files' content,
    # segments and options) is fresh is skipped. The shard stamps from before say afterwards what was redone and why.
    prev=$(mktemp -d "${TMPDIR:-/tmp}/st_stage3.XXXXXX")
    if [ -d "${out}/split${nj}" ]; then find "${out}/split${nj}" -maxdepth 1 -name '*.done' -exec cp {} "${prev}/" \;; fi
    if [ -f "${out}/.done" ]; then cp "${out}/.done" "${prev}/merged"; fi
    log "stage 3: ${feats_type} for ${dset} (${nj} jobs)"
    "${train_launcher[@]}" JOB=1:"${nj}" "${out}/log/${feats_tool}.JOB.log" \
      python -m "salign.bin.${feats_tool}" --data "data/${dset}" --out "${out}" --nj "${nj}" --job JOB "${opts[@]}" ||
      { rm -rf "${prev}"; exit 1; }
    merged=$(python -m "salign.bin.${feats_tool}" --data "data/${dset}" --out "${out}" --nj "${nj}" --merge \
      "${opts[@]}" 2>&1) || { echo "${merged}" >&2; rm -rf "${prev}"; exit 2; }
    redone=0 why=
    for ((j = 1; j <= nj; j++)); do
      new=$(find "${out}/split${nj}" -maxdepth 1 -name "*.${j}.done" | head -n 1)
      old=${prev}/$(basename "${new}")
      if [ -f "${old}" ] && cmp -s "${old}" "${new}"; then continue; fi
      redone=$((redone + 1))
      if [ -z "${why}" ] && [ -f "${old}" ]; then
        why="shard ${j}: $(python -m salign.bin.stamp why --stamp "${new}" --old "${old}" || true)"
      elif [ -z "${why}" ]; then
        why="shard ${j}: no finished extraction before"
      fi
    done
    same=false before=false
    if [ -n "$(ls -A "${prev}")" ]; then before=true; fi
    if [ -f "${prev}/merged" ] && cmp -s "${prev}/merged" "${out}/.done"; then same=true; fi
    rm -rf "${prev}"
    if [ "${redone}" -eq 0 ] && [ "${same}" = true ]; then
      log "stage 3: ${out} is up to date, skipped (every shard's stamp matches its audio's content, segments" \
        "and options)"
    else
      echo "${merged}"
      if [ "${redone}" -gt 0 ] && [ "${before}" = true ]; then
        log "stage 3: ${out}: ${redone}/${nj} shard(s) extracted again (${why})"
      fi
    fi
  done
fi
if run_stage 3; then made 3; fi

if run_stage 4; then
  log "stage 4: length filtering -> ${filtdir}"
  # fbank dumps are filtered by frames, raw ones by the same durations in samples (10 ms = 160 samples)
  # lengths in the dump's frames (--feats_stack 10 ms frames each)
  lim=(--min_frames "$(( (min_frames + feats_stack - 1) / feats_stack ))" --max_frames "$((max_frames / feats_stack))"
       --max_src_tokens "${max_src_tokens}"
       --min_samples "$((min_frames * 160))" --max_samples "$((max_frames * 160))"
       --max_tgt_tokens "${max_tgt_tokens}" --src_lang "${src_lang}" --tgt_lang "${tgt_lang}")
  for dset in ${train_data} ${valid_set}; do
    python -m salign.bin.prepare_dump filter --data "data/${dset}" --feats "${featdir}/${dset}" \
      --out "${filtdir}/${dset}" "${lim[@]}"
  done
  for dset in ${test_sets}; do
    python -m salign.bin.prepare_dump filter --keep_all --data "data/${dset}" --feats "${featdir}/${dset}" \
      --out "${filtdir}/${dset}" "${lim[@]}"
  done
  if [ "${train_eval_size}" -gt 0 ]; then
    python -m salign.bin.prepare_dump filter --subset "${train_eval_size}" --data "data/${train_data}" \
      --feats "${featdir}/${train_data}" --out "${filtdir}/train_subset" "${lim[@]}"
  fi
  extra=()
  [ -n "${mt_extra_src}" ] && extra=(--src_file "${mt_extra_src}" --tgt_file "${mt_extra_tgt}")
  python -m salign.bin.prepare_dump mt_text --dump "${filtdir}/${train_data}" "${extra[@]}" \
    --out "${filtdir}/mt_train" --src_lang "${src_lang}" --tgt_lang "${tgt_lang}"
fi
if run_stage 4; then made 4; fi

if run_stage 5; then
  log "stage 5: token lists (joint=${token_joint}, nbpe=${nbpe})"
  txt=${filtdir}/mt_train
  tok=(--mode separate --tgt_nbpe "${tgt_nbpe}")
  [ "${token_joint}" = true ] && tok=(--mode joint)
  python -m salign.bin.make_tokens --text "${txt}/text.${src_lang}" --text "${txt}/text.${tgt_lang}" \
    "${tok[@]}" --nbpe "${nbpe}" --model_type "${bpemode}" --out data/token_list
fi
if run_stage 5; then made 5; fi

if run_stage 10; then
  # CMVN statistics: stage 3 already wrote them (${featdir}/${train_data}/cmvn.npz, ESPnet's feats_stats format);
  # training reads them there. Raw audio has none (the model config normalises whatever its frontend computes).
  log "stage 10: shape files -> ${stats}"
  for dset in ${train_data} ${valid_set} mt_train; do
    python -m salign.bin.prepare_dump stats --dump "${filtdir}/${dset}" --out "${stats}/${dset}" \
      --bpemodel "${tgt_bpemodel}" --src_bpemodel "${src_bpemodel}" --src_lang "${src_lang}" \
      --tgt_lang "${tgt_lang}"
  done
fi
if run_stage 10; then made 10; fi

if run_stage 11; then
  # what training reads from stages 4 and 10 was made from the current features, texts and token models
  used=("${filtdir}/${valid_set}" "${stats}/${valid_set}")
  if [ "${train_st}" = true ] || [ "${pretrain_asr}" = true ]; then
    used+=("${filtdir}/${train_data}" "${stats}/${train_data}")
  fi
  if [ "${pretrain_mt}" = true ]; then used+=("${filtdir}/mt_train" "${stats}/mt_train"); fi
  current_dumps 11 "${used[@]}"
fi
if run_stage 11 && [ "${model_family}" = llm ]; then
  llm_stage11
elif run_stage 11; then
  # fbank: input width from the shape files, global CMVN from stage 3. raw: neither; the config decides, with
  # `frontend: default` (ESPnet computes fbank from the wave) or `input_size: 1` (the encoder reads the wave)
  input_args=(); norm_args=()
  if [ "${feats_type}" != raw ]; then
    input_args=(--input_size "$(head -n 1 "${stats}/${train_data}/speech_shape" | cut -d, -f2)")
    norm_args=(--normalize global_mvn --normalize_conf "stats_file=${featdir}/${train_data}/cmvn.npz")
  fi
  pre_mt() {
    # MT pre-training reads text only: the acoustic encoder its config builds is neither trained nor taken over by
    # --init_from_mt, so any valid input width does (the fbank width; 80 for raw-audio recipes)
    local mt_input=("${input_args[@]}")
    [ "${#mt_input[@]}" -gt 0 ] || mt_input=(--input_size 80)
    # shellcheck disable=SC2046,SC2086
    train_once 11a "MT pre-training (text only)" "${mt_exp}" "${mt_exp}/${mt_init_model}" "" \
      python -m salign.bin.st_train --config "${mt_config}" --output_dir "${mt_exp}" \
        "${token_args[@]}" "${mt_input[@]}" --resume true \
        $(text_data train "${filtdir}/mt_train") $(text_data valid "${filtdir}/${valid_set}") \
        --train_shape_file "${stats}/mt_train/src_text_shape" --train_shape_file "${stats}/mt_train/text_shape" \
        --valid_shape_file "${stats}/${valid_set}/src_text_shape" --valid_shape_file "${stats}/${valid_set}/text_shape" \
        --fold_length 150 --fold_length 150 ${mt_args}
  }
  pre_asr() {
    # shellcheck disable=SC2086
    train_once 11a "ASR pre-training (speech -> transcript, CTC)" "${asr_exp}" \
      "${asr_exp}/${asr_init_model}" "${featdir}/${train_data}/.done ${featdir}/${valid_set}/.done" \
      python -m salign.bin.st_train --config "${asr_config}" --output_dir "${asr_exp}" \
        "${token_args[@]}" "${input_args[@]}" --resume true "${norm_args[@]}" \
        "${speech_data[@]}" ${asr_args}
  }
  speech_data_args  # the speech training data of the ASR pre-training and the ST training
  if [ "${pretrain_mt}" = true ] && [ "${pretrain_asr}" = true ] && [ "${model_family}" = salign ]; then
    # the two pre-trainings are independent: side by side, each on half the CPU threads (small models gain little
    # from a second thread, two processes use both cores); the first to fail stops the run
    threads=$(( ${OMP_NUM_THREADS:-$(nproc)} > 1 ? ${OMP_NUM_THREADS:-$(nproc)} / 2 : 1 ))
    OMP_NUM_THREADS=${threads} pre_mt & mt_pid=$!
    OMP_NUM_THREADS=${threads} pre_asr & asr_pid=$!
    status=0
    wait "${mt_pid}" || status=$?
    wait "${asr_pid}" || status=$(( status > 0 ? status : $? ))
    [ "${status}" -eq 0 ] || exit "${status}"
  else
    if [ "${pretrain_mt}" = true ]; then pre_mt; fi
    if [ "${pretrain_asr}" = true ] && [ "${model_family}" = salign ]; then pre_asr; fi
  fi
  if [ "${train_st}" = true ]; then
    init=()
    [ "${pretrain_mt}" = true ] && init=(--init_from_mt "${mt_exp}/${mt_init_model}")
    if [ "${pretrain_asr}" = true ]; then
      asr_model=$(asr_init)
      if [ "${model_family}" = espnet ]; then
        # (one --init_param with both: ESPnet's option takes a list, and a second --init_param would replace the first)
        init+=(--init_param "${asr_model}:encoder:encoder" "${asr_model}:ctc:ctc")
      else
        init+=(--init_from_asr "${asr_model}")
      fi
    fi
    what="S-Align multi-task training"
    [ "${model_family}" = espnet ] && what="ESPnet's stock ST model (${train_module})"
    # shellcheck disable=SC2086
    # the features themselves: stage 3's stamps of the training and validation sets stand for them
    train_once 11b "${what}" "${st_exp}" "${st_exp}/${inference_model}" \
      "${featdir}/${train_data}/.done ${featdir}/${valid_set}/.done" \
      python -m "${train_module}" --config "${st_config}" --output_dir "${st_exp}" \
        "${token_args[@]}" "${input_args[@]}" --resume true "${init[@]}" \
        "${norm_args[@]}" \
        "${speech_data[@]}" ${st_args}
    logs=("${st_exp}/train.log")
    [ "${pretrain_asr}" = true ] && logs=("${asr_exp}/train.log" "${logs[@]}")
    [ "${pretrain_mt}" = true ] && logs=("${mt_exp}/train.log" "${logs[@]}")
    python -m salign.bin.train_summary "${logs[@]}"
  else
    log "stage 11b: skipped: --train_st false"
  fi
fi
if run_stage 11; then made 11; fi

if run_stage 12; then
  current_model 12
  for dset in ${eval_sets}; do current_dumps 12 "${filtdir}/${dset}"; done
fi
if run_stage 12 && [ "${model_family}" = espnet ]; then
  # ESPnet's own st_inference (ST only: ESPnet's ST model has no MT path), per set: --inference_nj jobs, each on its
  # share of the keys, then merged. A decode dir whose stamp (model, configs, data list, options) is fresh is skipped.
  conf=()
  [ -n "${inference_config}" ] && conf=(--config "${inference_config}")
  for dset in ${eval_sets}; do
    dir=${st_exp}/decode_st_${dset}
    scp=${filtdir}/${dset}/${speech_scp}
    dstamp=(--stamp "${dir}/.stamp" --input "${st_exp}/config.yaml" "${st_exp}/${inference_model}" "${scp}"
            ${inference_config:+"${inference_config}"} --option "inference_args=${inference_args}")
    if fresh "${dstamp[@]}" --what "${dir}"; then
      log "stage 12: ${dir} is complete (its stamp is up to date: same model, configs, data list and options)"
      continue
    fi
    log "stage 12: decoding ${dset} as ST with ${inference_module} -> ${dir} (${reason})"
    rm -rf "${dir}"
    n=$(python -m salign.bin.decode_utils split --scp "${scp}" --nj "${inference_nj}" --out "${dir}/split")
    # shellcheck disable=SC2086
    "${decode_launcher[@]}" JOB=1:"${n}" "${dir}/logdir/decode.JOB.log" \
      python -m "${inference_module}" --ngpu 0 "${conf[@]}" --st_train_config "${st_exp}/config.yaml" \
        --st_model_file "${st_exp}/${inference_model}" --data_path_and_name_and_type "${scp},speech,${speech_type}" \
        --key_file "${dir}/split/keys.JOB" --output_dir "${dir}/output.JOB" ${inference_args}
    python -m salign.bin.decode_utils merge --out "${dir}" --nj "${n}" --split "${dir}/split" \
      --log "${dir}/logdir/decode.JOB.log"
    python -m salign.bin.stamp write "${dstamp[@]}" --output "${dir}/1best_recog/text"
  done
elif run_stage 12; then
  # Every set as every task in --inference_nj jobs: job J decodes its share of the keys of each set and task in one
  # process (the model loaded once); then one merge writes each decode dir's ESPnet files and only then its stamp
  # (model, configs, data, options). A dir whose stamp is fresh is skipped; any other is decoded again, reason printed.
  dec=(--decode_sets "${eval_sets}" --tasks "${decode_tasks}" --dump_dir "${filtdir}" --exp_dir "${st_exp}"
       --speech "${speech_scp},speech,${speech_type}" --src_lang "${src_lang}" --decode_options "${inference_args}"
       --mt_options "${mt_inference_args}" --nj "${inference_nj}" --job_log "${st_exp}/decode_logdir/decode.JOB.log"
       --ngpu 0 --st_train_config "${st_exp}/config.yaml" --st_model_file "${st_exp}/${inference_model}")
  [ -n "${inference_config}" ] && dec+=(--config "${inference_config}")
  log "stage 12: decoding ${eval_sets// /, } as ${decode_tasks// /, } (${inference_nj} jobs) -> ${st_exp}/decode_*"
  "${decode_launcher[@]}" JOB=1:"${inference_nj}" "${st_exp}/decode_logdir/decode.JOB.log" \
    python -m salign.bin.st_inference "${dec[@]}" --job JOB
  python -m salign.bin.st_inference "${dec[@]}" --merge
fi
if run_stage 12; then made 12; fi

if run_stage 13; then
  log "stage 13: scoring"
  # the hypotheses must come from the current model, config and data: each decode dir's stamp (stage 12) against
  # what it recorded, all of them before anything is scored
  for dset in ${eval_sets}; do
    for task in ${decode_tasks}; do
      dir=${st_exp}/decode_${task}_${dset}
      if [ ! -f "${dir}/.stamp" ]; then
        die "${dir}: not decoded (no stamp from stage 12) (fix: run stage 12 first, e.g. --stage 12)"
      elif ! fresh --recorded --stamp "${dir}/.stamp"; then
        die "${dir}: its hypotheses are out of date (${reason} since they were decoded) (fix: run stage 12 first," \
          "e.g. --stage 12)"
      fi
    done
  done
  for dset in ${eval_sets}; do
    for task in ${decode_tasks}; do
      dir=${st_exp}/decode_${task}_${dset}
      ref=${filtdir}/${dset}/text.${tgt_lang}
      [ "${task}" = asr ] && ref=${filtdir}/${dset}/text.${src_lang}
      python -m salign.bin.score --task "${task}" --hyp "${dir}/1best_recog/text" --ref "${ref}" \
        --out "${dir}/score" --set "${dset}" --model "${st_tag}" --tgt_lang "${tgt_lang}" >/dev/null
    done
  done
  made 13
  recipe=$(pwd); recipe=${recipe#"${SALIGN_ROOT}/"}
  python -m salign.bin.score --collect "${st_exp}" --out "${results}" >/dev/null \
    --title "${recipe}: ${src_lang}-${tgt_lang}, ${st_tag}" --command "cd $(printf '%q' "${recipe}") && $(reproduce_command)"
  log "stage 13: results -> ${results}"
  cat "${results}"
fi

if run_stage 14; then
  current_model 14
  log "stage 14: packing -> ${st_exp}/packed/model.zip"
  mkdir -p "${st_exp}/packed"
  python -m salign.bin.pack st --st_train_config "${st_exp}/config.yaml" \
    --st_model_file "${st_exp}/${inference_model}" --option "${tgt_bpemodel}" --option "${results}" \
    --outpath "${st_exp}/packed/model.zip"
fi
if run_stage 14; then made 14; fi
if run_stage 15 && [ "${model_family}" = espnet ]; then
  log "stage 15: skipped: the gap analysis needs salign's shared textual encoder, ESPnet's ST model has none"
elif run_stage 15; then
  current_model 15
  current_dumps 15 "${filtdir}/${valid_set}"
  log "stage 15: modality-gap analysis on ${valid_set} -> ${st_exp}/gap"
  python -m salign.bin.analyze_gap --st_train_config "${st_exp}/config.yaml" \
    --st_model_file "${st_exp}/${inference_model}" --feats "${filtdir}/${valid_set}/${speech_scp}" \
    --src_text "${filtdir}/${valid_set}/text.${src_lang}" --out "${st_exp}/gap"
fi
if run_stage 15; then made 15; fi
log "done (stages ${stage}..${stop_stage})"
}

# The whole driver is parsed before it runs, and it exits on the line that runs it (bash reads a script as it goes):
# editing this file during a run cannot corrupt the run.
main; exit
