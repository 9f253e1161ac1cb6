#!/usr/bin/env bash
# run.sh: bench/infer: moat's encoder (TP=1, in-process) against sentence-transformers,
# same documents, batch, max length and threads, in one run. Prints one JSON object
# per implementation, then a summary line {"ratio_docs_per_s", "max_abs_diff", "valid"}.
# Usage: bench/infer/run.sh [--input FILE] [--threads N] [--batch N] [--max-len N]
#   --input   one document per line (default tests/data/emb/sentences.txt x 8)
#   PYTHON    an interpreter with sentence-transformers (default python3); when it
#             lacks it, only moat's line is printed, with a note on stderr.
# Needs `make` to have built build/ (libmoat.a, libmoatkrn.a, worker objects) and
# scripts/fetch-model.sh build/model. Run from the repository root.
set -euo pipefail
MODEL=${MODEL:-build/model}
PYTHON=${PYTHON:-python3}
INPUT="" THREADS=$(nproc) BATCH=32 MAXLEN=256
while [ $# -gt 0 ]; do
    case $1 in
    --input) INPUT=$2; shift 2 ;; --threads) THREADS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;; --max-len) MAXLEN=$2; shift 2 ;;
    *) echo "usage: bench/infer/run.sh [--input FILE] [--threads N] [--batch N] [--max-len N]" >&2; exit 2 ;;
    esac
done
[ -f "$MODEL/model.safetensors" ] || { echo "bench-infer: $MODEL missing: run scripts/fetch-model.sh $MODEL" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
if [ -z "$INPUT" ]; then
    INPUT=$TMP/docs.txt
    for _ in 1 2 3 4 5 6 7 8; do cat tests/data/emb/sentences.txt; done >"$INPUT"
fi

make -s bin/bench-infer

ARGS=(--model "$MODEL" --input "$INPUT" --threads "$THREADS" --batch "$BATCH" --max-len "$MAXLEN")
MOAT=$(bin/bench-infer "${ARGS[@]}" --out "$TMP/moat.f32")
echo "$MOAT"
if ! "$PYTHON" -c 'import sentence_transformers' 2>/dev/null; then
    echo "bench-infer: $PYTHON has no sentence_transformers: reference not run" >&2
    exit 0
fi
REF=$(OMP_NUM_THREADS=$THREADS "$PYTHON" bench/infer/st_ref.py "${ARGS[@]}" --out "$TMP/ref.f32")
echo "$REF"
"$PYTHON" - "$TMP/moat.f32" "$TMP/ref.f32" "$MOAT" "$REF" <<'PY'
import json, sys
import numpy as np
a, b = np.fromfile(sys.argv[1], "<f4"), np.fromfile(sys.argv[2], "<f4")
m, r = json.loads(sys.argv[3]), json.loads(sys.argv[4])
d = float(np.max(np.abs(a - b))) if a.size == b.size else float("inf")
print(json.dumps({"ratio_docs_per_s": round(m["docs_per_s"] / r["docs_per_s"], 3),
                  "max_abs_diff": d, "valid": bool(d <= 1e-4)}))
PY
