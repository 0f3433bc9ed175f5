#!/usr/bin/env bash
# The one-shot GPU suite: everything in this project that needs an NVIDIA GPU, in one
# run of at most 8 minutes, for the first (and perhaps short) time a GPU is lent.
#
#   bash examples/benchmarks/gpu_suite.sh OUTDIR
#   GPU_SUITE_GGUF=/path/to/larger.gguf bash examples/benchmarks/gpu_suite.sh OUTDIR
#
# Parts, each under `timeout`, each writing JSON (and a PNG) into OUTDIR:
#   llamacpp_bundled  batched_decode.py with n_gpu_layers=-1 on the bundled SmolLM2:
#                     tokens/s, sequential against batched decoding, N = 1, 4, 8, 16, 32
#   llamacpp_larger   the same on $GPU_SUITE_GGUF (a local GGUF), when it is set
#   launch_eager      launch_and_cancel.py in-process with n_gpu_layers=-1: launch="eager"
#                     against rounds and fixed N, wall time and tokens, paired draws
#   hf_prm            hf_prm_device.py: random-weight Qwen2 PRMs built here, scored on CUDA
#                     in float32 and bfloat16 against the CPU, and their throughput
#   gpu_tests         pytest -m gpu on the test files that hold gpu-marked tests
# then gpu_suite.json (every result, tables as rows) and gpu_suite.md (the tables of
# docs/gpu-suite.md). Logs go to OUTDIR/logs.
#
# Where no GPU is present (no nvidia-smi, no GPU listed, or CUDA_VISIBLE_DEVICES="")
# it says so on one line, runs a short CPU smoke version of every part (so each code
# path runs; about 2 minutes on 2 cores) and exits 0 unless a part broke;
# GPU_SUITE_SMOKE=0 skips the smoke and exits 0 at once. A part that cannot run here (llama.cpp
# built without GPU offload, torch without CUDA, a missing extra) is skipped with its
# reason in the JSON, never measured on the CPU in the GPU's place. It installs
# nothing: it needs the project installed with the llamacpp, hf, bench and dev extras,
# and for the llama.cpp parts a CUDA build of llama-cpp-python
# (CMAKE_ARGS="-DGGML_CUDA=on" pip install --no-cache-dir --force-reinstall llama-cpp-python).
# Exit code: 0 when no part failed or timed out, else 1; 2 on bad usage.
set -uo pipefail

if [[ $# -ne 1 || "$1" == -* ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if ! command -v timeout >/dev/null; then
    echo "gpu_suite: the coreutils 'timeout' command is needed to bound each part" >&2
    exit 2
fi
mkdir -p "$1/logs" && OUT=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python}
cd "$ROOT" || exit 2
START=$EPOCHREALTIME
LIMIT_TOTAL=0

elapsed() { # seconds since $1 (an $EPOCHREALTIME), to 0.01 s
    "$PY" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" \
        "$1" "$EPOCHREALTIME"
}

# part NAME LIMIT_S COMMAND...: run it under timeout (log in OUTDIR/logs), record it
part() {
    local name=$1 limit=$2 t0 rc
    shift 2
    LIMIT_TOTAL=$((LIMIT_TOTAL + limit + 5))
    echo "gpu_suite: $name (at most ${limit} s): $*"
    t0=$EPOCHREALTIME
    timeout -k 5 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
    rc=$?
    "$PY" "$HERE/gpu_suite.py" record "$OUT" "$name" --rc "$rc" --seconds "$(elapsed "$t0")" \
        --limit "$limit" --cmdline "$*"
}

skip() { # skip NAME REASON: the part cannot run on this machine
    "$PY" "$HERE/gpu_suite.py" record "$OUT" "$1" --skipped "$2"
}

fail() { # fail NAME REASON: the part was asked for but cannot start
    "$PY" "$HERE/gpu_suite.py" record "$OUT" "$1" --failed "$2"
}

NO_GPU=""
if [[ -n "${CUDA_VISIBLE_DEVICES+set}" && ( -z "$CUDA_VISIBLE_DEVICES" || "$CUDA_VISIBLE_DEVICES" == "-1" ) ]]; then
    NO_GPU="CUDA_VISIBLE_DEVICES is '${CUDA_VISIBLE_DEVICES}'"
elif ! command -v nvidia-smi >/dev/null; then
    NO_GPU="nvidia-smi not found"
elif ! timeout 30 nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    NO_GPU="nvidia-smi lists no GPU"
fi
if [[ -n "$NO_GPU" && "${GPU_SUITE_SMOKE:-1}" == 0 ]]; then
    MODE=no-gpu
    echo "gpu_suite: no GPU ($NO_GPU): nothing to measure (GPU_SUITE_SMOKE=0 skips the CPU smoke)"
elif [[ -n "$NO_GPU" ]]; then
    MODE=cpu-smoke
    echo "gpu_suite: no GPU ($NO_GPU): running the short CPU smoke version of every part; no GPU numbers will be produced"
else
    MODE=gpu
    echo "gpu_suite: GPU found: $(timeout 30 nvidia-smi -L | head -n 1)"
fi

timeout -k 5 120 "$PY" "$HERE/gpu_suite.py" probe "$OUT" --no-gpu-reason "$NO_GPU" || exit 1
# shellcheck disable=SC1091
source "$OUT/environment.sh"

if [[ $MODE == no-gpu ]]; then
    for name in llamacpp_bundled llamacpp_larger launch_eager hf_prm gpu_tests; do
        skip "$name" "no GPU ($NO_GPU), and GPU_SUITE_SMOKE=0 skips the CPU smoke"
    done
    "$PY" "$HERE/gpu_suite.py" summarize "$OUT" --mode "$MODE" --wall "$(elapsed "$START")" \
        --limit 0 >/dev/null
    echo "gpu_suite: no GPU ($NO_GPU): nothing measured; results in $OUT"
    exit 0
fi

# -- llama.cpp: n_gpu_layers=-1, sequential against batched decoding ------------------
BENCH=(examples/benchmarks/batched_decode.py --n-gpu-layers -1)
if [[ $MODE == gpu ]]; then
    # one batch holds all 32 samples: 32 per-sequence streams of 256 cells each
    BUNDLED=(--require-offload --samples 1,4,8,16,32 --max-tokens 64 --repeats 3 --batched-n-ctx 8192)
    LARGER=(--require-offload --samples 1,4,8,16,32 --max-tokens 32 --repeats 1 --batched-n-ctx 8192)
    BUNDLED_LIMIT=160 LARGER_LIMIT=120
else
    # the CPU smoke: n_gpu_layers=-1 on a build that cannot offload, recorded as such
    BUNDLED=(--samples 1,2 --max-tokens 3 --repeats 1 --n-threads 1)
    LARGER=("${BUNDLED[@]}")
    BUNDLED_LIMIT=300 LARGER_LIMIT=300
fi
if [[ $HAVE_LLAMA != 1 ]]; then
    skip llamacpp_bundled "llama-cpp-python or the bundled SmolLM2 is not installed (the llamacpp extra)"
elif [[ $MODE == gpu && $LLAMA_OFFLOAD != 1 ]]; then
    skip llamacpp_bundled "llama-cpp-python $LLAMA_VERSION cannot offload (llama_supports_gpu_offload() is False): reinstall it with CMAKE_ARGS=-DGGML_CUDA=on"
else
    part llamacpp_bundled "$BUNDLED_LIMIT" "$PY" "${BENCH[@]}" "${BUNDLED[@]}" \
        --out "$OUT/llamacpp_bundled.json"
fi
if [[ -z "${GPU_SUITE_GGUF:-}" ]]; then
    skip llamacpp_larger "no larger GGUF given: set GPU_SUITE_GGUF=/path/to/model.gguf"
elif [[ ! -f "$GPU_SUITE_GGUF" ]]; then
    fail llamacpp_larger "GPU_SUITE_GGUF=$GPU_SUITE_GGUF is not a file"
elif [[ $HAVE_LLAMA != 1 ]]; then
    skip llamacpp_larger "llama-cpp-python is not installed (the llamacpp extra)"
elif [[ $MODE == gpu && $LLAMA_OFFLOAD != 1 ]]; then
    skip llamacpp_larger "llama-cpp-python $LLAMA_VERSION cannot offload (llama_supports_gpu_offload() is False)"
else
    part llamacpp_larger "$LARGER_LIMIT" "$PY" "${BENCH[@]}" "${LARGER[@]}" \
        --model "$GPU_SUITE_GGUF" --out "$OUT/llamacpp_larger.json"
fi

# -- launch-and-cancel in-process: eager against rounds and fixed N, offloaded ------------
LAUNCH=(examples/benchmarks/launch_and_cancel.py --n-gpu-layers -1 --server-questions 0)
if [[ $MODE == gpu ]]; then
    LAUNCH+=(--llama-questions 6 --sample-tokens 64)
    LAUNCH_LIMIT=25
else
    LAUNCH+=(--llama-questions 1 --n 2 --sample-tokens 8 --threads 1 --replicates 20)
    LAUNCH_LIMIT=300
fi
if [[ $HAVE_LLAMA != 1 ]]; then
    skip launch_eager "llama-cpp-python or the bundled SmolLM2 is not installed (the llamacpp extra)"
elif [[ $MODE == gpu && $LLAMA_OFFLOAD != 1 ]]; then
    skip launch_eager "llama-cpp-python $LLAMA_VERSION cannot offload (llama_supports_gpu_offload() is False)"
else
    part launch_eager "$LAUNCH_LIMIT" "$PY" "${LAUNCH[@]}" --out "$OUT/launch_eager.json"
fi

# -- Hugging Face PRMs: CUDA against the CPU, and throughput ---------------------------
if [[ $HAVE_HF != 1 ]]; then
    skip hf_prm "torch or transformers is not installed (the hf extra)"
elif [[ $MODE == gpu && $TORCH_CUDA != 1 ]]; then
    skip hf_prm "torch $TORCH_VERSION sees no CUDA device (a CPU build of torch, or no driver)"
elif [[ $MODE == gpu ]]; then
    part hf_prm 90 "$PY" examples/benchmarks/hf_prm_device.py --targets auto --sizes tiny,small \
        --solutions 64 --repeats 2 --out "$OUT/hf_prm.json"
else
    # float64 against float32 on the CPU: the same comparison, with a margin any CPU keeps
    part hf_prm 300 "$PY" examples/benchmarks/hf_prm_device.py --targets cpu/float64 \
        --sizes tiny --solutions 4 --steps 3 --repeats 1 --out "$OUT/hf_prm.json"
fi

# -- the gpu-marked tests ---------------------------------------------------------------
mapfile -t GPU_TEST_FILES < <(grep -rlE --include='test_*.py' '^\s*(@)?pytest\.mark\.gpu\b' tests | sort)
if [[ $HAVE_PYTEST != 1 ]]; then
    skip gpu_tests "pytest is not installed (the dev extra)"
elif [[ ${#GPU_TEST_FILES[@]} -eq 0 ]]; then
    skip gpu_tests "no gpu-marked tests found under tests/"
else
    part gpu_tests "$([[ $MODE == gpu ]] && echo 60 || echo 300)" "$PY" -m pytest -m gpu -q -rs \
        -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" "${GPU_TEST_FILES[@]}"
fi

"$PY" "$HERE/gpu_suite.py" summarize "$OUT" --mode "$MODE" --wall "$(elapsed "$START")" \
    --limit "$LIMIT_TOTAL"
status=$?
if [[ $MODE == cpu-smoke ]]; then
    echo "gpu_suite: no GPU ($NO_GPU): CPU smoke $([[ $status == 0 ]] && echo passed || echo FAILED); results in $OUT"
fi
exit $status
