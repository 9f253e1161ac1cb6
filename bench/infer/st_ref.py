#!/usr/bin/env python3
"""st_ref.py: sentence-transformers (PyTorch, CPU, fp32) throughput on the same work
as bench_infer.c: same documents, batch, max length and thread count.

Builds the all-MiniLM-L6-v2 pipeline (Transformer -> mean Pooling -> Normalize)
from a model directory holding config.json, vocab.txt and model.safetensors (what
scripts/fetch-model.sh writes); HF_HUB_OFFLINE=1, nothing is downloaded.
sentence-transformers sorts by character length, longest first, and pads each
batch to its longest text; the first batch is timed apart as the warm-up, the
rest as one encode() call, exactly as bench_infer.c does. Prints one JSON object.
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
    order = sorted(range(len(docs)), key=lambda i: (-len(docs[i]), i))
    first, rest = order[:a.batch], order[a.batch:]
    t0 = time.perf_counter()
    e_first = model.encode([docs[i] for i in first], batch_size=a.batch, show_progress_bar=False)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    e_rest = model.encode([docs[i] for i in rest], batch_size=a.batch, show_progress_bar=False)
    t = time.perf_counter() - t0
    tokens = sum(len(model.tokenizer(docs[i], truncation=True, max_length=a.max_len)["input_ids"])
                 for i in rest)
    if a.out:
        emb = np.zeros((len(docs), e_first.shape[1]), dtype="<f4")
        emb[first] = e_first
        if rest:
            emb[rest] = e_rest
        emb.tofile(a.out)
    print(json.dumps({
        "bench": "infer", "impl": "sentence-transformers", "tp": 1, "backend": "torch-cpu",
        "threads": torch.get_num_threads(), "batch": a.batch, "max_len": a.max_len,
        "docs": len(rest), "tokens": tokens, "time_s": round(t, 4),
        "docs_per_s": round(len(rest) / t, 2) if t > 0 else 0,
        "tokens_per_s": round(tokens / t, 1) if t > 0 else 0,
        "first_batch_s": round(t_first, 4),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
