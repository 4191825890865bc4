#!/usr/bin/env bash
# Alignment methods side by side on the mini MuST-C: the same data, the same model shape and the same training budget
# for each method, one table (COMPARE.md): ST BLEU, MT BLEU, ASR WER and the modality-gap measures.
#   1. data: ./run.sh --stop_stage 10 (corpus, features, dumps, token list, shapes) once
#   2. salign rows, one per --methods entry (baseline = no alignment loss, contrastive = H-Align, adversarial =
#      S-Align, ot = AI-STA): ./run.sh --stage 11 --stop_stage 15 --st_config conf/compare/train_st_<m>.yaml
#      --st_tag <m> (test sets as ST/MT/ASR, packing, gap analysis), then stages 12-13 for the training subset as ST;
#      all start from one MT pre-training (conf/compare/train_mt_compare.yaml, trained once)
#   3. ESPnet's stock ST model on the same dumps, no MT pre-training (local/stock_espnet.sh)
#   4. the table: python -m salign.bin.compare -> COMPARE.md (also printed)
# Same budget = identical model section, batch, optimiser, schedule and max_epoch in every conf/compare/*.yaml, i.e.
# the same number of updates (ESPnet's max_epoch); the alignment losses cost extra time per update, which the table's
# wall-time column shows. The stock model has the same batch/optimiser/epochs and a comparable size (params column).
#
#   ./compare.sh                                   # the mini recipe's corpus (as ./run.sh), ~15 min on 2 CPU cores
#   ./compare.sh --debug true                      # tiny configs, a few steps: the whole comparison in minutes (CI)
#   ./compare.sh --corpus_opts "--n_train 2400 --n_dev 100 --n_tst 100 --n_mt_extra 2000 --nj 2" --jobs 2  # learning size
#   ./compare.sh --methods "baseline adversarial" --stock false --stage 2
#   ./compare.sh --jobs 2                          # train/decode two rows at a time, each on nproc/2 threads
# Options: --methods LIST, --stock true|false, --stage/--stop_stage 1..4 (the steps above), --test_sets LIST,
# --corpus_opts, --debug, --out FILE, --jobs N (rows run N at a time after the shared MT pre-training; on a small
# CPU two one-thread rows finish in about the time one two-thread row takes; a row's log: exp/compare_logs/<row>.log);
# any other option goes to every ./run.sh call (e.g. --nj 4); --ngpu and --inference_nj also to local/stock_espnet.sh.
# compare.sh works in this recipe dir like run.sh (corpus/, data/, dump/, exp/ are shared with it); its experiments
# are exp/mt_train_mt_compare, exp/st_<method>, exp/st_stock_espnet. Each method's results table is
# exp/st_<method>/RESULTS.md (run.sh's RESULTS.md is left alone).
set -euo pipefail
cd "$(dirname "$0")"

debug=false
methods="baseline contrastive adversarial ot"
stock=true
stage=1
stop_stage=4
test_sets=
corpus_opts=
out=COMPARE.md
jobs=1
ngpu=0
inference_nj=1
args=()
orig_args=("$@")
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "ERROR [compare.sh]: option '$1' needs a value" >&2; exit 2; }
  case "$1" in
    --debug) debug=$2 ;;
    --methods) methods=$2 ;;
    --stock) stock=$2 ;;
    --stage) stage=$2 ;;
    --stop_stage) stop_stage=$2 ;;
    --test_sets) test_sets=$2 ;;
    --corpus_opts) corpus_opts=$2 ;;
    --out) out=$2 ;;
    --jobs) jobs=$2 ;;
    --ngpu) ngpu=$2; args+=("$1" "$2") ;;
    --inference_nj) inference_nj=$2; args+=("$1" "$2") ;;
    *) args+=("$1" "$2") ;;
  esac
  shift 2
done

root=${SALIGN_ROOT:-$(cd ../.. && pwd)}
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [compare.sh] $*"; }
die() { echo "ERROR [compare.sh]: $*" >&2; exit 2; }
step() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }

cdir=conf/compare
decode_conf=conf/decode.yaml
common=(--debug "${debug}")
if [ "${debug}" = true ]; then
  cdir=conf/compare/debug
  decode_conf=conf/debug/decode.yaml
  # a smaller training subset to decode, one test set: keeps the debug comparison to a few minutes
  common+=(--train_eval_size 8)
  [ -n "${test_sets}" ] || test_sets=tst-COMMON
fi
[ -n "${test_sets}" ] || test_sets="tst-COMMON tst-HE"
mt_config=${cdir}/train_mt_compare.yaml
known=
for f in "${cdir}"/train_st_*.yaml; do
  f=$(basename "${f}" .yaml); f=${f#train_st_}
  [ "${f}" = stock_espnet ] || known="${known} ${f}"
done
for m in ${methods}; do
  [ -f "${cdir}/train_st_${m}.yaml" ] ||
    die "${cdir}/train_st_${m}.yaml: no config for method '${m}' (fix: pick from${known})"
done
[ "${stock}" = true ] || [ "${stock}" = false ] || die "--stock ${stock}: must be true or false"
[[ "${jobs}" =~ ^[1-9][0-9]*$ ]] || die "--jobs ${jobs}: must be a positive integer"
corpus=()
[ -n "${corpus_opts}" ] && corpus=(--corpus_opts "${corpus_opts}")


if step 1; then
  log "step 1: data stages 0-10 (./run.sh --stop_stage 10)"
  ./run.sh "${common[@]}" "${corpus[@]}" "${args[@]}" --stage 0 --stop_stage 10
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
run_row() {
  local m=$1 rargs
  if [ "${m}" = stock_espnet ]; then
    log "step 3: ESPnet's stock ST model (${cdir}/train_st_stock_espnet.yaml) -> exp/st_stock_espnet"
    local/stock_espnet.sh --config "${cdir}/train_st_stock_espnet.yaml" --ngpu "${ngpu}" \
      --inference_nj "${inference_nj}" --test_sets "${test_sets}" --inference_config "${decode_conf}"
    return
  fi
  log "step 2: ${m} (${cdir}/train_st_${m}.yaml, MT pre-training ${mt_config}) -> exp/st_${m}"
  # the comparison configs select checkpoints (MT init, ST average) on valid accuracy (for learning-size builds)
  rargs=(--mt_config "${mt_config}" --st_config "${cdir}/train_st_${m}.yaml" --st_tag "${m}"
         --mt_init_model valid.acc.best.pth --inference_model valid.acc.ave.pth --results "exp/st_${m}/RESULTS.md")
  # the test sets as ST, MT and ASR (and packing, gap analysis) ...
  ./run.sh "${common[@]}" "${args[@]}" "${rargs[@]}" --stage 11 --stop_stage 15 --test_sets "${test_sets}" \
    --train_eval_size 0
  # ... and the training subset as ST only (the table's "is it learning?" column): saves two decodes per method
  ./run.sh "${common[@]}" "${args[@]}" "${rargs[@]}" --stage 12 --stop_stage 13 --test_sets "" --decode_tasks st
}

todo=
if step 2; then todo=${methods}; fi
if [ "${stock}" = true ] && step 3; then todo="${todo} stock_espnet"; fi
if [ -n "${todo// /}" ] && [ "${jobs}" -gt 1 ]; then
  # rows in parallel: the shared MT pre-training first (all threads), then N rows at a time on nproc/N threads each
  if step 2; then
    log "step 2: shared MT pre-training (${mt_config})"
    first=$(echo "${methods}" | awk '{print $1}')
    ./run.sh "${common[@]}" "${args[@]}" --mt_config "${mt_config}" --st_config "${cdir}/train_st_${first}.yaml" \
      --st_tag "${first}" --stage 11 --stop_stage 11 --train_st false
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

if step 4; then
  cmd="cd egs/mini_mustc && ./compare.sh"  # the whole comparison: the options given, less --stage/--stop_stage
  set -- "${orig_args[@]}"
  while [ $# -ge 2 ]; do
    case "$1" in --stage|--stop_stage) shift 2; continue ;; esac
    for a in "$1" "$2"; do
      if [[ -z "${a}" || "${a}" =~ [[:space:]] ]]; then cmd="${cmd} \"${a}\""; else cmd="${cmd} ${a}"; fi
    done
    shift 2
  done
  title="Alignment methods side by side (egs/mini_mustc, en-es)"
  [ "${debug}" = true ] && title="${title%)}; debug configs: shows that it runs, not which method is better)"
  epochs=$(grep -h '^max_epoch' "${cdir}/train_st_baseline.yaml")
  stock_epochs=$(grep -h '^max_epoch' "${cdir}/train_st_stock_espnet.yaml")
  budget="Every salign row starts from the same MT pre-training (\`${mt_config}\`) and trains with the same model
shape, batch, optimiser, schedule and ${epochs}, i.e. the same number of updates; only the alignment loss differs
(configs: \`${cdir}/\`). The stock ESPnet row (\`espnet2.bin.st_train\`, ESPnetSTModel, \`local/stock_espnet.sh\`)
trains on the same dumps, shapes and token list with the same batch and optimiser and ${stock_epochs} (the CPU
time of a salign row: its epochs cost more, see ${cdir}/train_st_stock_espnet.yaml), ASR/MT weights as in
ESPnet's MuST-C recipe and no MT pre-training; ESPnet decodes it as ST only, so its MT, ASR and gap cells are empty."
  learn="Learning size (the default mini corpus is too small to generalise): in a fresh copy of the recipe (it
regenerates corpus/, data/ and dump/), \`./compare.sh --corpus_opts \"--n_train 2400 --n_dev 100 --n_tst 100
--n_mt_extra 2000 --nj 2\" --jobs 2\` (add \`--ngpu 1\` on a GPU). The budget of conf/compare/: MT pre-training 10
epochs on the 4.4k training + text-only sentences, then each row 6 epochs of the 2.4k utterances (900 updates of 16),
40 ms encoder frames, no dropout. Measured on 2 CPU cores with \`--jobs 2\`: ~3.5 min for the corpus and features,
~7.5 min for the MT pre-training, ~22 min of training per row on one thread plus ~3 min of decoding and analysis,
two rows at a time: ~1.5 h in all. That is about half of the 40 minutes on 2 cores after which a 12.7M-parameter
stock model was reported at 0.1-0.4 BLEU; more epochs (\`max_epoch\` in every conf/compare/train_st_*.yaml) buy
more learning at a proportional cost."
  python -m salign.bin.compare --exp exp --out "${out}" --methods "${rows}" --command "${cmd}" \
    --mt_exp exp/mt_train_mt_compare --title "${title}" --note "${budget}" --note "${learn}"
fi
log "done: ${out}"
