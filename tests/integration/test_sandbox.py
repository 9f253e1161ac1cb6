"""The exec sandbox and the egress posture (issue 5): a sandboxed exec task has no
network but its own loopback, sees only its own processes and directory, runs as
exec_user with a scrubbed environment, and still dies on cancel, time limit and
worker death; nodes report their sandbox mode and whether they route off the
fabric, and a controller with egress_policy = refuse turns such nodes away."""
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from conftest import HOST_EXEC, wait_for

NOBODY = 65534
# The interpreter a task runs: one exec_user can reach on the sandbox's PATH (the
# test's own may live under a private home directory).
PY = "/usr/bin/python3"


def _result(c, jid):
    """The result of a job's only task: {stdout, stderr, exit_code, ...}."""
    return c.j("result", jid)["tasks"][0]


class TcpServer:
    """A TCP server on the host's loopback that answers 'pong' to every connection."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            s.sendall(b"pong")
            s.close()

    def close(self):
        self.sock.close()


class DnsServer:
    """A UDP 'resolver' on the host's loopback: answers any query for NAME with
    192.0.2.7 (a real DNS response, so that any stub resolver would take it)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                q, addr = self.sock.recvfrom(512)
            except OSError:
                return
            # header: id, flags (response, recursion available), 1 question, 1 answer
            resp = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:]
            resp += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 7])
            self.sock.sendto(resp, addr)

    def close(self):
        self.sock.close()


# The probes a task runs: each prints OK on success, FAIL and the reason otherwise.
CONNECT = """
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    print("OK", s.recv(4).decode())
except OSError as e:
    print("FAIL", e)
"""
RESOLVE = """
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\\x07example\\x03org\\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
try:
    s.sendto(q, ("127.0.0.1", int(sys.argv[1])))
    r = s.recv(512)
    print("OK", ".".join(str(b) for b in r[-4:]))
except OSError as e:
    print("FAIL", e)
try:
    socket.getaddrinfo("moat-egress-probe.example.org", 80)
    print("OK getaddrinfo")
except OSError as e:
    print("FAIL getaddrinfo", e)
"""


@pytest.mark.skipif(not os.path.exists(PY), reason=f"{PY} is missing")
def test_sandboxed_job_cannot_reach_the_host_or_resolve_names(make_cluster):
    tcp, dns = TcpServer(), DnsServer()
    try:
        # the same probes run on the host (the test) succeed: the servers are up
        host = subprocess.run([sys.executable, "-c", CONNECT, str(tcp.port)], capture_output=True,
                              text=True, timeout=20).stdout
        assert host.startswith("OK pong"), host
        host = subprocess.run([sys.executable, "-c", RESOLVE, str(dns.port)], capture_output=True,
                              text=True, timeout=20).stdout
        assert host.splitlines()[0] == "OK 192.0.2.7", host
        c = make_cluster(workers=1)
        assert c.nodes()["local-1"]["sandbox"] == "namespaces"
        before = tcp.accepted
        j1 = c.submit(PY, "-c", CONNECT, str(tcp.port))
        j2 = c.submit(PY, "-c", RESOLVE, str(dns.port))
        c.wait(j1, j2, timeout=60)
        out1, out2 = _result(c, j1)["stdout"], _result(c, j2)["stdout"]
        assert out1.startswith("FAIL"), out1
        assert tcp.accepted == before
        lines = out2.splitlines()
        assert lines[0].startswith("FAIL") and lines[1].startswith("FAIL getaddrinfo"), out2
        # and the same job on a node configured unsandboxed reaches the host
        u = make_cluster(workers=1, worker_extra=HOST_EXEC, name="unsandboxed")
        assert u.nodes()["local-1"]["sandbox"] == "off"
        j3 = u.submit(PY, "-c", CONNECT, str(tcp.port))
        j4 = u.submit(PY, "-c", RESOLVE, str(dns.port))
        u.wait(j3, j4, timeout=60)
        assert _result(u, j3)["stdout"].startswith("OK pong")
        assert _result(u, j4)["stdout"].splitlines()[0] == "OK 192.0.2.7"
    finally:
        tcp.close()
        dns.close()


def test_sandboxed_job_sees_only_its_processes_and_its_directory(make_cluster, tmp_path):
    c = make_cluster(workers=1, up=False)
    c.env["MOAT_TEST_WORKER_SECRET"] = "x"  # MOAT_* of the worker: never passed on
    c.env["WORKER_SECRET"] = "leak"
    c.up(1)
    worker_pid = c.pid("worker-1")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777)  # even a world-writable host directory is out of reach
    script = (
        "id -u; echo HOME=$HOME; env | sort | tr '\\n' ' '; echo;"
        "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo;"
        f"echo x > {outside}/escape 2>/dev/null && echo WROTE-OUTSIDE || echo no-outside;"
        f"ls {c.dir} 2>/dev/null | tr '\\n' ' '; echo;"
        "echo mine > here && cat here;"
        "echo t > /tmp/t && echo tmp-ok;"
        "ls ..")
    jid = c.submit("sh", "-c", script)
    c.wait(jid)
    lines = _result(c, jid)["stdout"].splitlines()
    assert int(lines[0]) == NOBODY, lines
    task_dir = Path(lines[1].split("=", 1)[1])
    assert task_dir.parent == (c.dir / "worker-1" / "tasks").resolve(), lines
    env = dict(kv.split("=", 1) for kv in lines[2].split())
    assert "WORKER_SECRET" not in env and "MOAT_TEST_WORKER_SECRET" not in env, env
    assert env["PATH"] == "/usr/bin:/bin" and env["TMPDIR"] == "/tmp" and env["MOAT_JOB_ID"] == str(jid)
    pids = [int(p) for p in lines[3].split()]
    assert 1 in pids and len(pids) <= 6 and worker_pid not in pids, lines[3]
    assert lines[4] == "no-outside" and not (outside / "escape").exists()
    # the cluster's directory shows nothing but the path to the task's own directory
    assert lines[5].split() == ["worker-1"], lines[5]
    assert lines[6] == "mine" and lines[7] == "tmp-ok"
    assert lines[8:] == [task_dir.name], lines  # no other task's directory
    # the same ls of /proc outside the sandbox sees the worker
    u = make_cluster(workers=1, worker_extra=HOST_EXEC, name="unsandboxed")
    j = u.submit("sh", "-c", "ls /proc | grep -E '^[0-9]+$'")
    u.wait(j)
    assert u.pid("worker-1") in [int(p) for p in _result(u, j)["stdout"].split()]


def _procs_with(marker):
    """pids of host processes whose command line (NUL-separated) contains marker."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if marker.encode() in (p / "cmdline").read_bytes():
                found.append(int(p.name))
        except OSError:
            pass
    return found


def test_sandboxed_tasks_die_on_cancel_time_limit_and_worker_kill(make_cluster):
    c = make_cluster(workers=1)
    # cancel: a background child, and one that left the process group (setsid)
    m1 = f"3{uuid.uuid4().int % 10**6:06d}"
    jid = c.submit("sh", "-c", f"sleep {m1} & setsid sleep {m1} & wait")
    wait_for(lambda: len(_procs_with(f"sleep\0{m1}")) == 2, 20, what="the task's sleeps")
    c.moat("cancel", jid)
    c.wait_state(jid, "CANCELLED", timeout=20)
    wait_for(lambda: not _procs_with(f"sleep\0{m1}"), 10, what="every process of the task to be gone")
    # time limit: the task ignores SIGTERM; the SIGKILL after kill_grace ends it all
    m2 = f"3{uuid.uuid4().int % 10**6:06d}"
    jid = c.submit("sh", "-c", f"trap '' TERM; setsid sleep {m2} & sleep {m2} & wait",
                   opts=["--time-limit", "1s"])
    wait_for(lambda: len(_procs_with(f"sleep\0{m2}")) == 2, 20, what="the task's sleeps")
    c.wait_state(jid, "TIMEOUT", timeout=30)
    wait_for(lambda: not _procs_with(f"sleep\0{m2}"), 10, what="every process of the task to be gone")
    # worker killed with -9: its tasks' namespaces die with it
    m3 = f"3{uuid.uuid4().int % 10**6:06d}"
    c.submit("sh", "-c", f"setsid sleep {m3} & sleep {m3} & wait")
    wait_for(lambda: len(_procs_with(f"sleep\0{m3}")) == 2, 20, what="the task's sleeps")
    os.kill(c.pid("worker-1"), signal.SIGKILL)
    wait_for(lambda: not _procs_with(f"sleep\0{m3}"), 10, what="every process of the task to be gone")


def test_exit_status_and_unexecutable_command_through_the_sandbox(cluster):
    jid = cluster.submit("sh", "-c", "echo out; echo err >&2; exit 7")
    cluster.wait(jid, check=1)
    r = _result(cluster, jid)
    assert (r["stdout"], r["stderr"], r["exit_code"]) == ("out\n", "err\n", 7), r
    jid = cluster.submit("sh", "-c", "kill -TERM $$")
    cluster.wait(jid, check=1)
    assert cluster.show(jid)["state"] == "FAILED"
    jid = cluster.submit("/no/such/program")
    cluster.wait(jid, check=1)
    r = _result(cluster, jid)
    assert r["exit_code"] == 127 and "cannot execute /no/such/program" in r["stderr"], r


def test_nodes_report_sandbox_and_egress(make_cluster, moat):
    # fabric_subnets covering everything: no route leaves the fabric
    c = make_cluster(workers=1, worker_extra='fabric_subnets = [ "0.0.0.0/0", "::/0" ];\n')
    n = c.nodes()["local-1"]
    assert (n["sandbox"], n["egress"]) == ("namespaces", False), n
    table = c.moat("nodes").out
    assert "SANDBOX" in table and "EGRESS" in table and "namespaces" in table
    c.down()
    # a fabric of one small subnet: whatever route this host has is beyond it
    with open("/proc/net/route") as f:
        routes = [l.split() for l in f.read().splitlines()[1:]]
    if not any(r[0] != "lo" and int(r[3], 16) & 1 for r in routes):
        pytest.skip("this host has no IPv4 route but loopback: nothing to report as egress")
    w = 'fabric_subnets = [ "10.255.255.0/24" ];\n'
    warn = make_cluster(workers=1, worker_extra=w, name="warn")
    n = warn.nodes()["local-1"]
    assert n["egress"] is True and n["egress_route"], n
    refuse = make_cluster(workers=1, worker_extra=w, controller_extra='egress_policy = "refuse";\n',
                          up=False, name="refuse")
    r = refuse.up(1, check=None)
    assert not isinstance(r, dict) and r.rc != 0, r
    assert "local-1" not in refuse.nodes()
    wlog = (refuse.dir / "worker-1.log").read_text()
    clog = (refuse.dir / "controller.log").read_text()
    assert "refused registration" in wlog and "route beyond the fabric" in wlog, wlog
    assert "egress_policy = refuse" in clog, clog


def test_worker_with_an_unknown_exec_user_does_not_start(make_cluster):
    c = make_cluster(workers=1, worker_extra='exec_user = "no-such-user-moat";\n', up=False)
    r = c.up(1, check=1)
    assert "exec_user" in r.err and "no-such-user-moat" in r.err, r
