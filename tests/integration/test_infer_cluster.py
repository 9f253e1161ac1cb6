"""Infer jobs on a real local cluster: model intake, TP groups, checkpoints, failures,
and signed artifacts (manifest.json + manifest.sig, trust roots, no rollback, hashes
checked at import and at every load).

Needs build/model (scripts/fetch-model.sh build/model, which scripts/test.sh runs)."""
import json
import math
import os
import shutil
import signal
import struct
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_moat, wait_for
from moatproto import Client

MODEL = Path(os.environ.get("MOAT_MODEL_DIR", ROOT / "build" / "model"))
SENTENCES = ROOT / "tests" / "data" / "emb" / "sentences.txt"
GOLDEN = ROOT / "tests" / "data" / "emb" / "golden.f32"
DIM = 384


@pytest.fixture(scope="session")
def signing(tmp_path_factory):
    """A signing key pair (moat model keygen): {"key": secret key file, "pub": public}."""
    d = tmp_path_factory.mktemp("signing")
    run_moat(["model", "keygen", "--out", d], check=0)
    return {"key": d / "artifact.key", "pub": d / "artifact.pub"}


def sign(d, signing, version=1, name="minilm", key=None):
    run_moat(["model", "sign", d, "--key", key or signing["key"], "--name", name, "--version", version],
             check=0)


def signed_copy(src, dst, signing, version=1, link=True):
    """dst: src's model files (symbolic links, or copies that a test may damage), signed."""
    dst.mkdir()
    for f in ("config.json", "vocab.txt", "model.safetensors"):
        if link:
            (dst / f).symlink_to((src / f).resolve())
        else:
            shutil.copyfile(src / f, dst / f)
    sign(dst, signing, version)
    return dst


@pytest.fixture(scope="session")
def model_dir(signing, tmp_path_factory):
    """The model, signed for the cluster (version 1) by the test's key."""
    assert (MODEL / "model.safetensors").exists(), \
        f"model directory {MODEL} is missing: run scripts/fetch-model.sh {MODEL}"
    return signed_copy(MODEL, tmp_path_factory.mktemp("signed") / "minilm", signing)


def trusting(make_cluster, signing, workers=2, **kw):
    """A cluster whose controller trusts the test's key (moat local up reads DIR/trust/*.pub)."""
    c = make_cluster(workers=workers, up=False, **kw)
    (c.dir / "trust").mkdir(exist_ok=True)
    shutil.copyfile(signing["pub"], c.dir / "trust" / "test.pub")
    c.up(workers)
    return c


def flip(path, at=None):
    b = bytearray(Path(path).read_bytes())
    i = len(b) // 2 if at is None else at
    b[i] ^= 0x01
    Path(path).write_bytes(bytes(b))


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


def imported(make_cluster, model_dir, workers=2, signing=None, **kw):
    c = trusting(make_cluster, signing, workers=workers, **kw)
    c.moat("model", "import", model_dir, "--name", "minilm", timeout=120)
    return c



def test_tp2_and_tp1_embed_like_the_reference(make_cluster, model_dir, signing, tmp_path):
    c = imported(make_cluster, model_dir, signing=signing)
    docs = tmp_path / "docs.txt"
    n = 40
    docs.write_text("".join(SENTENCES.read_text().splitlines(keepends=True)[:n]))
    j2 = c.j("submit", "--infer", "minilm", "--input", docs, "--tp", "2", "--batch", "16")["id"]
    j1 = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "7")["id"]
    c.wait(j2, j1, timeout=240)
    show = c.show(j2)
    assert show["state"] == "COMPLETED" and show["ntasks"] == 3, show
    # each batch's usage: its ranks' CPU summed, their largest peak (a rank
    # holds its shard of the weights: tens of MiB)
    for s in (show, c.show(j1)):
        assert all(t["cpu_time"] > 0 and t["max_rss"] >= 16 << 20 for t in s["tasks"]), s
        assert abs(s["cpu_time"] - sum(t["cpu_time"] for t in s["tasks"])) < 1e-3, s
    # a TP=2 batch ran on both nodes at once: each worker holds one rank, and
    # the ended batch still names both (node: rank 0's)
    assert all(sorted(t["ranks"]) == ["local-1", "local-2"] and t["node"] == t["ranks"][0]
               for t in show["tasks"]), show["tasks"]
    os.kill(c.pid("controller"), signal.SIGKILL)  # kept in the task records
    time.sleep(0.2)
    c.up()
    assert [t["ranks"] for t in c.show(j2)["tasks"]] == [t["ranks"] for t in show["tasks"]]
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


def test_tp_groups_side_by_side_on_one_machine_get_ports_of_their_own(make_cluster, model_dir,
                                                                       signing, tmp_path):
    # Workers of one machine (as local up starts them) share 127.0.0.1 and a
    # port range: two groups whose rank 0 sit on different workers must not
    # both be told to listen on the same port (each batch's first attempt
    # failed with "Address already in use" and ran again).
    c = imported(make_cluster, model_dir, workers=4, signing=signing)
    docs = tmp_path / "docs.txt"
    docs.write_text("".join(SENTENCES.read_text().splitlines(keepends=True)[:24]))
    jid = c.j("submit", "--infer", "minilm", "--input", docs, "--tp", "2", "--batch", "3")["id"]
    c.wait(jid, timeout=240)
    tasks = c.show(jid)["tasks"]
    assert len(tasks) == 8 and all(t["attempts"] == 1 for t in tasks), tasks
    assert "Address already in use" not in (c.dir / "controller.log").read_text()


def test_bad_input_lines_are_named_and_policy_applies(make_cluster, model_dir, signing, tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"first document\nsecond document\nbroken \xff\xfe bytes\nfourth\n")
    r = c.moat("submit", "--infer", "minilm", "--input", bad, check=None)
    assert r.rc == 2 and f"{bad}:3: invalid UTF-8" in r.err, r
    assert c.j("queue", "--all")["jobs"] == []
    bad.write_bytes(b"first document\n\nsecond document\nbroken \xff\xfe bytes\nfourth\n")
    sub = c.j("submit", "--infer", "minilm", "--input", bad, "--on-bad-line", "skip")
    assert (sub["documents"], sub["skipped_empty"], sub["skipped_bad"]) == (3, 1, 1), sub
    jid = sub["id"]
    assert c.show(jid)["ndocs"] == 3
    # each document's line number in the input travels to the controller and back
    c.wait(jid, timeout=240)
    rows = [json.loads(x) for x in c.moat("result", jid, "--format", "jsonl").out.splitlines()]
    assert [(r["line"], r["text"]) for r in rows] == \
        [(1, "first document"), (3, "second document"), (5, "fourth")], rows
    jl = tmp_path / "docs.jsonl"
    jl.write_text('{"id": "a", "text": "one"}\n{"id": 7}\n{"text": "three"}\n')
    r = c.moat("submit", "--infer", "minilm", "--input", jl, check=None)
    assert r.rc == 2 and f'{jl}:2: no string field "text"' in r.err, r
    r = c.moat("submit", "--infer", "nosuchmodel", "--input", jl, "--on-bad-line", "skip", check=None)
    assert r.rc == 2 and "not imported" in r.err, r
    # a tp the model cannot take says so, before whether the cluster could run it
    r = c.moat("submit", "--infer", "minilm", "--input", jl, "--tp", "5", "--on-bad-line", "skip", check=None)
    assert r.rc == 2 and "model minilm: tp 5: must divide num_attention_heads 12" in r.err, r
    r = c.moat("submit", "--infer", "minilm", "--input", jl, "--tp", "4", "--on-bad-line", "skip", check=None)
    assert r.rc == 2 and "could never start" in r.err, r
    # the controller checks what the CLI checks: ids strings or integers
    cl = Client(c.endpoint, c.dir)
    spec = {"kind": "infer", "model": "minilm", "tp": 1, "batch": 8, "max_len": 128}
    for ids, why in [(b"[1.5]", "infer: id 1: expected a string"),
                     (b"[[1]]", "infer: id 1: expected a string"),
                     (b"[99999999999999999999999]", "infer: ids: not JSON")]:
        rid = cl.send("SUBMIT", {"spec": spec}, blobs=[b'["one"]', ids])
        r = cl.recv(10)
        assert r and r[1] == rid and r[0] == "ERROR" and why in r[2]["msg"], (ids, r)
    # and the line numbers: integers >= 1, one per document (ids null: none)
    for blobs, why in [([b'["one"]', b"null", b"[0]"], "infer: line 1: expected a line number"),
                       ([b'["one"]', b"null", b'["1"]'], "infer: line 1: expected a line number"),
                       ([b'["one"]', b"null", b"[1, 2]"], "infer: lines: expected a JSON array as long"),
                       ([b'["one"]', b"null", b"{}"], "infer: lines: expected a JSON array as long"),
                       ([b'["one"]', b"null", b"[1]", b"[]"], "infer: the documents must come as one")]:
        rid = cl.send("SUBMIT", {"spec": spec}, blobs=blobs)
        r = cl.recv(10)
        assert r and r[1] == rid and r[0] == "ERROR" and why in r[2]["msg"], (blobs, r)
    rid = cl.send("SUBMIT", {"spec": spec}, blobs=[b'["one", "two"]', b'["a", 7]'])
    r = cl.recv(10)
    assert r and r[0] == "REPLY", r
    cl.close()
    c.moat("cancel", r[2]["id"])


def test_import_refuses_a_damaged_model(make_cluster, model_dir, signing, tmp_path):
    c = trusting(make_cluster, signing, workers=1)
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    st = broken / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])  # truncated: sizes no longer add up
    r = c.moat("model", "import", broken, check=None)
    assert r.rc == 2 and "model.safetensors" in r.err, r
    assert c.j("model", "list")["models"] == []


def test_one_flipped_byte_in_any_file_or_the_manifest_is_refused_naming_it(make_cluster, model_dir,
                                                                           signing, tmp_path):
    c = trusting(make_cluster, signing, workers=1)
    for f in ("config.json", "vocab.txt", "model.safetensors", "manifest.json"):
        d = signed_copy(MODEL, tmp_path / f"flip-{f}", signing, link=False)
        flip(d / f, at=None if f != "config.json" else 20)
        r = c.moat("model", "import", d, check=None)
        assert r.rc != 0 and f in r.err, (f, r)
    # a bad signature file, and none at all
    d = signed_copy(MODEL, tmp_path / "flip-sig", signing)
    sig = (d / "manifest.sig").read_text()
    (d / "manifest.sig").write_text(("1" if sig[0] != "1" else "2") + sig[1:])
    r = c.moat("model", "import", d, check=None)
    assert r.rc == 1 and "manifest.json: not signed by a trust root" in r.err, r
    (d / "manifest.sig").unlink()
    r = c.moat("model", "import", d, check=None)
    assert r.rc == 2 and "manifest.sig" in r.err, r
    (d / "manifest.json").unlink()
    r = c.moat("model", "import", d, "--name", "minilm", check=None)
    assert r.rc == 1 and "unsigned artifacts are refused" in r.err, r
    assert c.j("model", "list")["models"] == []


def test_signing_mistakes_are_named(signing, tmp_path):
    d = signed_copy(MODEL, tmp_path / "m", signing)
    r = run_moat(["model", "sign", d, "--key", signing["pub"], "--name", "minilm", "--version", "2"])
    assert r.rc == 2 and "a public key; signing takes the secret key" in r.err, r
    r = run_moat(["model", "sign", d, "--key", signing["key"], "--name", "bad name", "--version", "2"])
    assert r.rc == 2 and "manifest: name:" in r.err and "manifest: manifest" not in r.err, r


def test_untrusted_signer_and_rollback_are_refused(make_cluster, model_dir, signing, tmp_path):
    c = trusting(make_cluster, signing, workers=1)
    other = tmp_path / "other-key"
    run_moat(["model", "keygen", "--out", other], check=0)
    d = signed_copy(MODEL, tmp_path / "evil", signing)
    sign(d, signing, version=9, key=other / "artifact.key")
    r = c.moat("model", "import", d, check=None)
    assert r.rc == 1 and "not signed by a trust root" in r.err, r
    assert c.j("model", "list")["models"] == []
    # version 2 goes in; then 1 (an older signed release) and 2 again with other bytes do not
    v2 = signed_copy(MODEL, tmp_path / "v2", signing, version=2)
    c.moat("model", "import", v2, timeout=120)
    r = c.moat("model", "import", v2, timeout=120)  # the same release again: a no-op, said so
    assert "version 2: imported already" in r.out, r
    r = c.moat("model", "import", model_dir, check=None, timeout=120)
    assert r.rc == 1 and "rollback" in r.err and "version 1" in r.err, r
    [m] = c.j("model", "list")["models"]
    assert (m["version"], m["signed"]) == (2, True), m
    # each refusal is in the audit log, with its reason
    refused = c.j("audit")["records"]
    reasons = [r["details"]["reason"] for r in refused if r["action"] == "model.refuse"]
    assert len(reasons) == 2 and "not signed by a trust root" in reasons[0] and "rollback" in reasons[1], refused
    # an unsigned import is let in only by the audited override...
    u = trusting(make_cluster, signing, workers=1, controller_extra="allow_unsigned_artifacts = true;\n",
                 name="unsigned")
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in ("config.json", "vocab.txt", "model.safetensors"):
        (plain / f).symlink_to((MODEL / f).resolve())
    u.moat("model", "import", plain, "--name", "minilm", timeout=120)
    assert u.j("model", "list")["models"][0]["signed"] is False
    assert "UNSIGNED ARTIFACT ACCEPTED" in (u.dir / "controller.log").read_text()
    # ...never over a signed model (a signed release replaces an unsigned one)...
    u.moat("model", "import", v2, timeout=120)
    r = u.moat("model", "import", plain, "--name", "minilm", check=None, timeout=120)
    assert r.rc == 1 and "version 2 is signed; an unsigned import may not replace it" in r.err, r
    assert "this command used the key" not in r.err  # refused for the model, not for the key
    # ...and is out of use once the override is off
    u.moat("model", "import", plain, "--name", "plainlm", timeout=120)
    u.down()
    extra = u.dir / "controller.extra.conf"
    extra.write_text(extra.read_text().replace("allow_unsigned_artifacts = true;", ""))
    u.up(1)
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha\n")
    r = u.moat("submit", "--infer", "plainlm", "--input", docs, check=None)
    assert r.rc != 0 and "plainlm version 1 is unsigned and allow_unsigned_artifacts is off" in r.err, r
    u.wait(u.j("submit", "--infer", "minilm", "--input", docs)["id"], timeout=120)  # the signed one runs


def test_worker_checks_shard_and_vocab_at_every_load(make_cluster, model_dir, signing, tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha beta\ngamma delta\n")
    c.wait(c.j("submit", "--infer", "minilm", "--input", docs)["id"], timeout=120)
    wlog = c.dir / "worker-1.log"
    fetched = wlog.read_text().count("fetched and verified")
    assert fetched == 2, fetched  # the shard and the vocabulary
    c.wait(c.j("submit", "--infer", "minilm", "--input", docs)["id"], timeout=120)
    assert wlog.read_text().count("fetched and verified") == 2  # kept by hash: not sent again
    objects = sorted((c.dir / "worker-1" / "objects").iterdir(), key=lambda p: p.stat().st_size)
    vocab, shard = objects[0], objects[-1]
    assert vocab.stat().st_size == (MODEL / "vocab.txt").stat().st_size
    log = c.dir / "controller.log"  # where a failed rank's stderr is logged
    for damaged in (shard, vocab):
        flip(damaged)
        jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
        c.wait(jid, timeout=120, check=1)
        show = c.show(jid)
        assert show["state"] == "FAILED"
        # the rank's own last words reach the user, not just "exit code -1"
        assert ": SHA-256 " in show["reason"] and ", expected " in show["reason"], show["reason"]
        text = log.read_text()
        assert str(damaged) in text and "SHA-256" in text, text[-3000:]
        flip(damaged)  # repaired
    c.wait(c.j("submit", "--infer", "minilm", "--input", docs)["id"], timeout=120)
    # the object cache removed under the worker (a clean-up): made again, fetched again
    shutil.rmtree(c.dir / "worker-1" / "objects")
    jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
    c.wait(jid, timeout=120)
    assert all(t["attempts"] == 1 for t in c.show(jid)["tasks"]), c.show(jid)


def test_a_shard_damaged_on_the_controller_is_made_again_not_sent(make_cluster, model_dir, signing,
                                                                  tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha beta\ngamma delta\n")
    c.wait(c.j("submit", "--infer", "minilm", "--input", docs)["id"], timeout=120)
    v = c.j("model", "verify", "minilm")
    assert v["ok"] and [(s["tp"], s["rank"], s["ok"]) for s in v["shards"]] == [(1, 0, True)], v
    sha = v["shards"][0]["sha256"]
    stored = c.dir / "controller" / "artifacts" / "objects" / sha
    cached = c.dir / "worker-1" / "objects" / sha
    assert stored.exists() and cached.exists()
    # to be served damaged: found before it is sent, extracted again, sent
    flip(stored)
    cached.unlink()  # so that the worker fetches it again
    jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
    c.wait(jid, timeout=120)
    assert c.show(jid)["tasks"][0]["attempts"] == 1, c.show(jid)
    log = (c.dir / "controller.log").read_text()
    assert f"stored object {sha[:16]}... is damaged" in log and str(stored) in log, log[-2000:]
    assert "extracted again" in log
    assert c.j("model", "verify", "minilm")["ok"]
    # found by model verify: exit 1, removed; then made again by the next job
    flip(stored)
    r = c.moat("model", "verify", "minilm", check=1)
    assert "shard 0 of tp 1" in r.out and "DAMAGED: removed" in r.out, r
    assert not stored.exists()
    r = c.moat("model", "verify", "minilm")  # a shard not on disk is not damage
    assert "not on disk" in r.out and "intact" in r.out, r
    cached.unlink()
    jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
    c.wait(jid, timeout=120)
    assert c.show(jid)["tasks"][0]["attempts"] == 1 and stored.exists(), c.show(jid)
    # an object that cannot be made again (the vocabulary, an imported file):
    # refused by name, kept for model verify to report
    vsha = [f["sha256"] for f in v["files"] if f["file"] == "vocab.txt"][0]
    vstored = c.dir / "controller" / "artifacts" / "objects" / vsha
    flip(vstored)
    (c.dir / "worker-1" / "objects" / vsha).unlink()
    jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
    c.wait(jid, timeout=120, check=1)
    show = c.show(jid)
    assert show["state"] == "FAILED" and "is damaged" in show["reason"], show
    assert vstored.exists()
    r = c.moat("model", "verify", "minilm", check=1)
    assert "vocab.txt" in r.out and "CHANGED OR MISSING" in r.out, r
    flip(vstored)


def test_a_batch_past_its_time_limit_ends_timeout_and_is_not_run_again(make_cluster, model_dir,
                                                                         signing, tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    long_doc = " ".join(SENTENCES.read_text().splitlines()[:12])  # ~256 tokens each
    docs = tmp_path / "docs.txt"
    docs.write_text((long_doc + "\n") * 400)
    jid = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "400", "--time-limit", "1s")["id"]
    c.wait(jid, timeout=120, check=1)
    show = c.show(jid)
    assert show["state"] == "TIMEOUT", show
    assert show["tasks"][0]["state"] == "TIMEOUT" and show["tasks"][0]["attempts"] == 1, show
    assert "time limit (1s) was reached" in show["reason"], show["reason"]


def test_embeddings_of_the_wrong_width_are_refused(make_cluster, model_dir, signing, tmp_path):
    # A worker (buggy, or a hostile worker key) answering infer batches with
    # [n, 2] embeddings: the controller checks count x dim, not a multiple of
    # count, so nothing of the wrong shape is stored or exported.
    import threading
    import uuid

    import moatproto as mp
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    mp.write_pair(str(c.dir), "evil")
    c.moat("admin", "key", "add", c.dir / "evil.pub", "--role", "worker", "--name", "evil")
    real = c.pid("worker-1")
    os.kill(real, signal.SIGSTOP)  # found DOWN: the batches go to the evil node
    try:
        wait_for(lambda: c.nodes()["local-1"]["state"] == "DOWN", 20, what="local-1 DOWN")
        ev = Client(c.endpoint, key=c.dir / "evil.key", server=c.dir / "controller.pub")
        inst = uuid.uuid4().hex
        reg = {"name": "evil", "host": "h", "pid": 4242, "cpus": 1, "gpus": 0, "mem_bytes": 8 << 30,
               "backend": "cpu", "instance": inst, "tasks": [], "sandbox": "off",
               "comm_host": "127.0.0.1", "comm_port_min": 41000, "comm_port_max": 41100}
        ev.send("REGISTER", reg)
        stop = threading.Event()

        def serve():
            last = 0
            while not stop.is_set():
                if time.time() - last > 0.1:
                    ev.send("HEARTBEAT", {"name": "evil", "instance": inst, "running": 0})
                    last = time.time()
                r = ev.recv(0.05)
                if r is None:
                    continue
                ty, rid, body, blobs = r
                if ty == "DISPATCH":
                    ev.sock.send_multipart([mp.header("REPLY", rid), b"{}"])
                    n = len(json.loads(blobs[0])["texts"])
                    ev.send("TASK_END", {"job": body["job"], "task": body["task"],
                                         "attempt": body["attempt"], "state": "COMPLETED",
                                         "exit_code": 0, "signal": 0, "truncated": False, "rank": 0,
                                         "start_time": time.time() - 0.1, "end_time": time.time()},
                            [b"", b"", struct.pack(f"<{2 * n}f", *([1.0] * 2 * n))])
        t = threading.Thread(target=serve)
        t.start()
        try:
            docs = tmp_path / "docs.txt"
            docs.write_text("alpha\nbeta\ngamma\n")
            jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
            job = c.wait_state(jid, ("COMPLETED", "FAILED"), timeout=60)
        finally:
            stop.set()
            t.join()
            ev.close()
        assert job["state"] == "FAILED" and "no embeddings of the right size" in job["reason"], job
        # nothing of the wrong shape was stored: even --partial has no batch to export
        r = c.moat("result", jid, "--format", "npy", "--partial", "--out", tmp_path / "x.npy", check=1)
        assert "no batch done yet" in r.err and not (tmp_path / "x.npy").exists(), r
    finally:
        os.kill(real, signal.SIGCONT)


def test_killed_worker_reruns_only_unfinished_batches(make_cluster, model_dir, signing, tmp_path):
    c = imported(make_cluster, model_dir, signing=signing)
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
    # one batch alone: --task picks it, in npy and in jsonl with its global row numbers
    c.moat("result", jid, "--task", "3", "--format", "npy", "--out", tmp_path / "b3.npy")
    assert load_npy(tmp_path / "b3.npy") == got[18:24]
    rows = [json.loads(l) for l in
            c.moat("result", jid, "--task", "3", "--format", "jsonl").out.splitlines()]
    assert [r["index"] for r in rows] == list(range(18, 24)) and rows[0]["text"] == lines[18]
    assert "batch 3: embeddings f32 [6, 384]" in c.moat("result", jid, "--task", "3").out


def test_a_rank_killed_by_a_signal_is_said_so_and_its_batch_reruns(make_cluster, model_dir,
                                                                   signing, tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(SENTENCES.read_text().splitlines()[:60]) + "\n")
    jid = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "30")["id"]
    worker = c.pid("worker-1")

    def a_rank():
        for p in Path("/proc").iterdir():
            try:
                if p.name.isdigit() and b"--run-infer" in (p / "cmdline").read_bytes() and \
                        int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == worker:
                    return int(p.name)
            except (OSError, ValueError, IndexError):
                pass
    os.kill(wait_for(a_rank, 120, interval=0.02, what="a rank process"), signal.SIGKILL)
    c.wait(jid, timeout=240)
    show = c.show(jid)
    assert show["state"] == "COMPLETED" and max(t["attempts"] for t in show["tasks"]) == 2, show
    log = (c.dir / "controller.log").read_text()
    assert "rank 0 on local-1 killed by signal 9" in log, log[-2000:]


def test_partial_exports_what_a_cancelled_job_finished(make_cluster, model_dir, signing, tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(SENTENCES.read_text().splitlines()[:119]) + "\n")  # the last batch short
    jid = c.j("submit", "--infer", "minilm", "--input", docs, "--batch", "6")["id"]
    wait_for(lambda: sum(t["state"] == "COMPLETED" for t in c.show(jid)["tasks"]) >= 2, 180,
             what="two batches done")
    c.moat("cancel", jid)
    show = c.wait_state(jid, "CANCELLED")
    done = sorted(t["index"] for t in show["tasks"] if t["state"] == "COMPLETED")
    assert 2 <= len(done) < 20, show
    r = c.moat("result", jid, "--format", "npy", "--out", tmp_path / "x.npy", check=1)
    assert "--partial exports those" in r.err, r
    r = c.moat("result", jid, "--format", "npy", "--partial", "--out", tmp_path / "p.npy",
               "--ids", tmp_path / "p.ids")
    assert f"{20 - len(done)} of 20 batches not done" in r.err and "rows are NaN" in r.err, r
    rows = load_npy(tmp_path / "p.npy")
    assert len(rows) == 119
    ids = [json.loads(x) for x in (tmp_path / "p.ids").read_text().splitlines()]
    assert ids == [{"index": i, "line": i + 1} if i // 6 in done else {"index": i, "missing": True}
                   for i in range(119)], ids
    for b in range(20):
        block = rows[6 * b:6 * b + 6]
        if b in done:  # as the batch exports alone
            c.moat("result", jid, "--task", b, "--format", "npy", "--out", tmp_path / "b.npy")
            assert block == load_npy(tmp_path / "b.npy"), b
        else:
            assert all(math.isnan(x) for row in block for x in row), b
    lines = c.moat("result", jid, "--format", "jsonl", "--partial").out.splitlines()
    assert [json.loads(l)["index"] for l in lines] == [i for b in done for i in range(6 * b, min(6 * b + 6, 119))]
    c.moat("result", jid + 100, "--partial", check=2)


def test_result_survives_a_controller_restart(make_cluster, model_dir, signing, tmp_path):
    # inactive_age 0: the finished job leaves the controller's memory at once,
    # so both exports read it back from the store (controller/ctl_purge.h)
    c = imported(make_cluster, model_dir, workers=1, signing=signing,
                 controller_extra='inactive_age = "0 s";\n')
    docs = tmp_path / "docs.txt"
    docs.write_text("alpha beta\ngamma delta\nthe quick brown fox\n")
    jid = c.j("submit", "--infer", "minilm", "--input", docs)["id"]
    c.wait(jid, timeout=120)
    wait_for(lambda: c.j("ping")["resident"] == 0, 10, what="the finished job purged")
    before = export(c, jid, tmp_path, "before.npy")
    os.kill(c.pid("controller"), signal.SIGKILL)
    time.sleep(0.2)
    c.up()
    after = export(c, jid, tmp_path, "after.npy")
    assert before == after and len(after) == 3
    assert c.j("model", "verify", "minilm")["ok"] is True


def test_documents_past_one_message_go_in_parts_and_embed_as_one_job(make_cluster, model_dir, signing,
                                                                      tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    sent = SENTENCES.read_text().splitlines()
    docs = tmp_path / "docs.jsonl"
    rows = [json.dumps({"text": f"{sent[i % len(sent)]} " + "and so on " * 20, "id": f"s{i}"})
            for i in range(400)]
    rows.insert(3, "")
    docs.write_text("\n".join(rows) + "\n")
    args = ("--json", "submit", "--infer", "minilm", "--input", docs, "--batch", "16", "--max-len", "16")
    # the CLI takes the controller's messages to be 128 KiB at most: 400 documents
    # of ~250 bytes go in parts (SUBMIT, then DOCS), as a corpus past max_message would
    parts = c.moat(*args, env={"MOAT_MAX_MESSAGE": str(128 * 1024)}).json["id"]
    whole = c.moat(*args).json["id"]
    c.wait(parts, whole, timeout=240)
    show = c.show(parts)
    assert (show["state"], show["ndocs"], show["docs_received"], show["ntasks"]) == \
        ("COMPLETED", 400, 400, 25), show
    assert f"job {parts}: all 400 documents received" in (c.dir / "controller.log").read_text()
    assert export(c, parts, tmp_path, "p.npy") == export(c, whole, tmp_path, "w.npy")
    got = [json.loads(x) for x in c.moat("result", parts, "--format", "jsonl").out.splitlines()]
    want = [(json.loads(r)["id"], n + 1) for n, r in enumerate(rows) if r]
    assert [(g["id"], g["line"]) for g in got] == want, got[:5]


def test_a_job_whose_documents_stop_coming_runs_what_came_then_is_cancelled(make_cluster, model_dir,
                                                                           signing):
    c = imported(make_cluster, model_dir, workers=1, signing=signing,
                 controller_extra='documents_timeout = "8 s";\nmax_tasks_per_key = 1000;\n')
    cl = Client(c.endpoint, c.dir)
    spec = {"kind": "infer", "model": "minilm", "tp": 1, "batch": 2, "max_len": 16, "ndocs": 7}

    def call(t, body, docs):
        blobs = [json.dumps(docs).encode(), b"null", json.dumps(list(range(1, len(docs) + 1))).encode()]
        return cl.call(t, body, blobs=blobs, timeout=10)

    t, b, _ = call("SUBMIT", {"spec": spec}, ["a", "b", "c"])
    assert t == "ERROR" and "every part but the last must hold whole batches (a multiple of batch 2)" \
        in b["msg"], b
    t, b, _ = call("SUBMIT", {"spec": dict(spec, ndocs=1)}, ["a", "b"])
    assert t == "ERROR" and "ndocs: 1, fewer than the 2 documents sent" in b["msg"], b
    # ndocs is the client's word: bounded before any task is allocated
    t, b, _ = call("SUBMIT", {"spec": dict(spec, ndocs=100000000, batch=1)}, ["a"])
    assert t == "ERROR" and "more than 1000000 batches" in b["msg"], b
    t, b, _ = call("SUBMIT", {"spec": dict(spec, ndocs=20000, batch=2)}, ["a", "b"])
    assert t == "ERROR" and b["code"] == 122 and "max_tasks_per_key" in b["msg"], b

    t, b, _ = call("SUBMIT", {"spec": spec}, ["alpha", "beta"])
    assert t == "REPLY", b
    jid = b["id"]
    t, b, _ = call("DOCS", {"id": jid, "first": 4}, ["gamma", "delta"])
    assert t == "ERROR" and "first: 4, but it has 2 documents so far" in b["msg"], b
    for _ in range(2):  # the same part again (its reply lost): the same answer, stored once
        t, b, _ = call("DOCS", {"id": jid, "first": 2}, ["gamma", "delta"])
        assert t == "REPLY" and b == {"id": jid, "received": 4, "ndocs": 7}, b
    t, b, _ = call("DOCS", {"id": jid, "first": 4}, ["e", "f", "g", "h"])
    assert t == "ERROR" and "4 documents from document 4: the job has 7" in b["msg"], b
    t, b, _ = cl.call("DOCS", {"id": jid, "first": 4}, blobs=[b'["e", 5]'], timeout=10)
    assert t == "ERROR" and "infer: document 6: expected a string" in b["msg"], b  # the job's 6th
    exec_job = c.submit("true")
    t, b, _ = call("DOCS", {"id": exec_job, "first": 0}, ["x"])
    assert t == "ERROR" and "not an infer job" in b["msg"], b
    # the batches that came run; the job then waits for the rest
    show = wait_for(lambda: (lambda s: s if [x["state"] for x in s["tasks"]][:2] == ["COMPLETED"] * 2
                             else None)(c.show(jid)), 120, what="the two batches received done")
    assert show["state"] != "COMPLETED" and show["docs_received"] == 4 and show["ntasks"] == 4, show
    assert show["reason"] == "waiting for documents (4 of 7 received)", show
    # none for documents_timeout: cancelled, what it finished kept
    show = c.wait_state(jid, "CANCELLED", timeout=30)
    assert show["reason"] == "documents stopped coming: 4 of 7 received", show
    got = [json.loads(x) for x in c.moat("result", jid, "--format", "jsonl", "--partial").out.splitlines()]
    assert [g["text"] for g in got] == ["alpha", "beta", "gamma", "delta"], got
    t, b, _ = call("DOCS", {"id": jid, "first": 4}, ["e"])
    assert t == "ERROR" and "CANCELLED (documents stopped coming" in b["msg"], b
    r = c.moat("requeue", jid, check=None)
    assert r.rc != 0 and "only 4 of its 7 documents came" in r.err, r
    cl.close()


def test_parts_go_on_after_a_controller_restart(make_cluster, model_dir, signing, tmp_path):
    c = imported(make_cluster, model_dir, workers=1, signing=signing)
    cl = Client(c.endpoint, c.dir)
    spec = {"kind": "infer", "model": "minilm", "tp": 1, "batch": 2, "max_len": 16, "ndocs": 3}
    t, b, _ = cl.call("SUBMIT", {"spec": spec}, blobs=[b'["one", "two"]', b'["i1", "i2"]', b"[1, 2]"])
    assert t == "REPLY", b
    jid = b["id"]
    cl.close()
    os.kill(c.pid("controller"), signal.SIGKILL)  # the part was acknowledged: it is in LMDB
    time.sleep(0.2)
    c.up()
    assert c.show(jid)["docs_received"] == 2
    cl = Client(c.endpoint, c.dir)
    t, b, _ = cl.call("DOCS", {"id": jid, "first": 2}, blobs=[b'["three"]', b'["i3"]', b"[5]"], timeout=10)
    assert t == "REPLY" and b["received"] == 3, b
    c.wait(jid, timeout=120)
    # the last part again, its reply lost and the job ended meanwhile: the same reply
    t, b, _ = cl.call("DOCS", {"id": jid, "first": 2}, blobs=[b'["three"]', b'["i3"]', b"[5]"], timeout=10)
    assert t == "REPLY" and b["received"] == 3, b
    cl.close()
    got = [json.loads(x) for x in c.moat("result", jid, "--format", "jsonl").out.splitlines()]
    assert [(g["text"], g["id"], g["line"]) for g in got] == [("one", "i1", 1), ("two", "i2", 2),
                                                              ("three", "i3", 5)], got


def test_batches_received_run_on_when_the_documents_stop_coming(make_cluster, model_dir, signing):
    c = imported(make_cluster, model_dir, workers=1, signing=signing,
                 controller_extra='documents_timeout = "3 s";\n')
    cpus = c.nodes()["local-1"]["cpus"]
    busy = c.submit("sleep", "12", opts=("--cpus", cpus))  # the node is full well past the timeout
    c.wait_state(busy, "RUNNING")
    cl = Client(c.endpoint, c.dir)
    spec = {"kind": "infer", "model": "minilm", "tp": 1, "batch": 2, "max_len": 16, "ndocs": 6}
    t, b, _ = cl.call("SUBMIT", {"spec": spec}, blobs=[b'["one", "two"]', b"null", b"[1, 2]"], timeout=10)
    assert t == "REPLY", b
    jid = b["id"]
    cl.close()
    # the timeout passes while batch 0 waits for the node: the batches never
    # received are cancelled, batch 0 stays to run
    show = wait_for(lambda: (lambda s: s if s["tasks"][1]["state"] == "CANCELLED" else None)(c.show(jid)),
                    20, what="the batches never received cancelled")
    assert [x["state"] for x in show["tasks"]] == ["PENDING", "CANCELLED", "CANCELLED"], show
    assert show["state"] == "PENDING" and show["reason"] == "documents stopped coming: 2 of 6 received", show
    os.kill(c.pid("controller"), signal.SIGKILL)  # the job record says so (no task records)
    time.sleep(0.2)
    c.up()
    assert [x["state"] for x in c.show(jid)["tasks"]][1:] == ["CANCELLED", "CANCELLED"]
    show = c.wait_state(jid, "CANCELLED", timeout=60)
    assert [x["state"] for x in show["tasks"]] == ["COMPLETED", "CANCELLED", "CANCELLED"], show
    assert show["reason"] == "documents stopped coming: 2 of 6 received", show
    got = [json.loads(x) for x in c.moat("result", jid, "--format", "jsonl", "--partial").out.splitlines()]
    assert [g["text"] for g in got] == ["one", "two"], got
