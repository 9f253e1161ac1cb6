#!/usr/bin/env bash
# tests/gpu/run.sh: build with CUDA, run every GPU test and the GPU kernel
# benchmarks against cuBLAS, and write JSON results to $OUT (default ./out).
# Meant for a machine with an NVIDIA GPU (H100/H200: under 5 minutes). Without
# a GPU every step still runs and records its skip reason.
#   OUT=dir tests/gpu/run.sh
# Files: $OUT/env.json (GPU, driver, git rev, date), $OUT/test_krn_cuda.txt,
# $OUT/dev-gemm.jsonl (kernels/dev/gemm.cu versions vs cuBLAS at 4096^3 and
# 8192^3), $OUT/bench-kernels-cuda.jsonl (model and square shapes, f32/bf16/f16),
# $OUT/summary.txt. Exit status: non-zero when a test or a validation failed.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-./out}
mkdir -p "$OUT"
status=0
JOBS=$(nproc 2>/dev/null || echo 4)

note() { echo "run.sh: $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

# 1. build (library, tests, dev kernels, benchmark)
if ! make -j"$JOBS" CUDA=1 build/libmoatkrn.a build/tests/kernels/test_krn_api \
        build/tests/kernels/test_krn_cpu build/tests/kernels/test_krn_cuda krn-dev \
        bin/bench-kernels > "$OUT/build.log" 2>&1; then
    note "build failed (see build.log)"
    tail -30 "$OUT/build.log"
    exit 1
fi

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
printf '{"date":"%s","git_rev":"%s","gpu":"%s","nvcc":"%s","host":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null)" \
    "${gpu:-none}" "$(nvcc --version | tail -1)" "$(uname -n)" > "$OUT/env.json"
note "gpu: ${gpu:-none}"

# 2. tests (the cuda test compares with the cpu backend and cuBLAS)
for t in test_krn_api test_krn_cuda; do
    if timeout 240 "build/tests/kernels/$t" > "$OUT/$t.txt" 2>&1; then
        note "$t: ok ($(grep -E 'PASSED|SKIP' "$OUT/$t.txt" | head -1))"
    else
        note "$t: FAILED"
        status=1
    fi
done

# 3. dev GEMM progression vs cuBLAS (validated before timed)
: > "$OUT/dev-gemm.jsonl"
for s in "4096 4096 4096" "8192 8192 8192"; do
    timeout 120 build/kernels/dev/gemm $s >> "$OUT/dev-gemm.jsonl" 2>> "$OUT/dev-gemm.err" || status=1
done
grep -q '"valid":false' "$OUT/dev-gemm.jsonl" && note "dev gemm: a version failed validation"

# 4. benchmark rows: cuda backend, % of cuBLAS for GEMM, % of unfused for attention
if timeout 200 bin/bench-kernels --backend cuda --dtype f32,bf16,f16 --repeat 20 \
        --out "$OUT/bench-kernels-cuda.jsonl" 2> "$OUT/bench-kernels-cuda.err"; then
    note "bench-kernels cuda: $(wc -l < "$OUT/bench-kernels-cuda.jsonl") rows"
else
    note "bench-kernels cuda: failed or invalid rows (see .err / jsonl)"
    status=1
fi
note "done, status $status; results in $OUT"
exit $status
