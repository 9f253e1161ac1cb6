#!/usr/bin/env python3
"""gpu-model.py: the GPU test copy of the model, small enough to travel to a GPU machine.

The GPU machine gets the working tree plus at most 64 MiB of carried build
output, and all-MiniLM-L6-v2's model.safetensors is 87 MiB; 45 MiB of it is the
word-embedding table (30522 x 384 f32), of which a forward reads only the rows
of the token ids its documents contain. The copy keeps those rows and zeroes the
rest, then gzips the file (about 50 MiB). It exists only for GPU tests and
benchmarks on that machine (tests/gpu/run.sh); it is never imported, signed or
served, and the real model stays build/model.

  scripts/gpu-model.py [--model build/model] [--out build/gpu-model] [--docs 1000]
                       [--bench-input FILE] [--verify BENCH_INFER]
  scripts/gpu-model.py --unpack COPY_DIR DEST_DIR

Make: checks --model against the SHA-256 pins of scripts/fetch-model.sh (the
copy is derived from the verified model only), tokenises with moat's own
tokeniser (tests/tools/tok_ids.c over worker/wrk_tok.c, compiled here with
$CC, no truncation, so any max_len is covered):
  - tests/data/emb/sentences.txt (test_bert's golden sentences; test_infer's
    first 40),
  - the fixed texts of test_infer.c and test_bert.c (TEST_TEXTS below),
  - the benchmark input: the first --docs fortunes (scripts/fortunes-corpus.py,
    Debian package "fortunes", one document a line, as bench/infer/cluster.py
    makes them), or --bench-input FILE,
keeps those ids plus [CLS] [SEP] [PAD] [UNK] [MASK], and writes to --out:
  model.safetensors.gz  the copy: same header, tensors, shapes and size;
                        embeddings.word_embeddings.weight rows not kept are 0.0,
                        kept rows and every other byte bit-identical
  config.json vocab.txt copied unchanged
  bench-docs.txt        the benchmark input (the GPU machine has no fortunes)
  gpu-copy.json         what was done: source and copy hashes, kept ids, inputs
gpu-copy.json also travels into the unpacked directory, where test_bert's
manifest test accepts the copy's hash only when the copy's source is the
pinned model.
--verify BENCH_INFER: then runs that bench-infer (cpu backend) on each input
with the real model and with the unpacked copy and compares the embeddings
byte for byte; exit status 1 when any differs.

Unpack: COPY_DIR/model.safetensors.gz and the small files into DEST_DIR
(created), every file checked against gpu-copy.json; a warning on stderr when
an input file of this tree differs from the one the copy was made from
(regenerate then: ids may be missing).

Standard library only. Exit status: 0 done; 1 failure (one line on stderr,
"gpu-model: ..."); 2 usage.
"""
import argparse
import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = "moat-gpu-test-copy-1"
TENSOR = "embeddings.word_embeddings.weight"
FILES = ("config.json", "vocab.txt", "model.safetensors")
SENTENCES = "tests/data/emb/sentences.txt"
# Texts that tests feed the model besides sentences.txt. Keep in step with:
# test_infer.c write_docs() (an empty document, a 600-word one, the changed
# document) and test_bert.c test_forward_bad_args() (ids 7592 2088).
TEST_TEXTS = [
    "",
    " ".join("tensor" if i % 2 else "parallel" for i in range(600)),
    "a different document on one rank",
    "hello world",
]
# Flags of the root Makefile, minus -MMD -MP.
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", "-I."]


class Fail(Exception):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pinned_manifest():
    """{name: sha256} from the MANIFEST block of scripts/fetch-model.sh."""
    text = open(os.path.join(ROOT, "scripts", "fetch-model.sh"), encoding="utf-8").read()
    m = re.search(r'^MANIFEST="(.*?)"', text, re.S | re.M)
    if m is None:
        raise Fail("scripts/fetch-model.sh: no MANIFEST block")
    pins = dict(line.split() for line in m.group(1).strip().splitlines())
    if set(pins) != set(FILES):
        raise Fail(f"scripts/fetch-model.sh: MANIFEST names {sorted(pins)}")
    return pins


def st_tensor_range(buf, name):
    """(byte offset, rows, row bytes) of f32 2-D tensor name in safetensors image buf."""
    if len(buf) < 8:
        raise Fail("model.safetensors: short file")
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(bytes(buf[8:8 + n]))
    t = hdr.get(name)
    if t is None or t.get("dtype") != "F32" or len(t.get("shape", [])) != 2:
        raise Fail(f"model.safetensors: {name}: missing or not a 2-D F32 tensor")
    rows, cols = t["shape"]
    lo, hi = t["data_offsets"]
    if hi - lo != rows * cols * 4 or 8 + n + hi > len(buf):
        raise Fail(f"model.safetensors: {name}: data_offsets do not fit")
    return 8 + n + lo, rows, cols * 4


def tok_ids(tmp, vocab, inputs):
    exe = os.path.join(tmp, "tok_ids")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, *CFLAGS, "tests/tools/tok_ids.c", "worker/wrk_tok.c", "shared/err.c",
           "-lutf8proc", "-o", exe]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(f"compiling tok_ids: {' '.join(cmd)}\n{r.stderr.strip()}")
    r = subprocess.run([exe, vocab, *inputs], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(r.stderr.strip())
    print(f"gpu-model: {r.stderr.strip()}", file=sys.stderr)
    return [int(x) for x in r.stdout.split()]


def bench_docs(tmp, n):
    """The first n fortunes, one document a line (as bench/infer/cluster.py makes them)."""
    corpus = os.path.join(tmp, "fortunes.jsonl")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "fortunes-corpus.py"), corpus],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail("scripts/fortunes-corpus.py failed (package fortunes installed? or pass "
                   f"--bench-input FILE): {r.stderr.strip()}")
    with open(corpus, encoding="utf-8") as f:
        lines = f.read().splitlines()[:n]
    if len(lines) < n:
        raise Fail(f"fortunes: {len(lines)} documents, {n} asked for")
    path = os.path.join(tmp, "bench-docs.txt")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(json.loads(line)["text"] + "\n" for line in lines))
    return path


def count_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def make(a):
    pins = pinned_manifest()
    for name in FILES:
        p = os.path.join(a.model, name)
        if not os.path.isfile(p):
            raise Fail(f"{p}: missing: run scripts/fetch-model.sh {a.model}")
        if sha256_file(p) != pins[name]:
            raise Fail(f"{p}: sha256 differs from the pin in scripts/fetch-model.sh: not the "
                       "verified model")
    out = os.path.abspath(a.out)
    if os.path.exists(out) and not os.path.isfile(os.path.join(out, "gpu-copy.json")) \
            and os.listdir(out):
        raise Fail(f"{out}: exists and is not a GPU test copy; refusing to replace it")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-model.", dir=os.path.dirname(out)) as tmp:
        stage = os.path.join(tmp, "stage")
        os.mkdir(stage)
        docs = os.path.join(stage, "bench-docs.txt")
        if a.bench_input:
            shutil.copyfile(a.bench_input, docs)
            bench_what = f"{a.bench_input} as given"
        else:
            shutil.move(bench_docs(tmp, a.docs), docs)
            bench_what = (f"the first {a.docs} fortunes (scripts/fortunes-corpus.py), "
                          "one document a line")
        texts = os.path.join(tmp, "test-texts.txt")
        with open(texts, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(t + "\n" for t in TEST_TEXTS))
        vocab = os.path.join(a.model, "vocab.txt")
        keep = tok_ids(tmp, os.path.abspath(vocab),
                       [os.path.join(ROOT, SENTENCES), texts, docs])

        with open(os.path.join(a.model, "model.safetensors"), "rb") as f:
            buf = bytearray(f.read())
        base, rows, row_bytes = st_tensor_range(buf, TENSOR)
        kept = set(keep)
        if max(keep) >= rows:
            raise Fail(f"token id {max(keep)} outside {TENSOR} ({rows} rows)")
        zero = bytes(row_bytes)
        for i in range(rows):
            if i not in kept:
                buf[base + i * row_bytes:base + (i + 1) * row_bytes] = zero
        copy_sha = hashlib.sha256(buf).hexdigest()
        gz = os.path.join(stage, "model.safetensors.gz")
        with open(gz, "wb") as raw:
            # mtime 0, no file name: the same inputs give the same bytes
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as z:
                z.write(buf)
        for name in ("config.json", "vocab.txt"):
            shutil.copyfile(os.path.join(a.model, name), os.path.join(stage, name))
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        meta = {
            "format": FORMAT,
            "what": "GPU test copy of the model: rows of " + TENSOR + " whose token ids "
                    "the inputs below do not use are zero; every other byte is the source's. "
                    "For tests/gpu/run.sh only (carry limit 64 MiB); never import or serve it.",
            "made_by": "scripts/gpu-model.py",
            "git_rev": rev,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": {"dir": a.model, **pins},
            "files": {
                "config.json": {"sha256": pins["config.json"],
                                "bytes": os.path.getsize(os.path.join(stage, "config.json"))},
                "vocab.txt": {"sha256": pins["vocab.txt"],
                              "bytes": os.path.getsize(os.path.join(stage, "vocab.txt"))},
                "model.safetensors": {"sha256": copy_sha, "bytes": len(buf),
                                      "packed": "model.safetensors.gz",
                                      "packed_sha256": sha256_file(gz),
                                      "packed_bytes": os.path.getsize(gz)},
                "bench-docs.txt": {"sha256": sha256_file(docs), "bytes": os.path.getsize(docs),
                                   "docs": count_lines(docs), "what": bench_what},
            },
            "zeroed": {"tensor": TENSOR, "rows": rows, "kept_rows": len(keep),
                       "zeroed_rows": rows - len(keep)},
            "tokeniser": "worker/wrk_tok.c through tests/tools/tok_ids.c, no truncation",
            "inputs": {
                SENTENCES: {"sha256": sha256_file(os.path.join(ROOT, SENTENCES)),
                            "docs": count_lines(os.path.join(ROOT, SENTENCES))},
                "test texts (scripts/gpu-model.py TEST_TEXTS)": {
                    "sha256": sha256_file(texts), "docs": len(TEST_TEXTS)},
                "bench-docs.txt": {"sha256": sha256_file(docs), "docs": count_lines(docs)},
            },
            "kept_ids": keep,
        }
        with open(os.path.join(stage, "gpu-copy.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(stage, out)
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"gpu-model: {out}: {len(keep)} of {rows} rows kept, {total / 2**20:.1f} MiB "
          f"(model.safetensors.gz {meta['files']['model.safetensors']['packed_bytes'] / 2**20:.1f} MiB)",
          file=sys.stderr)
    if a.verify:
        verify(a, out)


def unpack(src, dest):
    """Unpack the copy in src into dest; returns gpu-copy.json's contents."""
    try:
        with open(os.path.join(src, "gpu-copy.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise Fail(f"{src}/gpu-copy.json: {e}")
    if meta.get("format") != FORMAT:
        raise Fail(f"{src}/gpu-copy.json: format {meta.get('format')!r}, expected {FORMAT}")
    os.makedirs(dest, exist_ok=True)
    for name in ("config.json", "vocab.txt", "gpu-copy.json"):
        shutil.copyfile(os.path.join(src, name), os.path.join(dest, name))
    st = meta["files"]["model.safetensors"]
    with gzip.open(os.path.join(src, st["packed"]), "rb") as z, \
            open(os.path.join(dest, "model.safetensors"), "wb") as f:
        shutil.copyfileobj(z, f, 1 << 20)
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        got = sha256_file(os.path.join(dest, name))
        if got != meta["files"][name]["sha256"]:
            raise Fail(f"{dest}/{name}: sha256 {got}, gpu-copy.json says "
                       f"{meta['files'][name]['sha256']}")
    pins = pinned_manifest()
    if any(meta["source"].get(n) != pins[n] for n in FILES):
        raise Fail(f"{src}: made from a model other than the one scripts/fetch-model.sh pins")
    now = sha256_file(os.path.join(ROOT, SENTENCES))
    if now != meta["inputs"][SENTENCES]["sha256"]:
        print(f"gpu-model: warning: {SENTENCES} changed since the copy was made: token ids may "
              "be missing; regenerate with scripts/gpu-model.py", file=sys.stderr)
    return meta


def verify(a, out):
    """bench-infer on each input, real model vs unpacked copy, byte for byte."""
    bad = 0
    with tempfile.TemporaryDirectory(prefix="gpu-model-verify.") as tmp:
        copy = os.path.join(tmp, "copy")
        unpack(out, copy)
        texts = os.path.join(tmp, "test-texts.txt")
        with open(texts, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(t + "\n" for t in TEST_TEXTS))
        inputs = [os.path.join(ROOT, SENTENCES), texts, os.path.join(out, "bench-docs.txt")]
        for inp in inputs:
            emb = {}
            for label, model in (("model", a.model), ("copy", copy)):
                emb[label] = os.path.join(tmp, f"{label}.f32")
                r = subprocess.run([a.verify, "--model", model, "--input", inp, "--batch", "32",
                                    "--max-len", "256", "--out", emb[label]],
                                   cwd=ROOT, capture_output=True, text=True)
                if r.returncode != 0:
                    raise Fail(f"{a.verify} --model {model} --input {inp}: {r.stderr.strip()}")
            with open(emb["model"], "rb") as f1, open(emb["copy"], "rb") as f2:
                b1, b2 = f1.read(), f2.read()
            same = b1 == b2 and len(b1) > 0
            bad += not same
            print(json.dumps({"verify": os.path.relpath(inp, ROOT) if inp.startswith(ROOT) else inp,
                              "docs": count_lines(inp), "bytes": len(b1),
                              "sha256_model": hashlib.sha256(b1).hexdigest()[:16],
                              "sha256_copy": hashlib.sha256(b2).hexdigest()[:16],
                              "bit_identical": same}))
    if bad:
        raise Fail(f"verify: {bad} input(s) embed differently with the copy")


def main():
    ap = argparse.ArgumentParser(description="GPU test copy of the model (see the top comment).")
    ap.add_argument("--model", default="build/model")
    ap.add_argument("--out", default="build/gpu-model")
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--bench-input")
    ap.add_argument("--verify", metavar="BENCH_INFER")
    ap.add_argument("--unpack", nargs=2, metavar=("COPY_DIR", "DEST_DIR"))
    a = ap.parse_args()
    if a.docs < 1:
        ap.error("--docs: at least 1")
    try:
        if a.unpack:
            meta = unpack(*a.unpack)
            print(f"gpu-model: {a.unpack[1]}: GPU test copy, {meta['zeroed']['kept_rows']} of "
                  f"{meta['zeroed']['rows']} word-embedding rows kept, made {meta['date']} at "
                  f"{meta['git_rev']}", file=sys.stderr)
        else:
            make(a)
    except Fail as e:
        print(f"gpu-model: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
