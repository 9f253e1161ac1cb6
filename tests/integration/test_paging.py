"""Big jobs are read in pages: SHOW and RESULT answer a page of tasks and say
where the next starts (tasks_next), so neither the controller nor the CLI
builds one reply for a million tasks; moat show / result / wait stitch pages
together (controller/ctl_api.c, cli_paged_json)."""
import json

from moatproto import Client


def test_show_pages_a_big_array_and_filters_by_state(cluster):
    c = cluster
    n = 25_000  # three pages of 10,000; never started (begin in an hour)
    jid = c.submit("true", opts=["--array", f"5-{n + 4}", "--begin", "now+1h"])
    cl = Client(c.endpoint, c.dir)
    try:
        page = cl.ok("SHOW", {"id": jid, "tasks_limit": 3, "tasks_from": 9})
        assert [t["index"] for t in page["tasks"]] == [9, 10, 11]
        assert page["tasks_next"] == 12 and page["task_states"] == {"PENDING": n}
        none = cl.ok("SHOW", {"id": jid, "tasks_limit": 0})
        assert none["tasks"] == [] and none["ntasks"] == n
        first = cl.ok("SHOW", {"id": jid})
        assert len(first["tasks"]) == 10_000 and first["tasks_next"] == 10_005
        last = cl.ok("SHOW", {"id": jid, "tasks_from": n})
        assert [t["index"] for t in last["tasks"]] == [n, n + 1, n + 2, n + 3, n + 4]
        assert last["tasks_next"] is None
        t, b, _ = cl.call("SHOW", {"id": jid, "tasks_state": "DONE"})
        assert t == "ERROR" and "tasks_state" in b["msg"]
    finally:
        cl.close()
    doc = c.j("show", jid)
    assert [t["index"] for t in doc["tasks"]] == list(range(5, n + 5))
    assert "tasks_next" not in doc and doc["task_states"] == {"PENDING": n}
    text = c.moat("show", jid).out
    assert f"tasks:     {n} ({n} PENDING)" in text
    rows = [l.split() for l in text.splitlines() if l.strip() and l.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(5, n + 5))
    # every page's index column has the width of the last index
    widths = {len(l) - len(l.lstrip()) + len(l.split()[0])
              for l in text.splitlines() if l.strip() and l.split()[0].isdigit()}
    assert widths == {len(str(n + 4))}, widths
    assert "no task is RUNNING" in c.moat("show", jid, "--state", "running").out
    assert c.j("show", jid, "--state", "RUNNING")["tasks"] == []
    c.moat("show", jid, "--state", "DONE", check=2)
    c.moat("cancel", jid)
    c.wait_state(jid, "CANCELLED")
    cancelled = c.j("show", jid, "--state", "CANCELLED")["tasks"]
    assert len(cancelled) == n and cancelled[-1]["index"] == n + 4


def test_result_pages_by_output_size_and_stitches_them(cluster):
    c = cluster
    # 6 tasks of 1 MiB of stdout each (the default output_cap): the controller's
    # 4 MiB page holds 4, so text, jsonl and --json each take two pages.
    script = "head -c 1048576 /dev/zero | tr '\\0' $(printf \\\\$(printf %o $((65 + {index}))))"
    jid = c.submit("sh", "-c", script, opts=["--array", "0-5"])
    c.wait(jid, timeout=120)
    cl = Client(c.endpoint, c.dir)
    try:
        page = cl.ok("RESULT", {"id": jid})
        assert [t["index"] for t in page["tasks"]] == [0, 1, 2, 3] and page["tasks_next"] == 4
        page = cl.ok("RESULT", {"id": jid, "tasks_from": 4})
        assert [t["index"] for t in page["tasks"]] == [4, 5] and page["tasks_next"] is None
        page = cl.ok("RESULT", {"id": jid, "tasks_from": 1, "tasks_limit": 1})
        assert [t["index"] for t in page["tasks"]] == [1] and page["tasks_next"] == 2
    finally:
        cl.close()
    want = "".join(chr(65 + i) * 1048576 for i in range(6))
    assert c.moat("result", jid).out == want
    lines = c.moat("result", jid, "--format", "jsonl").out.splitlines()
    assert [json.loads(l)["index"] for l in lines] == list(range(6))
    doc = c.j("result", jid)
    assert "tasks_next" not in doc
    assert "".join(t["stdout"] for t in doc["tasks"]) == want



def test_queue_pages_through_a_long_history(make_cluster):
    c = make_cluster(workers=1, controller_extra='inactive_age = "0 s";\n')
    cl = Client(c.endpoint, c.dir)
    try:
        spec = {"kind": "exec", "argv": ["true"]}
        ids = list(cl.submit_burst([spec] * 30).values())
        assert len(ids) == 30
        c.wait(*ids, timeout=120)
        page = cl.ok("QUEUE", {"all": True, "limit": 7, "from": 3})
        assert [j["id"] for j in page["jobs"]] == list(range(3, 10)) and page["next"] == 10
        last = cl.ok("QUEUE", {"all": True, "from": 25})
        assert [j["id"] for j in last["jobs"]] == list(range(25, 31)) and last["next"] is None
        # finished jobs only come with all: nothing to list, nothing next
        assert cl.ok("QUEUE", {}) == {"jobs": [], "next": None}
    finally:
        cl.close()
    doc = c.j("queue", "--all")
    assert [j["id"] for j in doc["jobs"]] == list(range(1, 31)) and "next" not in doc
    assert len(c.j("queue", "--state", "completed")["jobs"]) == 30
