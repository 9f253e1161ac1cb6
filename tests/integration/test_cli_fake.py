"""The CLI against a scripted fake controller (moatproto.FakeController): what it
sends (docs/protocol.md), what it prints, and its exit codes (PRODUCT.md).
Needs only bin/moat."""
import json
import os
import re
import threading
import time

import pytest

from conftest import run_moat as _run_moat
from moatproto import EAGAIN, EINVAL, ENOENT, ENOSPC, FAKE_ENV, curve_server, message, parse_header


def run_moat(args, env=None, **kw):
    """conftest.run_moat with the CLI's keys for the fake controller (CURVE)."""
    return _run_moat(args, env=dict(FAKE_ENV, **(env or {})), **kw)

JOB = {"id": 7, "name": "j", "kind": "exec", "state": "COMPLETED", "attempts": 1,
       "submit_time": 1.0, "start_time": 2.0, "end_time": 3.0, "exit_code": 0, "progress": 1.0,
       "tasks": [{"index": 0, "state": "COMPLETED", "attempts": 1, "node": "n1", "exit_code": 0}]}


def ctl(f, *args, check=None, env=None):
    return run_moat(["--controller", f.endpoint] + list(args), env=env, check=check)


def test_submit_sends_the_documented_spec(fake):
    f = fake(lambda t, b, _: ("REPLY", {"id": 41}))
    before = time.time()
    r = ctl(f, "submit", "--name", "n", "--cpus", "2", "--gpus", "1", "--mem", "1.5GiB",
            "--priority", "-3", "--array", "0-9%2", "--after", "3,4", "--after", "5",
            "--begin", "now+1h", "--time-limit", "1h30m", "--", "sh", "-c", "echo {index}",
            check=0)
    assert r.out == "41\n"
    (t, body), = f.requests
    assert t == "SUBMIT"
    spec = body["spec"]
    assert spec["kind"] == "exec" and spec["name"] == "n"
    assert spec["argv"] == ["sh", "-c", "echo {index}"]
    assert (spec["cpus"], spec["gpus"], spec["priority"]) == (2, 1, -3)
    assert spec["mem"] == int(1.5 * 2**30)
    assert spec["array"] == {"start": 0, "end": 9, "max": 2}
    assert spec["after"] == [3, 4, 5]
    assert before + 3600 - 1 <= spec["begin"] <= time.time() + 3600 + 1  # absolute
    assert spec["time_limit"] == 5400


def test_env_name_alone_passes_its_value_from_here(fake):
    f = fake(lambda t, b, _: ("REPLY", {"id": 7}))
    ctl(f, "submit", "--env", "DATA", "--env", "MODE=full", "--env", "EMPTY", "--", "true",
        env={"DATA": "/srv/a b=c", "EMPTY": ""}, check=0)
    assert f.requests[-1][1]["spec"]["env"] == ["DATA=/srv/a b=c", "MODE=full", "EMPTY="]
    r = ctl(f, "submit", "--env", "MOAT_UNSET_HERE", "--", "true", check=2)
    assert "--env MOAT_UNSET_HERE: not set in this environment" in r.err, r.err
    r = ctl(f, "submit", "--env", "BAD-NAME", "--", "true", env={"BAD-NAME": "x"}, check=2)
    assert "letters, digits and '_'" in r.err, r.err
    assert len(f.requests) == 1


def test_submit_json_and_command_after_options(fake):
    f = fake(lambda t, b, _: ("REPLY", {"id": 5}))
    r = ctl(f, "submit", "--json", "echo", "-n", "hi", check=0)  # no --: stops at CMD
    assert json.loads(r.out) == {"id": 5}
    assert f.requests[0][1]["spec"]["argv"] == ["echo", "-n", "hi"]
    r = ctl(f, "--json", "submit", "--", "--weird-cmd", check=0)
    assert f.requests[1][1]["spec"]["argv"] == ["--weird-cmd"]


@pytest.mark.parametrize("args,word", [
    (["--mem", "x"], "--mem: size 'x'"),
    (["--mem", "512"], "--mem '512': give a unit"),
    (["--mem", "100KiB"], "--mem: '100KiB': less than 1 MiB"),
    (["--name", "--"], "--name: missing value"),
    (["--cpus", "0"], "--cpus"),
    (["--cpus", "two"], "--cpus"),
    (["--gpus", "2000"], "--gpus"),
    (["--priority", "9999999"], "--priority"),
    (["--array", "5-2"], "--array"),
    (["--array", "1-3%0"], "--array"),
    (["--after", "x"], "--after"),
    (["--after", "0"], "--after"),
    (["--begin", "tomorrowish"], "--begin"),
    (["--time-limit", "forever"], "--time-limit"),
    (["--time-limit", "0"], "no limit is the default: leave the option out"),
    (["--time-limit", "90"], "give a unit"),
    (["--time-limit", "1:99:00"], "--time-limit"),
    (["--mem", "0x10G"], "--mem"),
    (["--begin", "2024-02-30"], "no day 30"),
    (["--tp", "2"], "--tp goes with --infer"),
    (["--on-bad-line", "skip"], "--on-bad-line goes with --infer"),
    (["--pooling", "mean"], "--pooling goes with --infer"),
    (["--name", "a\tb"], "--name"),
    (["--name", "a\u009b2Jb"], "--name: control characters are not allowed"),  # C1: CSI
    (["--nope"], "--nope"),
    (["--afte", "5"], "ambiguous option '--afte': --after, --after-any, --after-notok"),
    (["--after", "5", "--after-notok", "5"], "could never run"),
    (["--dependency", "afternotok:5,afterok:6:5"], "could never run"),
])
def test_submit_bad_input_exit_2_names_the_argument(fake, args, word):
    f = fake(lambda t, b, _: ("REPLY", {"id": 1}))
    r = ctl(f, "submit", *args, "--", "true", check=2)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moat submit: ") and word in lines[0], r
    assert f.requests == []  # validated before sending


def test_submit_repeated_dependencies_are_sent_once(fake):
    f = fake(lambda t, b, _: ("REPLY", {"id": 1}))
    ctl(f, "submit", "--after", "3,3", "--after", "3", "--dependency", "afterok:3,afterany:3",
        "--", "true", check=0)
    spec = f.requests[0][1]["spec"]
    assert spec["after"] == [3] and spec["after_any"] == [3], spec


def test_submit_without_command_is_usage(fake):
    f = fake(lambda t, b, _: ("REPLY", {"id": 1}))
    r = ctl(f, "submit", "--cpus", "1", check=2)
    assert "command" in r.err


def test_controller_error_exit_codes(fake):
    codes = {"1": (EINVAL, "spec: cpus: too many"), "2": (ENOENT, "job 2: no such job"),
             "3": (ENOSPC, "store full"), "4": (EINVAL, "show: job 4 is odd")}
    f = fake(lambda t, b, _: ("ERROR", {"code": codes[str(b["id"])][0],
                                        "msg": codes[str(b["id"])][1]}))
    r = ctl(f, "show", "1", check=2)
    assert r.err.strip() == "moat show: spec: cpus: too many"
    r = ctl(f, "show", "2", check=2)
    assert r.err.strip() == "moat show: job 2: no such job"
    r = ctl(f, "show", "3", check=1)
    assert r.err.strip() == "moat show: store full"
    r = ctl(f, "show", "4", check=2)  # the controller named the command too: once
    assert r.err.strip() == "moat show: job 4 is odd"


def test_json_errors_are_one_document_on_stdout(fake):
    """With --json a failure prints {"error", "exit"} on stdout (the line of
    stderr), so that `moat --json ... | jq` always reads a document; a command
    that already printed its document (wait, queue) adds none."""
    f = fake(lambda t, b, _: ("ERROR", {"code": ENOENT, "msg": f"job {b['id']}: no such job"}))
    r = ctl(f, "--json", "show", "4", check=2)
    assert json.loads(r.out) == {"error": "moat show: job 4: no such job", "exit": 2}
    assert r.err.strip() == "moat show: job 4: no such job"
    r = ctl(f, "submit", "--json", "--cpus", "two", "--", "true", check=2)
    assert json.loads(r.out) == {"error": "moat submit: --cpus: 'two': expected an integer", "exit": 2}
    r = run_moat(["--json", "--controller", "tcp://127.0.0.1:1", "queue"],
                 env={"MOAT_TIMEOUT": "300ms"}, check=3)
    doc = json.loads(r.out)
    assert doc["exit"] == 3 and "cannot reach the controller" in doc["error"]
    r = ctl(f, "--json", "result", "4", check=2)  # result opens its output first: still one
    assert json.loads(r.out) == {"error": "moat result: job 4: no such job", "exit": 2}
    r = run_moat(["--json", "queue"], env={"MOAT_TIMEOUT": "soon"}, check=2)
    assert json.loads(r.out)["error"].startswith("moat: MOAT_TIMEOUT")
    r = ctl(f, "show", "4", check=2)
    assert r.out == ""  # without --json: nothing on stdout


def test_no_reply_exit_3(fake):
    f = fake(lambda t, b, _: None)
    t0 = time.monotonic()
    r = ctl(f, "queue", env={"MOAT_TIMEOUT": "700ms"}, check=3)
    assert time.monotonic() - t0 < 5
    assert "cannot reach the controller" in r.err
    r = run_moat(["--controller", "tcp://127.0.0.1:1", "submit", "--", "true"],
                 env={"MOAT_TIMEOUT": "300ms"}, check=3)


def test_bad_timeout_env_is_usage():
    r = run_moat(["queue"], env={"MOAT_TIMEOUT": "soon"}, check=2)
    assert "MOAT_TIMEOUT" in r.err


def test_endpoint_resolution(fake, tmp_path):
    a = fake(lambda t, b, _: ("REPLY", {"version": "a", "time": 0, "jobs": 1, "nodes": 0}))
    b = fake(lambda t, b_, _: ("REPLY", {"version": "b", "time": 0, "jobs": 2, "nodes": 0}))
    d = tmp_path / "d"
    d.mkdir()
    (d / "endpoint").write_text(a.endpoint + "\n")
    assert run_moat(["--json", "ping"], env={"MOAT_DIR": str(d)}, check=0).json["jobs"] == 1
    env = {"MOAT_DIR": str(d), "MOAT_CONTROLLER": b.endpoint}
    assert run_moat(["--json", "ping"], env=env, check=0).json["jobs"] == 2
    assert run_moat(["--json", "--controller", a.endpoint, "ping"], env=env,
                    check=0).json["jobs"] == 1
    # ./.moat is the default directory
    (tmp_path / ".moat").mkdir()
    (tmp_path / ".moat" / "endpoint").write_text(b.endpoint)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert run_moat(["--json", "ping"], check=0).json["jobs"] == 2
    finally:
        os.chdir(cwd)
    r = run_moat(["queue"], env={"MOAT_DIR": str(tmp_path / "none")}, check=3)
    assert "moat local up" in r.err


def test_show_queue_nodes_output(fake):
    def h(t, b, _):
        if t == "SHOW":
            return "REPLY", JOB
        if t == "QUEUE":
            return "REPLY", {"jobs": [dict(JOB, tasks=None), dict(JOB, id=12, name="")]}
        if t == "NODES":
            return "REPLY", {"nodes": [{"name": "n1", "state": "UP", "host": "h", "pid": 9,
                                        "cpus": 4, "gpus": 0, "mem_bytes": 2**30,
                                        "used_cpus": 1, "running_tasks": 1, "backend": "cpu"}]}
    f = fake(h)
    assert json.loads(ctl(f, "show", "7", "--json", check=0).out) == JOB
    out = ctl(f, "show", "7", check=0).out
    assert "COMPLETED" in out and "n1" in out
    # a running TP group shows every rank's node; a task waiting to be rerun, none
    tp = dict(JOB, id=8, kind="infer", state="RUNNING", tasks=[
        {"index": 0, "state": "RUNNING", "attempts": 1, "node": "n2", "exit_code": None,
         "ranks": ["n2", "n1"]},
        {"index": 1, "state": "PENDING", "attempts": 1, "node": "n1", "exit_code": None}])
    f.handler = lambda t, b, _: ("REPLY", tp)
    rows = [l.split() for l in ctl(f, "show", "8", check=0).out.splitlines() if l[:5].strip().isdigit()]
    assert rows[0][:4] == ["0", "RUNNING", "1", "n2+n1"] and rows[1][:4] == ["1", "PENDING", "1", "-"], rows
    f.handler = h
    out = ctl(f, "queue", "--all", check=0).out.splitlines()
    assert out[0].split() == ["JOBID", "NAME", "STATE", "PROGRESS", "SUBMITTED", "TIME", "EXIT",
                             "REASON"]
    assert out[1].split()[0] == "7" and out[2].split()[0] == "12"
    assert out[0].index("STATE") == out[1].index("COMPLETED")  # aligned
    assert f.requests[-1] == ("QUEUE", {"all": True})
    # columns line up on a terminal for names of accents, marks and wide CJK:
    # padded by display width (2 per CJK character, 0 per combining mark)
    wide = [dict(JOB, tasks=None, name="日本語"), dict(JOB, tasks=None, id=13, name="e\u0301te"),
            dict(JOB, tasks=None, id=14, name="plain")]
    f.handler = lambda t, b, _: ("REPLY", {"jobs": wide})
    out = ctl(f, "queue", check=0).out.splitlines()
    col = out[0].index("STATE")
    assert out[1].index("COMPLETED") == col - 3  # 3 characters that take 6 columns
    assert out[2].index("COMPLETED") == col + 1  # 4 code points that take 3
    assert out[3].index("COMPLETED") == col
    # a job that ended without an exit code (cancelled, a signal) shows none, not -1
    f.handler = lambda t, b, _: ("REPLY", {"jobs": [dict(JOB, tasks=None, state="CANCELLED", exit_code=-1)]})
    head, row = ctl(f, "queue", check=0).out.splitlines()[:2]
    assert "CANCELLED" in row and row[head.index("EXIT"):].split()[0] == "-", row
    f.handler = h
    ctl(f, "queue", "--state", "failed", check=0)
    assert f.requests[-1] == ("QUEUE", {"state": "FAILED", "all": True})
    ctl(f, "queue", "--state", "running", check=0)
    assert f.requests[-1] == ("QUEUE", {"state": "RUNNING"})
    # squeue -t: a list, Slurm's codes, repeated options adding up
    ctl(f, "queue", "--state", "pd,R", "--state", "to", check=0)
    assert f.requests[-1] == ("QUEUE", {"states": ["PENDING", "RUNNING", "TIMEOUT"], "all": True})
    ctl(f, "queue", "--state", "CA", check=0)
    assert f.requests[-1] == ("QUEUE", {"state": "CANCELLED", "all": True})
    n = len(f.requests)
    for bad in ("running,", "R,,PD", "DONE", "x" * 80):
        r = ctl(f, "queue", "--state", bad, check=2)
        assert "--state '" in r.err and "expected PENDING" in r.err, r.err
    assert len(f.requests) == n  # refused before asking the controller
    nodes = ctl(f, "nodes", check=0).out.splitlines()
    assert nodes[0].split()[:3] == ["NAME", "STATE", "HOST"] and "1.0 GiB" in nodes[1]
    assert nodes[1].split()[4:6] == ["1/4", "0/0"], nodes  # CPUS, GPUS: in use/offered
    assert json.loads(ctl(f, "--json", "nodes", check=0).out)["nodes"][0]["name"] == "n1"


def test_result_formats(fake, tmp_path):
    tasks = [{"index": 1, "state": "COMPLETED", "exit_code": 0, "stdout": "b\n", "stderr": "",
              "truncated": False},
             {"index": 0, "state": "COMPLETED", "exit_code": 0, "stdout": "a\n", "stderr": "e",
              "truncated": False}]
    raw = bytes(range(256))

    def h(t, b, _):
        if t == "RESULT" and b.get("raw"):
            one = dict(tasks[0])
            del one["stdout"], one["stderr"]
            return "REPLY", one, [raw, b""]
        if t == "RESULT" and "task" in b:
            return "REPLY", tasks[1]
        if t == "RESULT":
            return "REPLY", {"tasks": tasks}
    f = fake(h)
    assert ctl(f, "result", "3", check=0).out == "a\nb\n"  # index order
    lines = ctl(f, "result", "3", "--format", "jsonl", check=0).out.splitlines()
    assert [json.loads(x)["index"] for x in lines] == [0, 1]
    assert json.loads(ctl(f, "result", "3", "--json", check=0).out) == {"tasks": tasks}
    assert json.loads(ctl(f, "result", "3", "--task", "0", "--json", check=0).out) == tasks[1]
    out = tmp_path / "o.bin"
    ctl(f, "result", "3", "--task", "1", "--format", "raw", "--out", out, check=0)
    assert out.read_bytes() == raw
    assert f.requests[-1] == ("RESULT", {"id": 3, "task": 1, "raw": True})
    ctl(f, "result", "3", "--format", "npy", check=2)
    ctl(f, "result", "3", "--task", "-1", check=2)
    assert ctl(f, "result", "3", check=0).err == "e"  # the tasks' stderr; nothing was cut
    tasks[0]["truncated"] = True  # index 1's output was cut at output_cap: said on stderr
    r = ctl(f, "result", "3", check=0)
    assert r.out == "a\nb\n" and "output of task 1 was cut" in r.err, r
    tasks[0]["truncated"] = False
    f = fake(lambda t, b, _: ("REPLY", {"id": 3, "kind": "exec", "state": "RUNNING",
                                        "tasks": tasks[1:]}))
    r = ctl(f, "result", "3", check=0)
    assert r.out == "a\n" and r.err == "e" + "moat result: job 3 is RUNNING: the output of its " \
        "ended tasks only\n", r


def test_result_follows_tasks_next_through_the_pages(fake):
    pages = {None: {"tasks": [{"index": 0, "stdout": "a"}], "tasks_next": 1},
             1: {"tasks": [{"index": 1, "stdout": "b", "truncated": True}], "tasks_next": 2},
             2: {"tasks": [{"index": 2, "stdout": "c"}], "tasks_next": None}}
    f = fake(lambda t, b, _: ("REPLY", pages[b.get("tasks_from")]))
    assert ctl(f, "result", "3", check=0).out == "abc"
    doc = json.loads(ctl(f, "result", "3", "--json", check=0).out)
    assert [t["stdout"] for t in doc["tasks"]] == ["a", "b", "c"] and "tasks_next" not in doc
    assert [b.get("tasks_from") for _, b in f.requests[-3:]] == [None, 1, 2]


def test_result_out_keeps_the_file_when_the_command_fails(fake, tmp_path):
    f = fake(lambda t, b, _: ("ERROR", {"code": ENOENT, "msg": "job 9: no such job"})
             if b["id"] == 9 else ("REPLY", {"tasks": [{"index": 0, "stdout": "new\n"}]}))
    out = tmp_path / "keep.txt"
    out.write_text("precious\n")
    ctl(f, "result", "9", "--out", out, check=2)
    assert out.read_text() == "precious\n"
    r = run_moat(["--controller", "tcp://127.0.0.1:1", "result", "4", "--out", str(out)],
                 env={"MOAT_TIMEOUT": "300ms"}, check=3)
    assert out.read_text() == "precious\n"
    r = ctl(f, "result", "4", "--out", "", check=2)
    assert r.err.strip() == "moat result: --out: empty file name", r
    r = run_moat(["--controller", "", "result", "4"], env={"MOAT_CONTROLLER": f.endpoint}, check=2)
    assert r.err.strip() == "moat result: --controller: empty endpoint", r
    missing = tmp_path / "never.txt"
    ctl(f, "result", "9", "--out", missing, check=2)
    assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]  # no temporary left
    ctl(f, "result", "4", "--out", out, check=0)
    assert out.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    # a link is written through, and an existing file keeps its mode
    out.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(out)
    out.write_text("old\n")
    ctl(f, "result", "4", "--out", link, check=0)
    assert link.is_symlink() and out.read_text() == "new\n"
    assert out.stat().st_mode & 0o777 == 0o640


def test_wait_exit_codes(fake):
    state = {"n": 0}

    def h(t, b, _):
        if b["id"] == 1:  # RUNNING twice, then COMPLETED
            state["n"] += 1
            s = "COMPLETED" if state["n"] > 2 else "RUNNING"
            return "REPLY", dict(JOB, id=1, state=s)
        if b["id"] == 2:
            return "REPLY", dict(JOB, id=2, state="FAILED", exit_code=3,
                                 reason="task 0: no CUDA device visible")
        if b["id"] == 3:
            return "REPLY", dict(JOB, id=3, state="RUNNING")
        return "ERROR", {"code": ENOENT, "msg": f"job {b['id']}: no such job"}
    f = fake(h)
    r = ctl(f, "wait", "1", check=0)
    assert r.out == "" and r.err == ""  # silent when stderr is not a terminal
    r = ctl(f, "wait", "1", "2", check=1)
    assert "job 2 FAILED (exit code 3): task 0: no CUDA device visible" in r.err
    t0 = time.monotonic()
    r = ctl(f, "wait", "3", "--timeout", "1s", check=1)
    assert 0.9 < time.monotonic() - t0 < 5 and "timed out" in r.err
    r = ctl(f, "--json", "wait", "3", "--timeout", "300ms", check=1)
    assert r.json == {"jobs": [{"id": 3, "state": "RUNNING", "exit_code": None}], "timed_out": True}
    ctl(f, "wait", "99", check=2)


def test_cancel(fake):
    f = fake(lambda t, b, _: ("REPLY", {"cancelled": [i for i in b["ids"] if i < 100],
                                        "errors": [{"id": i, "code": ENOENT,
                                                    "msg": f"job {i}: no such job"}
                                                   for i in b["ids"] if i >= 100]}))
    r = ctl(f, "cancel", "1", "2,3", check=0)
    assert f.requests[-1] == ("CANCEL", {"ids": [1, 2, 3]})
    r = ctl(f, "cancel", "1", "100", check=2)  # ENOENT: a bad argument
    assert r.err.strip() == "moat cancel: job 100: no such job"
    ctl(f, "cancel", check=2)
    ctl(f, "cancel", "x", check=2)
    # a list of any length (this one is 4.5 KiB); errors quote a long one cut short
    lst = ",".join(str(i) for i in range(0, 3001, 3))
    ctl(f, "cancel", f"7_[{lst}]", check=0)
    assert [t["index"] for t in f.requests[-1][1]["tasks"]] == list(range(0, 3001, 3))
    n = len(f.requests)
    r = ctl(f, "cancel", f"7_[{lst}", check=2)
    assert r.err.strip() == f"moat cancel: '7_[{lst[:57]}...': no ']' after 7_[", r.err
    r = ctl(f, "cancel", f"7_[{lst},x]", check=2)
    assert r.err.count("\n") == 1 and "elements of job 7" in r.err and len(r.err) < 200, r.err
    assert len(f.requests) == n


def test_show_prints_the_command_as_shell_words_with_no_raw_control_characters(fake):
    """Any client may show any job: a command holding escape sequences must not
    reach the terminal raw (it could clear it, retitle it, move the cursor)."""
    argv = ["echo", "\x1b[2J\x1b]0;pwned\x07hi", "it's", "a b", "", "x\u009by", "{a,b}", "{index}",
            "back\\slash", "plain-1"]
    job = dict(JOB, argv=argv)
    f = fake(lambda t, b, _: ("REPLY", job))
    r = ctl(f, "show", "7", check=0)
    line = next(l for l in r.out.splitlines() if l.strip().startswith("command:"))
    words = line.split(":", 1)[1].lstrip()
    assert words == "echo $'\\x1b[2J\\x1b]0;pwned\\x07hi' 'it'\\''s' 'a b' '' $'x\\xc2\\x9by' '{a,b}' " \
                    "'{index}' 'back\\slash' plain-1", line
    assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in r.out), repr(r.out)
    # a shell takes the words back as they were given
    import subprocess
    back = subprocess.run(["bash", "-c", "printf '%s\\0' " + words], capture_output=True, check=True).stdout
    assert back.split(b"\0")[:-1] == [a.encode() for a in argv], back


def test_slow_reply_answers_its_request_not_a_repeats(fake):
    """A request the controller takes over a second to do is sent again (the
    first send may have died with a controller restart); the reply to the
    first send is the answer, even when the repeat's came first: a REQUEUE
    that worked must not be reported as "job 7 is PENDING" (the repeat's
    reply, once the first had requeued it)."""
    calls = {"n": 0}

    def h(t, b, _):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(1.3)  # the CLI sends it again meanwhile
            return "REPLY", {"requeued": [7], "errors": []}
        return "ERROR", {"code": EINVAL, "msg": "job 7 is PENDING: requeue runs again what an "
                                                "ended job did not complete"}
    f = fake(h)
    r = ctl(f, "requeue", "7", check=0)
    assert r.err == "", r.err
    assert [t for t, _ in f.requests] == ["REQUEUE", "REQUEUE"], f.requests


def submit_to_a_raw_server(serve):
    """`moat submit -- true` (MOAT_TIMEOUT 2s) against a CURVE ROUTER on a loopback
    port that serve(sock, got, stop) runs in a thread, appending the type of
    each message it takes to got; returns (the CLI's result, got)."""
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    curve_server(s)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    got, stop = [], threading.Event()
    th = threading.Thread(target=serve, args=(s, got, stop), daemon=True)
    th.start()
    try:
        r = run_moat(["--controller", f"tcp://127.0.0.1:{port}", "submit", "--", "true"],
                     env={"MOAT_TIMEOUT": "2s"})
    finally:
        stop.set()
        th.join()
        s.close(0)
        ctx.term()
    return r, got


def test_submit_is_sent_once_even_when_stray_replies_wake_it_at_its_deadline():
    """SUBMIT is never repeated (a repeat could make two jobs): replies to other
    requests arriving at its deadline woke the wait loop when its next send was
    due at the deadline, and a second SUBMIT went."""
    def serve(s, got, stop):
        peer, t0 = None, None
        while not stop.is_set():
            if s.poll(1):
                frames = s.recv_multipart()
                peer = frames[0]
                got.append(parse_header(frames[1])[0])
                t0 = t0 or time.monotonic()
            if peer is not None and 1.5 < time.monotonic() - t0 < 3.0:  # around the 2 s deadline
                s.send_multipart([peer] + message("REPLY", 424242, {}))
    r, got = submit_to_a_raw_server(serve)
    assert r.rc == 3 and "no reply in 2s" in r.err, r
    assert got == ["SUBMIT"], got


def test_a_controller_gone_after_the_request_may_have_done_it():
    """A controller that took the SUBMIT and then went away is not 'nothing
    listens there' (which says no job was made: a resubmit would be a
    duplicate): the request may have been carried out."""
    def serve(s, got, stop):
        if s.poll(5000):
            got.append(parse_header(s.recv_multipart()[1])[0])
        s.close(0)  # gone, with the request (closing it again after is a no-op)
    r, got = submit_to_a_raw_server(serve)
    assert got == ["SUBMIT"] and r.rc == 3, (got, r)
    assert "the link was lost after the request was sent: it may have been carried out" in r.err, r


def test_a_void_batch_is_sent_again_at_once(fake):
    """ERROR EAGAIN is the controller's "your batch was void, nothing stored"
    (its map grew): the CLI sends the request again at once, SUBMIT too (a
    repeat cannot make two jobs when the first made none), and stops after
    8 tries with that error."""
    calls = {"n": 0}

    def h(t, b, _):
        calls["n"] += 1
        if calls["n"] <= 2:
            return "ERROR", {"code": EAGAIN, "msg": "store was full and has grown; retry the request"}
        return "REPLY", {"id": 12}
    f = fake(h)
    t0 = time.monotonic()
    r = ctl(f, "submit", "--", "true", check=0)
    assert r.out == "12\n" and time.monotonic() - t0 < 5, r
    assert [t for t, _ in f.requests] == ["SUBMIT"] * 3
    f2 = fake(lambda t, b, _: ("ERROR", {"code": EAGAIN, "msg": "store was full and has grown; "
                                                              "retry the request"}))
    r = ctl(f2, "cancel", "3", check=1)
    assert r.err.strip() == "moat cancel: store was full and has grown; retry the request", r.err
    assert len(f2.requests) == 9, f2.requests


@pytest.mark.parametrize("cmd", ["submit", "queue", "show", "cancel", "wait", "result", "nodes",
                                 "local", "ping", "hold", "release", "requeue"])
def test_help_for_every_command(cmd):
    r = run_moat([cmd, "--help"], check=0)
    assert r.out.startswith(f"usage: moat {cmd}") and "\n" in r.out
    assert "Examples:" in r.out
    assert run_moat(["help", cmd], check=0).out == r.out  # as git help CMD


def test_top_level_help_and_unknown_command():
    r = run_moat(["--help"], check=0)
    assert "Exit status" in r.out and "moat local up" in r.out
    r = run_moat(["frobnicate"], check=2)
    assert "frobnicate" in r.err
    run_moat([], check=2)


def test_wait_draws_a_progress_bar_only_on_a_terminal(fake):
    import pty
    import subprocess

    from conftest import MOAT
    calls = {"n": 0}

    def h(t, b, _):
        calls["n"] += 1
        done = calls["n"] > 3
        assert b.get("tasks_limit") == 0, b  # wait needs the counters, not the tasks
        return "REPLY", dict(JOB, state="COMPLETED" if done else "RUNNING", tasks=[], ntasks=4,
                             done=4 if done else 2)
    f = fake(h)
    master, slave = pty.openpty()
    p = subprocess.run([str(MOAT), "--controller", f.endpoint, "wait", "7"], stdout=subprocess.PIPE,
                       stderr=slave, timeout=30, env=dict(os.environ, **FAKE_ENV))
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    bar = b"".join(chunks).decode()
    assert p.returncode == 0 and p.stdout == b""
    assert "2/4 tasks" in bar and "4/4 tasks" in bar and "1/1 jobs" in bar, bar


def test_wait_progress_writes_plain_lines_for_a_log(fake):
    calls = {"n": 0}

    def h(t, b, _):
        calls["n"] += 1
        done = calls["n"] > 8
        return "REPLY", dict(JOB, state="COMPLETED" if done else "RUNNING", tasks=[], ntasks=4,
                             done=4 if done else 2)
    f = fake(h)
    r = ctl(f, "wait", "7", "--progress", "0.3s", check=0)  # stderr is a pipe here
    lines = r.err.splitlines()
    assert len(lines) >= 2 and "\r" not in r.err and "\x1b" not in r.err, r.err
    assert "2/4 tasks, 0/1 jobs" in lines[0] and "4/4 tasks, 1/1 jobs" in lines[-1], lines
    assert ctl(f, "wait", "7", check=0).err == ""  # silent without it
    # an infer job: documents, their rate since waiting began, and the time left
    calls["n"] = 0

    def infer(t, b, _):
        calls["n"] += 1
        done = min(100 * calls["n"], 1000)
        return "REPLY", dict(JOB, kind="infer", state="COMPLETED" if done == 1000 else "RUNNING",
                             tasks=[], ntasks=10, done=done // 100, ndocs=1000, docs_done=done)
    f.handler = infer
    lines = ctl(f, "wait", "7", "--progress", "0.2s", check=0).err.splitlines()
    assert any("/1000 docs" in l for l in lines) and "1000/1000 docs" in lines[-1], lines
    rates = [float(re.search(r"([0-9.]+) docs/s", l).group(1)) for l in lines]
    assert rates[-1] > 0 and all("ETA " in l for l in lines), lines
    eta = [re.search(r"ETA (\S+),", l).group(1) for l in lines]
    assert eta[-1] == "0s", lines  # nothing left
    assert "--progress: duration 'soon'" in ctl(f, "wait", "7", "--progress", "soon", check=2).err


def test_audit_since_reads_a_clock_time_as_the_last_one(fake):
    f = fake(lambda t, b, _: ("REPLY", {"records": []}))
    past = time.localtime(time.time() - 120)
    ctl(f, "audit", "--since", time.strftime("%H:%M", past), check=0)
    since = f.requests[-1][1]["since"]
    assert time.time() - 240 < since <= time.time() - 60, since  # not tomorrow's
    ctl(f, "audit", "--since", "-1h", check=0)
    assert abs(f.requests[-1][1]["since"] - (time.time() - 3600)) < 60
    r = ctl(f, "audit", "--since", "bogus", check=2)
    assert "--since 'bogus'" in r.err and "begin" not in r.err
    # sbatch's words: times of day are the last ones, today is since 00:00, and
    # a time to come (tomorrow, now+1h, a later date) is refused, not moved
    midnight = time.mktime(time.localtime()[:3] + (0, 0, 0, 0, 0, -1))
    for word in ("midnight", "today", "MIDNIGHT"):
        ctl(f, "audit", "--since", word, check=0)
        assert f.requests[-1][1]["since"] == midnight, word
    ctl(f, "audit", "--since", "noon", check=0)
    assert time.time() - 86400 <= f.requests[-1][1]["since"] <= time.time()
    n = len(f.requests)
    for future in ("tomorrow", "now+1h", time.strftime("%Y-%m-%d", time.localtime(time.time() + 3 * 86400))):
        r = ctl(f, "audit", "--since", future, check=2)
        assert f"--since '{future}': a time to come" in r.err, r
    assert len(f.requests) == n
    # before 1970 is every record; after the protocol's bound is a usage error,
    # found before any request (and before the table's header)
    ctl(f, "audit", "--since", "-1000000h", check=0)
    assert f.requests[-1][1]["since"] == 0
    n = len(f.requests)
    r = ctl(f, "audit", "--since", "9999999999999999999", check=2)
    assert "--since '9999999999999999999': time out of range" in r.err and r.out == ""
    assert len(f.requests) == n
    # a refused listing prints no table header before its error
    f.handler = lambda t, b, _: ("ERROR", {"code": 13, "msg": "a client key may not read the audit log"})
    r = ctl(f, "audit", check=1)
    assert r.out == "" and "may not read the audit log" in r.err, r


def test_infer_input_bad_lines_are_named_on_one_line_and_skip_applies(fake, tmp_path):
    got = {}

    def h(t, b, blobs):
        got["docs"] = json.loads(blobs[0])
        return "REPLY", {"id": 1}
    f = fake(h)
    p = tmp_path / "docs.txt"
    p.write_bytes(b"\xef\xbb\xbffirst\n\n   \t\nsec\x00ond\n" + b"x" * ((1 << 20) + 1) + b"\nlast\n")
    r = ctl(f, "submit", "--infer", "m", "--input", p, check=2)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and f"{p}:4: a NUL byte (stopped; --on-bad-line skip" in lines[0], r
    assert "docs" not in got
    r = ctl(f, "submit", "--infer", "m", "--input", p, "--on-bad-line", "skip", check=0)
    assert got["docs"] == ["first", "last"]  # the byte order mark is not text
    assert f"{p}:4: a NUL byte; skipped" in r.err
    assert f"{p}:5: 1048577 bytes; a document is at most 1048576; skipped" in r.err
    assert "2 empty lines skipped" in r.err and "2 bad lines skipped" in r.err
    # JSONL: a repeated key is a bad line (which "text" was meant?), not the last one
    j = tmp_path / "docs.jsonl"
    j.write_text('{"text": "alpha", "text": "beta"}\n{"text": "gamma"}\n')
    r = ctl(f, "submit", "--infer", "m", "--input", j, "--on-bad-line", "skip", check=0)
    assert got["docs"] == ["gamma"] and f"{j}:1: duplicate object key" in r.err, r
    assert "1 bad line skipped" in r.err, r
    r = ctl(f, "submit", "--infer", "m", "--input", tmp_path, check=2)
    assert r.err.strip() == f"moat submit: --input: {tmp_path}: is a directory (give a text or " \
        "JSONL file)", r


def test_keygen_refuses_to_replace_a_key_as_bad_input(tmp_path):
    run_moat(["keygen", "--out", str(tmp_path), "--name", "w"], check=0)
    r = run_moat(["keygen", "--out", str(tmp_path), "--name", "w"], check=2)
    assert "w.key" in r.err and "refusing to replace" in r.err, r
    run_moat(["model", "keygen", "--out", str(tmp_path)], check=0)
    run_moat(["model", "keygen", "--out", str(tmp_path)], check=2)  # the same answer
    # a DIR not there yet is made, as model keygen makes it ("not a directory" before)
    run_moat(["keygen", "--out", str(tmp_path / "new" / "keys"), "--name", "n"], check=0)
    assert (tmp_path / "new" / "keys" / "n.key").stat().st_mode & 0o777 == 0o600
    r = run_moat(["keygen", "--out", str(tmp_path / "w.pub"), "--name", "x"], check=2)
    assert r.err.strip() == f"moat keygen: --out: {tmp_path / 'w.pub'}: not a directory", r


def test_a_page_that_does_not_move_on_stops_the_listing(fake):
    # a confused controller answering the same page for ever: the CLI stops, exit 1
    f = fake(lambda t, b, _: ("REPLY", {"tasks": [{"index": 0, "stdout": "x"}], "tasks_next": 0}
                               if t == "RESULT" else
                               {"jobs": [dict(JOB, tasks=None)], "next": 1}))
    r = ctl(f, "result", "3", check=1, env={"MOAT_TIMEOUT": "2s"})
    assert "does not follow" in r.err and r.out == "xx"
    r = ctl(f, "queue", check=1)
    assert "does not follow" in r.err
    r = ctl(f, "--json", "queue", check=1)
    assert "does not follow" in r.err and json.loads(r.out)["jobs"]


def test_admin_node_takes_the_controller_option_anywhere(fake):
    f = fake(lambda t, b, _: ("REPLY", {"name": b["name"], "state": "DRAINING", "reason": "r"}))
    r = run_moat(["admin", "--controller", f.endpoint, "node", "drain", "n1", "--reason", "r"],
                 check=0, env=FAKE_ENV)
    assert r.out == "node n1: DRAINING (r)\n"
    assert f.requests[-1] == ("ADMIN_NODE", {"op": "drain", "name": "n1", "reason": "r"})
    ctl(f, "admin", "node", "remove", "n1", check=0)
    assert f.requests[-1] == ("ADMIN_NODE", {"op": "remove", "name": "n1"})
