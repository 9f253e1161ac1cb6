"""Infer jobs on a real local cluster: model intake, TP groups, checkpoints, failures.

Needs build/model (scripts/fetch-model.sh build/model, which scripts/test.sh runs)."""
import math
import os
import shutil
import signal
import struct
import time
from pathlib import Path

import pytest

from conftest import ROOT, wait_for

MODEL = Path(os.environ.get("MOAT_MODEL_DIR", ROOT / "build" / "model"))
SENTENCES = ROOT / "tests" / "data" / "emb" / "sentences.txt"
GOLDEN = ROOT / "tests" / "data" / "emb" / "golden.f32"
DIM = 384


@pytest.fixture
def model_dir():
    assert (MODEL / "model.safetensors").exists(), \
        f"model directory {MODEL} is missing: run scripts/fetch-model.sh {MODEL}"
    return MODEL


def load_npy(path):
    b = Path(path).read_bytes()
    assert b[:6] == b"\x93NUMPY" and b[6] == 1, "not a .npy v1 file"
    hl = struct.unpack("<H", b[8:10])[0]
    header = b[10:10 + hl].decode()
    assert (10 + hl) % 64 == 0 and header.endswith("\n")
    assert "'descr': '<f4'" in header and "'fortran_order': False" in header
    shape = tuple(int(x) for x in header.split("'shape': (")[1].split(")")[0].split(",") if x.strip())
    data = b[10 + hl:]
    assert len(data) == 4 * shape[0] * shape[1]
    flat = struct.unpack(f"<{shape[0] * shape[1]}f", data)
    return [flat[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]


def golden_rows(n):
    b = GOLDEN.read_bytes()[:n * DIM * 4]
    flat = struct.unpack(f"<{n * DIM}f", b)
    return [flat[i * DIM:(i + 1) * DIM] for i in range(n)]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def export(cluster, job, tmp_path, name):
    out = tmp_path / name
    cluster.moat("result", job, "--format", "npy", "--out", out)
    return load_npy(out)


def imported(make_cluster, model_dir, workers=2):
    c = make_cluster(workers=workers)
    c.moat("model", "import", model_dir, "--name", "minilm", timeout=120)
    return c


def test_tp2_and_tp1_embed_like_the_reference(make_cluster, model_dir, tmp_path):
    c = imported(make_cluster, model_dir)
    docs = tmp_path / "docs.txt"
    n = 40
    docs.write_text("".join(SENTENCES.read_text().splitlines(keepends=True)[:n]))
    j2 = c.j("submit", "--infer", "minilm", "--input", docs, "--tp", "2", "--batch", "16")["id"]
    j1 = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "7")["id"]
    c.wait(j2, j1, timeout=240)
    show = c.show(j2)
    assert show["state"] == "COMPLETED" and show["ntasks"] == 3, show
    # a TP=2 batch ran on both nodes at once: each worker holds one rank
    meta = c.j("result", j2)
    assert (meta["count"], meta["dim"], meta["dtype"]) == (n, DIM, "f32"), meta
    e2, e1, gold = export(c, j2, tmp_path, "tp2.npy"), export(c, j1, tmp_path, "tp1.npy"), golden_rows(n)
    for i in range(n):
        assert max(abs(x - y) for x, y in zip(e2[i], e1[i])) <= 1e-5, f"row {i}: TP=2 differs from TP=1"
        assert cosine(e1[i], gold[i]) >= 0.99999, f"row {i}: cosine to sentence-transformers"
        assert max(abs(x - y) for x, y in zip(e1[i], gold[i])) <= 1e-4, f"row {i}: max abs diff"
    # JSON Lines keeps ids and order
    lines = c.moat("result", j1, "--format", "jsonl").out.splitlines()
    assert len(lines) == n and '"index": 0' in lines[0].replace('":0', '": 0')


def test_bad_input_lines_are_named_and_policy_applies(make_cluster, model_dir, tmp_path):
    c = imported(make_cluster, model_dir, workers=1)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"first document\nsecond document\nbroken \xff\xfe bytes\nfourth\n")
    r = c.moat("submit", "--infer", "minilm", "--input", bad, check=None)
    assert r.rc == 2 and f"{bad}:3: invalid UTF-8" in r.err, r
    assert c.j("queue", "--all")["jobs"] == []
    jid = c.j("submit", "--infer", "minilm", "--input", bad, "--on-bad-line", "skip")["id"]
    assert c.show(jid)["ndocs"] == 3
    jl = tmp_path / "docs.jsonl"
    jl.write_text('{"id": "a", "text": "one"}\n{"id": 7}\n{"text": "three"}\n')
    r = c.moat("submit", "--infer", "minilm", "--input", jl, check=None)
    assert r.rc == 2 and f'{jl}:2: no string field "text"' in r.err, r
    r = c.moat("submit", "--infer", "nosuchmodel", "--input", jl, "--on-bad-line", "skip", check=None)
    assert r.rc == 2 and "not imported" in r.err, r
    r = c.moat("submit", "--infer", "minilm", "--input", jl, "--tp", "5", "--on-bad-line", "skip", check=None)
    assert r.rc == 2 and "tp" in r.err.lower(), r


def test_import_refuses_a_damaged_model(make_cluster, model_dir, tmp_path):
    c = make_cluster(workers=1)
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    st = broken / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])  # truncated: sizes no longer add up
    r = c.moat("model", "import", broken, "--name", "broken", check=None)
    assert r.rc == 2 and "model.safetensors" in r.err, r
    assert c.j("model", "list")["models"] == []


def test_killed_worker_reruns_only_unfinished_batches(make_cluster, model_dir, tmp_path):
    c = imported(make_cluster, model_dir)
    lines = [l for l in SENTENCES.read_text().splitlines() if l.strip()][:120]
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(lines) + "\n")
    ref = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "120")["id"]
    c.wait(ref, timeout=240)
    jid = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "6")["id"]
    done_before = wait_for(lambda: (lambda s: [t for t in s["tasks"] if t["state"] == "COMPLETED"]
                                    if sum(t["state"] == "COMPLETED" for t in s["tasks"]) >= 4 else None)(c.show(jid)),
                           180, what="a few batches to finish")
    os.kill(c.pid("worker-1"), signal.SIGKILL)
    c.wait(jid, timeout=300)
    show = c.show(jid)
    assert show["state"] == "COMPLETED", show
    by_index = {t["index"]: t for t in show["tasks"]}
    for t in done_before:  # a checkpointed batch is never run again
        assert by_index[t["index"]]["attempts"] == 1, by_index[t["index"]]
    got, want = export(c, jid, tmp_path, "got.npy"), export(c, ref, tmp_path, "ref.npy")
    assert len(got) == len(want) == 120
    for i in range(120):
        assert max(abs(x - y) for x, y in zip(got[i], want[i])) <= 1e-5, f"row {i}"


def test_result_survives_a_controller_restart(make_cluster, model_dir, tmp_path):
    c = imported(make_cluster, model_dir, workers=1)
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha beta\ngamma delta\nthe quick brown fox\n")
    jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
    c.wait(jid, timeout=120)
    before = export(c, jid, tmp_path, "before.npy")
    os.kill(c.pid("controller"), signal.SIGKILL)
    time.sleep(0.2)
    c.up()
    after = export(c, jid, tmp_path, "after.npy")
    assert before == after and len(after) == 3
    assert c.j("model", "verify", "minilm")["ok"] is True
