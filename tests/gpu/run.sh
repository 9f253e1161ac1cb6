#!/usr/bin/env bash
# tests/gpu/run.sh: build with CUDA, run every GPU test and the GPU kernel
# benchmarks against cuBLAS, and write JSON results to $OUT (default ./out).
# Meant for a machine with an NVIDIA GPU (H100/H200: under 5 minutes). Without
# a GPU every step still runs and records its skip reason.
#   OUT=dir tests/gpu/run.sh
# Files: $OUT/env.json (GPU, driver, git rev, date), $OUT/test_krn_cuda.txt
# (includes the kernel-variant table: runnable / self-check verdict per variant),
# $OUT/dev-gemm.jsonl (kernels/dev/gemm.cu v1-v7 vs cuBLAS at 4096^3 and 8192^3),
# $OUT/dev-attention.jsonl (kernels/dev/attention.cu v0-v2 at 16k tokens, D 64/128),
# $OUT/bench-kernels-variants.jsonl (each GEMM variant forced, 4096^3 and 8192^3,
# % of cuBLAS; each attention variant at the FlashAttention papers' shape, % of
# unfused and of FlashAttention-2's published figure), $OUT/bench-kernels-cuda.jsonl
# (model and square shapes, f32/bf16/f16), $OUT/summary.txt.
# Time: every step runs under `timeout` with what is left of a 285 s budget
# (build included), so the whole script stays under 5 minutes; a step that
# would start with less than 10 s left is skipped and says so.
# Exit status: non-zero when a test or a validation failed.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-./out}
mkdir -p "$OUT"
status=0
JOBS=$(nproc 2>/dev/null || echo 4)

note() { echo "run.sh: $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
START=$(date +%s)
# budget CAP: seconds this step may take: min(CAP, what is left of 285 s); 0 = skip
budget() {
    local left=$((285 - ($(date +%s) - START)))
    if [ "$left" -lt 10 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# 1. build (library, tests, dev kernels, benchmark)
# On a cc 9.0 GPU build for sm_90a alone: half the nvcc time, and the dev
# harness (one unit with every version) then certainly runs its wgmma v7 (the
# production library keeps kernel 7 in an sm_90a-only unit in every build).
ARCH=()
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
[ "$cap" = "9.0" ] && ARCH=(KRN_NVCC_ARCH="-gencode arch=compute_90a,code=sm_90a")
if ! make -j"$JOBS" CUDA=1 "${ARCH[@]}" build/libmoatkrn.a build/tests/kernels/test_krn_api \
        build/tests/kernels/test_krn_cpu build/tests/kernels/test_krn_cuda krn-dev \
        bin/bench-kernels > "$OUT/build.log" 2>&1; then
    note "build failed (see build.log)"
    tail -30 "$OUT/build.log"
    exit 1
fi

note "build: $(( $(date +%s) - START )) s"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
printf '{"date":"%s","git_rev":"%s","gpu":"%s","nvcc":"%s","host":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD 2>/dev/null)" \
    "${gpu:-none}" "$(nvcc --version | tail -1)" "$(uname -n)" > "$OUT/env.json"
note "gpu: ${gpu:-none}"

# 2. tests (the cuda test compares with the cpu backend and cuBLAS)
for t in test_krn_api test_krn_cuda; do
    b=$(budget 120)  # N.B. `timeout 0` would mean no limit: 0 is "skip" here
    if [ "$b" = 0 ]; then
        note "$t: skipped (time budget)"
        status=1
    elif timeout "$b" "build/tests/kernels/$t" > "$OUT/$t.txt" 2>&1; then
        note "$t: ok ($(grep -E 'PASSED|SKIP' "$OUT/$t.txt" | head -1))"
    else
        note "$t: FAILED"
        status=1
    fi
done

# 3. dev GEMM progression vs cuBLAS (validated before timed)
: > "$OUT/dev-gemm.jsonl"
for s in "4096 4096 4096" "8192 8192 8192"; do
    b=$(budget 45); [ "$b" = 0 ] && { note "dev gemm $s: skipped (time budget)"; continue; }
    timeout "$b" build/kernels/dev/gemm $s >> "$OUT/dev-gemm.jsonl" 2>> "$OUT/dev-gemm.err" || status=1
done
grep -q '"valid":false' "$OUT/dev-gemm.jsonl" && note "dev gemm: a version failed validation"

# 4. dev attention progression (v0 reference, v1 CUDA cores, v2 tensor cores)
: > "$OUT/dev-attention.jsonl"
for s in "1 16384 32 64 0" "1 16384 16 128 0" "4 4096 16 128 1"; do
    b=$(budget 30); [ "$b" = 0 ] && { note "dev attention $s: skipped (time budget)"; continue; }
    timeout "$b" build/kernels/dev/attention $s >> "$OUT/dev-attention.jsonl" \
        2>> "$OUT/dev-attention.err" || status=1
done
grep -q '"valid":false' "$OUT/dev-attention.jsonl" && note "dev attention: a version failed validation"

# 5. each production variant forced: GEMM vs cuBLAS, attention vs unfused and FA-2's figures
b=$(budget 60)
if [ "$b" = 0 ]; then
    note "bench-kernels variants: skipped (time budget)"
elif timeout "$b" bin/bench-kernels --backend cuda --variants --repeat 10 \
        --out "$OUT/bench-kernels-variants.jsonl" 2> "$OUT/bench-kernels-variants.err"; then
    note "bench-kernels variants: $(wc -l < "$OUT/bench-kernels-variants.jsonl") rows"
else
    note "bench-kernels variants: failed or invalid rows (see .err / jsonl)"
    status=1
fi

# 6. benchmark rows: cuda backend, automatic selection, % of cuBLAS / unfused
b=$(budget 90)
if [ "$b" = 0 ]; then
    note "bench-kernels cuda: skipped (time budget)"
elif timeout "$b" bin/bench-kernels --backend cuda --dtype f32,bf16,f16 --repeat 20 \
        --out "$OUT/bench-kernels-cuda.jsonl" 2> "$OUT/bench-kernels-cuda.err"; then
    note "bench-kernels cuda: $(wc -l < "$OUT/bench-kernels-cuda.jsonl") rows"
else
    note "bench-kernels cuda: failed, invalid rows or cut by the budget (see .err / jsonl)"
    status=1
fi
note "elapsed $(( $(date +%s) - START )) s"
note "done, status $status; results in $OUT"
exit $status
