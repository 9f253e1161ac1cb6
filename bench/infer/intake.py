#!/usr/bin/env python3
"""intake.py: how fast a large corpus enters a local moat cluster as one infer
job, sent in parts (SUBMIT, then DOCS, each at most the controller's 8 MiB
default max_message) against the same corpus in one message (the reference: the
controller's max_message raised to hold it, as before parts existed), in the
same run, rounds alternating.

Per submission: wall time from `moat submit` to its exit (every part committed
to LMDB), documents/s and MB/s of input, the CLI's peak RSS, and the longest
PING round trip to the controller while it ran (how long the controller's loop
was busy with one message: other clients, heartbeats and TASK_ENDs wait that
long). Jobs are submitted held and cancelled: this measures intake only.
Prints one JSON object per submission, then {"case": "ratios"} (parts over one
message; medians).
Three more cases, each against its own reference in the same rounds:
"stdin" (the same text piped to `--input -`, copied to $TMPDIR for the second
reading) against "parts" (the file), and "jsonl_ids" (the same documents as
JSONL with a unique string id each: the CLI checks them for repeats) against
"jsonl" (JSONL without ids).

Usage: bench/infer/intake.py [--docs N] [--rounds R] [--batch B]
The corpus: N lines of 14 words drawn (seeded) from the fortunes corpus's words.
Needs `make`, scripts/fetch-model.sh build/model and the fortune data
(scripts/fortunes-corpus.py).
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import MOAT, ROOT, moat, signed_model  # noqa: E402  (the same local cluster setup)


class PingProbe(threading.Thread):
    """The longest `moat ping` round trip while running."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.env, self.stop, self.worst = env, False, 0.0

    def run(self):
        while not self.stop:
            t0 = time.monotonic()
            subprocess.run([str(MOAT), "ping"], env=self.env, capture_output=True)
            self.worst = max(self.worst, time.monotonic() - t0)
            time.sleep(0.2)


def submit(env, docs, batch, max_message, stdin=False):
    e = dict(env, MOAT_MAX_MESSAGE=str(max_message))
    probe = PingProbe(env)
    probe.start()
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # stdin: through a pipe (cat), which the CLI cannot read twice
        feed = subprocess.Popen(["cat", str(docs)], stdout=subprocess.PIPE) if stdin else None
        p = subprocess.Popen([str(MOAT), "--json", "submit", "--infer", "minilm", "--input",
                              "-" if stdin else str(docs), "--batch", str(batch), "--hold"], env=e,
                             stdout=out, stderr=err, stdin=feed.stdout if stdin else subprocess.DEVNULL)
        if feed:
            feed.stdout.close()
        _, status, usage = os.wait4(p.pid, 0)  # this process's own peak RSS
        p.returncode = os.waitstatus_to_exitcode(status)
        if feed:
            feed.wait()
        wall = time.monotonic() - t0
        probe.stop = True
        probe.join()
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            sys.exit(f"bench-intake: submit: {err.read().decode().strip()}")
        jid = json.loads(out.read())["id"]
    rss_kb = usage.ru_maxrss
    moat(env, "cancel", jid)
    return wall, rss_kb, probe.worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--model", default=str(ROOT / "build" / "model"))
    a = ap.parse_args()
    if not (Path(a.model) / "model.safetensors").exists():
        sys.exit(f"bench-intake: {a.model} missing: run scripts/fetch-model.sh {a.model}")
    tmp = Path(tempfile.mkdtemp(prefix="moat-bench-intake-"))
    env = dict(os.environ, MOAT_DIR=str(tmp))
    env.pop("MOAT_CONTROLLER", None)
    corpus = tmp / "fortunes.jsonl"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fortunes-corpus.py"), str(corpus)], check=True,
                   capture_output=True)
    words = [w for l in corpus.read_text().splitlines() for w in json.loads(l)["text"].split()]
    rng = random.Random(1)
    docs = tmp / "docs.txt"
    with open(docs, "w") as f:
        for _ in range(a.docs):
            f.write(" ".join(rng.choice(words) for _ in range(14)) + "\n")
    size = docs.stat().st_size
    jsonl, jsonl_ids = tmp / "docs.jsonl", tmp / "docs-ids.jsonl"
    with open(docs) as f, open(jsonl, "w") as plain, open(jsonl_ids, "w") as with_ids:
        for i, line in enumerate(f):
            text = line.rstrip("\n")
            plain.write(json.dumps({"text": text}) + "\n")
            with_ids.write(json.dumps({"text": text, "id": f"doc-{i:08d}"}) + "\n")
    whole = 2 * size + (64 << 20)  # one message holds the documents, line numbers and all
    (tmp / "controller.extra.conf").write_text(f'log_level = "warn";\nmax_message = "{whole >> 20} MiB";\n')
    (tmp / "worker.extra.conf").write_text('log_level = "warn";\n')
    model = signed_model(env, tmp, a.model)
    cases = (("parts", docs, 8 << 20, False), ("one_message", docs, whole, False),
             ("stdin", docs, 8 << 20, True), ("jsonl", jsonl, 8 << 20, False),
             ("jsonl_ids", jsonl_ids, 8 << 20, False))
    got = {c[0]: [] for c in cases}
    try:
        moat(env, "local", "up", "--workers", 1)
        moat(env, "model", "import", model, "--name", "minilm")
        warm = tmp / "warm.txt"  # the first infer job extracts the TP shards: not timed
        warm.write_text("warm up\n")
        moat(env, "cancel", json.loads(moat(env, "--json", "submit", "--infer", "minilm", "--input", warm,
                                            "--hold"))["id"])
        for r in range(a.rounds):
            for case, path, limit, stdin in cases:
                wall, rss_kb, worst = submit(env, path, a.batch, limit, stdin)
                row = {"bench": "intake", "case": case, "round": r + 1, "docs": a.docs,
                       "bytes": path.stat().st_size,
                       "batch": a.batch, "wall_s": round(wall, 3), "docs_per_s": round(a.docs / wall),
                       "mb_per_s": round(size / wall / 1e6, 1), "cli_peak_rss_mb": round(rss_kb / 1024, 1),
                       "max_ping_s": round(worst, 3)}
                got[case].append(row)
                print(json.dumps(row), flush=True)
    finally:
        subprocess.run([str(MOAT), "local", "down"], env=env, capture_output=True)
    med = {c: {k: statistics.median(x[k] for x in rows) for k in ("wall_s", "max_ping_s", "cli_peak_rss_mb")}
           for c, rows in got.items()}
    ratio = lambda a, b, k: round(med[a][k] / med[b][k], 3)
    print(json.dumps({"bench": "intake", "case": "ratios",
                      "parts_vs_one_message_wall": ratio("parts", "one_message", "wall_s"),
                      "parts_max_ping_s": med["parts"]["max_ping_s"],
                      "one_message_max_ping_s": med["one_message"]["max_ping_s"],
                      "stdin_vs_file_wall": ratio("stdin", "parts", "wall_s"),
                      "stdin_vs_file_rss": ratio("stdin", "parts", "cli_peak_rss_mb"),
                      "ids_vs_no_ids_wall": ratio("jsonl_ids", "jsonl", "wall_s"),
                      "ids_vs_no_ids_rss": ratio("jsonl_ids", "jsonl", "cli_peak_rss_mb")}), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
