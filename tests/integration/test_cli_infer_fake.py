"""The infer commands of the CLI (submit --infer, result of an infer job, search)
against a scripted fake controller (moatproto.FakeController): what they send
(docs/protocol.md), what they write and print. Needs only bin/moat."""
import json
import os
import re
import struct

import pytest

from conftest import run_moat as _run_moat
from moatproto import FAKE_ENV


def run_moat(args, env=None, **kw):
    return _run_moat(args, env=dict(FAKE_ENV, **(env or {})), **kw)


def ctl(f, *args, check=None, input=None, env=None, timeout=60):
    return run_moat(["--controller", f.endpoint] + list(args), check=check, input=input, env=env,
                    timeout=timeout)


def f32(x):
    """x rounded to the nearest f32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


# Job 5: 3 documents in batches of 2, dim 3; the values are f32 whose shortest
# exact decimal needs all 9 digits, and 0.1f (0.100000001, 17 digits: 0.10000000149011612)
ROWS = [[0.1, 1 / 3, -2.5e-8], [1e30, -0.7, 123.456], [2 / 3, 1e-38, -1.0]]
DOCS = [{"texts": ["alpha", "gamma"], "ids": ["a", None], "lines": [1, 3]},
        {"texts": ["delta"], "ids": ["d"], "lines": [6]}]
META = {"id": 5, "kind": "infer", "state": "COMPLETED", "count": 3, "dim": 3, "dtype": "f32",
        "batches": 2, "done": 2, "batch": 2}


def emb_bytes(rows):
    return b"".join(struct.pack("<%df" % len(r), *r) for r in rows)


def infer_job(t, b, _):
    if t == "RESULT" and "task" in b:
        k = b["task"]
        rows = ROWS[2 * k:2 * k + 2]
        return "REPLY", {"kind": "infer", "index": k, "state": "COMPLETED", "count": len(rows),
                         "dim": 3, "batch": 2}, [emb_bytes(rows), json.dumps(DOCS[k]).encode()]
    if t == "RESULT":
        return "REPLY", META


def test_infer_raw_export_is_the_whole_job_f32_in_input_order(fake, tmp_path):
    f = fake(infer_job)
    out = tmp_path / "p.raw"
    r = ctl(f, "result", "5", "--format", "raw", "--out", out, check=0)
    assert out.read_bytes() == emb_bytes(ROWS), r  # no header, [3, 3] little-endian f32
    assert "3 embeddings of dimension 3 written to" in r.err and r.out == "", r
    # one batch: --task as before
    ctl(f, "result", "5", "--task", "1", "--format", "raw", "--out", out, check=0)
    assert out.read_bytes() == emb_bytes(ROWS[2:])


def test_a_batch_not_of_the_promised_shape_fails_the_export(fake, tmp_path):
    # the header says [count, dim]: a batch of another width (a controller of
    # a bug, or stored before widths were checked) must not make a corrupt file
    def narrow(t, b, blobs):
        if t == "RESULT" and b.get("task") == 1:
            return "REPLY", {"kind": "infer", "index": 1, "state": "COMPLETED", "count": 1, "dim": 2,
                             "batch": 2}, [emb_bytes([[1.0, 2.0]]), json.dumps(DOCS[1]).encode()]
        return infer_job(t, b, blobs)
    f = fake(narrow)
    out = tmp_path / "e.npy"
    r = ctl(f, "result", "5", "--format", "npy", "--out", out, check=1)
    assert "batch 1: 1 rows of dimension 2 where 1 rows of dimension 3 were expected" in r.err, r
    assert not out.exists() and list(tmp_path.iterdir()) == [], r
    # one batch alone (--task: its own reply is the header's): any batch, not only the first
    f.handler = infer_job
    for fmt in ("npy", "raw", "jsonl"):
        ctl(f, "result", "5", "--task", "1", "--format", fmt, "--out", tmp_path / f"b1.{fmt}", check=0)
    assert (tmp_path / "b1.raw").read_bytes() == emb_bytes(ROWS[2:])


def test_infer_metadata_goes_to_out(fake, tmp_path):
    f = fake(infer_job)
    meta = tmp_path / "meta.txt"
    r = ctl(f, "result", "5", "--out", meta, check=0)
    assert r.out == "" and meta.read_text().startswith("job 5: 3 documents, 2 of 2 batches done"), r
    r = ctl(f, "--json", "result", "5", "--out", meta, check=0)
    assert r.out == "" and json.loads(meta.read_text()) == META, r


def test_infer_jsonl_export_carries_the_input_line(fake):
    f = fake(infer_job)
    r = ctl(f, "result", "5", "--format", "jsonl", check=0)
    objs = [json.loads(x) for x in r.out.splitlines()]
    assert [(o["index"], o.get("line"), o["text"], o.get("id")) for o in objs] == \
        [(0, 1, "alpha", "a"), (1, 3, "gamma", None), (2, 6, "delta", "d")], r.out


def test_infer_jsonl_export_round_trips_f32_in_9_digits(fake):
    f = fake(infer_job)
    r = ctl(f, "result", "5", "--format", "jsonl", check=0)
    objs = [json.loads(x) for x in r.out.splitlines()]
    for o, row in zip(objs, ROWS):  # every value gives back the f32 it came from
        assert [f32(v) for v in o["embedding"]] == [f32(v) for v in row], o
    assert "0.100000001," in r.out and "0.10000000149011612" not in r.out, r.out


def test_infer_export_json_summary(fake, tmp_path):
    f = fake(infer_job)
    out = tmp_path / "j.npy"
    r = ctl(f, "--json", "result", "5", "--format", "npy", "--out", out, check=0)
    assert json.loads(r.out) == {"path": str(out), "format": "npy", "count": 3, "dim": 3,
                                 "dtype": "f32", "missing": 0}, r
    assert out.read_bytes()[:6] == b"\x93NUMPY" and out.read_bytes().endswith(emb_bytes(ROWS))


def test_npy_export_ids_beside_it_one_line_per_row(fake, tmp_path):
    """--ids FILE: the rows' documents in npy/raw row order, {index, line, id};
    no id when the document had none; the --json summary names it."""
    f = fake(infer_job)
    out, ids = tmp_path / "e.npy", tmp_path / "e.ids.jsonl"
    r = ctl(f, "result", "5", "--format", "npy", "--out", out, "--ids", ids, check=0)
    assert [json.loads(x) for x in ids.read_text().splitlines()] == \
        [{"index": 0, "line": 1, "id": "a"}, {"index": 1, "line": 3}, {"index": 2, "line": 6, "id": "d"}]
    assert f"ids of those 3 rows written to {ids}" in r.err, r
    r = ctl(f, "--json", "result", "5", "--format", "raw", "--out", tmp_path / "e.f32", "--ids", ids,
            check=0)
    assert json.loads(r.out)["ids"] == str(ids) and out.read_bytes().endswith((tmp_path / "e.f32").read_bytes())
    assert len(ids.read_text().splitlines()) == 3
    # jsonl has them already; the same file twice; a job that is not infer
    ids.write_text("kept\n")
    for args, word in ((["--format", "jsonl"], "--ids goes with --format npy or raw"),
                       ([], "--ids goes with --format npy or raw"),
                       (["--format", "npy", "--out", ids], "the same file as --out")):
        r = ctl(f, "result", "5", *args, "--ids", ids, check=2)
        assert word in r.err, r
    g = fake(lambda t, b, _: ("REPLY", {"id": 7, "state": "COMPLETED", "tasks": []}))
    r = ctl(g, "result", "7", "--format", "raw", "--out", tmp_path / "x", "--ids", ids, check=2)
    assert "--ids: only for infer jobs" in r.err, r
    assert ids.read_text() == "kept\n"  # a failed export leaves it as it was


def test_a_short_write_fails_the_export_and_keeps_both_old_files(fake, tmp_path):
    """A write that fails (a file size limit here; a full disk alike) failed
    silently when too large for the buffer: the truncated file was put in
    place with exit 0. And --ids must not be replaced unless --out is too."""
    import resource
    import signal
    import subprocess
    from conftest import MOAT
    f = fake(infer_job)
    out, ids = tmp_path / "e.npy", tmp_path / "e.ids.jsonl"
    out.write_bytes(b"old npy")
    ids.write_text("old ids\n")

    def limit():  # 100 bytes a file; EFBIG, not SIGXFSZ
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
    p = subprocess.run([str(MOAT), "--controller", f.endpoint, "result", "5", "--format", "npy",
                        "--out", str(out), "--ids", str(ids)], env=dict(os.environ, **FAKE_ENV),
                       capture_output=True, text=True, preexec_fn=limit, timeout=60)
    assert p.returncode == 1 and f"--out: {out}: File too large" in p.stderr, p
    assert out.read_bytes() == b"old npy" and ids.read_text() == "old ids\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["e.ids.jsonl", "e.npy"]  # no temporaries
    # rows wider than stdio's buffer: fwrite failed past it, unseen by fclose
    wide = [[0.5] * 4096] * 3

    def wide_job(t, b, _):
        if t == "RESULT" and "task" in b:
            return "REPLY", {"kind": "infer", "index": 0, "state": "COMPLETED", "count": 3, "dim": 4096,
                             "batch": 3}, [emb_bytes(wide), json.dumps(DOCS[0] | {"texts": ["a", "b", "c"],
                                                                           "ids": [None] * 3, "lines": [1, 2, 3]}).encode()]
        if t == "RESULT":
            return "REPLY", dict(META, dim=4096, batches=1, done=1, batch=3)
    g = fake(wide_job)

    def limit20k():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    p = subprocess.run([str(MOAT), "--controller", g.endpoint, "result", "5", "--format", "raw",
                        "--out", str(out)], env=dict(os.environ, **FAKE_ENV), capture_output=True, text=True,
                       preexec_fn=limit20k, timeout=60)
    assert p.returncode == 1 and f"--out: {out}: a write failed" in p.stderr, p
    assert out.read_bytes() == b"old npy"
    r = ctl(f, "result", "5", "--format", "npy", "--out", out, "--ids", tmp_path / "." / "e.npy", check=2)
    assert "the same file as --out" in r.err, r
    r = ctl(f, "result", "5", "--format", "npy", "--out", tmp_path / "new.npy", "--ids",
            tmp_path / "." / "new.npy", check=2)  # neither exists yet
    assert "the same file as --out" in r.err, r


def submit_recorder(got):
    def h(t, b, blobs):
        got["spec"] = b["spec"]
        got["blobs"] = [json.loads(x) for x in blobs]
        return "REPLY", {"id": 5}
    return h


def test_submit_sends_line_numbers_and_json_counts_the_skipped(fake, tmp_path):
    got = {}
    f = fake(submit_recorder(got))
    p = tmp_path / "docs.txt"
    p.write_bytes(b"one\n\ntwo\n  \nbad \xff\nthree\n")
    r = ctl(f, "--json", "submit", "--infer", "m", "--input", p, "--on-bad-line", "skip", check=0)
    assert json.loads(r.out) == {"id": 5, "documents": 3, "skipped_empty": 2, "skipped_bad": 1}, r
    assert got["blobs"] == [["one", "two", "three"], None, [1, 3, 6]], got
    assert "2 empty lines skipped" in r.err and f"{p}:5: invalid UTF-8; skipped" in r.err, r
    j = tmp_path / "docs.jsonl"
    j.write_text('\n{"text": "x", "id": 9}\n{"text": "y"}\n')
    ctl(f, "submit", "--infer", "m", "--input", j, check=0)
    assert got["blobs"] == [["x", "y"], [9, None], [2, 3]], got


def test_submit_bad_line_json_error_says_where_and_why(fake, tmp_path):
    f = fake(submit_recorder({}))
    p = tmp_path / "docs.txt"
    p.write_bytes(b"one\nbad \xff\n")
    r = ctl(f, "--json", "submit", "--infer", "m", "--input", p, check=2)
    doc = json.loads(r.out)
    assert doc["exit"] == 2 and f"{p}:2: invalid UTF-8 (stopped" in doc["error"], r
    assert f.requests == []


def test_input_format_by_extension_then_option_then_content(fake, tmp_path):
    got = {}
    f = fake(submit_recorder(got))
    braces = '{"text": "not json to this user"}\nplain\n'
    txt = tmp_path / "docs.txt"
    txt.write_text(braces)
    ctl(f, "submit", "--infer", "m", "--input", txt, check=0)  # .txt: text, whatever it holds
    assert got["blobs"][0] == ['{"text": "not json to this user"}', "plain"], got
    nd = tmp_path / "docs.ndjson"
    nd.write_text('{"text": "a"}\n')
    ctl(f, "submit", "--infer", "m", "--input", nd, check=0)
    assert got["blobs"][0] == ["a"]
    other = tmp_path / "docs.data"  # no telling extension: the first line decides
    other.write_text('{"text": "b"}\n')
    ctl(f, "submit", "--infer", "m", "--input", other, check=0)
    assert got["blobs"][0] == ["b"]
    ctl(f, "submit", "--infer", "m", "--input", other, "--input-format", "text", check=0)
    assert got["blobs"][0] == ['{"text": "b"}']
    r = ctl(f, "submit", "--infer", "m", "--input", txt, "--input-format", "jsonl", check=2)
    assert f"{txt}:2: " in r.err, r
    r = ctl(f, "submit", "--infer", "m", "--input", txt, "--input-format", "csv", check=2)
    assert r.err.strip() == "moat submit: --input-format: 'csv': expected text or jsonl", r
    r = ctl(f, "submit", "--input-format", "text", "--", "true", check=2)
    assert "--input-format goes with --infer" in r.err, r


def test_input_dash_reads_stdin(fake):
    got = {}
    f = fake(submit_recorder(got))
    ctl(f, "submit", "--infer", "m", "--input", "-", input="first\n\nsecond\n", check=0)
    assert got["blobs"] == [["first", "second"], None, [1, 3]], got
    ctl(f, "submit", "--infer", "m", "--input", "-", input='{"text": "j", "id": "i"}\n', check=0)
    assert got["blobs"] == [["j"], ["i"], [1]], got  # sniffed from the first line
    r = ctl(f, "submit", "--infer", "m", "--input", "-", input="ok\nno\x00pe\n", check=2)
    assert "stdin:2: a NUL byte" in r.err, r


def test_stdin_is_copied_to_tmpdir_not_held_in_memory(fake, tmp_path):
    """stdin cannot be read twice: its copy goes to an unlinked file in
    $TMPDIR (a corpus piped from zcat is not held in memory), gone after."""
    got = {}
    f = fake(submit_recorder(got))
    spool = tmp_path / "spool"
    spool.mkdir()
    ctl(f, "submit", "--infer", "m", "--input", "-", input="a\n\nb\n", env={"TMPDIR": str(spool)},
        check=0)
    assert got["blobs"] == [["a", "b"], None, [1, 3]], got
    assert list(spool.iterdir()) == []
    r = ctl(f, "submit", "--infer", "m", "--input", "-", input="a\n",
            env={"TMPDIR": str(tmp_path / "none")}, check=1)
    assert r.err.strip() == f"moat submit: --input: stdin: a copy in {tmp_path / 'none'} (TMPDIR): " \
                            "No such file or directory", r


def search_cluster(ids, docs=DOCS):
    """A fake controller holding job 5 (the documents above, ids or none) and
    answering a query job 6 whose embedding is ROWS[1]'s direction."""
    docs = [dict(d) for d in docs]
    if not ids:
        for d in docs:
            del d["ids"]
    unit = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]

    def h(t, b, _):
        if t == "SHOW":
            return "REPLY", {"id": b["id"], "state": "COMPLETED", "model": "m", "tp": 1}
        if t == "SUBMIT":
            return "REPLY", {"id": 6}
        if t == "RESULT" and b["id"] == 6:
            if "task" in b:
                return "REPLY", {"kind": "infer", "index": 0, "count": 1, "dim": 3}, \
                    [emb_bytes([unit[1]]), b'{"texts": ["q"]}']
            return "REPLY", dict(META, id=6, count=1, batches=1, done=1)
        if t == "RESULT" and "task" in b:
            k = b["task"]
            rows = unit[2 * k:2 * k + 2]
            return "REPLY", {"kind": "infer", "index": k, "count": len(rows), "dim": 3}, \
                [emb_bytes(rows), json.dumps(docs[k]).encode()]
        if t == "RESULT":
            return "REPLY", META
    return h


def test_search_names_hits_by_id(fake):
    f = fake(search_cluster(ids=True))
    r = ctl(f, "search", "5", "-k", "2", "q", check=0)
    hits = r.out.splitlines()[1:]
    assert hits[0].split()[:2] == ["1.000", "#1"] and hits[0].endswith("gamma"), r.out  # no id: #row
    assert hits[1].split()[:2] == ["0.000", "a"] and hits[1].endswith("alpha"), r.out
    doc = json.loads(ctl(f, "--json", "search", "5", "-k", "1", "q", check=0).out)
    assert doc["queries"][0]["hits"][0]["line"] == 3 and doc["queries"][0]["hits"][0]["id"] is None
    f2 = fake(search_cluster(ids=False))
    r = ctl(f2, "search", "5", "-k", "1", "q", check=0)
    assert r.out.splitlines()[1].split()[:2] == ["1.000", "#1"], r.out


def test_search_prints_no_control_character_of_the_documents(fake):
    """A corpus is others' text: an escape sequence in a document must not
    reach the terminal that prints a hit."""
    docs = [dict(DOCS[0], texts=["alpha", "\x1b]0;pwned\x07ga\tmma\u009b"], ids=["a", "\x1b[2Jb"]), DOCS[1]]
    f = fake(search_cluster(ids=True, docs=docs))
    r = ctl(f, "search", "5", "-k", "1", "q\x1b[1m", check=0)
    assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in r.out), repr(r.out)
    assert r.out.splitlines()[1].split()[:3] == ["1.000", "[2Jb", "]0;pwned"], r.out


def test_search_refuses_an_empty_query(fake):
    f = fake(search_cluster(ids=True))
    n = len(f.requests)
    for q in ("", "  "):
        r = ctl(f, "search", "5", "fine", q, check=2)
        assert r.err.strip() == "moat search: query 2: empty (give the text to search for) (see " \
            "'moat search --help')", r
    assert len(f.requests) == n  # refused before asking anything


def parts_recorder(parts, fail_docs_at=None):
    """A controller taking SUBMIT and DOCS: each part as (type, body, [texts, ids,
    lines]) into parts; the DOCS whose first is fail_docs_at refused."""
    def h(t, b, blobs):
        if t in ("SUBMIT", "DOCS"):
            parts.append((t, b, [json.loads(x) for x in blobs], sum(len(x) for x in blobs)))
            if t == "DOCS" and b["first"] == fail_docs_at:
                return "ERROR", {"code": 28, "msg": "the disk of /state is full"}
            return "REPLY", {"id": 5}
        if t == "CANCEL":
            return "REPLY", {"cancelled": b["ids"], "errors": []}
    return h


def test_documents_past_one_message_go_in_parts_of_whole_batches(fake, tmp_path):
    parts = []
    f = fake(parts_recorder(parts))
    p = tmp_path / "docs.jsonl"
    lines = [json.dumps({"text": f"document {i} " + "word " * 60, "id": f"d{i}"}) for i in range(500)]
    lines.insert(7, "")  # an empty line: the line numbers after it move on by one
    p.write_text("\n".join(lines) + "\n")
    limit = 96 * 1024
    r = ctl(f, "--json", "submit", "--infer", "m", "--input", p, "--batch", "16",
            env={"MOAT_MAX_MESSAGE": str(limit)}, check=0)
    assert json.loads(r.out)["id"] == 5 and json.loads(r.out)["documents"] == 500, r
    assert parts[0][0] == "SUBMIT" and parts[0][1]["spec"]["ndocs"] == 500, parts[0][1]
    assert len(parts) >= 3 and all(t == "DOCS" and b == {"id": 5, "first": first}
                                   for (t, b, _, _), first in
                                   zip(parts[1:], [sum(len(x[2][0]) for x in parts[:k])
                                                   for k in range(1, len(parts))])), \
        [(t, b) for t, b, _, _ in parts]
    # every part but the last whole batches, each under the limit
    assert all(len(x[2][0]) % 16 == 0 for x in parts[:-1]), [len(x[2][0]) for x in parts]
    assert all(size < limit - 16384 for *_, size in parts), [x[3] for x in parts]
    texts = [t for x in parts for t in x[2][0]]
    ids = [i for x in parts for i in x[2][1]]
    nums = [n for x in parts for n in x[2][2]]
    assert texts == [json.loads(x)["text"] for x in lines if x] and ids == [f"d{i}" for i in range(500)]
    assert nums == list(range(1, 8)) + list(range(9, 502)), nums
    # all of it in one message when it fits, as before
    parts.clear()
    ctl(f, "submit", "--infer", "m", "--input", p, "--batch", "16", check=0)
    assert [t for t, *_ in parts] == ["SUBMIT"] and len(parts[0][2][0]) == 500


def test_a_part_refused_cancels_the_job_and_says_so(fake, tmp_path):
    parts = []
    f = fake(parts_recorder(parts, fail_docs_at=192))
    p = tmp_path / "docs.txt"
    p.write_text("".join(f"line {i} " + "text " * 100 + "\n" for i in range(400)))
    r = ctl(f, "submit", "--infer", "m", "--input", p, "--batch", "64",
            env={"MOAT_MAX_MESSAGE": str(140 * 1024)}, check=1)
    assert "the disk of /state is full" in r.err, r
    assert "job 5 cancelled: 192 of its 400 documents were sent" in r.err, r
    assert f.requests[-1] == ("CANCEL", {"ids": [5]}), f.requests[-1]
    # a batch that cannot fit one message at all: said before anything is sent
    f.requests.clear()
    r = ctl(f, "submit", "--infer", "m", "--input", p, "--batch", "256",
            env={"MOAT_MAX_MESSAGE": str(140 * 1024)}, check=2)
    assert "documents 1..256 (a batch of --batch 256) take 0.13 MiB, more than one message holds " \
        "(0.12 MiB of the controller's max_message, 0.14 MiB)" in r.err, r
    assert f.requests == []
    for bad in ("lots", "1000", "8M"):
        r = ctl(f, "submit", "--infer", "m", "--input", p, env={"MOAT_MAX_MESSAGE": bad}, check=2)
        assert f"MOAT_MAX_MESSAGE: '{bad}': expected bytes, at least 65536" in r.err, r
    assert f.requests == []


def test_a_repeated_id_is_a_bad_line(fake, tmp_path):
    got = {}
    f = fake(submit_recorder(got))
    p = tmp_path / "docs.jsonl"
    p.write_text('{"text": "a", "id": "x"}\n{"text": "b", "id": 7}\n{"text": "c", "id": "7"}\n'
                 '{"text": "d", "id": "x"}\n{"text": "e", "id": 7}\n{"text": "f"}\n{"text": "g"}\n')
    r = ctl(f, "submit", "--infer", "m", "--input", p, check=2)
    assert f'{p}:4: "id" "x" is line 1\'s too: ids must be unique (stopped' in r.err, r
    assert f.requests == []
    # skip: the later line is left out, counted; the string "7" is not the integer 7
    r = ctl(f, "--json", "submit", "--infer", "m", "--input", p, "--on-bad-line", "skip", check=0)
    assert json.loads(r.out)["skipped_bad"] == 2 and f'{p}:5: "id" 7 is line 2\'s too' in r.err, r
    assert got["blobs"] == [["a", "b", "c", "f", "g"], ["x", 7, "7", None, None], [1, 2, 3, 6, 7]], got


def test_json_submit_wait_keeps_the_document_counts(fake, tmp_path):
    def h(t, b, blobs):
        if t == "SUBMIT":
            return "REPLY", {"id": 5}
        if t == "SHOW":
            return "REPLY", {"id": 5, "state": "COMPLETED", "exit_code": 0, "ntasks": 1, "done": 1,
                             "kind": "infer", "ndocs": 2, "docs_done": 2, "tasks": [], "tasks_next": None}
    f = fake(h)
    p = tmp_path / "docs.txt"
    p.write_text("one\n\ntwo\n")
    r = ctl(f, "--json", "submit", "--infer", "m", "--input", p, "--wait", check=0)
    doc = json.loads(r.out)
    assert doc["jobs"][0]["id"] == 5 and doc["jobs"][0]["state"] == "COMPLETED", doc
    assert (doc["documents"], doc["skipped_empty"], doc["skipped_bad"]) == (2, 1, 0), doc


def test_input_from_a_pipe_is_read_once_and_sent_whole(fake, tmp_path):
    # The input is read twice (checked, then sent in parts): a pipe cannot be,
    # so it is kept as it came, as stdin is.
    import os
    import threading
    parts = []
    f = fake(parts_recorder(parts))
    fifo = tmp_path / "docs.fifo"
    os.mkfifo(fifo)
    text = "".join(f"pipe document {i} " + "x" * 200 + "\n" for i in range(300))

    def writer():
        with open(fifo, "w") as w:
            w.write(text)
    t = threading.Thread(target=writer)
    t.start()
    ctl(f, "submit", "--infer", "m", "--input", fifo, "--batch", "10",
        env={"MOAT_MAX_MESSAGE": str(65536)}, check=0)
    t.join()
    assert len(parts) >= 2 and [x for p in parts for x in p[2][0]] == text.splitlines(), len(parts)
    assert [n for p in parts for n in p[2][2]] == list(range(1, 301))


def test_an_unrewindable_input_stops_at_its_first_bad_line(fake):
    # it is copied as it is read, not read whole first: /dev/urandom never ends
    f = fake(parts_recorder([]))
    r = ctl(f, "submit", "--infer", "m", "--input", "/dev/urandom", check=2, timeout=20)
    # the first line with a byte in it (a '\n' first makes line 1 empty)
    assert re.search(r"/dev/urandom:\d+: .*\(stopped;", r.err), r
    assert f.requests == []


def test_an_input_changed_while_sent_is_an_error_and_the_job_cancelled(fake, tmp_path):
    p = tmp_path / "docs.txt"
    p.write_text("".join(f"document {i} " + "y" * 300 + "\n" for i in range(400)))
    parts = []
    record = parts_recorder(parts)

    def h(t, b, blobs):
        if t == "SUBMIT":  # between the two readings' first part and the rest
            with open(p, "a") as w:
                w.write("one more line\n")
        return record(t, b, blobs)
    f = fake(h)
    r = ctl(f, "submit", "--infer", "m", "--input", p, "--batch", "8",
            env={"MOAT_MAX_MESSAGE": str(65536)}, check=1)
    assert f"--input: {p}: changed while it was read (400 documents, then more than 400)" in r.err, r
    assert f.requests[-1] == ("CANCEL", {"ids": [5]}), f.requests[-1]
