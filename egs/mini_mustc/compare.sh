#!/usr/bin/env bash
# Alignment methods side by side on the mini MuST-C: the same data, the same model shape and the same training budget
# for each method, one table (COMPARE.md): ST BLEU, MT BLEU, ASR WER and the modality-gap measures.
#   1. data: ./run.sh --stop_stage 10 (corpus, features, dumps, token list, shapes) once
#   2. salign rows, one per --methods entry (baseline = no alignment loss, contrastive = H-Align, adversarial =
#      S-Align, ot = AI-STA): ./run.sh --stage 11 --stop_stage 15 --st_config exp/compare_conf/train_st_<m>.yaml
#      --st_tag <m> (test sets as ST/MT/ASR, packing, gap analysis), then stages 12-13 for the training subset as ST;
#      all start from one MT pre-training (exp/compare_conf/train_mt_compare.yaml, trained once)
#   3. ESPnet's stock ST model on the same dumps, no MT pre-training: ./run.sh --model_family espnet --stage 11
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
#   ./compare.sh --corpus_opts "--n_train 2400 --n_dev 100 --n_tst 100 --n_mt_extra 2000 --nj 2" --jobs 2  # learning size
#   ./compare.sh --methods "baseline adversarial" --stock false --stage 2
#   ./compare.sh --methods "" --stock false --llm_methods "baseline ot"   # the speech-LLM rows only
#   ./compare.sh --jobs 2                          # train/decode two rows at a time, each on nproc/2 threads
#   ./compare.sh --run_opts "--nj 4"               # more options for every ./run.sh call
# Options (--name value): --methods LIST, --stock true|false, --llm_methods LIST, --stage/--stop_stage 1..4 (the steps above),
# --test_sets LIST, --corpus_opts, --debug, --out FILE, --jobs N (rows run N at a time after the shared MT
# pre-training; a row's log: exp/compare_logs/<row>.log), --ngpu N, --inference_nj N, --run_opts "OPTIONS".
# compare.sh works in this recipe dir like run.sh (corpus/, data/, dump/, exp/ are shared with it); its experiments
# are exp/mt_train_mt_compare, exp/st_<method>, exp/st_stock_espnet, exp/mt_train_lm_compare, exp/st_llm_<method>. Each row's results table is
# exp/st_<row>/RESULTS.md (run.sh's RESULTS.md is left alone).
set -euo pipefail
cd "$(dirname "$0")"

debug=false             # true: the tiny configs of conf/compare/debug/
methods="baseline contrastive adversarial ot"  # salign rows, each conf/compare/method/<row>.yaml
stock=true              # also the row of ESPnet's stock ST model
llm_methods="baseline ot"  # speech-LLM rows (--model_family llm), each conf/compare/llm/method/<m>.yaml -> llm_<m>
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

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [compare.sh] $*"; }
die() { echo "ERROR [compare.sh]: $*" >&2; exit 2; }
step() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

cdir=conf/compare
confdir=exp/compare_conf  # the merged configs the rows train with
# the comparison configs select checkpoints (MT init, ST average) on valid accuracy (for learning-size builds)
# shellcheck disable=SC2206  # run_opts: options split as on a command line
common=(--debug "${debug}" --ngpu "${ngpu}" --inference_nj "${inference_nj}" --mt_init_model valid.acc.best.pth
        --inference_model valid.acc.ave.pth ${run_opts})
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
corpus=()
[ -n "${corpus_opts}" ] && corpus=(--corpus_opts "${corpus_opts}")

merge_conf() {  # BASE OVERRIDE OUT: BASE with each top-level key of OVERRIDE replacing its own, written to OUT
  python - "$@" <<'EOF'
import sys

import yaml

from salign.utils.io import atomic_write

base, override, out = sys.argv[1:]
conf = yaml.safe_load(open(base, encoding="utf-8")) or {}
conf.update(yaml.safe_load(open(override, encoding="utf-8")) or {})
with atomic_write(out) as f:
    f.write(f"# {base} + {override} (written by compare.sh: edit those)\n")
    f.write(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True))
EOF
}
mt_config=${confdir}/train_mt_compare.yaml
merge_conf "${cdir}/base.yaml" "${cdir}/mt.yaml" "${mt_config}"
for m in ${methods}; do merge_conf "${cdir}/base.yaml" "${cdir}/method/${m}.yaml" "${confdir}/train_st_${m}.yaml"; done
lm_config=${confdir}/train_lm_compare.yaml
llm_rows=
if [ -n "${llm_methods// /}" ]; then
  merge_conf "${cdir}/llm/base.yaml" "${cdir}/llm/lm.yaml" "${lm_config}"
  for m in ${llm_methods}; do
    merge_conf "${cdir}/llm/base.yaml" "${cdir}/llm/method/${m}.yaml" "${confdir}/train_st_llm_${m}.yaml"
    llm_rows="${llm_rows} llm_${m}"
  done
fi

if step 1; then
  log "step 1: data stages 0-10 (./run.sh --stop_stage 10)"
  ./run.sh "${common[@]}" "${corpus[@]}" --stage 0 --stop_stage 10
  # exp/ must not mix models trained on another corpus or with the other (debug / full) configs
  stamp=$(printf 'debug=%s\n' "${debug}"; cat corpus/en-*/.mini_mustc.json 2>/dev/null || true)
  if [ -f exp/.compare_stamp ] && [ "$(cat exp/.compare_stamp)" != "${stamp}" ]; then
    die "exp/ holds a comparison made on another corpus or with other configs" \
        "($(tr '\n' ' ' < exp/.compare_stamp)) (fix: rm -rf exp/mt_train_mt_compare" \
        "exp/st_{${methods// /,},stock_espnet} exp/.compare_stamp, or use a fresh copy of the recipe)"
  fi
  mkdir -p exp && printf '%s\n' "${stamp}" > exp/.compare_stamp
fi

# one row: a salign method (stages 11-15 on the test sets, then the training subset as ST) or the stock ESPnet model
# (stages 11-13, ST only: ESPnet's own st_train and st_inference through the same driver stages)
run_row() {
  local m=$1 rargs
  if [ "${m}" = stock_espnet ]; then
    log "step 3: ESPnet's stock ST model (${cdir}/train_st_stock_espnet.yaml) -> exp/st_stock_espnet"
    ./run.sh "${common[@]}" --model_family espnet --pretrain_mt false --decode_tasks st \
      --st_config "${cdir}/train_st_stock_espnet.yaml" --st_tag stock_espnet \
      --results exp/st_stock_espnet/RESULTS.md --stage 11 --stop_stage 13 --test_sets "${test_sets}"
    return
  fi
  if [[ "${m}" == llm_* ]]; then
    log "step 3: speech LLM ${m} (${confdir}/train_st_${m}.yaml, LM pre-training ${lm_config}) -> exp/st_${m}"
    rargs=(--model_family llm --mt_config "${lm_config}" --st_config "${confdir}/train_st_${m}.yaml" --st_tag "${m}"
           --results "exp/st_${m}/RESULTS.md")
  else
    log "step 2: ${m} (${confdir}/train_st_${m}.yaml, MT pre-training ${mt_config}) -> exp/st_${m}"
    rargs=(--mt_config "${mt_config}" --st_config "${confdir}/train_st_${m}.yaml" --st_tag "${m}"
           --results "exp/st_${m}/RESULTS.md")
  fi
  # the test sets as ST, MT and ASR (and packing, gap analysis) ...
  ./run.sh "${common[@]}" "${rargs[@]}" --stage 11 --stop_stage 15 --test_sets "${test_sets}" --train_eval_size 0
  # ... and the training subset as ST only (the table's "is it learning?" column): saves two decodes per method
  ./run.sh "${common[@]}" "${rargs[@]}" --stage 12 --stop_stage 13 --test_sets "" --decode_tasks st
}

todo=
if step 2; then todo=${methods}; fi
if [ "${stock}" = true ] && step 3; then todo="${todo} stock_espnet"; fi
if step 3; then todo="${todo}${llm_rows}"; fi
if [ -n "${todo// /}" ] && [ "${jobs}" -gt 1 ]; then
  # rows in parallel: the shared MT (LM) pre-training first (all threads), then N rows at a time on nproc/N threads
  if step 2 && [ -n "${methods// /}" ]; then
    log "step 2: shared MT pre-training (${mt_config})"
    first=$(echo "${methods}" | awk '{print $1}')
    ./run.sh "${common[@]}" --mt_config "${mt_config}" --st_config "${confdir}/train_st_${first}.yaml" \
      --st_tag "${first}" --stage 11 --stop_stage 11 --train_st false
  fi
  if step 3 && [ -n "${llm_rows}" ]; then
    log "step 3: shared LM pre-training of the speech-LLM rows (${lm_config})"
    first=$(echo "${llm_rows}" | awk '{print $1}')
    ./run.sh "${common[@]}" --model_family llm --mt_config "${lm_config}" \
      --st_config "${confdir}/train_st_${first}.yaml" --st_tag "${first}" --stage 11 --stop_stage 11 --train_st false
  fi
  threads=$(( $(nproc) / jobs )); [ "${threads}" -ge 1 ] || threads=1
  mkdir -p exp/compare_logs
  pids=(); names=()
  for m in ${todo}; do
    while [ "$(jobs -rp | wc -l)" -ge "${jobs}" ]; do wait -n || true; done
    log "row ${m}: started on ${threads} thread(s) (log: exp/compare_logs/${m}.log)"
    ( export OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads}; run_row "${m}" ) > "exp/compare_logs/${m}.log" 2>&1 &
    pids+=($!); names+=("${m}")
  done
  failed=
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then log "row ${names[$i]}: done"; else failed="${failed} ${names[$i]}"; fi
  done
  for m in ${failed}; do
    echo "ERROR [compare.sh]: row ${m} failed; the end of exp/compare_logs/${m}.log:" >&2
    tail -n 20 "exp/compare_logs/${m}.log" >&2
  done
  [ -z "${failed}" ] || exit 1
else
  for m in ${todo}; do run_row "${m}"; done
fi
rows=${methods}
[ "${stock}" = true ] && rows="${rows} stock_espnet"
rows="${rows}${llm_rows}"
mt_exps=()
[ -n "${methods// /}" ] && mt_exps+=(--mt_exp exp/mt_train_mt_compare)
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
    for a in "${words[@]}"; do
      if [[ -z "${a}" || "${a}" =~ [[:space:]] ]]; then cmd="${cmd} \"${a}\""; else cmd="${cmd} ${a}"; fi
    done
  done
  title="Alignment methods side by side (egs/mini_mustc, en-es)"
  [ "${debug}" = true ] && title="${title%)}; debug configs: shows that it runs, not which method is better)"
  python -m salign.bin.compare --exp exp --out "${out}" --methods "${rows}" --command "${cmd}" \
    "${mt_exps[@]}" --title "${title}" --note "$(cat conf/compare/NOTES.md)"
fi
log "done: ${out}"
