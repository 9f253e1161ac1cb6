#!/usr/bin/env python3
"""cluster.py: bench/infer end to end on a local moat cluster, against
sentence-transformers in the same run.

Starts `moat local up` (2 workers, --cpus-per-worker C) in a temporary directory,
imports the model, and for TP=1 and TP=2 submits the same documents as one infer
job, timing from the submission to the last batch (documents/s, tokens/s) and to
the first stored batch (time to first result), while sampling the resident set
of the workers and of the rank processes (peak RSS). With PYTHON pointing at an
interpreter that has sentence-transformers, runs bench/infer/st_ref.py on the same
documents, batch, max length and thread count, and adds the ratio. Prints one JSON
object per line. The token count is that of moat's tokeniser (bin/bench-infer).
Usage: bench/infer/cluster.py [--docs N] [--batch N] [--max-len N] [--threads T]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOAT = ROOT / "bin" / "moat"


def moat(env, *args, check=True):
    p = subprocess.run([str(MOAT), *map(str, args)], env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"bench-infer: moat {' '.join(map(str, args))}: {p.stderr.strip()}")
    return p.stdout


def rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Peak VmRSS of the cluster's processes: workers and rank children."""

    def __init__(self, marker):
        super().__init__(daemon=True)
        self.marker, self.stop, self.peak = marker.encode(), False, {"worker": 0, "rank": 0, "controller": 0}

    def run(self):
        while not self.stop:
            for p in Path("/proc").iterdir():
                if not p.name.isdigit():
                    continue
                try:
                    cmd = (p / "cmdline").read_bytes()
                except OSError:
                    continue
                if self.marker not in cmd:
                    continue
                kind = ("rank" if b"--run-infer" in cmd else "worker" if b"moat-worker" in cmd
                        else "controller" if b"moat-controller" in cmd else None)
                if kind:
                    self.peak[kind] = max(self.peak[kind], rss_kb(p.name))
            time.sleep(0.05)


def signed_model(env, tmp, src):
    """The connected side: a copy of the model in src, under tmp/model, signed as
    minilm v1 with a key this run makes, whose public half the cluster in tmp
    (MOAT_DIR) trusts (tmp/trust/bench.pub). Returns the copy's path."""
    import shutil
    model = tmp / "model"
    shutil.copytree(src, model)
    moat(env, "model", "keygen", "--out", tmp / "signing")
    (tmp / "trust").mkdir()
    shutil.copy(tmp / "signing" / "artifact.pub", tmp / "trust" / "bench.pub")
    moat(env, "model", "sign", model, "--key", tmp / "signing" / "artifact.key", "--name", "minilm",
         "--version", 1)
    return model


def run_job(env, docs, tp, batch, max_len, cpus):
    t0 = time.monotonic()
    jid = moat(env, "--json", "submit", "--infer", "minilm", "--input", docs, "--tp", tp,
               "--batch", batch, "--max-len", max_len, "--cpus", cpus).strip()
    jid = json.loads(jid)["id"]
    first = None
    while True:
        show = json.loads(moat(env, "--json", "show", jid))
        if first is None and any(t["state"] == "COMPLETED" for t in show["tasks"]):
            first = time.monotonic() - t0
        if show["state"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if show["state"] != "COMPLETED":
        sys.exit(f"bench-infer: job {jid} ended {show['state']}")
    return jid, wall, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--model", default=str(ROOT / "build" / "model"))
    a = ap.parse_args()
    if not (Path(a.model) / "model.safetensors").exists():
        sys.exit(f"bench-infer: {a.model} missing: run scripts/fetch-model.sh {a.model}")
    tmp = Path(tempfile.mkdtemp(prefix="moat-bench-infer-"))
    env = dict(os.environ, MOAT_DIR=str(tmp))
    (tmp / "controller.extra.conf").write_text('log_level = "warn";\n')
    (tmp / "worker.extra.conf").write_text('log_level = "warn";\n')
    corpus = tmp / "fortunes.jsonl"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fortunes-corpus.py"), str(corpus)], check=True,
                   capture_output=True)
    lines = corpus.read_text().splitlines()[: a.docs]
    docs = tmp / "docs.txt"
    docs.write_text("".join(json.loads(l)["text"] + "\n" for l in lines))
    n = len(lines)
    # real tokens as moat's tokeniser counts them (in-process run, also a sanity reference)
    inproc = json.loads(subprocess.run([str(ROOT / "bin" / "bench-infer"), "--model", a.model, "--input", docs,
                                        "--threads", str(a.threads), "--batch", "32", "--max-len",
                                        str(a.max_len)], capture_output=True, text=True, check=True).stdout)
    tokens = inproc.get("tokens") or 0
    print(json.dumps({"bench": "infer", "case": "in_process_tp1", **inproc}), flush=True)
    model = signed_model(env, tmp, a.model)
    try:
        moat(env, "local", "up", "--workers", 2, "--cpus-per-worker", max(1, a.threads // 2))
        moat(env, "model", "import", model, "--name", "minilm")
        sampler = RssSampler(str(tmp))
        sampler.start()
        results = {}
        for tp in (1, 2):
            # TP=1: both workers embed batches side by side (data parallel), each rank
            # with half the threads; TP=2: each batch on both workers.
            cpus = max(1, a.threads // 2)
            jid, wall, first = run_job(env, docs, tp, a.batch, a.max_len, cpus)
            results[tp] = n / wall
            print(json.dumps({"bench": "infer", "case": f"cluster_tp{tp}", "docs": n, "tokens": tokens,
                              "batch": a.batch, "max_len": a.max_len, "threads": a.threads, "wall_s": round(wall, 3),
                              "docs_per_s": round(n / wall, 2), "tokens_per_s": round(tokens / wall, 1),
                              "time_to_first_result_s": round(first or wall, 3)}), flush=True)
        sampler.stop = True
        sampler.join()
        print(json.dumps({"bench": "infer", "case": "peak_rss_mb",
                          **{k: round(v / 1024, 1) for k, v in sampler.peak.items()}}), flush=True)
    finally:
        moat(env, "local", "down", check=False)
    py = os.environ.get("PYTHON", sys.executable)
    if subprocess.run([py, "-c", "import sentence_transformers"], capture_output=True).returncode != 0:
        print("bench-infer: no sentence-transformers in PYTHON; reference not run", file=sys.stderr)
        return
    ref = json.loads(subprocess.run([py, str(ROOT / "bench" / "infer" / "st_ref.py"), "--model", a.model,
                                     "--input", docs, "--threads", str(a.threads), "--batch", "32",
                                     "--max-len", str(a.max_len), "--out", str(tmp / "ref.f32")],
                                    capture_output=True, text=True, check=True,
                                    env=dict(os.environ, OMP_NUM_THREADS=str(a.threads))).stdout)
    print(json.dumps({"bench": "infer", "case": "sentence_transformers", **ref}), flush=True)
    print(json.dumps({"bench": "infer", "case": "ratios",
                      "cluster_tp1_vs_st": round(results[1] / ref["docs_per_s"], 3),
                      "cluster_tp2_vs_st": round(results[2] / ref["docs_per_s"], 3),
                      "in_process_tp1_vs_st": round(inproc["docs_per_s"] / ref["docs_per_s"], 3)}), flush=True)


if __name__ == "__main__":
    main()
