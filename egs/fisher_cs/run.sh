#!/usr/bin/env bash
# Fisher Spanish-English code-switch speech translation data, for users with the LDC corpora (nothing is downloaded).
# Stage 0, the only stage here: python -m salign.bin.prep_fisher_cs writes Kaldi data dirs in the layout ESPnet's
# fisher_callhome_spanish recipe reads: data/{train,dev,dev2,test} and, for each evaluation split,
# data/<split>_cs (code-switched), data/<split>_mono (monolingual) and data/<split>_mix (all), with
# data/fisher_cs_summary.json (rule and counts). The joins and the code-switch rule: README.md, salign/data/fisher.py.
# Training and decoding stages reuse the code-switch recipe of egs/cs_mini once it exists (its stages run on these
# data dirs); they are not defined here.
#
#   ./run.sh --fisher_speech /corpora/LDC2010S01 --fisher_trans /corpora/LDC2010T04 \
#            --translations /corpora/fisher-callhome-corpus      # git clone of joshua-decoder/fisher-callhome-corpus
#   ./run.sh ... --min_words 2                 # CS needs >= 2 English and >= 2 Spanish words
#   ./run.sh ... --rule tags                   # CS = a <foreign> span in the transcript (Weller et al. 2022)
#   ./run.sh ... --cs_list my_cs_ids.txt       # code-switched utterances chosen by the user (one id a line)
# Options (--name value): --stage/--stop_stage 0, --fisher_speech DIR (default: env FISHER_SPEECH),
# --fisher_trans DIR (FISHER_TRANS), --translations DIR (FISHER_TRANSLATIONS), --out DIR, --splits LIST,
# --rule words|tags, --min_words K, --cs_list FILE, --use_translation true|false, --audio_tool auto|sph2pipe|sox.
set -euo pipefail
cd "$(dirname "$0")"

stage=0                                       # first stage
stop_stage=0                                  # last stage
fisher_speech=${FISHER_SPEECH:-}              # LDC2010S01 (Fisher Spanish speech, .sph)
fisher_trans=${FISHER_TRANS:-}                # LDC2010T04 (Fisher Spanish transcripts, .tdf)
translations=${FISHER_TRANSLATIONS:-}         # fisher-callhome-corpus clone (mapping/, corpus/ldc/)
out=data                                      # output dir
splits=train,dev,dev2,test                    # splits to prepare
rule=words                                    # words: word-level language ID; tags: any <foreign> span is CS
min_words=1                                   # CS (rule words): at least this many English and Spanish words
cs_list=                                      # file of code-switched utterance ids (replaces the word rule)
use_translation=true                          # a list-English word must also be in the English translation
audio_tool=auto                               # wav.scp reader of the .sph files: sph2pipe if found, else sox

declare root=${SALIGN_ROOT:-$(cd ../.. && pwd)}
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
[ $# -eq 0 ] || { echo "ERROR [run.sh]: unexpected argument '$1' (fix: options are --name value)" >&2; exit 2; }
die() { echo "ERROR [run.sh]: $*" >&2; exit 2; }
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') [run.sh] $*"; }
step() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
# shellcheck disable=SC1091
. ./path.sh

if step 0; then
  [ -n "${fisher_speech}" ] || die "--fisher_speech not given (fix: pass the LDC2010S01 dir or set FISHER_SPEECH)"
  [ -n "${fisher_trans}" ] || die "--fisher_trans not given (fix: pass the LDC2010T04 dir or set FISHER_TRANS)"
  [ -n "${translations}" ] || die "--translations not given (fix: pass a clone of" \
    "https://github.com/joshua-decoder/fisher-callhome-corpus or set FISHER_TRANSLATIONS)"
  opts=(--splits "${splits}" --rule "${rule}" --min_words "${min_words}" --use_translation "${use_translation}"
        --audio_tool "${audio_tool}")
  [ -z "${cs_list}" ] || opts+=(--cs_list "${cs_list}")
  log "stage 0: data preparation -> ${out}/"
  python -m salign.bin.prep_fisher_cs --fisher_speech "${fisher_speech}" --fisher_trans "${fisher_trans}" \
    --translations "${translations}" --out "${out}" "${opts[@]}"
fi
log "done (stages ${stage}-${stop_stage})"
