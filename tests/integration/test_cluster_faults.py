"""Failures a cluster must survive: a worker or the controller killed with -9,
cancel and time limits reaching running processes, garbage on the controller's
port, and a node whose launches always fail."""
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

import zmq

from conftest import pid_alive, wait_for
from moatproto import Client, curve_client, header


def test_worker_killed_mid_task_is_requeued_and_runs_once(host_cluster, tmp_path):
    cluster = host_cluster  # its tasks write to tmp_path: unsandboxed
    marks = tmp_path / "marks"
    marks.mkdir()
    effect = tmp_path / "effect"
    # Each attempt leaves a start mark; the side effect comes after a sleep, so a
    # first attempt that survived its worker's death would add a second line.
    script = f"touch {marks}/start.$$; sleep 1.5; echo done >> {effect}"
    jid = cluster.submit("sh", "-c", script)
    wait_for(lambda: list(marks.iterdir()), 20, what="the task to start")
    node = cluster.show(jid)["tasks"][0]["node"]
    assert node in ("local-1", "local-2")
    victim = cluster.pid("worker-" + node.split("-")[1])
    os.kill(victim, signal.SIGKILL)
    cluster.wait(jid, timeout=60)
    job = cluster.show(jid)
    task = job["tasks"][0]
    assert job["state"] == "COMPLETED", job
    assert task["attempts"] == 2 and task["node"] != node, job
    assert len(list(marks.iterdir())) == 2
    # Long enough for a surviving first attempt (1.5 s sleep) to have written.
    time.sleep(2.0)
    assert effect.read_text() == "done\n"
    assert cluster.nodes()[node]["state"] == "DOWN"
    cluster.up()  # the killed worker comes back and gets work again
    assert cluster.nodes()[node]["state"] == "UP"


def test_controller_killed_during_burst_keeps_every_acknowledged_job(cluster):
    n = 2000
    specs = [{"kind": "exec", "name": f"burst-{i}", "argv": ["true"]} for i in range(n)]
    cpid = cluster.pid("controller")
    client = Client(cluster.endpoint, cluster.dir)
    killed = threading.Event()

    def on_ack(count):
        if count == 400 and not killed.is_set():
            os.kill(cpid, signal.SIGKILL)
            killed.set()

    acked = client.submit_burst(specs, window=400, on_ack=on_ack, idle_timeout=2.0)
    client.close()
    assert killed.is_set(), f"only {len(acked)} acknowledged before the burst ended"
    print(f"burst: {len(acked)} of {n} acknowledged before the kill")
    assert 400 <= len(acked) < n
    wait_for(lambda: not pid_alive(cpid), 5)
    cluster.up()  # restarts the controller only
    ids = sorted(acked.values())
    assert len(set(ids)) == len(ids)
    # Every acknowledged job is there, with its own spec, and completes.
    r = cluster.moat("wait", *ids, "--timeout", "120s", timeout=180)
    assert r.rc == 0, r
    jobs = {j["id"]: j for j in cluster.j("queue", "--all")["jobs"]}
    for k, jid in acked.items():
        assert jobs[jid]["name"] == f"burst-{k}", jobs[jid]
        assert jobs[jid]["state"] == "COMPLETED"
    # No job was stored twice.
    names = [j["name"] for j in jobs.values()]
    assert len(names) == len(set(names))


def _pid_from(path):
    def read():
        try:
            t = path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(t) if t else None
    return wait_for(read, 20, what=f"{path}")


def test_cancel_kills_the_running_process_group(host_cluster, tmp_path):
    cluster = host_cluster  # its tasks write to tmp_path: unsandboxed
    pidf = tmp_path / "bg.pid"
    # A background grandchild in the task's process group must die too.
    jid = cluster.submit("sh", "-c", f"sleep 300 & echo $! > {pidf}; wait")
    pid = _pid_from(pidf)
    assert pid_alive(pid)
    cluster.wait_state(jid, "RUNNING")
    cluster.moat("cancel", jid)
    cluster.wait_state(jid, "CANCELLED", timeout=20)
    wait_for(lambda: not pid_alive(pid), 10, what="the task's process to be gone")
    assert cluster.show(jid)["tasks"][0]["state"] == "CANCELLED"
    cluster.moat("wait", jid, check=1)
    # a pending array is cancelled whole
    arr = cluster.submit("sleep", "300", opts=["--array", "0-9%1"])
    cluster.wait_state(arr, "RUNNING")
    cluster.moat("cancel", arr)
    job = cluster.wait_state(arr, "CANCELLED", timeout=20)
    assert all(t["state"] == "CANCELLED" for t in job["tasks"]), job


def test_time_limit_ends_task_as_timeout(host_cluster, tmp_path):
    cluster = host_cluster  # its tasks write to tmp_path: unsandboxed
    pidf = tmp_path / "pid"
    t0 = time.time()
    # trap: the task ignores SIGTERM, so only the SIGKILL after kill_grace ends it
    jid = cluster.submit("sh", "-c", f"trap '' TERM; echo $$ > {pidf}; sleep 300 & wait; wait",
                         opts=["--time-limit", "1s"])
    pid = _pid_from(pidf)
    job = cluster.wait_state(jid, "TIMEOUT", timeout=30)
    assert job["tasks"][0]["state"] == "TIMEOUT"
    assert job["end_time"] - t0 < 15, job
    wait_for(lambda: not pid_alive(pid), 10, what="the task's process to be gone")
    r = cluster.moat("wait", jid, check=1)
    assert "TIMEOUT" in r.err and "time limit (1s) was reached" in r.err, r.err
    assert job["reason"] == "task 0: its time limit (1s) was reached", job


def test_garbage_on_the_controller_port_leaves_it_serving(cluster):
    ep = cluster.endpoint
    host, port = ep[len("tcp://"):].rsplit(":", 1)
    cpid = cluster.pid("controller")
    rnd = random.Random(2)
    # 1. raw TCP garbage, and truncated ZMTP greetings
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NULL" + b"\x00" * 16 + b"\x00" * 31
    for i in range(40):
        s = socket.create_connection((host, int(port)))
        if i % 4 == 0:
            s.sendall(greeting[: rnd.randint(1, len(greeting) - 1)])
        else:
            s.sendall(rnd.randbytes(rnd.randint(1, 5000)))
        s.close()
    # 2. well-formed ZMTP carrying malformed moat messages
    ok = header("PING", 1)
    bad_frames = [
        [b""], [b"x" * 16], [ok[:15], b"{}"], [ok + b"\x00", b"{}"],
        [header("PING", 2, magic=0x1234), b"{}"], [header("PING", 3, version=2), b"{}"],
        [header(0, 4), b"{}"], [header(99, 5), b"{}"], [header("PING", 6, reserved=1), b"{}"],
        [ok], [ok, b"not json"], [ok, b"[1,2]"], [ok, b"{\"a\":1}"], [ok, b"\xff\xfe"],
        [header("SHOW", 7), b'{"id": -1}'], [header("SHOW", 8), b'{"id": 1, "id": 2}'],
        [header("SHOW", 9), b'{"id": "1"}'], [header("SHOW", 10), b'{"id": 1e300}'],
        [header("QUEUE", 11), b'{"state": "' + b"x" * 100 + b'"}'],
        [header("CANCEL", 12), b'{"ids": [0]}'], [header("RESULT", 13), b'{"id": 1, "task": -1}'],
        [header("SUBMIT", 14), b'{"spec": 1}'],
        [header("SUBMIT", 15), b'{"spec": {"kind": "exec", "argv": []}}'],
        [header("SUBMIT", 16), b'{"spec": {"kind": "exec", "argv": ["x"], "bogus": 1}}'],
        [header("SUBMIT", 17), b'{"spec": {"kind": "exec", "argv": ["x"], "cpus": 0}}'],
        [header("SUBMIT", 18), b'{"spec": {"kind": "exec", "argv": ["x"], "after": [999999]}}'],
        [ok, b"{}"] + [b"blob"] * 9,
        [header("TASK_END", 19), json.dumps({"job": 1, "task": 0, "attempt": 1, "state": "COMPLETED",
                                              "exit_code": 0, "signal": 0, "truncated": False,
                                              "start_time": 1, "end_time": 2}).encode()],
        [header("HEARTBEAT", 20), b'{"name": "x", "instance": "y", "running": 0}'],
        [header("REGISTER", 21), b'{"name": 5}'],
        [header("REPLY", 22), b"{}"], [header("ERROR", 23), b'{"code": 1, "msg": "x"}'],
        [header("DISPATCH", 24), b"{}"], [header("KILL", 25), b"{}"],
    ]
    for _ in range(20):
        frames = [rnd.randbytes(rnd.randint(0, 40)) for _ in range(rnd.randint(1, 4))]
        bad_frames.append(frames)
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    curve_client(d, cluster.dir)
    d.connect(ep)
    for frames in bad_frames:
        d.send_multipart(frames)
    # replies, if any, must be well-formed
    replies = []
    while d.poll(300):
        replies.append(d.recv_multipart())
    for r in replies:
        assert len(r[0]) == 16 and r[0][:2] == b"MT", r
    # 3. an oversized message (> max_message) drops only that connection
    big = ctx.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 0)
    curve_client(big, cluster.dir)
    big.connect(ep)
    big.send_multipart([header("PING", 1), b"{}", b"\0" * (9 << 20)])
    time.sleep(0.3)
    d.close(0)
    big.close(0)
    ctx.term()
    # the controller still serves, and none of it became a job
    assert pid_alive(cpid)
    cluster.moat("ping")
    assert cluster.j("queue", "--all")["jobs"] == []
    jid = cluster.submit("echo", "still here")
    cluster.wait(jid)
    assert cluster.moat("result", jid).out == "still here\n"
    assert cluster.pid("controller") == cpid and pid_alive(cpid)


def test_node_failing_every_launch_is_drained(make_cluster, tmp_path):
    c = make_cluster(up=False)
    # worker-2's task directory cannot be created: a file sits where it goes.
    (c.dir / "worker-2").mkdir(parents=True)
    (c.dir / "worker-2" / "tasks").write_text("not a directory")
    c.up(2)
    jid = c.submit("true", opts=["--array", "0-19"])
    c.wait(jid, timeout=60)
    job = c.show(jid)
    assert job["state"] == "COMPLETED", job
    assert {t["node"] for t in job["tasks"]} == {"local-1"}
    assert wait_for(lambda: c.nodes()["local-2"]["state"] == "DRAINING", 10,
                    what="local-2 DRAINING")
    assert c.nodes()["local-1"]["state"] == "UP"


def test_wait_rides_out_a_controller_restart(cluster, tmp_path):
    import subprocess

    from conftest import MOAT
    jid = cluster.submit("sh", "-c", "sleep 1.5; echo finished", opts=["--array", "0-3"])
    cluster.wait_state(jid, "RUNNING")
    env = dict(os.environ, MOAT_DIR=str(cluster.dir), MOAT_TIMEOUT="20s")
    waiter = subprocess.Popen([str(MOAT), "wait", str(jid), "--timeout", "60s"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpid = cluster.pid("controller")
    os.kill(cpid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(cpid), 5)
    cluster.up()  # tasks end while the controller is down or re-registering
    out, err = waiter.communicate(timeout=90)
    assert waiter.returncode == 0, err
    job = cluster.show(jid)
    assert job["state"] == "COMPLETED"
    assert all(t["attempts"] == 1 for t in job["tasks"]), job  # recorded once, not re-run
    assert cluster.moat("result", jid).out == "finished\n" * 4


def test_full_store_refuses_clearly_and_keeps_what_it_acknowledged(make_cluster):
    # A store that cannot grow: every submission carries ~60 KiB of arguments.
    c = make_cluster(workers=1, controller_extra='store_map_size = "1 MiB";\nstore_map_max = "1 MiB";\n')
    big = "x" * 60000
    acked, refused = [], None
    for i in range(40):
        r = c.moat("--json", "submit", "--begin", "now+1h", "--", "echo", big, str(i), check=None)
        if r.rc == 0:
            acked.append(r.json["id"])
        else:
            refused = r
            break
    assert acked, "nothing fitted in the store"
    assert refused is not None, "a 1 MiB store took 40 x 60 KiB"
    assert refused.rc == 1 and "store_map_max" in refused.err, refused
    # still serving, and every acknowledged job is there
    jobs = {j["id"] for j in c.j("queue", "--all")["jobs"]}
    assert set(acked) <= jobs, (acked, jobs)
    ok = c.moat("--json", "submit", "--", "true", check=None)
    assert ok.rc in (0, 1)  # small jobs may still fit; the controller answers either way


def test_restarted_worker_removes_the_dirs_of_tasks_killed_with_it(cluster):
    # A task's directory holds its inputs (an infer rank's documents and TP
    # link key); killed with its worker, it is removed when the worker starts.
    jid = cluster.submit("sleep", "30")
    wait_for(lambda: cluster.show(jid)["state"] == "RUNNING", 20, what="the task to start")
    node = cluster.show(jid)["tasks"][0]["node"]
    n = node.split("-")[1]
    tasks = cluster.dir / f"worker-{n}" / "tasks"
    left = tasks / f"{jid}.0.1"
    wait_for(left.exists, 10, what=f"{left}")
    (left / "input.json").write_text("[\"a sensitive document\"]")
    os.kill(cluster.pid(f"worker-{n}"), signal.SIGKILL)
    time.sleep(0.3)
    assert left.exists()  # nothing removed it: the worker died at once
    cluster.up()
    wait_for(lambda: not left.exists(), 10, what=f"{left} removed at the worker's start")
    cluster.moat("cancel", jid)


def _kill_controller(cluster):
    cpid = cluster.pid("controller")
    os.kill(cpid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(cpid), 5)


def test_result_that_came_while_the_controller_was_down_outlives_the_time_limit(cluster):
    # The task ends well within its limit, but the controller is down until
    # long after the limit: its time-limit backstop must wait for the node to
    # register (and report) instead of ending the task TIMEOUT without output.
    # (elements on both nodes: the backstop's check every 0.1 s races the
    # nodes' registration after the restart, one of them usually loses)
    jid = cluster.submit("sh", "-c", "sleep 1; echo finished-ok",
                         opts=["--time-limit", "2s", "--array", "0-3"])
    wait_for(lambda: all(t["state"] == "RUNNING" for t in cluster.show(jid)["tasks"]), 20,
             what="every element running")
    _kill_controller(cluster)
    # well past deadline + 2 x (kill_grace + heartbeat x tolerance + 1 s), the
    # backstop's reach, and long enough for the workers' reconnection to back off
    time.sleep(12)
    restarted = time.time()
    cluster.up()
    job = cluster.wait_state(jid, ("COMPLETED", "TIMEOUT", "FAILED"), timeout=30)
    assert job["state"] == "COMPLETED", job
    assert all(t["attempts"] == 1 for t in job["tasks"]), job
    assert cluster.moat("result", jid).out == "finished-ok\n" * 4
    # the job ended when its tasks did, not when the restarted controller heard
    assert job["end_time"] < restarted - 5 and job["end_time"] - job["start_time"] < 5, job


def test_tasks_that_finish_while_the_controller_is_down_are_not_run_again(cluster):
    # With a short heartbeat tolerance (0.6 s here) the restarted controller
    # took its nodes for lost before their connection retries (backing off to
    # 1 s while it was down) found it, requeued their tasks, then dropped the
    # finished results as stale: finished work ran twice.
    for round_ in range(3):
        jid = cluster.submit("sleep", "1.5", opts=["--array", "0-3"])
        wait_for(lambda: all(t["state"] == "RUNNING" for t in cluster.show(jid)["tasks"]), 20,
                 what="every element running")
        _kill_controller(cluster)
        time.sleep(2)  # the elements end meanwhile
        cluster.up()
        job = cluster.wait_state(jid, ("COMPLETED", "FAILED"), timeout=30)
        assert job["state"] == "COMPLETED", job
        assert [t["attempts"] for t in job["tasks"]] == [1] * 4, (round_, job)
    assert "no heartbeat" not in (cluster.dir / "controller.log").read_text()


def test_cancel_acknowledged_before_a_controller_kill_is_carried_out(cluster):
    # Elements never started have no record: after a restart they must still
    # be cancelled, and the running ones killed (their KILL may never have
    # left the dying controller), so that the job ends.
    for _ in range(2):
        jid = cluster.submit("sleep", "300", opts=["--array", "0-9%2"])
        wait_for(lambda: sum(t["state"] == "RUNNING" for t in cluster.show(jid)["tasks"]) == 2,
                 20, what="two elements running")
        cluster.moat("cancel", jid)
        _kill_controller(cluster)
        cluster.up()
        job = cluster.wait_state(jid, "CANCELLED", timeout=30)
        assert all(t["state"] == "CANCELLED" for t in job["tasks"]), job
        after = cluster.submit("true", opts=["--after", str(jid)])
        assert cluster.wait_state(after, ("CANCELLED", "COMPLETED", "FAILED"))["state"] == "CANCELLED"


def test_a_paused_controller_does_not_take_its_nodes_for_dead(cluster):
    # SIGSTOP for ten times the heartbeat tolerance: the heartbeats waited in
    # the socket, the nodes were never silent, nothing may be requeued.
    jid = cluster.submit("sleep", "3", opts=["--array", "0-1"])
    wait_for(lambda: all(t["state"] == "RUNNING" for t in cluster.show(jid)["tasks"]), 20,
             what="both elements running")
    cpid = cluster.pid("controller")
    os.kill(cpid, signal.SIGSTOP)
    time.sleep(6 * 0.6)
    os.kill(cpid, signal.SIGCONT)
    job = cluster.wait_state(jid, ("COMPLETED", "FAILED"), timeout=30)
    assert job["state"] == "COMPLETED", job
    assert all(t["attempts"] == 1 for t in job["tasks"]), job
    assert all(n["state"] == "UP" for n in cluster.nodes().values())


def test_a_dead_node_is_found_while_requests_keep_the_controller_busy(make_cluster):
    """Long passes (here SHOWs of a million-element array, kept queued) are
    the controller's own time, not the nodes' silence; but a node that died
    meanwhile must still be found DOWN while the load goes on, not after it
    (its silence was credited back pass after pass, for as long as the load
    lasted)."""
    c = make_cluster(workers=1)
    run = c.submit("sleep", "300")
    wait_for(lambda: c.show(run)["state"] == "RUNNING", 20, what="the task running")
    big = c.submit("true", opts=["--array", "0-999998", "--hold"])  # the key's quota: 10^6
    cl = Client(c.endpoint, c.dir)
    log = c.dir / "controller.log"
    try:
        outstanding = set()
        killed = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            while len(outstanding) < 60:
                outstanding.add(cl.send("SHOW", {"id": big}))
            r = cl.recv(0.05)
            if r is not None:
                outstanding.discard(r[1])
            if killed is None and time.monotonic() > deadline - 85:  # the load is on
                os.kill(c.pid("worker-1"), signal.SIGKILL)
                killed = time.monotonic()
            if killed is not None and "local-1: no heartbeat" in log.read_text():
                break
        else:
            raise AssertionError("no DOWN while the load went on")
        # within a few of the (long) passes, under a load that never stopped
        assert time.monotonic() - killed < 45, time.monotonic() - killed
    finally:
        cl.close()
    c.wait_state(run, "PENDING", timeout=60)  # requeued: no node left to run it


def test_a_request_the_wire_refuses_is_answered_naming_the_field(cluster):
    # It was dropped as malformed, and the CLI waited for a reply that never
    # came ("cannot reach the controller", exit 3).
    key = (cluster.dir / "worker-1.pub").read_text().strip()
    r = cluster.moat("admin", "key", "add", key, "--name", "x" * 65, check=2)
    assert "'name'" in r.err and "64" in r.err, r
    r = cluster.moat("model", "verify", "y" * 65, check=2)
    assert "'name'" in r.err, r
    cluster.moat("queue")


def test_a_result_too_big_for_a_full_store_waits_without_disturbing_the_rest(make_cluster):
    # A 2 MiB store at its maximum and a task printing 2.5 MiB: storing it
    # failed the whole batch at every resend (requests in it refused, every
    # node made to register again). Now it is refused alone and waits on its
    # node, and the job says why.
    c = make_cluster(workers=1, controller_extra='store_map_size = "2 MiB";\nstore_map_max = "2 MiB";\n'
                                                 'output_cap = "3 MiB";\n')
    jid = c.submit("python3", "-c", "import sys; sys.stdout.write('y' * (5 << 19))")
    wait_for(lambda: "store is full" in c.show(jid)["reason"], 30, what="the job to say why it waits")
    assert c.show(jid)["state"] == "RUNNING"
    # the rest of the controller is undisturbed: small requests are served,
    # and the node stays registered (no batch failed and recovered)
    for _ in range(20):
        assert c.moat("--json", "submit", "--", "true").json["id"] > jid
    log = (c.dir / "controller.log").read_text()
    assert "batch abandoned" not in log, log[-2000:]
    assert log.count("node local-1 registered") == 1, log[-2000:]


def test_unsandboxed_task_processes_die_with_their_worker(host_cluster, tmp_path):
    # exec_sandbox = "off": only the task's first process had a parent-death
    # signal, so a grandchild outlived a killed worker and ran on beside the
    # rerun. The reaper between worker and task (worker/wrk_reap.h) kills the
    # whole task when the worker dies, and leftovers when the task ends.
    cluster = host_cluster
    inner, effect = tmp_path / "inner.pid", tmp_path / "effect"
    jid = cluster.submit("sh", "-c", f"sh -c 'echo $$ > {inner}; sleep 3; echo effect >> {effect}'")
    pid = _pid_from(inner)
    node = cluster.show(jid)["tasks"][0]["node"]
    os.kill(cluster.pid("worker-" + node.split("-")[1]), signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 5, what="the task's grandchild to die with its worker")
    cluster.wait(jid, timeout=60)
    time.sleep(3.5)  # a surviving first attempt would have written by now
    assert effect.read_text() == "effect\n"  # the rerun's line only
    cluster.up()
    # a background process left behind when the task ends goes with it
    bg = tmp_path / "bg.pid"
    jid = cluster.submit("sh", "-c", f"sleep 300 & echo $! > {bg}")
    cluster.wait(jid)
    wait_for(lambda: not pid_alive(_pid_from(bg)), 5, what="the task's leftover to be killed")


def _reap_service(worker_pid):
    """The worker's reaper service (worker/wrk_reap.h): its child named
    moat-reap (a task's reaper, also its child, is named moat-reaper)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == worker_pid and comm == "moat-reap":
            found.append(int(entry))
    return found


def test_a_killed_reaper_service_is_replaced_and_its_tasks_run_on(host_cluster, tmp_path):
    # Unsandboxed tasks start through one reaper service per worker; a task's
    # reaper is the worker's child, not the service's. Killing the service
    # leaves running tasks alone, and the next launch starts another.
    cluster = host_cluster
    flag = tmp_path / "go"
    jid = cluster.submit("sh", "-c", f"touch {tmp_path}/started-{{index}}; "
                         f"while [ ! -e {flag} ]; do sleep 0.05; done; echo ran",
                         opts=["--array", "0-1"])
    # RUNNING is the controller's word at dispatch; the files say both run
    wait_for(lambda: all((tmp_path / f"started-{i}").exists() for i in (0, 1)), 20,
             what="both tasks running")
    workers = {cluster.pid(f"worker-{i}") for i in (1, 2)}
    services = [s for w in workers for s in _reap_service(w)]
    assert services, "no reaper service found"
    for s in services:
        os.kill(s, signal.SIGKILL)
    flag.write_text("")
    cluster.wait(jid)
    assert cluster.show(jid)["state"] == "COMPLETED"
    assert [t["exit_code"] for t in cluster.show(jid)["tasks"]] == [0, 0]
    jid = cluster.submit("sh", "-c", "echo again")
    cluster.wait(jid)
    assert cluster.show(jid)["state"] == "COMPLETED"
    assert cluster.moat("result", jid).out == "again\n"
    logs = "".join((cluster.dir / f"worker-{i}.log").read_text() for i in (1, 2))
    assert "reaper service" in logs and "ended (signal 9)" in logs, logs[-2000:]


def test_an_unsandboxed_task_is_killed_whole_and_its_own_signals_stay_its_own(host_cluster, tmp_path):
    # The SIGKILL for --mem (and after kill_grace) went to the process group
    # only: it ended the reaper first, and a process that had left the group
    # (a new session) lived on with its memory. And a task signalling its own
    # group (kill -USR1 0) was taken for its worker's death.
    cluster = host_cluster
    hog = tmp_path / "hog.pid"
    child = ("import os, time; open(%r, 'w').write(str(os.getpid())); "
             "x = bytearray(300 << 20); time.sleep(60)" % str(hog))
    jid = cluster.submit("python3", "-c", "import subprocess, sys; subprocess.Popen("
                         f"[sys.executable, '-c', {child!r}], start_new_session=True).wait()",
                         opts=["--mem", "64MiB"])
    pid = _pid_from(hog)
    assert cluster.wait_state(jid, ("FAILED", "COMPLETED"), timeout=30)["state"] == "FAILED"
    wait_for(lambda: not pid_alive(pid), 5, what="the process in its own session to be killed")
    jid = cluster.submit("sh", "-c", "trap '' USR1 USR2 QUIT; kill -USR1 0; kill -USR2 0; "
                         "kill -QUIT 0; sleep 0.5; echo alive")
    cluster.wait(jid)
    assert cluster.moat("result", jid).out == "alive\n"


def test_a_restarted_worker_removes_shard_transfers_it_left_unfinished(cluster):
    """A worker killed in the middle of fetching a shard leaves its temporary
    file (tens of MiB) in objects/; its next start removes such files and
    keeps the verified objects beside them."""
    objects = cluster.dir / "worker-1" / "objects"
    os.kill(cluster.pid("worker-1"), signal.SIGKILL)
    wait_for(lambda: not pid_alive(cluster.pid("worker-1")), 10, what="worker-1 to die")
    part = objects / ("ab" * 32 + ".7.0.1.part")
    part.write_bytes(b"\0" * 4096)
    kept = objects / ("cd" * 32)
    kept.write_bytes(b"verified")
    cluster.up()
    wait_for(lambda: not part.exists(), 10, what="the .part file to go")
    assert kept.read_bytes() == b"verified"
    assert "removed 1 unfinished shard transfer left" in (cluster.dir / "worker-1.log").read_text()


def test_two_live_workers_under_one_name_do_not_take_turns(make_cluster, tmp_path):
    """A cloned machine or a copied config: a second worker with the same name
    and key (its own state_dir) replaces the first once; when the first comes
    back it is refused as long as the second lives, instead of the two taking
    each other's place every second and requeueing each other's tasks."""
    import subprocess
    from conftest import BIN
    c = make_cluster(workers=1, worker_extra='exec_sandbox = "off";\n')
    conf = (c.dir / "worker-1.conf").read_text().replace(str(c.dir / "worker-1") + '"',
                                                         str(tmp_path / "twin") + '"')
    (tmp_path / "twin.conf").write_text(conf)
    log = open(tmp_path / "twin.log", "w")
    twin = subprocess.Popen([str(BIN / "moat-worker"), "-c", str(tmp_path / "twin.conf")], stderr=log)
    try:
        ctl_log = c.dir / "controller.log"
        wait_for(lambda: "two live workers register under this name" in ctl_log.read_text(), 20,
                 what="the twin to be noticed")
        jid = c.submit("sh", "-c", "sleep 1; echo {index}", opts=["--array", "0-3"])
        c.wait(jid, timeout=60)
        assert all(t["attempts"] == 1 for t in c.show(jid)["tasks"]), c.show(jid)["tasks"]
        text = ctl_log.read_text()
        assert text.count("node local-1 registered") <= 3, text
        assert text.count("two live workers register under this name") == 1
        refused = (c.dir / "worker-1.log").read_text() + (tmp_path / "twin.log").read_text()
        assert "is held by another live worker" in refused, refused
    finally:
        twin.kill()
        twin.wait()
        log.close()


def test_a_shorter_heartbeat_after_a_controller_restart_spares_the_workers(make_cluster):
    """Workers keep the heartbeat interval they were told until they register
    again: a controller restarted with a shorter one must not declare them
    lost and requeue their running tasks for it."""
    c = make_cluster(workers=1, up=False)
    extra = c.dir / "controller.extra.conf"
    extra.write_text(extra.read_text().replace('"200 ms"', '"4 s"'))
    c.up(1)
    jid = c.submit("sh", "-c", "sleep 8; echo done")
    c.wait_state(jid, "RUNNING")
    pid = c.pid("controller")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 15, what="the controller to stop")
    extra.write_text(extra.read_text().replace('"4 s"', '"200 ms"'))
    c.up(1)
    c.wait(jid, timeout=60)
    assert c.show(jid)["tasks"][0]["attempts"] == 1, c.show(jid)
    assert "no heartbeat" not in (c.dir / "controller.log").read_text()


def test_nodes_known_from_the_store_show_as_not_responding_until_they_register(make_cluster):
    """After a controller restart its nodes come from the store: until one
    registers again it is not shown plainly UP (it gets no work), but as
    sinfo's "idle*": UP* with the reason."""
    from conftest import BIN
    c = make_cluster(workers=1, up=False)
    extra = c.dir / "controller.extra.conf"
    extra.write_text(extra.read_text().replace('"200 ms"', '"4 s"'))  # tolerance 12 s
    c.up(1)
    wpid, cpid = c.pid("worker-1"), c.pid("controller")
    os.kill(wpid, signal.SIGSTOP)  # it cannot register with the next controller
    try:
        os.kill(cpid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(cpid), 15, what="the controller to stop")
        with open(c.dir / "controller.log", "ab") as log:
            p = subprocess.Popen([str(BIN / "moat-controller"), "-c", str(c.dir / "controller.conf")],
                                 cwd=c.dir, stdout=log, stderr=log, start_new_session=True)
        (c.dir / "controller.pid").write_text(f"{p.pid}\n")
        node = wait_for(lambda: c.nodes().get("local-1"), 15, what="the controller to answer")
        assert node["state"] == "UP" and node["registered"] is False, node
        head, row = c.moat("nodes").out.splitlines()[:2]
        assert row.split()[:2] == ["local-1", "UP*"], row
        assert row[head.index("REASON"):].strip() == "not registered since the controller started"
    finally:
        os.kill(wpid, signal.SIGCONT)
    wait_for(lambda: c.nodes()["local-1"]["registered"], 20, what="local-1 to register again")
    head, row = c.moat("nodes").out.splitlines()[:2]
    assert row.split()[:2] == ["local-1", "UP"] and "not registered" not in row, row
