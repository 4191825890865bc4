# shellcheck shell=bash disable=SC2154  # the driver's options and state (st.sh) are set where this is sourced
# The stage driver's helpers (sourced by st.sh before it runs): the job launchers as arrays (launcher_words), the
# training launch (train_job), the output checks (check_writable, check_space), the stamp rule (fresh) and what stage
# 11 and the stages after it build on it: one training unless its stamp says done (train_once), and the checks of what
# a later stage reads (asr_init, current_model, current_dumps); the calls behind the results (made,
# reproduce_command). Each uses the driver's options and its log/die.

# launcher_words VAR ARRAY: the launcher command in ${VAR} (cmd.sh's train_cmd, e.g. "/path/utils/queue/slurm.sh --mem
# 4G") as the array ARRAY: its path first -- the longest leading part that is an executable file, so a path with
# spaces stays one word -- then its options, split at whitespace (none of them holds a space).
launcher_words() {
  local text=${!1} path rest words=()
  local -n into=$2
  path=${text}
  while [ ! -x "${path}" ] && [[ ${path} == *" "* ]]; do path=${path% *}; done
  [ -x "${path}" ] || path=${text%% *}  # (not found: its first word, which the launch then names)
  rest=${text:${#path}}
  read -ra words <<< "${rest}"
  # shellcheck disable=SC2034  # the caller's array
  into=("${path}" "${words[@]}")
}

# Stage 11's training launch, as ESPnet's egs2 st.sh does it: espnet2.bin.launch runs the command through
# ${cuda_cmd} (Kaldi's run.pl interface) on --ngpu GPUs per node and --num_nodes nodes, with DDP when that is more
# than one GPU or node, and appends --ngpu and --multiprocessing_distributed to the command (so it must not pass them).
# On several nodes the launcher starts one srun task per node only for a --cmd named slurm.pl, so slurm.sh is called
# by that name (utils/queue/slurm.pl). Log: EXP_DIR/train.log (a previous one is kept as train.1.log, ...).
train_job() {  # EXP_DIR COMMAND [ARGS...]
  local exp=$1 launcher=("${cuda_launcher[@]}")
  shift
  if [ "${num_nodes}" -gt 1 ] && [ "$(basename "${launcher[0]}")" = slurm.sh ]; then
    launcher[0]=${launcher[0]%.sh}.pl
  fi
  mkdir -p "${exp}"
  # (--cmd is split by the launcher with shlex: each word quoted, the launcher's path too)
  if ! python -m espnet2.bin.launch --cmd "$(printf '%q ' "${launcher[@]}")--name $(basename "${exp}")" \
      --log "${exp}/train.log" --ngpu "${ngpu}" --num_nodes "${num_nodes}" --init_file_prefix "${exp}/.dist_init_" \
      --multiprocessing_distributed true -- "$@" > "${exp}/launch.log" 2>&1; then
    # the job launcher's own report (failing log and its tail), else the end of the launcher's output
    grep -E '^((local|slurm)\.(sh|pl): |ERROR \[|  \| )' "${exp}/launch.log" >&2 || tail -n 20 "${exp}/launch.log" >&2
    die "training failed: ${exp}/train.log (launcher output: ${exp}/launch.log)"
  fi
}

# existing_dir PATH: PATH if it exists (or is a link), else the nearest existing directory above it (where it would be
# made)
existing_dir() {
  local p=$1
  while [ ! -e "${p}" ] && [ ! -L "${p}" ]; do p=$(dirname "${p}"); done
  echo "${p}"
}

# check_writable DIR FIX: a new file can be made in DIR, or where DIR would be made; else one ERROR line (before any
# stage runs, so nothing is half-written). A real file is created and removed: -w is always true for root, not so a
# read-only mount.
check_writable() {
  local at probe
  at=$(existing_dir "$1")
  [ -d "${at}" ] || die "${at} is not a directory, so the output directory $1 cannot be made (fix: $2)"
  local where="the output directory ${at}"
  [ "${at}" = "$1" ] || where="${at}, where the output directory $1 would be made"
  probe=$(mktemp -p "${at}" .st_write_test.XXXXXX 2>/dev/null) ||
    die "cannot write in ${where} (fix: make it writable, e.g. chmod u+w ${at}, or $2)"
  rm -f "${probe}"
}

# check_space DIR NEED_KB WHAT FIX: at least NEED_KB free on DIR's filesystem (df), else one ERROR line; quiet where
# df gives no answer
check_space() {
  local have
  have=$(df -Pk "$(existing_dir "$1")" 2>/dev/null | awk 'NR == 2 { print $4 }') || return 0
  [[ ${have} =~ ^[0-9]+$ ]] || return 0
  if [ "${have}" -lt "$2" ]; then
    die "$(awk -v h="${have}" -v n="$2" 'BEGIN { printf "only %.1f GB free in", h / 1048576 }') $1, $3 needs" \
      "$(awk -v n="$2" 'BEGIN { printf "%.1f", n / 1048576 }') GB (fix: free space there, $4, or lower" \
      "--min_free_gb (now ${min_free_gb}))"
  fi
}

# fresh STAMP_ARGS...: whether a step's stamp is up to date (salign.bin.stamp check); if not, the reason is in
# ${reason}. An input that is missing stops the driver (the tool's one ERROR line names it and the fix).
fresh() {
  local rc
  reason=$(python -m salign.bin.stamp check "$@") && rc=0 || rc=$?
  [ "${rc}" -le 1 ] || exit "${rc}"
  return "${rc}"
}

# One training of stage 11, unless its stamp says it is done: the stamp ($EXP/.train.stamp, salign.utils.stamp) holds
# the content of every file the command reads (config, token lists, BPE models, data lists and texts, shape files,
# CMVN stats, the initial checkpoint: each argument that names a file, or whose "path,name,type", "key=path" or
# "path:src:dst" (--init_param) does; a directory given as "key=dir", e.g. a Hugging Face LM's lm_conf path), the
# INPUTS (space-separated; e.g. stage 3's stamps, which stand for the features the lists point to) and the command
# line itself; it is written once this training has produced MODEL (what the next stage reads).
# $EXP/.train.started, the same stamp written when a training starts, tells an interrupted training (same inputs:
# resumed from its last checkpoint, --resume true) from one that finished, or started, with other inputs or options:
# its models and checkpoint are moved to $EXP/previous/ and the training starts from scratch (resuming from them
# would mix the old inputs in, or, at max_epoch already, train nothing and keep the old model). A finished training
# whose MODEL is missing or damaged since (same inputs and options; the stamp's output check) is resumed: ESPnet's
# trainer, at max_epoch already, trains nothing and averages the epoch checkpoints into MODEL again.
train_once() {  # LABEL WHAT EXP_DIR MODEL "INPUTS" COMMAND [ARGS...]
  local label=$1 what=$2 exp=$3 model=$4 arg a f
  local inputs=() started=(--stamp "${exp}/.train.started")
  for a in $5; do inputs+=(--input "${a}"); done
  shift 5
  for arg in "$@"; do  # every file the command names: plain, `data,name,type`, `key=file` or `file:src:dst`
    a=${arg#*=}; a=${a%%,*}
    if [ -f "${a}" ]; then inputs+=(--input "${a}"); elif [ -f "${a%%:*}" ]; then inputs+=(--input "${a%%:*}")
    elif [[ ${arg} == *=* && -d ${a} ]]; then inputs+=(--input "${a}"); fi
  done
  inputs+=(--option "command=$*")
  if fresh --stamp "${exp}/.train.stamp" "${inputs[@]}" --what "${exp}"; then
    log "stage 11: ${exp} is complete, skipped (its stamp is up to date: same config, data, initial model" \
      "and options)"
    return
  fi
  local why=${reason}
  if [[ ${why} == "output "* ]]; then
    # same inputs and options, only its model is missing or damaged (an interrupted copy, a full disk): the training
    # is resumed, which trains nothing more and writes the averaged model again from the epoch checkpoints
    rm -f "${exp}/.train.stamp"
    why="${why}; resuming the finished training to write it again"
    [ -f "${exp}/checkpoint.pth" ] || why="${reason}; no ${exp}/checkpoint.pth to resume from, training again"
  elif [ -f "${exp}/.train.stamp" ] || { [ -f "${exp}/.train.started" ] && ! fresh "${started[@]}" "${inputs[@]}"; }; then
    # a training for other inputs or options (finished, or interrupted): not resumed
    [ -f "${exp}/.train.stamp" ] || why="${reason} since the interrupted training started"
    rm -rf "${exp}/previous" && mkdir -p "${exp}/previous"
    for f in "${exp}"/*.pth "${exp}"/.train.stamp "${exp}"/.train.started "${exp}"/config.yaml; do
      if [ -e "${f}" ] || [ -L "${f}" ]; then mv "${f}" "${exp}/previous/"; fi
    done
    why="${why}; the previous training's files moved to ${exp}/previous/, training from scratch"
  elif [ -f "${exp}/checkpoint.pth" ]; then
    why="${why}; resuming the interrupted training from ${exp}/checkpoint.pth"
  fi
  log "stage ${label}: ${what} -> ${exp} (log: ${exp}/train.log; ${why})"
  check_space "${exp}" "${min_free_kb}" "stage ${label} (training)" "point --expdir to a larger disk"
  mkdir -p "${exp}"
  python -m salign.bin.stamp write "${started[@]}" "${inputs[@]}"
  train_job "${exp}" "$@"
  [ -f "${model}" ] || die "${exp}: training ended without ${model}, so it is not marked done (fix: check the" \
    "config's max_epoch, --inference_model/--mt_init_model against its best_model_criterion and keep_nbest_models," \
    "and ${exp}/train.log)"
  python -m salign.bin.stamp write --stamp "${exp}/.train.stamp" "${inputs[@]}" --output "${model}"
}

# asr_init: the ASR pre-training's checkpoint the ST training starts from, checked: it exists and nothing its
# training read has changed since (the families other than salign only use it: it starts from the MT pre-training)
asr_init() {
  local model=${asr_exp}/${asr_init_model}
  if [ ! -f "${model}" ] || [ ! -f "${asr_exp}/.train.stamp" ]; then
    die "${model}: no finished ASR pre-training (fix: train it with --model_family salign --pretrain_asr true" \
      "--asr_config ${asr_config} --train_st false, e.g. by ./compare.sh's shared pre-training)"
  elif ! fresh --recorded --stamp "${asr_exp}/.train.stamp"; then
    die "${asr_exp}: the ASR pre-training is out of date (${reason} since it was trained) (fix: train it again" \
      "with --model_family salign --pretrain_asr true --train_st false)"
  fi
  echo "${model}"
}

# current_model STAGE: the model stages 12, 14 and 15 read exists and, where stage 11 trained it (its stamp), nothing
# that training read has changed since (an edited config, new data or token lists: train again first)
current_model() {
  local model=${st_exp}/${inference_model}
  [ -f "${model}" ] || die "stage $1: model ${model} not found (fix: run stage 11 first, e.g. --stage 11, or check" \
    "--inference_model against the files in ${st_exp})"
  if [ -f "${st_exp}/.train.stamp" ] && ! fresh --recorded --stamp "${st_exp}/.train.stamp"; then
    [[ ${reason} != "output "* ]] || die "stage $1: ${reason#output } (fix: run stage 11 again, e.g. --stage 11: it" \
      "writes the model again from the training's checkpoints)"
    die "stage $1: the model in ${st_exp} is out of date (${reason} since it was trained) (fix: run stage 11 first," \
      "e.g. --stage 11)"
  fi
}

# current_dumps STAGE DIR...: each stage-4 or stage-10 output DIR the stage reads is current: its stamp matches what
# it recorded (stage 3 run again, or the texts or token models changed, without stages 4 and 10: refused, one line)
current_dumps() {
  local s=$1 d
  shift
  for d in "$@"; do
    if [ ! -f "${d}/.stamp" ]; then
      die "stage ${s}: ${d} is not finished (no stamp: never made, interrupted, or made by an older salign) (fix:" \
        "run stages 4 and 10 again, e.g. --stage 4)"
    elif ! fresh --recorded --stamp "${d}/.stamp"; then
      die "stage ${s}: ${d} is out of date (${reason} since it was made) (fix: run stages 4 and 10 again, e.g." \
        "--stage 4)"
    fi
  done
}

# The calls behind the results (RESULTS.md's "Reproduce"; utils/reproduce.sh): made STAGE records, once the stage
# has finished, the recipe command that ran it (--run_cmd: printf %q quoted, without its stage range) in calls_file
# STAGE: stages 0-2 and 5 (corpus, data, token lists) in ${expdir}/.calls, 3, 4 and 10 with their dump
# (${featdir}/.calls), 11-15 with the experiment (${st_exp}/.calls); reproduce_command: the calls that made stages 0-13
# of this experiment (the one call when one made them all).
# (SALIGN_ROOT: st.sh's; where this file is sourced alone, the checkout holding it)
SALIGN_ROOT=${SALIGN_ROOT:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=../../utils/reproduce.sh
. "${SALIGN_ROOT}/utils/reproduce.sh"
calls_file() {
  case "$1" in
    3|4|10) echo "${featdir}/.calls/stage$1" ;;
    0|1|2|5) echo "${expdir}/.calls/stage$1" ;;
    *) echo "${st_exp}/.calls/stage$1" ;;
  esac
}
made() { record_call "$(calls_file "$1")" "${run_cmd}"; }
reproduce_command() {
  local s pairs=()
  for s in 0 1 2 3 4 5 10 11 12 13; do pairs+=("${s}=$(calls_file "${s}")"); done
  reproduce_line "${pairs[@]}"
}
