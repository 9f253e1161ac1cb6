"""Closed fabric, links and audit (docs/security.md): every link is CURVE with
allowlisted keys; an unlisted key is refused and audited; a revoked key loses
access without a restart; the audit log's hash chain names the first edited
record. Real daemons on loopback, through `moat local up`."""
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, run_moat, wait_for, write_extra
from moatproto import EACCES, EINVAL, EPERM, Client, read_key


def keygen(c, dir_, name):
    r = c.moat("--json", "keygen", "--out", dir_, "--name", name)
    assert (dir_ / f"{name}.key").stat().st_mode & 0o777 == 0o600
    return r.json["public_key"]


def audit(c, action=None):
    recs = c.j("audit")["records"]
    return [r for r in recs if action is None or r["action"] == action]


def test_local_up_is_secure_by_default(cluster):
    d = cluster.dir
    for name in ("controller", "client", "worker-1", "worker-2"):
        assert (d / f"{name}.key").stat().st_mode & 0o777 == 0o600, name
        assert (d / f"{name}.pub").exists()
    conf = (d / "controller.conf").read_text()
    assert "curve_secret_key_file" in conf and "allowlist_file" in conf
    keys = {k["name"]: k for k in cluster.j("admin", "key", "list")["keys"]}
    assert keys["local-client"]["role"] == "admin"
    assert keys["local-1"]["role"] == keys["local-2"]["role"] == "worker"
    # a plaintext client gets nothing from the controller
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(cluster.endpoint)
    from moatproto import message
    s.send_multipart(message("PING", 1))
    assert not s.poll(1000)
    s.close(0)
    ctx.term()


def test_unlisted_client_and_worker_are_refused_and_audited(cluster, tmp_path):
    jid = cluster.submit("echo", "secret output")
    cluster.wait(jid)
    stranger = keygen(cluster, tmp_path, "stranger")
    env = {"MOAT_KEY": str(tmp_path / "stranger.key"), "MOAT_TIMEOUT": "1500ms"}
    # cannot submit, list or read results (the handshake is refused: no reply)
    for args in (["submit", "--", "true"], ["queue", "--all"], ["result", jid], ["nodes"]):
        r = cluster.moat(*args, env=env, check=3)
        assert "secret output" not in r.out
    cl = Client(cluster.endpoint, key=tmp_path / "stranger.key",
                server=cluster.dir / "controller.pub")
    with pytest.raises(TimeoutError):
        cl.call("RESULT", {"id": jid}, timeout=1.5)
    cl.close()
    # a worker with an unlisted key cannot register
    wkey = keygen(cluster, tmp_path, "intruder")
    conf = tmp_path / "intruder.conf"
    conf.write_text(f'name = "intruder";\ncontroller = "{cluster.endpoint}";\n'
                    f'state_dir = "{tmp_path}/intruder";\n'
                    f'curve_secret_key_file = "{tmp_path}/intruder.key";\n'
                    f'controller_public_key_file = "{cluster.dir}/controller.pub";\n')
    w = subprocess.Popen([str(BIN / "moat-worker"), "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        assert "intruder" not in cluster.nodes()
    finally:
        w.kill()
        w.wait()
    # both refusals are in the audit log, with the refused keys as actors
    refused = {r["actor"] for r in audit(cluster, "auth.refuse")}
    assert stranger in refused and wkey in refused
    assert cluster.j("queue", "--all")["jobs"][-1]["id"] == jid  # nothing was submitted
    cluster.moat("audit", "verify")


def test_revoked_key_loses_access_without_a_restart(cluster, tmp_path):
    cpid = cluster.pid("controller")
    ops = keygen(cluster, tmp_path, "ops")
    cluster.moat("admin", "key", "add", tmp_path / "ops.pub", "--role", "client", "--name", "ops")
    env = {"MOAT_KEY": str(tmp_path / "ops.key"), "MOAT_TIMEOUT": "1500ms"}
    cluster.moat("queue", env=env)
    # a client key may not administer
    r = cluster.moat("admin", "key", "list", env=env, check=1)
    assert "a client key may not change or list the allowlist (ADMIN_KEY takes an admin key)" in r.err, r
    assert f"this command used the key in {tmp_path / 'ops.key'} (MOAT_KEY)" in r.err, r
    # an admin may not revoke its own key (it would be locked out for good)
    me = read_key(cluster.dir / "client.pub").decode()
    r = cluster.moat("admin", "key", "revoke", me, check=2)
    assert "is the key of this request" in r.err
    cluster.moat("queue")
    # a connection opened before the revocation...
    cl = Client(cluster.endpoint, key=tmp_path / "ops.key", server=cluster.dir / "controller.pub")
    assert "jobs" in cl.ok("QUEUE")
    cluster.moat("admin", "key", "revoke", ops)
    # ...is refused from the next request on, and new connections are refused
    t, body, _ = cl.call("QUEUE")
    assert t == "ERROR" and body["code"] == EACCES and "revoked" in body["msg"]
    t, body, _ = cl.call("SUBMIT", {"spec": {"kind": "exec", "argv": ["true"]}})
    assert t == "ERROR" and body["code"] == EACCES
    cl.close()
    cluster.moat("queue", env=env, check=3)
    # a worker key cannot submit either (roles)
    w = Client(cluster.endpoint, key=cluster.dir / "worker-1.key",
               server=cluster.dir / "controller.pub")
    t, body, _ = w.call("SUBMIT", {"spec": {"kind": "exec", "argv": ["true"]}})
    assert t == "ERROR" and body["code"] == EACCES
    w.close()
    # a revoked worker's node goes DOWN; added back, it returns, no restart anywhere
    wkey = read_key(cluster.dir / "worker-2.pub").decode()
    cluster.moat("admin", "key", "revoke", wkey)
    wait_for(lambda: cluster.nodes()["local-2"]["state"] == "DOWN", 15, what="local-2 DOWN")
    cluster.moat("admin", "key", "add", wkey, "--role", "worker", "--name", "local-2")
    wait_for(lambda: cluster.nodes()["local-2"]["state"] == "UP", 15, what="local-2 UP")
    assert cluster.pid("controller") == cpid
    actions = [(r["action"], r["object"]) for r in audit(cluster)]
    assert ("key.revoke", f"key {ops}") in actions and ("key.add", f"key {wkey}") in actions
    refused = [r for r in audit(cluster, "auth.refuse")]
    assert any(r["actor"] == ops for r in refused)  # (one record per key per 10 s)
    # the revoked key's first refusal is not taken for a repeat of its refused
    # ADMIN_KEY request (a slot of its own: one per key, one per key and request)
    assert any(r["actor"] == ops and r["object"] == "request QUEUE" for r in refused), refused
    assert any(r["actor"] == wkey and r["object"] == "request HEARTBEAT" for r in refused)
    # the revocation survives a controller restart
    cluster.down()
    cluster.up()
    cluster.moat("queue", env=env, check=3)


def test_audit_verify_in_the_pass_of_an_append_finds_the_chain_intact(cluster):
    # A verify handled in the same loop pass as a SUBMIT (pipelined) read the
    # head of the open batch but walked the committed records: "missing".
    c = Client(cluster.endpoint, cluster.dir)
    broken = []
    for _ in range(10):
        r1 = c.send("SUBMIT", {"spec": {"kind": "exec", "argv": ["true"], "hold": True}})
        r2 = c.send("AUDIT", {"verify": True})
        got = {}
        while len(got) < 2:
            t, rid, body, _ = c.recv(10)
            got[rid] = (t, body)
        assert got[r1][0] == "REPLY" and got[r2][0] == "REPLY", got
        if not got[r2][1]["ok"]:
            broken.append(got[r2][1])
    c.close()
    assert broken == [], broken


def test_audit_records_submissions_cancellations_and_placements(cluster):
    a = cluster.submit("true", opts=("--name", "audited"))
    b = cluster.submit("sleep", "60")
    cluster.wait(a)
    cluster.wait_state(b, "RUNNING")
    cluster.moat("cancel", b)
    recs = audit(cluster)
    client = read_key(cluster.dir / "client.pub").decode()
    sub = [r for r in recs if r["action"] == "submit" and r["object"] == f"job {a}"]
    assert len(sub) == 1 and sub[0]["actor"] == client and sub[0]["details"]["name"] == "audited"
    assert any(r["action"] == "place" and r["object"] == f"task {a}.0"
               and r["actor"] == "controller" for r in recs)
    assert any(r["action"] == "cancel" and r["object"] == f"job {b}" for r in recs)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    for prev, r in zip(recs, recs[1:]):
        assert len(r["hash"]) == 64 and r["hash"] != prev["hash"]
    since = cluster.j("audit", "--since", str(recs[-1]["time"]))["records"]
    assert since and since[0]["seq"] >= recs[-1]["seq"] - 1
    v = cluster.j("audit", "verify")
    assert v["ok"] and v["records"] >= len(recs) and v["head"] == cluster.j("audit")["records"][-1]["hash"]


def test_editing_the_audit_file_is_detected(cluster):
    """Flip one byte of a record inside the controller's LMDB file (LMDB pages
    carry no checksum, so only the chain can tell)."""
    jid = cluster.submit("tamperme-7")
    cluster.wait(jid, check=1)
    seq = [r for r in audit(cluster) if r["object"] == f"job {jid}" and r["action"] == "submit"][0]["seq"]
    cluster.moat("audit", "verify")
    cluster.down()
    data = cluster.dir / "controller" / "data.mdb"
    raw = bytearray(data.read_bytes())
    needle = b'"argv0":"tamperme-7"'  # only in the audit record (jobs keep "argv")
    at = raw.find(needle)
    assert at >= 0
    while at >= 0:  # every copy, live or stale
        raw[at + len(needle) - 2] = ord("8")
        at = raw.find(needle, at + 1)
    data.write_bytes(bytes(raw))
    cluster.up()
    r = cluster.moat("audit", "verify", check=1)
    assert f"audit record {seq}:" in r.err, r
    v = cluster.j("audit", "verify", check=1)
    assert v["ok"] is False and v["first_bad"] == seq


def test_admin_takes_keys_that_begin_with_a_dash(cluster):
    # '-' is in the Z85 alphabet: one key in 85 starts with it (a flaky failure
    # of the revoke test above found this).
    key = "-{Z}GcB^:#scn#a5J3Trj6H[.Y?{G]y6.SflK.4G"
    cluster.moat("admin", "key", "add", key, "--role", "client")
    cluster.moat("admin", "key", "revoke", key)
    keys = {k["key"]: k for k in cluster.j("admin", "key", "list")["keys"]}
    assert keys[key]["state"] == "revoked", keys[key]


def test_a_worker_key_cannot_register_as_another_node_or_as_many(cluster):
    # worker-2's key posing as local-1 would take over local-1's tasks and
    # forge their results; registering new names would flood the node table
    # and draw real work to the attacker's socket.
    jid = cluster.submit("sh", "-c", "sleep 2; echo genuine", opts=["--array", "0-3"])
    wait_for(lambda: all(t["state"] == "RUNNING" for t in cluster.show(jid)["tasks"]), 20,
             what="every element running")
    victim = [t for t in cluster.show(jid)["tasks"] if t["node"] == "local-1"]
    w = Client(cluster.endpoint, key=cluster.dir / "worker-2.key",
               server=cluster.dir / "controller.pub")
    reg = {"host": "vm", "pid": 1, "cpus": 64, "gpus": 0, "mem_bytes": 1 << 30,
           "backend": "cpu", "instance": "impostor",
           "tasks": [{"job": jid, "task": t["index"], "attempt": t["attempts"], "ended": False}
                     for t in victim]}
    t, body, _ = w.call("REGISTER", dict(reg, name="local-1"))
    assert t == "ERROR" and body["code"] == EPERM and "another worker key" in body["msg"], body
    for i in range(3):
        t, body, _ = w.call("REGISTER", dict(reg, name=f"ghost-{i}", tasks=[]))
        assert t == "ERROR" and body["code"] == EPERM and "local-2" in body["msg"], body
    # what the log and `moat nodes` print is plain text
    for field, value in (("host", "vm\nINJECTED LOG LINE"), ("backend", "\x1b[31mred"),
                         ("backend", "tpu"), ("sandbox", "whatever"), ("version", "1.0\r")):
        t, body, _ = w.call("REGISTER", dict(reg, name="local-2", tasks=[], **{field: value}))
        assert t == "ERROR" and body["code"] == EINVAL and field in body["msg"], body
    # the forged end of a victim task is not from its node: ignored
    for v in victim:
        w.send("TASK_END", {"job": jid, "task": v["index"], "attempt": v["attempts"],
                            "state": "COMPLETED", "exit_code": 0, "signal": 0, "truncated": False,
                            "start_time": time.time() - 1, "end_time": time.time()},
               blobs=[b"FORGED\n", b""])
        r = w.recv(5)
        assert r is not None and r[0] == "ERROR", r  # not registered: refused
    w.close()
    cluster.wait(jid, timeout=30)
    assert cluster.moat("result", jid).out == "genuine\n" * 4
    assert set(cluster.nodes()) == {"local-1", "local-2"}
    assert cluster.nodes()["local-1"]["state"] == "UP"
    refused = [r for r in audit(cluster, "auth.refuse") if r["object"].startswith("register node")]
    assert {r["object"] for r in refused} >= {"register node local-1", "register node ghost-0"}


def test_uploads_of_two_clients_never_mix(cluster, tmp_path):
    # Another client sending bytes for the same file hash must not spoil a
    # genuine import (the uploads were one shared file per hash); a chunk
    # sent again restarts the upload from its offset; and a role refusal of
    # an allowlisted key is audited every time, not folded into a count.
    other = keygen(cluster, tmp_path, "other")
    cluster.moat("admin", "key", "add", other, "--role", "client", "--name", "other")
    me = Client(cluster.endpoint, key=cluster.dir / "client.key", server=cluster.dir / "controller.pub")
    them = Client(cluster.endpoint, key=tmp_path / "other.key", server=cluster.dir / "controller.pub")
    sha = "ab" * 32

    def put(cl, off, data, total=300):
        body = {"name": "m", "file": "config.json", "sha256": sha, "offset": off, "total": total}
        cl.send("MODEL_PUT", body, blobs=[data])
        t, _, b, _ = cl.recv(10)
        return t, b

    assert put(me, 0, b"a" * 100) == ("REPLY", {"received": 100})
    assert put(them, 0, b"x" * 150) == ("REPLY", {"received": 150})  # their own upload
    assert put(me, 100, b"b" * 100) == ("REPLY", {"received": 200})  # mine goes on at 100
    t, b = put(them, 300 - 20, b"y" * 20)
    assert t == "ERROR" and "expected 150" in b["msg"], b
    # my chunk at 0 sent again (a lost reply): the upload restarts there
    assert put(me, 0, b"a" * 100) == ("REPLY", {"received": 100})
    t, b = put(me, 200, b"c" * 100)
    assert t == "ERROR" and "expected 100" in b["msg"], b
    parts = sorted(p.name for p in (cluster.dir / "controller" / "artifacts" / "upload").iterdir())
    assert len(parts) == 2 and all(p.endswith(f"-{sha}.part") for p in parts), parts
    # the client key may not administer: each different attempt is its own
    # audit record (one repeated in a loop is counted, not recorded again)
    for op in ("list", "add", "list"):
        t, b, _ = them.call("ADMIN_KEY", {"op": op, "key": other} if op == "add" else {"op": op})
        assert t == "ERROR" and b["code"] == EACCES
    t, b, _ = them.call("AUDIT", {"verify": True})
    assert t == "ERROR" and b["code"] == EACCES
    mine = [r["object"] for r in audit(cluster, "auth.refuse") if r["actor"] == other]
    assert sorted(mine) == ["request ADMIN_KEY add", "request ADMIN_KEY list", "request AUDIT"], mine
    me.close()
    them.close()
    # a restart removes the unfinished uploads
    cluster.down()
    cluster.up()
    assert list((cluster.dir / "controller" / "artifacts" / "upload").iterdir()) == []


def test_a_client_may_cancel_and_read_only_its_own_jobs(cluster, tmp_path):
    # As in Slurm: anyone may list jobs; only the job's user (here: the key
    # that submitted it) or an admin may cancel it or read its output.
    keys = {}
    for who in ("alice", "bob"):
        keys[who] = keygen(cluster, tmp_path, who)
        cluster.moat("admin", "key", "add", keys[who], "--role", "client", "--name", who)
    env = {who: {"MOAT_KEY": str(tmp_path / f"{who}.key")} for who in keys}
    jid = cluster.moat("submit", "--", "sh", "-c", "echo alice-secret; sleep 30",
                       env=env["alice"]).out.strip()
    cluster.wait_state(jid, "RUNNING")
    assert cluster.show(jid)["owner"] == keys["alice"]
    r = cluster.moat("result", jid, env=env["bob"], check=1)
    assert "another key" in r.err and "alice-secret" not in r.out, r
    r = cluster.moat("cancel", jid, env=env["bob"], check=1)
    assert "another key" in r.err, r
    assert cluster.show(jid, )["state"] == "RUNNING"
    cluster.moat("queue", env=env["bob"])  # listing stays open
    cluster.moat("cancel", jid)  # an admin key may
    cluster.wait_state(jid, "CANCELLED", timeout=20)
    assert "alice-secret" in cluster.moat("result", jid, env=env["alice"]).out
    refused = {r["object"] for r in audit(cluster, "auth.refuse") if r["actor"] == keys["bob"]}
    assert refused >= {f"read the results of job {jid}", f"cancel job {jid}"}, refused


def test_queue_me_lists_only_my_jobs(cluster, tmp_path):
    """moat queue --me (squeue --me): the jobs this client's key submitted."""
    other = keygen(cluster, tmp_path, "colleague")
    cluster.moat("admin", "key", "add", other, "--role", "client", "--name", "colleague")
    theirs_env = {"MOAT_KEY": str(tmp_path / "colleague.key")}
    mine = cluster.submit("true", opts=["--begin", "now+1h"])
    theirs = cluster.moat("--json", "submit", "--begin", "now+1h", "--", "true", env=theirs_env).json["id"]
    assert {j["id"] for j in cluster.j("queue")["jobs"]} == {mine, theirs}
    assert [j["id"] for j in cluster.j("queue", "--me")["jobs"]] == [mine]
    r = cluster.moat("--json", "queue", "--me", env=theirs_env)
    assert [j["id"] for j in r.json["jobs"]] == [theirs]
    assert f"{theirs}" not in cluster.moat("queue", "--me").out.split()


NOBODY = 65534


def _as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _moat_as_nobody(dir_, *args, timeout=90):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(dir_), "MOAT_DIR": str(dir_ / "c")}
    return subprocess.run([str(BIN / "moat"), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_as_nobody)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs a cluster as user nobody")
def test_an_unsandboxed_task_cannot_read_the_daemons_memory():
    """An unsandboxed exec task runs as the daemons' own user. The daemons and
    the reaper service are not dumpable (keys_process_guard), so the task may
    not open their /proc/PID/environ or /proc/PID/mem, as it would not be let
    ptrace(2) them, while it may open its own; the kernel owns their /proc
    files as root."""
    try:  # a checkout under a directory of mode 0700 (as /root) is out of nobody's reach
        probe = _moat_as_nobody(Path("/tmp"), "--help", timeout=30)
        why = probe.stderr.strip()[:200] if probe.returncode != 0 else None
    except OSError as e:
        why = str(e)
    if why is not None:
        pytest.skip(f"user nobody cannot run {BIN / 'moat'}: {why}")
    top = Path(tempfile.mkdtemp(prefix="moat-test-nobody-", dir="/tmp"))
    try:
        os.chown(top, NOBODY, NOBODY)
        d = top / "c"
        write_extra(d, worker='exec_sandbox = "off";\n')
        for p in [d, *d.iterdir()]:
            os.chown(p, NOBODY, NOBODY)
        r = _moat_as_nobody(top, "--json", "local", "up", "--workers", "1", "--dir", d)
        assert r.returncode == 0, r.stderr
        up = json.loads(r.stdout)
        daemons = {"controller": up["controller_pid"], "worker": up["worker_pids"][0]}
        # the first unsandboxed launch starts the reaper service
        r = _moat_as_nobody(top, "submit", "--wait", "--", "true")
        assert r.returncode == 0, r.stderr
        daemons["reaper service"] = next(
            int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and b"moat-reap\0--serve\0" in _cmdline(p)
            and _ppid(p) == daemons["worker"])
        for name, pid in daemons.items():
            st = Path(f"/proc/{pid}/status").stat()
            assert st.st_uid == 0, f"{name} (pid {pid}) is dumpable: /proc owned by {st.st_uid}"
        tries = [f"{pid}/{f}" for pid in [*daemons.values(), "self"] for f in ("environ", "mem")]
        script = "; ".join(f"true </proc/{t} 2>/dev/null && echo {t}:open || echo {t}:refused"
                           for t in tries)
        r = _moat_as_nobody(top, "--json", "submit", "--wait", "--", "sh", "-c", script)
        assert r.returncode == 0, r.stderr
        out = _moat_as_nobody(top, "result", json.loads(r.stdout)["jobs"][0]["id"]).stdout.split()
        assert "self/environ:open" in out and "self/mem:open" in out, out
        for name, pid in daemons.items():
            for f in ("environ", "mem"):
                assert f"{pid}/{f}:refused" in out, f"the task opened {name}'s {f}: {out}"
    finally:
        _moat_as_nobody(top, "local", "down", "--dir", top / "c", timeout=60)
        shutil.rmtree(top, ignore_errors=True)


def _cmdline(p):
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


def _ppid(p):
    try:
        return int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def test_a_peer_cannot_forge_log_lines_or_flood_the_log(cluster):
    # Text from peers reaches the log quoted in a line of the controller's:
    # a newline in it must not start a line of the attacker's making, an
    # escape sequence must not reach an operator's terminal, and unsolicited
    # messages are logged at most 20 per 10 s.
    c = Client(cluster.endpoint, key=cluster.dir / "client.key",
               server=cluster.dir / "controller.pub")
    forged = "2026-11-30T23:55:11.601Z info ctl: node FORGED registered"
    for i in range(60):
        c.send("ERROR", {"code": 1, "msg": f"x{i}\n{forged}\x1b[31mRED"})
    assert c.call("PING")[0] == "REPLY"  # served all along
    c.close()
    log = (cluster.dir / "controller.log").read_text()
    lines = [ln for ln in log.splitlines() if "reported an error" in ln]
    assert len(lines) == 20, len(lines)
    assert "x0\\x0a2026-11-30T23:55:11.601Z info ctl: node FORGED registered\\x1b[31mRED" in lines[0]
    assert not any(ln.startswith(forged) for ln in log.splitlines())
    assert "\x1b" not in log


def test_unfinished_tasks_are_limited_per_key_and_in_all(make_cluster, tmp_path):
    # A key submitting arrays of held tasks could take the controller's
    # memory (about 100 bytes per task until its job ends): max_tasks_per_key
    # and max_tasks refuse what would pass them, as Slurm's MaxSubmitJobs and
    # MaxJobCount; a job that ends gives its tasks back; a restart recounts.
    c = make_cluster(workers=1, controller_extra="max_tasks_per_key = 10;\nmax_tasks = 15;\n")
    other = keygen(c, tmp_path, "other")
    c.moat("admin", "key", "add", other, "--role", "client")
    env = {"MOAT_KEY": str(tmp_path / "other.key")}

    def submit(n, check=0, as_other=False):
        return c.moat("submit", "--hold", "--array", f"0-{n - 1}", "--", "true",
                      env=env if as_other else None, check=check)

    a = submit(6).out.strip()
    r = submit(5, check=1)
    assert r.err.strip() == ("moat submit: 5 tasks: this key's unfinished jobs hold 6, "
                             "and max_tasks_per_key is 10; submit again when some have ended"), r
    # more than the limit allows in all can never fit: said so, not "submit again"
    r = submit(11, check=1)
    assert "11 tasks: more than max_tasks_per_key (10) allows one key in all" in r.err, r
    submit(6, as_other=True)
    r = submit(4, as_other=True, check=1)  # 10 of its own, but 16 in all
    assert "unfinished jobs hold 12, and the controller's max_tasks is 15" in r.err, r
    submit(3, as_other=True)
    c.down()
    c.up(1)  # recounted from the store: 6 + 9
    assert "max_tasks is 15" in submit(1, check=1).err
    c.moat("cancel", a)
    c.wait(a, check=1)
    b = submit(4).out.strip()  # the cancelled job's 6 are free again
    assert "this key's unfinished jobs hold 4" in submit(7, check=1).err
    c.moat("cancel", b)
    c.wait(b, check=1)
    r = c.moat("requeue", a, b, check=1)  # 6 + 4 again: the second would pass max_tasks
    assert "4 tasks: unfinished jobs hold 15, and the controller's max_tasks is 15" in r.err, r
    assert c.show(b)["state"] == "CANCELLED" and c.show(a)["state"] == "PENDING"


def test_a_worker_key_moving_from_name_to_name_leaves_no_trail(cluster, tmp_path):
    # A key holds one node; once that node is DOWN it may register under a
    # new name (a renamed worker), and the old node is removed: a key cannot
    # pile up DOWN nodes (each drawing dispatches until it is found silent).
    key = keygen(cluster, tmp_path, "roamer")
    cluster.moat("admin", "key", "add", key, "--role", "worker")
    w = Client(cluster.endpoint, key=tmp_path / "roamer.key", server=cluster.dir / "controller.pub")
    reg = {"host": "vm", "pid": 1, "cpus": 1, "gpus": 0, "mem_bytes": 1 << 30, "backend": "cpu",
           "instance": "i", "tasks": []}
    for i in range(4):
        t, body, _ = w.call("REGISTER", dict(reg, name=f"ghost-{i}", instance=f"i{i}"))
        assert t == "REPLY", body
        wait_for(lambda: cluster.nodes()[f"ghost-{i}"]["state"] == "DOWN", 10, what="silence noticed")
    w.close()
    assert sorted(cluster.nodes()) == ["ghost-3", "local-1", "local-2"]
    assert "ghost-2 is removed" in (cluster.dir / "controller.log").read_text()


def test_a_workers_absurd_times_for_a_task_are_not_believed(make_cluster, tmp_path):
    # A worker's TASK_END says when the process started and ended: a start
    # after the end, or times far from the dispatch and now (a broken clock,
    # a forged message) are replaced by the dispatch time and now.
    c = make_cluster(workers=1)
    key = keygen(c, tmp_path, "clock")
    c.moat("admin", "key", "add", key, "--role", "worker")
    c.moat("admin", "node", "drain", "local-1")
    w = Client(c.endpoint, key=tmp_path / "clock.key", server=c.dir / "controller.pub")
    t, body, _ = w.call("REGISTER", {"name": "clock", "host": "vm", "pid": 1, "cpus": 1, "gpus": 0,
                                     "mem_bytes": 1 << 30, "backend": "cpu", "instance": "i",
                                     "tasks": []})
    assert t == "REPLY", body
    before = time.time()
    jid = c.submit("true")
    while True:
        w.send("HEARTBEAT", {"name": "clock", "instance": "i", "running": 0})
        r = w.recv(0.1)
        if r and r[0] == "DISPATCH":
            break
    d = r[2]
    w.send("TASK_END", {"job": d["job"], "task": d["task"], "attempt": d["attempt"],
                        "state": "COMPLETED", "exit_code": 0, "signal": 0, "truncated": False,
                        "start_time": 1e11, "end_time": 0.0}, blobs=[b"", b""])
    c.wait(jid, timeout=20)
    w.close()
    task = c.show(jid)["tasks"][0]
    assert before - 1 <= task["start_time"] <= task["end_time"] <= time.time() + 1, task
    assert "are outside the dispatch" in (c.dir / "controller.log").read_text()


def test_one_keys_unfinished_uploads_are_bounded(make_cluster):
    # Bytes a client sends for a model import are on disk before they are
    # checked: one key's unfinished uploads stop at upload_max, so a key
    # cannot fill the state directory's disk under the store.
    c = make_cluster(workers=1, controller_extra='upload_max = "8 MiB";\n')
    cl = Client(c.endpoint, key=c.dir / "client.key", server=c.dir / "controller.pub")

    def put(sha, off, size, total):
        return cl.call("MODEL_PUT", {"name": "m", "file": "model.safetensors", "sha256": sha * 32,
                                     "offset": off, "total": total}, blobs=[b"x" * size])

    assert put("ab", 0, 4 << 20, 6 << 20)[0] == "REPLY"
    assert put("ab", 4 << 20, 2 << 20, 6 << 20)[0] == "REPLY"
    t, body, _ = put("cd", 0, 3 << 20, 4 << 20)  # 6 MiB held + 3
    assert t == "ERROR" and body["code"] == errno.EDQUOT, body
    assert "unfinished uploads hold 6.0 MiB, and upload_max is 8.0 MiB" in body["msg"], body
    t, body, _ = put("ef", 0, 1 << 20, 9 << 20)  # declared past the limit on its own
    assert t == "ERROR" and body["code"] == errno.EDQUOT, body
    assert put("cd", 0, 2 << 20, 2 << 20)[0] == "REPLY"  # 6 + 2: within
    cl.close()


def rewrite(path, text):
    """Replace path's text at once (a new inode: the controller sees a change)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_allowlist_file_edits_are_audited_and_checked(cluster, tmp_path):
    """Keys added, dropped or given another role by editing allowlist_file are
    audited as `moat admin key` changes are; a key listed twice with different
    roles or a comment taken into a name keeps the old list."""
    allow = cluster.dir / "allowlist"
    base = allow.read_text()
    ops = keygen(cluster, tmp_path, "ops")

    def records(action):
        return [r for r in audit(cluster, action) if r["object"] == f"key {ops}"]

    rewrite(allow, base + f"client {ops} ops\n")
    add = wait_for(lambda: records("key.add"), 10, what="key.add record")
    assert add[0]["actor"] == "controller" and add[0]["details"]["role"] == "client", add
    assert add[0]["details"]["source"] == str(allow), add
    rewrite(allow, base + f"admin {ops} ops\n")
    ch = wait_for(lambda: records("key.change"), 10, what="key.change record")
    assert ch[0]["details"]["role"] == "admin" and ch[0]["details"]["old_role"] == "client", ch
    n = len(base.strip().splitlines())
    rewrite(allow, base + f"admin {ops} ops\nclient {ops} ops-too\n")
    log = cluster.dir / "controller.log"
    wait_for(lambda: "already listed" in log.read_text(), 10, what="duplicate refused")
    assert f"{allow}:{n + 2}: key {ops}: already listed at line {n + 1} as admin" in log.read_text()
    rewrite(allow, base + f"admin {ops} ops # the ops team\n")
    wait_for(lambda: "'#' in the name" in log.read_text(), 10,
             what="comment in a name refused")
    keys = {k["key"]: k for k in cluster.j("admin", "key", "list")["keys"]}
    assert keys[ops]["role"] == "admin" and keys[ops]["name"] == "ops", keys[ops]
    rewrite(allow, base)
    wait_for(lambda: records("key.remove"), 10, what="key.remove record")
    assert ops not in {k["key"] for k in cluster.j("admin", "key", "list")["keys"]}
    assert cluster.j("audit", "verify")["ok"]
    # the refusal names the roles with the right article
    cl = Client(cluster.endpoint, key=cluster.dir / "client.key",
                server=cluster.dir / "controller.pub")
    t, body, _ = cl.call("REGISTER", {"name": "x"})
    cl.close()
    assert t == "ERROR" and "an admin key may not register as a node (REGISTER takes a worker key)" in body["msg"], body


def start_controller(tmp_path, allow_text, key=None):
    """moat-controller on its own with allowlist_file holding allow_text."""
    if not (tmp_path / "ctl.key").exists():
        run_moat(["keygen", "--out", tmp_path, "--name", "ctl"], check=0)
    (tmp_path / "allowlist").write_text(allow_text)
    conf = tmp_path / "c.conf"
    conf.write_text(f'listen = [ "tcp://127.0.0.1:*" ];\nstate_dir = "{tmp_path}/state";\n'
                    f'curve_secret_key_file = "{key or tmp_path / "ctl.key"}";\n'
                    f'allowlist_file = "{tmp_path}/allowlist";\n'
                    f'endpoint_file = "{tmp_path}/endpoint";\n')
    return subprocess.Popen([str(BIN / "moat-controller"), "-c", str(conf)],
                            stderr=subprocess.PIPE, text=True)


def test_an_empty_allowlist_is_warned_about(tmp_path):
    p = start_controller(tmp_path, "# nobody yet\n")
    try:
        wait_for(lambda: (tmp_path / "endpoint").exists(), 10, what="controller up")
        time.sleep(0.3)
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1]
    assert "no key is allowed" in err and "every connection is refused, an admin's too" in err, err


def stopped(p, timeout=10):
    """p's stderr once it exits; killed (and the test failed) if it does not."""
    try:
        return p.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("the controller kept running")


def test_a_bad_allowlist_or_key_path_stops_the_controller(tmp_path):
    run_moat(["keygen", "--out", tmp_path, "--name", "ctl"], check=0)
    k = read_key(tmp_path / "ctl.pub").decode()
    p = start_controller(tmp_path, f"admin {k} a\nworker {k} b\n")
    err = stopped(p)
    assert p.returncode != 0
    assert f"{tmp_path}/allowlist:2: key {k}: already listed at line 1 as admin" in err, err
    (tmp_path / "keydir").mkdir()
    p = start_controller(tmp_path, f"admin {k} a\n", key=tmp_path / "keydir")
    err = stopped(p)
    assert p.returncode != 0 and "keydir: is a directory, not a key file" in err, err


def test_a_revoked_worker_logs_the_refusal_once_not_every_heartbeat(cluster):
    # It logged "HEARTBEAT: key revoked" at every heartbeat, for as long as it ran.
    wkey = read_key(cluster.dir / "worker-2.pub").decode()
    cluster.moat("admin", "key", "revoke", wkey)
    wait_for(lambda: cluster.nodes()["local-2"]["state"] == "DOWN", 15, what="local-2 DOWN")
    time.sleep(2.0)  # heartbeats every 200 ms: ten more refusals at least
    lines = [ln for ln in (cluster.dir / "worker-2.log").read_text().splitlines()
             if "key revoked" in ln]
    assert len(lines) == 1, lines
    assert "warn wrk: controller: HEARTBEAT: key revoked" in lines[0], lines
