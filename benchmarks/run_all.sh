#!/usr/bin/env bash
# Run every salign benchmark and keep their outputs: benchmarks/run_all.sh [OUT_DIR] (default: benchmarks/results).
# PYTHON (default: tools/venv/bin/python, else python3) runs them; QUICK=1 makes every benchmark smaller.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "${here}")"
out="${1:-${here}/results}"
python="${PYTHON:-${repo}/tools/venv/bin/python}"
[[ -x "${python}" ]] || python="$(command -v python3)"
mkdir -p "${out}"
cd "${repo}"

decode_args=()
llm_args=()
train_args=()
feats_args=()
prep_args=()
if [[ "${QUICK:-0}" == 1 ]]; then
    decode_args=(--n_utts 50 --repeats 1)
    llm_args=(--n_utts 16 --repeats 1)
    train_args=(--steps 2 --warmup 1 --rounds 1 --batch_size 4)
    feats_args=(--n_utts 20 --repeats 1)
    prep_args=(--n_segments 50000 --repeats 1)
fi

run() {
    local name="$1"
    shift
    echo "== ${name}: $*" | tee "${out}/${name}.txt"
    "${python}" "$@" 2> "${out}/${name}.log" | tee -a "${out}/${name}.txt"
}

{
    echo "nproc: $(nproc)"
    grep -m1 "model name" /proc/cpuinfo || true
    "${python}" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
} | tee "${out}/machine.txt"

run decode_tiny benchmarks/bench_decode.py --size tiny "${decode_args[@]}" --json "${out}/decode_tiny.json"
run decode_small benchmarks/bench_decode.py --size small --n_utts 100 "${decode_args[@]}" --json "${out}/decode_small.json"
run decode_llm benchmarks/bench_llm_decode.py "${llm_args[@]}" --json "${out}/decode_llm.json"
run train benchmarks/bench_train.py "${train_args[@]}" --json "${out}/train.json"
run feats benchmarks/bench_feats.py "${feats_args[@]}" --json "${out}/feats.json"
run prep benchmarks/bench_prep.py "${prep_args[@]}" --json "${out}/prep.json"
echo "results in ${out}"
