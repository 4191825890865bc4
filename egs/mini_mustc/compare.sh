#!/usr/bin/env bash
# Alignment methods side by side on the mini MuST-C: the same data, the same model shape and the same training budget
# for each method, one table (COMPARE.md): ST BLEU, MT BLEU, ASR WER and the modality-gap measures.
#   1. data: ./run.sh --stop_stage 10 (corpus, features, dumps, token list, shapes) once, into
#      dump/compare/fbank_stack2/ with --feats_stack 2 (2 fbank frames stored as one: every model, ESPnet's stock one
#      included, reads 20 ms frames)
#   then the shared pre-training, once: MT on the text (exp/compare_conf/train_mt_compare.yaml), ASR on the training
#      speech (exp/compare_conf/train_asr_compare.yaml: acoustic encoder + CTC, stopped on the dev CTC loss; --asr
#      false: none), and the LM of the speech-LLM rows; every row's acoustic encoder starts from the ASR pre-training.
#      The pre-trainings are jobs of the rows' pool (--jobs N at a time): pre_asr, pre_mt, pre_lm, then the rows;
#      a row waits for those it needs (exp/compare_logs/<job>.done)
#   2. salign rows, one per --methods entry (baseline = no alignment loss, contrastive = H-Align, adversarial =
#      S-Align with lambda·L_G at face value, adversarial_official = S-Align at the official effective adversarial
#      strength (adv_grad_scale official), ot = AI-STA):
#      ./run.sh --stage 11 --stop_stage 15 --st_config exp/compare_conf/train_st_<m>.yaml
#      --st_tag <m> (test sets as ST/MT/ASR, packing, gap analysis), then stages 12-13 for the training subset as ST;
#      all start from the MT and ASR pre-training (--init_from_mt, --init_from_asr)
#   3. ESPnet's stock ST model on the same dumps, no MT pre-training, its encoder and CTC from the ASR pre-training
#      (ESPnet's --init_param): ./run.sh --model_family espnet --stage 11
#      --stop_stage 13 (conf/compare/train_st_stock_espnet.yaml); and the speech-LLM rows, one per --llm_methods
#      entry (llm_baseline = no alignment loss, llm_ot = AI-STA on the LM layers retrieval picks):
#      ./run.sh --model_family llm --stage 11 --stop_stage 15 --st_config exp/compare_conf/train_st_llm_<m>.yaml,
#      all starting from one pre-training of their LM on the same text (exp/compare_conf/train_lm_compare.yaml)
#   4. the table: python -m salign.bin.compare -> COMPARE.md (also printed), with conf/compare/NOTES.md as its header
# Same budget by construction: a row's config is conf/compare/base.yaml with conf/compare/method/<m>.yaml on top (the
# MT pre-training's: base.yaml with mt.yaml on top; an LLM row's: llm/base.yaml with llm/method/<m>.yaml on top, its
# LM pre-training's: llm/base.yaml with llm/lm.yaml on top), written to exp/compare_conf/ (debug: conf/compare/debug/).
#
#   ./compare.sh                                   # the mini recipe's corpus (as ./run.sh)
#   ./compare.sh --debug true                      # tiny configs, a few steps: the whole comparison in minutes (CI)
#   ./compare.sh --corpus_opts "--n_train 2400 --n_dev 100 --n_tst 100 --n_tst_unseen 100 --n_mt_extra -1 --nj 2" \
#     --test_sets "tst-COMMON tst-HE tst-UNSEEN" --jobs 2   # learning size, with a held-out-voice test set
#   ./compare.sh --methods "baseline adversarial" --stock false --stage 2
#   ./compare.sh --methods "" --stock false --llm_methods "baseline ot"   # the speech-LLM rows only
#   ./compare.sh --jobs 2                          # train/decode two rows at a time, each on nproc/2 threads
#   ./compare.sh --asr false                       # no ASR pre-training: every acoustic encoder starts at random
#   ./compare.sh --methods "baseline ot" --llm_methods "" --stock false --seeds 2 --stage 2   # a second seed
#   ./compare.sh --run_opts "--nj 4"               # more options for every ./run.sh call
# Options (--name value): --methods LIST, --stock true|false, --llm_methods LIST, --asr true|false, --seeds N,
# --stage/--stop_stage 1..4 (the steps above),
# --test_sets LIST, --corpus_opts, --debug, --out FILE, --jobs N (pre-trainings and rows run N at a time, each on
# nproc/N threads; a job's log: exp/compare_logs/<job>.log), --ngpu N, --inference_nj N, --run_opts "OPTIONS".
# compare.sh works in this recipe dir like run.sh (corpus/, data/, exp/ are shared with it; its dumps are
# dump/compare/fbank_stack2/), and holds the recipe's lock while it runs (utils/recipe_lock.sh: a ./run.sh started
# elsewhere meanwhile refuses; its own run under it);
# its experiments are exp/mt_train_mt_compare, exp/asr_train_asr_compare, exp/st_<method>, exp/st_stock_espnet,
# exp/mt_train_lm_compare, exp/st_llm_<method>. Each row's results table is
# exp/st_<row>/RESULTS.md (run.sh's RESULTS.md is left alone).
set -euo pipefail
cd "$(dirname "$0")"

debug=false             # true: the tiny configs of conf/compare/debug/
methods="baseline contrastive adversarial adversarial_official ot"  # salign rows, each conf/compare/method/<row>.yaml
stock=true              # also the row of ESPnet's stock ST model
llm_methods="baseline ot"  # speech-LLM rows (--model_family llm), each conf/compare/llm/method/<m>.yaml -> llm_<m>
asr=true                # shared ASR pre-training (conf/compare/asr.yaml) initialising every row's acoustic encoder
seeds=1                 # > 1: every salign and speech-LLM row trained again with seeds 2..N (rows <row>_seed<S>;
                        # the table gives each row's mean over its seeds and every seed's score)
stage=1                 # first step (1 data, 2 salign rows, 3 stock row, 4 table)
stop_stage=4            # last step
test_sets=              # default: tst-COMMON tst-HE (debug: tst-COMMON)
corpus_opts=            # stage 0's corpus options (default: run.sh's)
out=COMPARE.md          # the table
jobs=1                  # rows at a time after the shared MT pre-training
ngpu=0                  # GPUs for training (every ./run.sh call)
inference_nj=1          # decoding jobs (every ./run.sh call)
run_opts=               # more options for every ./run.sh call, e.g. "--nj 4"

declare -a orig_args=("$@")  # (declared: not an option)
declare root=${SALIGN_ROOT:-$(cd ../.. && pwd)}
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
[ $# -eq 0 ] || { echo "ERROR [compare.sh]: unexpected argument '$1' (fix: options are --name value)" >&2; exit 2; }
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh
# shellcheck source-path=SCRIPTDIR source=../../utils/recipe_lock.sh
. "${SALIGN_ROOT}/utils/recipe_lock.sh"
recipe_lock "$0"

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [compare.sh] $*"; }
die() { echo "ERROR [compare.sh]: $*" >&2; exit 2; }
step() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

cdir=conf/compare
confdir=exp/compare_conf  # the merged configs the rows train with
# the comparison configs select checkpoints (MT init, ST average) on valid accuracy (for learning-size builds); the
# rows train on fbank (run.sh --pretrained false: stacked fbank, the acoustic side from scratch)
# shellcheck disable=SC2206  # run_opts: options split as on a command line
common=(--debug "${debug}" --pretrained false --ngpu "${ngpu}" --inference_nj "${inference_nj}" --mt_init_model valid.acc.best.pth
        --inference_model valid.acc.ave.pth --feats_stack 2 --dumpdir dump/compare ${run_opts})
if [ "${debug}" = true ]; then
  cdir=conf/compare/debug
  # a smaller training subset to decode, one test set: keeps the debug comparison to a few minutes
  common+=(--train_eval_size 8)
  [ -n "${test_sets}" ] || test_sets=tst-COMMON
fi
[ -n "${test_sets}" ] || test_sets="tst-COMMON tst-HE"
known=$(find "${cdir}/method" -name '*.yaml' -printf '%f\n' | sed 's/\.yaml$//' | sort | tr '\n' ' ')
for m in ${methods}; do
  [ -f "${cdir}/method/${m}.yaml" ] ||
    die "${cdir}/method/${m}.yaml: no config for method '${m}' (fix: pick from ${known% })"
done
known=$(find "${cdir}/llm/method" -name '*.yaml' -printf '%f\n' | sed 's/\.yaml$//' | sort | tr '\n' ' ')
for m in ${llm_methods}; do
  [ -f "${cdir}/llm/method/${m}.yaml" ] ||
    die "${cdir}/llm/method/${m}.yaml: no config for LLM method '${m}' (fix: pick from ${known% })"
done
[[ "${jobs}" =~ ^[1-9][0-9]*$ ]] || die "--jobs ${jobs}: must be a positive integer"
case "${asr}" in true|false) ;; *) die "--asr ${asr}: must be true or false" ;; esac
[[ "${seeds}" =~ ^[1-9][0-9]*$ ]] || die "--seeds ${seeds}: must be a positive integer"
corpus=()
[ -n "${corpus_opts}" ] && corpus=(--corpus_opts "${corpus_opts}")

merge_conf() {  # BASE OVERRIDE OUT [SEED]: BASE with each top-level key of OVERRIDE replacing its own (and `seed:
  # SEED`), written to OUT
  python - "$@" <<'EOF'
import sys

import yaml

from salign.utils.io import atomic_write

base, override, out = sys.argv[1:4]
conf = yaml.safe_load(open(base, encoding="utf-8")) or {}
conf.update(yaml.safe_load(open(override, encoding="utf-8")) or {})
extra = ""
if len(sys.argv) > 4:
    conf["seed"] = int(sys.argv[4])
    extra = f" + seed {sys.argv[4]}"
with atomic_write(out) as f:
    f.write(f"# {base} + {override}{extra} (written by compare.sh: edit those)\n")
    f.write(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True))
EOF
}
mt_config=${confdir}/train_mt_compare.yaml
merge_conf "${cdir}/base.yaml" "${cdir}/mt.yaml" "${mt_config}"
asr_config=${confdir}/train_asr_compare.yaml
asr_opts=()  # every row's: the shared ASR pre-training (trained once, in the shared pre-training step)
if [ "${asr}" = true ]; then
  merge_conf "${cdir}/base.yaml" "${cdir}/asr.yaml" "${asr_config}"
  asr_opts=(--pretrain_asr true --asr_config "${asr_config}")
fi
seed_rows=  # rows trained again with another seed (--seeds N): <row>_seed<S>, S = 2..N, averaged in the table
for m in ${methods}; do
  merge_conf "${cdir}/base.yaml" "${cdir}/method/${m}.yaml" "${confdir}/train_st_${m}.yaml"
  for ((s = 2; s <= seeds; s++)); do
    merge_conf "${cdir}/base.yaml" "${cdir}/method/${m}.yaml" "${confdir}/train_st_${m}_seed${s}.yaml" "${s}"
    seed_rows="${seed_rows} ${m}_seed${s}"
  done
done
lm_config=${confdir}/train_lm_compare.yaml
llm_rows=
llm_seed_rows=
if [ -n "${llm_methods// /}" ]; then
  merge_conf "${cdir}/llm/base.yaml" "${cdir}/llm/lm.yaml" "${lm_config}"
  for m in ${llm_methods}; do
    merge_conf "${cdir}/llm/base.yaml" "${cdir}/llm/method/${m}.yaml" "${confdir}/train_st_llm_${m}.yaml"
    llm_rows="${llm_rows} llm_${m}"
    for ((s = 2; s <= seeds; s++)); do
      merge_conf "${cdir}/llm/base.yaml" "${cdir}/llm/method/${m}.yaml" "${confdir}/train_st_llm_${m}_seed${s}.yaml" \
        "${s}"
      llm_seed_rows="${llm_seed_rows} llm_${m}_seed${s}"
    done
  done
fi

if step 1; then
  log "step 1: data stages 0-10 (./run.sh --stop_stage 10)"
  ./run.sh "${common[@]}" "${corpus[@]}" --test_sets "${test_sets}" --stage 0 --stop_stage 10
  # exp/ must not mix models trained on another corpus or with the other (debug / full) configs
  stamp=$(printf 'debug=%s\nasr=%s\n' "${debug}" "${asr}"; cat corpus/en-*/.mini_mustc.json 2>/dev/null || true)
  if [ -f exp/.compare_stamp ] && [ "$(cat exp/.compare_stamp)" != "${stamp}" ]; then
    die "exp/ holds a comparison made on another corpus or with other configs" \
        "($(tr '\n' ' ' < exp/.compare_stamp)) (fix: rm -rf exp/mt_train_mt_compare" \
        "exp/asr_train_asr_compare exp/st_{${methods// /,},stock_espnet} exp/.compare_stamp, or use a fresh copy" \
        "of the recipe)"
  fi
  mkdir -p exp && printf '%s\n' "${stamp}" > exp/.compare_stamp
fi

# one row: a salign method (stages 11-15 on the test sets, then the training subset as ST) or the stock ESPnet model
# (stages 11-13, ST only: ESPnet's own st_train and st_inference through the same driver stages)
run_row() {
  local m=$1 rargs
  if [ "${m}" = stock_espnet ]; then
    log "step 3: ESPnet's stock ST model (${cdir}/train_st_stock_espnet.yaml) -> exp/st_stock_espnet"
    ./run.sh "${common[@]}" "${asr_opts[@]}" --model_family espnet --pretrain_mt false --decode_tasks st \
      --st_config "${cdir}/train_st_stock_espnet.yaml" --st_tag stock_espnet \
      --results exp/st_stock_espnet/RESULTS.md --stage 11 --stop_stage 13 --test_sets "${test_sets}"
    return
  fi
  if [[ "${m}" == llm_* ]]; then
    log "step 3: speech LLM ${m} (${confdir}/train_st_${m}.yaml, LM pre-training ${lm_config}) -> exp/st_${m}"
    rargs=(--model_family llm --mt_config "${lm_config}" --st_config "${confdir}/train_st_${m}.yaml" --st_tag "${m}"
           --results "exp/st_${m}/RESULTS.md" "${asr_opts[@]}")
  else
    log "step 2: ${m} (${confdir}/train_st_${m}.yaml, MT pre-training ${mt_config}) -> exp/st_${m}"
    rargs=(--mt_config "${mt_config}" --st_config "${confdir}/train_st_${m}.yaml" --st_tag "${m}"
           --results "exp/st_${m}/RESULTS.md" "${asr_opts[@]}")
  fi
  # the test sets as ST, MT and ASR (and packing, gap analysis) ...
  ./run.sh "${common[@]}" "${rargs[@]}" --stage 11 --stop_stage 15 --test_sets "${test_sets}" --train_eval_size 0
  # ... and the training subset as ST only (the table's "is it learning?" column): saves two decodes per method
  ./run.sh "${common[@]}" "${rargs[@]}" --stage 12 --stop_stage 13 --test_sets "" --decode_tasks st
}

# the shared pre-training, as jobs of the same pool as the rows: pre_asr (ASR on the speech: every row's acoustic
# encoder starts from it), pre_mt (MT on the text: the salign rows start from it), pre_lm (the LM of the speech-LLM
# rows). A row waits for what it needs (exp/compare_logs/<job>.done) before it works.
pre_mt() {
  ./run.sh "${common[@]}" --mt_config "${mt_config}" --st_config "${mt_config}" --st_tag shared_pretraining \
    --stage 11 --stop_stage 11 --train_st false
}
pre_asr() {
  ./run.sh "${common[@]}" "${asr_opts[@]}" --pretrain_mt false --st_config "${mt_config}" \
    --st_tag shared_pretraining --stage 11 --stop_stage 11 --train_st false
}
pre_lm() {
  local first
  first=$(echo "${llm_rows}" | awk '{print $1}')
  ./run.sh "${common[@]}" --model_family llm --mt_config "${lm_config}" --st_config "${confdir}/train_st_${first}.yaml" \
    --st_tag "${first}" --stage 11 --stop_stage 11 --train_st false
}
needs() {  # JOB...: wait until each job of the pool has finished; fail at once if one failed
  local j
  for j in "$@"; do
    until [ -f "exp/compare_logs/${j}.done" ]; do
      [ ! -f "exp/compare_logs/${j}.failed" ] || die "${j} failed, which this job needs (see exp/compare_logs/${j}.log)"
      sleep 5
    done
  done
}
run_job() {  # one job of the pool, after what it needs
  local j=$1 pre=()
  [ "${asr}" = true ] && pre=(pre_asr)
  case "${j}" in
    pre_mt) pre_mt ;;
    pre_asr) pre_asr ;;
    pre_lm) pre_lm ;;
    llm_*) needs pre_lm "${pre[@]}"; run_row "${j}" ;;
    stock_espnet) needs "${pre[@]}"; run_row "${j}" ;;
    *) needs pre_mt "${pre[@]}"; run_row "${j}" ;;
  esac
}

rows_todo=
if step 2; then rows_todo="${methods}${seed_rows}"; fi
if [ "${stock}" = true ] && step 3; then rows_todo="${rows_todo} stock_espnet"; fi
if step 3; then rows_todo="${rows_todo}${llm_rows}${llm_seed_rows}"; fi
todo=
if [ -n "${rows_todo// /}" ]; then
  # what the rows to run need, first (a finished pre-training is a quick no-op: the driver's stamps)
  [ "${asr}" = true ] && todo="pre_asr"
  if step 2 && [ -n "${methods// /}" ]; then todo="${todo} pre_mt"; fi  # for the salign rows
  [[ "${rows_todo}" == *llm_* ]] && todo="${todo} pre_lm"
  todo="${todo} ${rows_todo}"
fi
if [ -n "${todo// /}" ]; then
  # N jobs at a time (--jobs), each on nproc/N threads, in this order; a job's output: exp/compare_logs/<job>.log
  threads=$(( $(nproc) / jobs )); [ "${threads}" -ge 1 ] || threads=1
  mkdir -p exp/compare_logs
  rm -f exp/compare_logs/*.done exp/compare_logs/*.failed
  pids=(); names=()
  for m in ${todo}; do
    while [ "$(jobs -rp | wc -l)" -ge "${jobs}" ]; do wait -n || true; done
    log "${m}: started on ${threads} thread(s) (log: exp/compare_logs/${m}.log)"
    # (the job itself runs outside any `if`/`||`, where bash would ignore set -e in it; its status is marked after)
    ( export OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads}
      set +e; ( set -e; run_job "${m}" ); rc=$?
      if [ "${rc}" -eq 0 ]; then touch "exp/compare_logs/${m}.done"; else touch "exp/compare_logs/${m}.failed"; fi
      exit "${rc}"
    ) > "exp/compare_logs/${m}.log" 2>&1 &
    pids+=($!); names+=("${m}")
  done
  failed=
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then log "${names[$i]}: done"; else failed="${failed} ${names[$i]}"; fi
  done
  for m in ${failed}; do
    echo "ERROR [compare.sh]: ${m} failed; the end of exp/compare_logs/${m}.log:" >&2
    tail -n 20 "exp/compare_logs/${m}.log" >&2
  done
  [ -z "${failed}" ] || exit 1
fi
rows=${methods}
[ "${stock}" = true ] && rows="${rows} stock_espnet"
rows="${rows}${llm_rows}"
mt_exps=()
{ [ -n "${methods// /}" ] || [ "${asr}" = true ]; } && mt_exps+=(--mt_exp exp/mt_train_mt_compare)
[ "${asr}" = true ] && mt_exps+=(--asr_exp exp/asr_train_asr_compare)
[ -n "${llm_rows}" ] && mt_exps+=(--lm_exp exp/mt_train_lm_compare)

if step 4; then
  cmd="cd egs/mini_mustc && ./compare.sh"  # the whole comparison: the options given, less --stage/--stop_stage
  set -- "${orig_args[@]}"
  while [ $# -ge 1 ]; do
    case "$1" in
      --stage=*|--stop_stage=*) shift; continue ;;
      --stage|--stop_stage) shift 2; continue ;;
      --*=*) words=("$1"); shift ;;
      *) words=("$1" "${2-}"); shift 2 || shift ;;
    esac
    for a in "${words[@]}"; do cmd="${cmd} $(printf '%q' "${a}")"; done
  done
  title="Alignment methods side by side (egs/mini_mustc, en-es)"
  [ "${debug}" = true ] && title="${title%)}; debug configs: shows that it runs, not which method is better)"
  python -m salign.bin.compare --exp exp --out "${out}" --methods "${rows}" --command "${cmd}" \
    --test_sets "${test_sets}" "${mt_exps[@]}" --title "${title}" --note "$(cat conf/compare/NOTES.md)"
fi
log "done: ${out}"
