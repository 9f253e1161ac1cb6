#!/usr/bin/env python3
"""cluster.py: bench/infer end to end on a local moat cluster, against
sentence-transformers in the same run.

Starts `moat local up` (2 workers, --cpus-per-worker threads/2) in a temporary
directory, imports the model, and for TP=1 and TP=2 submits the same documents as
one infer job, timing from the submission to the last batch (documents/s,
tokens/s) and to the first stored batch (time to first result), while sampling
the resident set of each worker, of the rank processes under each worker and of
the controller (peak RSS, per process). With PYTHON pointing at an interpreter that
has sentence-transformers, runs bench/infer/st_ref.py, and adds the ratios.

Every implementation gets the same documents (the first --docs fortunes), the same
--batch (the cluster's batch per task, bench-infer's and sentence-transformers'
encode batch_size), max length and thread count. The in-process and
sentence-transformers rows time one pass over all the documents after an untimed
warm-up batch; a cluster row's time is end to end (submission to last result,
ranks' set-up included). A cluster row's documents and tokens are those of the
rows the job stored: exported with `moat result --format jsonl` and counted with
moat's tokeniser (bin/bench-infer --tokens-only).
Prints one JSON object per line (docs/infer.md, "Benchmark").
Usage: bench/infer/cluster.py [--docs N] [--batch N] [--max-len N] [--threads T]
                              [--model DIR]
"""
import argparse
import json
import os
import re
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


def proc_status(pid):
    """{field: value} of /proc/PID/status, {} when it is gone."""
    try:
        return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if ":" in line)
    except OSError:
        return {}


class RssSampler(threading.Thread):
    """Peak VmRSS per process of one cluster (cmdline holding marker): each worker
    by node name (its config DIR/worker-I.conf is node local-I), the largest rank
    process (moat-worker --run-infer) under each worker, and the controller."""

    def __init__(self, marker):
        super().__init__(daemon=True)
        self.marker, self.stop = marker.encode(), False
        self.peak = {"worker": {}, "rank": {}, "controller": 0}

    def scan(self):
        workers, ranks = {}, []  # pid -> node; [(pid, rss)]
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if self.marker not in cmd and b"--run-infer" not in cmd:
                continue
            rss = rss_kb(p.name)
            if b"--run-infer" in cmd:
                ranks.append((p.name, rss))
            elif b"moat-worker" in cmd:
                m = re.search(rb"worker-(\d+)\.conf", cmd)
                node = f"local-{int(m.group(1))}" if m else f"pid-{p.name}"
                workers[p.name] = node
                self.peak["worker"][node] = max(self.peak["worker"].get(node, 0), rss)
            elif b"moat-controller" in cmd:
                self.peak["controller"] = max(self.peak["controller"], rss)
        for pid, rss in ranks:  # a rank belongs to the worker it descends from
            up = pid
            for _ in range(8):
                up = proc_status(up).get("PPid", "").strip()
                if up in workers or up in ("", "0", "1"):
                    break
            if up in workers:
                node = workers[up]
                self.peak["rank"][node] = max(self.peak["rank"].get(node, 0), rss)

    def run(self):
        while not self.stop:
            self.scan()
            time.sleep(0.05)

    def mb(self):
        """The peaks in MiB: {"worker": {node: MB}, "rank": {node: MB}, "controller": MB}."""
        return {"worker": {k: round(v / 1024, 1) for k, v in sorted(self.peak["worker"].items())},
                "rank": {k: round(v / 1024, 1) for k, v in sorted(self.peak["rank"].items())},
                "controller": round(self.peak["controller"] / 1024, 1)}


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


def merge_peaks(peaks):
    """The largest of several RssSampler.mb() results, per process."""
    out = {"worker": {}, "rank": {}, "controller": 0}
    for p in peaks:
        for kind in ("worker", "rank"):
            for node, mb in p[kind].items():
                out[kind][node] = max(out[kind].get(node, 0), mb)
        out["controller"] = max(out["controller"], p["controller"])
    return out


def embedded(env, tmp, jid, max_len):
    """(documents, tokens) of the rows job jid stored: its jsonl export's texts,
    tokenised by moat's tokeniser as the ranks did (truncation at max_len)."""
    out = tmp / f"job{jid}.jsonl"
    moat(env, "result", jid, "--format", "jsonl", "--out", out)
    texts = tmp / f"job{jid}.txt"
    n = 0
    with open(out, encoding="utf-8") as f, open(texts, "w", encoding="utf-8", newline="\n") as t:
        for line in f:
            t.write(json.loads(line)["text"] + "\n")
            n += 1
    cnt = json.loads(subprocess.run([str(ROOT / "bin" / "bench-infer"), "--model", str(tmp / "model"),
                                     "--input", texts, "--max-len", str(max_len), "--tokens-only"],
                                    capture_output=True, text=True, check=True).stdout)
    if cnt["docs"] != n:
        sys.exit(f"bench-infer: job {jid}: {n} rows exported, {cnt['docs']} tokenised")
    return n, cnt["tokens"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128,
                    help="documents per cluster task, and bench-infer's and sentence-transformers' "
                         "batch size")
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
    # in-process TP=1: the same documents and batch, one timed pass over all of them
    inproc = json.loads(subprocess.run([str(ROOT / "bin" / "bench-infer"), "--model", a.model, "--input", docs,
                                        "--threads", str(a.threads), "--batch", str(a.batch), "--max-len",
                                        str(a.max_len)], capture_output=True, text=True, check=True).stdout)
    print(json.dumps({"bench": "infer", "case": "in_process_tp1", **inproc}), flush=True)
    model = signed_model(env, tmp, a.model)
    try:
        moat(env, "local", "up", "--workers", 2, "--cpus-per-worker", max(1, a.threads // 2))
        moat(env, "model", "import", model, "--name", "minilm")
        results, per_case = {}, []
        for tp in (1, 2):
            # TP=1: both workers embed batches side by side (data parallel), each rank
            # with half the threads; TP=2: each batch on both workers.
            cpus = max(1, a.threads // 2)
            sampler = RssSampler(str(tmp))
            sampler.start()
            jid, wall, first = run_job(env, docs, tp, a.batch, a.max_len, cpus)
            sampler.stop = True
            sampler.join()
            per_case.append(sampler.mb())
            done, tokens = embedded(env, tmp, jid, a.max_len)
            results[tp] = done / wall
            print(json.dumps({"bench": "infer", "case": f"cluster_tp{tp}", "docs": done, "tokens": tokens,
                              "batch": a.batch, "max_len": a.max_len, "threads": a.threads, "wall_s": round(wall, 3),
                              "docs_per_s": round(done / wall, 2), "tokens_per_s": round(tokens / wall, 1),
                              "time_to_first_result_s": round(first or wall, 3),
                              "peak_rss_mb": sampler.mb()}), flush=True)
        print(json.dumps({"bench": "infer", "case": "peak_rss_mb", **merge_peaks(per_case)}), flush=True)
    finally:
        moat(env, "local", "down", check=False)
    py = os.environ.get("PYTHON", sys.executable)
    if subprocess.run([py, "-c", "import sentence_transformers"], capture_output=True).returncode != 0:
        print("bench-infer: no sentence-transformers in PYTHON; reference not run", file=sys.stderr)
        return
    ref = json.loads(subprocess.run([py, str(ROOT / "bench" / "infer" / "st_ref.py"), "--model", a.model,
                                     "--input", docs, "--threads", str(a.threads), "--batch", str(a.batch),
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
