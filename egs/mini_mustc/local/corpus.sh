#!/usr/bin/env bash
# Stage 0 of the mini recipe: generate a mini MuST-C (en-es) in corpus/ from Debian packages (TTS + Apertium).
# Options are passed through to salign.bin.gen_mini_mustc (e.g. --n_train 2000 for a learning-size build).
set -euo pipefail
python -m salign.bin.gen_mini_mustc --out corpus "$@"
