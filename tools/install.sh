#!/usr/bin/env bash
# One-command installer for salign: Debian tools, a virtual environment in tools/venv with torch, ESPnet and
# salign (editable). Idempotent: a second run with nothing changed only verifies and returns in seconds.
#
#   tools/install.sh            # install or verify
#   tools/install.sh --check    # only report what is missing, with the exact fix (exit 1 if anything is)
#
# Environment: SALIGN_VENV (default tools/venv), PYTHON (default python3.11, else python3),
#              SALIGN_GPU=auto|0|1 (default auto: nvidia-smi decides CPU or CUDA torch).
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "${tools_dir}")
venv=${SALIGN_VENV:-${tools_dir}/venv}
apt_pkgs=(sox libsox-fmt-all espeak-ng flite apertium apertium-eng-spa fortunes shellcheck)
torch_cpu_version=2.13.0
torch_gpu_version=${SALIGN_TORCH_GPU_VERSION:-2.11.0}
torchaudio_version=2.11.0
espnet_version=202511
# ESPnet's Speech2Text.from_pretrained(model.zip) unpacks with espnet_model_zoo: 0.1.7 is its newest release for
# Python 3.11; installed like espnet (--no-deps: it requires espnet), its own requirements in requirements.txt
model_zoo_version=0.1.7

log() { echo "[install] $*" >&2; }
die() { echo "[install] ERROR: $*" >&2; exit 1; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "${PYTHON}"; return; fi
  if command -v python3.11 >/dev/null 2>&1; then echo python3.11; return; fi
  echo python3
}

use_gpu() {
  case "${SALIGN_GPU:-auto}" in
    1) return 0 ;;
    0) return 1 ;;
    *) command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 ;;
  esac
}

stamp_of() {
  # Everything whose change must trigger a re-install.
  cat "${tools_dir}/install.sh" "${tools_dir}/requirements-espnet.txt" "${tools_dir}/requirements.txt" "${tools_dir}/constraints.txt" \
    "${root}/setup.py" | sha256sum | cut -d' ' -f1
  if use_gpu; then echo gpu; else echo cpu; fi
}

install_apt() {
  local missing=()
  local p
  for p in "${apt_pkgs[@]}"; do
    dpkg -s "${p}" >/dev/null 2>&1 || missing+=("${p}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    log "fix: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    return 0
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_python() {
  local py constraints pip
  py=$(pick_python)
  command -v "${py}" >/dev/null 2>&1 || die "no ${py} on PATH; fix: install Python 3.11 or set PYTHON=/path/to/python3.11"
  "${py}" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
    || log "warning: $(${py} --version) found; espnet==${espnet_version} is tested here on Python 3.11"
  [ -x "${venv}/bin/python" ] || { log "creating ${venv}"; "${py}" -m venv "${venv}"; }
  pip=("${venv}/bin/python" -m pip --disable-pip-version-check -q)
  constraints=${venv}/constraints.txt
  if use_gpu; then
    log "GPU found: CUDA torch==${torch_gpu_version} + torchaudio==${torchaudio_version}"
    "${pip[@]}" install "torch==${torch_gpu_version}" "torchaudio==${torchaudio_version}"
    { echo "torch==${torch_gpu_version}"; cat "${tools_dir}/constraints.txt"; } > "${constraints}"
  else
    log "no GPU: CPU torch==${torch_cpu_version}"
    "${pip[@]}" install "torch==${torch_cpu_version}"
    { echo "torch==${torch_cpu_version}"; cat "${tools_dir}/constraints.txt"; } > "${constraints}"
    # The registry's only torchaudio is a CUDA build; without its native libraries it imports as pure Python,
    # which is all ESPnet needs on CPU (see docs/platform.md).
    "${pip[@]}" install --no-deps "torchaudio==${torchaudio_version}"
    "${venv}/bin/python" - <<'EOF'
import pathlib, importlib.util
spec = importlib.util.find_spec("torchaudio")
libdir = pathlib.Path(spec.origin).parent / "lib"
for so in libdir.glob("*.so"):
    so.unlink()
EOF
  fi
  "${pip[@]}" install "setuptools>=77" wheel -c "${constraints}"
  "${pip[@]}" install -r "${tools_dir}/requirements-espnet.txt" -c "${constraints}"
  "${pip[@]}" install --no-deps "espnet==${espnet_version}"
  "${pip[@]}" install -r "${tools_dir}/requirements.txt" -c "${constraints}"
  "${pip[@]}" install --no-deps "espnet_model_zoo==${model_zoo_version}"
  "${pip[@]}" install --no-deps --no-build-isolation -e "${root}"
  # ESPnet's own st_inference/st_train given a salign model: one line naming salign's tool, not a bare TypeError
  local site
  site=$("${venv}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import salign.utils.espnet_hint as h; h.install()" > "${site}/salign_hint.pth"
}

main() {
  if [ "${1:-}" = "--check" ]; then
    [ -x "${venv}/bin/python" ] || { echo "no virtual environment at ${venv}; fix: tools/install.sh"; exit 1; }
    exec "${venv}/bin/python" -m salign.bin.check_install
  fi
  install_apt
  local want
  want=$(stamp_of)
  if [ -f "${venv}/.salign_stamp" ] && [ "$(cat "${venv}/.salign_stamp")" = "${want}" ]; then
    log "up to date (${venv}); verifying"
  else
    install_python
    echo "${want}" > "${venv}/.salign_stamp.tmp" && mv "${venv}/.salign_stamp.tmp" "${venv}/.salign_stamp"
  fi
  "${venv}/bin/python" -m salign.bin.check_install
}

main "$@"
