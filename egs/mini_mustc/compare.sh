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
#   ./compare.sh                                   # the mini recipe's corpus (as ./run.sh), ~2-3 h on 2 CPU cores
#   ./compare.sh --debug true                      # tiny configs, a few steps: the whole comparison in minutes (CI)
#   ./compare.sh --corpus_opts "--n_train 2400 --n_dev 100 --n_tst 100 --n_mt_extra 2000 --nj 2"  # learning size
#   ./compare.sh --methods "baseline adversarial" --stock false --stage 2
# Options: --methods LIST, --stock true|false, --stage/--stop_stage 1..4 (the steps above), --test_sets LIST,
# --corpus_opts, --debug, --out FILE; any other option goes to every ./run.sh call (e.g. --nj 4); --ngpu and
# --inference_nj also to local/stock_espnet.sh.
# compare.sh works in this recipe dir like run.sh (corpus/, data/, dump/, exp/ are shared with it); its experiments
# are exp/mt_train_mt_compare, exp/st_<method>, exp/st_stock_espnet. run.sh's RESULTS.md is kept; each method's
# RESULTS.md is saved as exp/st_<method>/RESULTS.md.
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
corpus=()
[ -n "${corpus_opts}" ] && corpus=(--corpus_opts "${corpus_opts}")

# run.sh overwrites RESULTS.md at stage 13 and prints it at its end: keep run.sh's own RESULTS.md, restore it on exit
keep=exp/.RESULTS.md.compare_keep  # under exp/ (git-ignored)
mkdir -p exp
if [ -f RESULTS.md ] && [ ! -f "${keep}" ]; then cp -p RESULTS.md "${keep}"; fi
restore() { if [ -f "${keep}" ]; then mv -f "${keep}" RESULTS.md; else rm -f RESULTS.md; fi; }
trap restore EXIT
[ -f RESULTS.md ] || echo "(no results yet)" > RESULTS.md

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

if step 2; then
  for m in ${methods}; do
    log "step 2: ${m} (${cdir}/train_st_${m}.yaml, MT pre-training ${mt_config}) -> exp/st_${m}"
    # the comparison configs select checkpoints (MT init, ST average) on valid accuracy (for learning-size builds)
    rargs=(--mt_config "${mt_config}" --st_config "${cdir}/train_st_${m}.yaml" --st_tag "${m}"
           --mt_init_model valid.acc.best.pth --inference_model valid.acc.ave.pth)
    # the test sets as ST, MT and ASR (and packing, gap analysis) ...
    ./run.sh "${common[@]}" "${args[@]}" "${rargs[@]}" --stage 11 --stop_stage 15 --test_sets "${test_sets}" \
      --train_eval_size 0
    # ... and the training subset as ST only (the table's "is it learning?" column): saves two decodes per method
    ./run.sh "${common[@]}" "${args[@]}" "${rargs[@]}" --stage 12 --stop_stage 13 --test_sets "" --decode_tasks st
    cp RESULTS.md "exp/st_${m}/RESULTS.md"
  done
fi

rows=${methods}
if [ "${stock}" = true ]; then
  rows="${rows} stock_espnet"
  if step 3; then
    log "step 3: ESPnet's stock ST model (${cdir}/train_st_stock_espnet.yaml) -> exp/st_stock_espnet"
    local/stock_espnet.sh --config "${cdir}/train_st_stock_espnet.yaml" --ngpu "${ngpu}" \
      --inference_nj "${inference_nj}" --test_sets "${test_sets}" --inference_config "${decode_conf}"
  fi
fi

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
  budget="Every salign row starts from the same MT pre-training (\`${mt_config}\`) and trains with the same model
shape, batch, optimiser, schedule and ${epochs}, i.e. the same number of updates; only the alignment loss differs
(configs: \`${cdir}/\`). The stock ESPnet row (\`espnet2.bin.st_train\`, ESPnetSTModel, \`local/stock_espnet.sh\`)
trains on the same dumps, shapes and token list with the same batch, optimiser and epochs, ASR/MT weights as in
ESPnet's MuST-C recipe and no MT pre-training; ESPnet decodes it as ST only, so its MT, ASR and gap cells are empty."
  learn="Learning size (the default mini corpus is too small to generalise): in a fresh copy of the recipe (it
regenerates corpus/, data/ and dump/), \`./compare.sh --corpus_opts \"--n_train 2400 --n_dev 100 --n_tst 100
--n_mt_extra 2000 --nj 2\"\` (add \`--ngpu 1\` on a GPU). Expected cost on 2 CPU cores (estimated, not measured):
~15 min for the corpus and features, ~45 min for the shared MT pre-training (4.4k sentences, 25 epochs), then per
row ~1.5-3 h of training (2.4k utterances, 20 epochs of ~5-9 min; the mini corpus takes ~1 min per epoch) and
~15 min of decoding and gap analysis, i.e. ~10-15 h for the five rows; on one GPU about an hour in total."
  python -m salign.bin.compare --exp exp --out "${out}" --methods "${rows}" --command "${cmd}" \
    --mt_exp exp/mt_train_mt_compare --title "${title}" --note "${budget}" --note "${learn}"
fi
log "done: ${out}"
