#!/usr/bin/env bash
# tests/gpu/run.sh: build with CUDA, run every GPU test, the model's GPU tests and
# docs/s benchmark, and the GPU kernel benchmarks against cuBLAS, and write JSON
# results to $OUT (default ./out).
# Meant for a machine with an NVIDIA GPU (H100/H200: under 5 minutes). Without
# a GPU every step still runs and records its skip reason.
#   OUT=dir tests/gpu/run.sh
# The device machine's image has CUDA, NCCL's wheel and Python but not moat's C
# libraries, and no network; the model (87 MiB) is over the device tool's 64 MiB
# carry limit, so the model steps use its GPU test copy (unused word-embedding
# rows zeroed, gzipped, about 50 MiB; scripts/gpu-model.py, docs/infer.md "GPU
# runs"). On the connected side, first (network; about 2 minutes):
#   scripts/gpu-deps.sh && scripts/fetch-model.sh build/model && scripts/gpu-model.py
#   # -> .gpu-deps/ (29 trimmed Debian .debs, 6.5 MiB) and build/gpu-model/ (50 MiB)
# then one device-tool run: carry [".gpu-deps", "build/gpu-model"], timeout_s 420,
# command
#   OUT=$OUT tests/gpu/run.sh
# (tracked tree 3.4 MB + 8.8 MB + 52.4 MB = 64.6 MB of the 67.1 MB (64 MiB) limit).
# With .gpu-deps/ present every .deb in it is unpacked (dpkg-deb -x, never into /)
# into $BUILD/deps and make gets DEPS_PREFIX=that (headers first, libraries
# through the programs' DT_RPATH: no LD_LIBRARY_PATH, so the image's own tools
# keep their own libraries); without it the system's are used. NCCL: CUDA_HOME's,
# else python3's pip wheel nvidia-nccl-cu13 (make NCCL_HOME=... NCCL_LIBDIR=...),
# else none (NCCL=0; test_nccl then skips, which fails on a GPU machine).
# summary.txt says which. Without build/gpu-model the model steps are skipped and
# summary.txt says why; MOAT_MODEL_DIR=dir uses that model directory, as it is, instead.
# BUILD=dir BIN=dir: build there instead of build/ and bin/ (passed to make);
# GPU_MODEL=dir: the copy is there instead of build/gpu-model.
# Files: $OUT/env.json (GPU, driver, git rev, date), $OUT/test_krn_cuda.txt
# (includes the kernel-variant table: runnable / self-check verdict per variant),
# $OUT/test_<name>.txt for every unit test with a GPU part (tests/unit/ files that
# call krn_cuda_device_count: test_nccl single-rank NCCL all-reduce, test_stage
# staged all-reduce on one GPU, ...), among them $OUT/test_bert.txt
# (test_golden_cuda: the encoder on the GPU vs sentence-transformers' golden
# vectors), $OUT/test_infer.txt (rank processes; test_tp2_one_gpu: two ranks
# on one GPU), $OUT/bench-infer-gpu.jsonl (bench-infer on the copy's 1,000
# fortunes: cpu on every core, cuda at batch 32 three times and at batch 128,
# then a summary row: ratio of cuda to cpu docs/s, max abs difference of the
# cuda embeddings from the cpu ones, valid when <= 1e-4),
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
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-./out}
BUILD=${BUILD:-build}
BIN=${BIN:-bin}
GPU_MODEL=${GPU_MODEL:-build/gpu-model}
mkdir -p "$OUT"
status=0
JOBS=$(nproc 2>/dev/null || echo 4)
MTMP=$(mktemp -d "${TMPDIR:-/tmp}/moat-gpu-run.XXXXXX")
trap 'rm -rf "$MTMP"' EXIT

note() { echo "run.sh: $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
START=$(date +%s)
# budget CAP: seconds this step may take: min(CAP, what is left of 285 s); 0 = skip
budget() {
    local left=$((285 - ($(date +%s) - START)))
    if [ "$left" -lt 10 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# 0. C libraries (.gpu-deps/, scripts/gpu-deps.sh) and NCCL: see the top comment
DEPS=()
if compgen -G ".gpu-deps/*.deb" > /dev/null; then
    # N.B. not under .gpu-deps/: a local run would then make the next carry 40 MB larger
    root=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)/deps
    rm -rf "$root" && mkdir -p "$root" || exit 1
    n=0 how=dpkg-deb
    dpkg-deb --version > /dev/null 2>&1 || how="python3 (no dpkg-deb)"
    for f in .gpu-deps/*.deb; do
        if [ "$how" = dpkg-deb ]; then
            dpkg-deb -x "$f" "$root"
        else  # an ar archive holding data.tar.*: what dpkg-deb -x reads
            python3 - "$f" "$root" <<'PY'
import io, sys, tarfile
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"!<arch>\n", "not an ar archive"
i = 8
while i + 60 <= len(b):
    name, size = b[i:i + 16].decode().strip().rstrip("/"), int(b[i + 48:i + 58])
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(b[i + 60:i + 60 + size])) as t:
            t.extractall(sys.argv[2], filter="tar")
        sys.exit(0)
    i += 60 + size + (size & 1)
sys.exit("no data.tar member")
PY
        fi || { note "deps: unpacking $f FAILED"; exit 1; }
        n=$((n + 1))
    done
    DEPS=(DEPS_PREFIX="$root")
    note "deps: $n .deb from .gpu-deps unpacked with $how into $root; make DEPS_PREFIX=$root"
    if ! make --version > /dev/null 2>&1; then
        PATH=$PATH:$root/usr/bin
        note "deps: no make in the image: the carried GNU make ($root/usr/bin/make)"
    fi
else
    note "deps: no .gpu-deps/: the system's libraries (scripts/gpu-deps.sh makes it)"
fi
# the CUDA toolkit, as the Makefile finds it (CUDA_HOME, else nvcc's folder)
nvcc_bin=$(command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_DIR=${CUDA_HOME:-${nvcc_bin%/bin/nvcc}}
for l in libcudart.so libcublas.so; do
    [ -e "$CUDA_DIR/lib64/$l" ] || note "cuda: $CUDA_DIR/lib64/$l missing: the CUDA build will not link"
done
NCCL_MK=()
if [ -f "$CUDA_DIR/include/nccl.h" ] && [ -e "$CUDA_DIR/lib64/libnccl.so.2" ]; then
    note "nccl: $CUDA_DIR's (include/nccl.h, lib64/libnccl.so.2)"
elif d=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null) &&
        [ -f "$d/include/nccl.h" ] && [ -e "$d/lib/libnccl.so.2" ]; then
    NCCL_MK=(NCCL_HOME="$d" NCCL_LIBDIR="$d/lib")
    note "nccl: none in $CUDA_DIR: python3's wheel, make NCCL_HOME=$d NCCL_LIBDIR=$d/lib"
else
    NCCL_MK=(NCCL=0)
    note "nccl: none in $CUDA_DIR nor as python3's nvidia.nccl: make NCCL=0 (test_nccl skips)"
fi

# 1. build (library, tests, dev kernels, benchmark)
# On a cc 9.0 GPU build for sm_90a alone: half the nvcc time, and the dev
# harness (one unit with every version) then certainly runs its wgmma v7 (the
# production library keeps kernel 7 in an sm_90a-only unit in every build).
# The unit tests and bench-infer link the whole worker (ZeroMQ, LMDB, NCCL, ...):
# `make -k`, so that one of them failing to build costs only its own steps;
# the kernel targets must build (the second make is a no-op when they did).
ARCH=()
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
[ "$cap" = "9.0" ] && ARCH=(KRN_NVCC_ARCH="-gencode arch=compute_90a,code=sm_90a")
MK=(make -j"$JOBS" CUDA=1 "${ARCH[@]}" "${DEPS[@]}" "${NCCL_MK[@]}" BUILD="$BUILD" BIN="$BIN")
KRN_TARGETS=("$BUILD/libmoatkrn.a" "$BUILD/tests/kernels/test_krn_api"
    "$BUILD/tests/kernels/test_krn_cpu" "$BUILD/tests/kernels/test_krn_cuda" krn-dev
    "$BIN/bench-kernels")
# every unit test with a GPU part (it asks krn_cuda_device_count): test_nccl,
# test_stage, test_bert, test_infer, ... (the last two need the model)
GPU_UNIT=()
for f in $(grep -l krn_cuda_device_count tests/unit/test_*.c); do GPU_UNIT+=("$(basename "$f" .c)"); done
MODEL_TARGETS=("${GPU_UNIT[@]/#/$BUILD/tests/}" "$BIN/bench-infer")
if ! "${MK[@]}" -k "${KRN_TARGETS[@]}" "${MODEL_TARGETS[@]}" > "$OUT/build.log" 2>&1; then
    if ! "${MK[@]}" "${KRN_TARGETS[@]}" >> "$OUT/build.log" 2>&1; then
        note "build failed (see build.log)"
        tail -30 "$OUT/build.log"
        exit 1
    fi
    for t in "${MODEL_TARGETS[@]}"; do
        "${MK[@]}" "$t" >> "$OUT/build.log" 2>&1 || { note "build: $t failed (see build.log)"; status=1; }
    done
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
    elif timeout "$b" "$BUILD/tests/kernels/$t" > "$OUT/$t.txt" 2>&1; then
        note "$t: ok ($(grep -E 'PASSED|SKIP' "$OUT/$t.txt" | head -1))"
    else
        note "$t: FAILED"
        status=1
    fi
done

# 3. unit tests with GPU parts; those that need the model on the GPU test copy,
# unpacked into $MTMP/model
MODEL=""
if [ -n "${MOAT_MODEL_DIR:-}" ]; then
    MODEL=$MOAT_MODEL_DIR
    note "model: $MODEL (MOAT_MODEL_DIR, used as it is)"
elif [ ! -f "$GPU_MODEL/gpu-copy.json" ]; then
    note "model: $GPU_MODEL missing: test_bert, test_infer and bench-infer skipped (make it" \
         "with scripts/gpu-model.py, then run with carry [\"$GPU_MODEL\"])"
else
    b=$(budget 60)
    if [ "$b" = 0 ]; then
        note "model: unpacking skipped (time budget)"
        status=1
    elif timeout "$b" python3 scripts/gpu-model.py --unpack "$GPU_MODEL" "$MTMP/model" \
            > "$OUT/gpu-model.txt" 2>&1; then
        MODEL=$MTMP/model
        note "model: $(tail -1 "$OUT/gpu-model.txt")"
        grep -q warning "$OUT/gpu-model.txt" && note "model: $(grep -m1 warning "$OUT/gpu-model.txt")"
    else
        note "model: unpacking $GPU_MODEL FAILED (see gpu-model.txt)"
        status=1
    fi
fi
# run_test NAME CAP NEEDS_MODEL: $BUILD/tests/NAME with MOAT_MODEL_DIR=$MODEL, output
# in $OUT/NAME.txt. A GPU part that skips is reported; on a GPU machine it fails.
run_test() {
    local t=$1 b why
    if [ "$3" = 1 ] && [ -z "$MODEL" ]; then
        note "$t: skipped (no model: see above)"; return
    fi
    if [ ! -x "$BUILD/tests/$t" ]; then
        note "$t: not built (see build.log)"; status=1; return
    fi
    b=$(budget "$2")
    if [ "$b" = 0 ]; then
        note "$t: skipped (time budget)"; status=1
    elif MOAT_MODEL_DIR=$MODEL timeout "$b" "$BUILD/tests/$t" > "$OUT/$t.txt" 2>&1; then
        why=$(grep -m1 -iE 'skip:' "$OUT/$t.txt")
        if [ -z "$why" ]; then
            note "$t: ok ($(grep -m1 PASSED "$OUT/$t.txt"))"
        elif [ -n "$gpu" ]; then
            note "$t: FAILED: a GPU test skipped on a GPU machine: $why"; status=1
        else
            note "$t: ok, GPU part skipped: $why"
        fi
    else
        note "$t: FAILED (see $t.txt)"; status=1
    fi
    grep -E '^golden (cpu|cuda)' "$OUT/$t.txt" 2>/dev/null | while read -r l; do note "  $l"; done
}
for t in "${GPU_UNIT[@]}"; do  # those that need no model first
    grep -q MOAT_MODEL_DIR "tests/unit/$t.c" || run_test "$t" 60 0
done
for t in "${GPU_UNIT[@]}"; do
    grep -q MOAT_MODEL_DIR "tests/unit/$t.c" && run_test "$t" 120 1
done

# 4. GPU docs/s: bench-infer on the copy's 1,000 fortunes (bench-docs.txt), cpu on
# every core, then cuda; the cuda embeddings are checked against the cpu ones.
J=$OUT/bench-infer-gpu.jsonl
GPU_DOCS=$GPU_MODEL/bench-docs.txt
: > "$J"
bench_infer() { # LABEL CAP BENCH-INFER-ARGS...: one JSON row appended to $J
    local label=$1 b
    b=$(budget "$2"); shift 2
    if [ "$b" = 0 ]; then
        note "bench-infer $label: skipped (time budget)"; return 1
    fi
    if timeout "$b" "$BIN/bench-infer" --model "$MODEL" --input "$GPU_DOCS" --max-len 256 "$@" \
            --out "$MTMP/$label.f32" >> "$J" 2>> "$OUT/bench-infer-gpu.err"; then
        note "bench-infer $label: $(tail -1 "$J" | grep -oE '"docs_per_s":[0-9.]+')"
    else
        note "bench-infer $label: FAILED (see bench-infer-gpu.err)"; status=1; return 1
    fi
}
if [ -z "$MODEL" ]; then
    note "bench-infer: skipped (no model: see above)"
elif [ ! -f "$GPU_DOCS" ]; then
    note "bench-infer: skipped ($GPU_DOCS missing: it comes with the GPU test copy)"
elif [ ! -x "$BIN/bench-infer" ]; then
    note "bench-infer: not built (see build.log)"; status=1
elif bench_infer cpu 60 --backend cpu --threads "$JOBS" --batch 32; then
    if [ -z "$gpu" ]; then
        note "bench-infer cuda: skipped (no GPU)"
    else
        for i in 1 2 3; do bench_infer "cuda-b32-$i" 30 --backend cuda --batch 32 || break; done
        bench_infer cuda-b128 30 --backend cuda --batch 128
        if ! python3 - "$J" "$MTMP" >> "$J" 2>> "$OUT/bench-infer-gpu.err" <<'PY'
import json, os, statistics, struct, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def emb(label):
    p = os.path.join(sys.argv[2], label + ".f32")
    b = open(p, "rb").read() if os.path.exists(p) else b""
    return struct.unpack("<%df" % (len(b) // 4), b)
cpu, diff, missing = emb("cpu"), 0.0, []
for label in ("cuda-b32-1", "cuda-b128"):
    e = emb(label)
    if e and len(e) == len(cpu):
        diff = max(diff, max(abs(x - y) for x, y in zip(cpu, e)))
    else:
        missing.append(label)
c = [r["docs_per_s"] for r in rows if r.get("backend") == "cpu"]
g = [r["docs_per_s"] for r in rows if r.get("backend") == "cuda" and r.get("batch") == 32]
row = {"bench": "infer", "case": "summary", "docs": rows[0]["docs"],
       "cpu_docs_per_s": c[0] if c else None,
       "cuda_b32_docs_per_s_median": statistics.median(g) if g else None,
       "ratio_cuda_cpu": round(statistics.median(g) / c[0], 2) if c and g else None,
       "max_abs_diff_cuda_cpu": None if missing else diff, "missing": missing,
       "valid": not missing and diff <= 1e-4}
print(json.dumps(row))
sys.exit(0 if row["valid"] else 1)
PY
        then
            note "bench-infer: cuda embeddings differ from cpu (or a run failed)"; status=1
        fi
        note "bench-infer: $(tail -1 "$J")"
    fi
fi

# 5. dev GEMM progression vs cuBLAS (validated before timed)
: > "$OUT/dev-gemm.jsonl"
for s in "4096 4096 4096" "8192 8192 8192"; do
    b=$(budget 45); [ "$b" = 0 ] && { note "dev gemm $s: skipped (time budget)"; continue; }
    timeout "$b" "$BUILD/kernels/dev/gemm" $s >> "$OUT/dev-gemm.jsonl" 2>> "$OUT/dev-gemm.err" || status=1
done
grep -q '"valid":false' "$OUT/dev-gemm.jsonl" && note "dev gemm: a version failed validation"

# 6. dev attention progression (v0 reference, v1 CUDA cores, v2 tensor cores)
: > "$OUT/dev-attention.jsonl"
for s in "1 16384 32 64 0" "1 16384 16 128 0" "4 4096 16 128 1"; do
    b=$(budget 30); [ "$b" = 0 ] && { note "dev attention $s: skipped (time budget)"; continue; }
    timeout "$b" "$BUILD/kernels/dev/attention" $s >> "$OUT/dev-attention.jsonl" \
        2>> "$OUT/dev-attention.err" || status=1
done
grep -q '"valid":false' "$OUT/dev-attention.jsonl" && note "dev attention: a version failed validation"

# 7. each production variant forced: GEMM vs cuBLAS, attention vs unfused and FA-2's figures
b=$(budget 60)
if [ "$b" = 0 ]; then
    note "bench-kernels variants: skipped (time budget)"
elif timeout "$b" "$BIN/bench-kernels" --backend cuda --variants --repeat 10 \
        --out "$OUT/bench-kernels-variants.jsonl" 2> "$OUT/bench-kernels-variants.err"; then
    note "bench-kernels variants: $(wc -l < "$OUT/bench-kernels-variants.jsonl") rows"
else
    note "bench-kernels variants: failed or invalid rows (see .err / jsonl)"
    status=1
fi

# 8. benchmark rows: cuda backend, automatic selection, % of cuBLAS / unfused
b=$(budget 90)
if [ "$b" = 0 ]; then
    note "bench-kernels cuda: skipped (time budget)"
elif timeout "$b" "$BIN/bench-kernels" --backend cuda --dtype f32,bf16,f16 --repeat 20 \
        --out "$OUT/bench-kernels-cuda.jsonl" 2> "$OUT/bench-kernels-cuda.err"; then
    note "bench-kernels cuda: $(wc -l < "$OUT/bench-kernels-cuda.jsonl") rows"
else
    note "bench-kernels cuda: failed, invalid rows or cut by the budget (see .err / jsonl)"
    status=1
fi
note "elapsed $(( $(date +%s) - START )) s"
note "done, status $status; results in $OUT"
exit $status
