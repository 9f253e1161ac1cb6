#!/usr/bin/env python3
"""st_ref.py: sentence-transformers (PyTorch, CPU, fp32) throughput on the same work
as bench_infer.c: same documents, batch, max length and thread count.

Builds the all-MiniLM-L6-v2 pipeline (Transformer -> mean Pooling -> Normalize)
from a model directory holding config.json, vocab.txt and model.safetensors (what
scripts/fetch-model.sh writes); HF_HUB_OFFLINE=1, nothing is downloaded.
sentence-transformers sorts by character length, longest first, and pads each
batch to its longest text. As bench_infer.c does: the first batch (the longest
documents) is encoded once untimed as the warm-up (first_batch_s), then every
document is encoded in one timed encode() call, so docs and tokens are the whole
input, the set moat's rows time too. Prints one JSON object.
"""
import argparse
import json
import os
import resource
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer, models  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="build/model")
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--out", help="raw little-endian f32 [docs, dim], input order")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tr = models.Transformer(a.model, max_seq_length=a.max_len)
    dim_fn = getattr(tr, "get_embedding_dimension", None) or tr.get_word_embedding_dimension
    model = SentenceTransformer(modules=[tr, models.Pooling(dim_fn(), "mean"), models.Normalize()],
                                device="cpu")
    with open(a.input, encoding="utf-8", newline="\n") as f:
        docs = f.read().split("\n")
    if docs and docs[-1] == "":
        docs.pop()
    first = sorted(range(len(docs)), key=lambda i: (-len(docs[i]), i))[:a.batch]
    t0 = time.perf_counter()  # warm-up, untimed in time_s
    model.encode([docs[i] for i in first], batch_size=a.batch, show_progress_bar=False)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = model.encode(docs, batch_size=a.batch, show_progress_bar=False)  # input order
    t = time.perf_counter() - t0
    tokens = sum(len(model.tokenizer(d, truncation=True, max_length=a.max_len)["input_ids"])
                 for d in docs)
    if a.out:
        np.asarray(emb, dtype="<f4").tofile(a.out)
    print(json.dumps({
        "bench": "infer", "impl": "sentence-transformers", "tp": 1, "backend": "torch-cpu",
        "threads": torch.get_num_threads(), "batch": a.batch, "max_len": a.max_len,
        "docs": len(docs), "tokens": tokens, "time_s": round(t, 4),
        "docs_per_s": round(len(docs) / t, 2) if t > 0 else 0,
        "tokens_per_s": round(tokens / t, 1) if t > 0 else 0,
        "first_batch_s": round(t_first, 4),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
