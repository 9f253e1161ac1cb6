"""A real moat-worker against a scripted controller (a ROUTER in the test):
duplicate dispatches, result resends until acknowledged, a result surviving a
worker kill -9, and malformed messages."""
import json
import os
import signal
import subprocess
import time

import pytest
import zmq

from conftest import BIN
from moatproto import FAKE_DIR, T, TYPES, curve_server, header, write_pair


class Fake:
    def __init__(self, tmp_path, sandbox="off"):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        curve_server(self.sock)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        write_pair(str(tmp_path), "worker")
        self.conf = tmp_path / "w.conf"
        self.conf.write_text(f'name = "fake-w";\ncontroller = "tcp://127.0.0.1:{self.port}";\n'
                             f'state_dir = "{tmp_path}/w";\nresend_interval = "200 ms";\n'
                             f'kill_grace = "1 s";\nexec_sandbox = "{sandbox}";\n'
                             f'curve_secret_key_file = "{tmp_path}/worker.key";\n'
                             f'controller_public_key_file = "{FAKE_DIR}/controller.pub";\n')
        self.log = open(tmp_path / "worker.log", "ab")
        self.proc = None
        self.peer = None
        self.rid = 1000

    def start(self):
        self.proc = subprocess.Popen([str(BIN / "moat-worker"), "-c", str(self.conf)], stderr=self.log)

    def recv(self, timeout=5.0):
        """Next (type, req_id, body, blobs) from the worker, or None."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        self.peer = frames[0]
        _, _, type_, _, _, rid = __import__("struct").unpack(">HBBHHQ", frames[1])
        return TYPES[type_], rid, json.loads(frames[2]), frames[3:]

    def expect(self, want, timeout=5.0, keep=None):
        """Skip heartbeats (answered) until a message of type want arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(deadline - time.monotonic())
            if m is None:
                break
            if m[0] == "HEARTBEAT":
                self.send("REPLY", {}, m[1])
                continue
            if keep is not None:
                keep.append(m)
            if m[0] == want:
                return m
        raise AssertionError(f"no {want} from the worker in {timeout} s")

    def send(self, type_, body, rid=None, raw_body=None, blobs=()):
        if rid is None:
            self.rid += 1
            rid = self.rid
        payload = raw_body if raw_body is not None else json.dumps(body).encode()
        self.sock.send_multipart([self.peer, header(type_, rid), payload, *blobs])

    def register(self):
        t, rid, body, _ = self.expect("REGISTER")
        self.send("REPLY", {"node": body["name"], "heartbeat_ms": 200}, rid)
        return body

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close(0)
        self.ctx.term()
        self.log.close()


def dispatch(argv, job=1, task=0, attempt=1):
    return {"job": job, "task": task, "attempt": attempt, "kind": "exec", "argv": argv, "env": [],
            "cpus": 1, "gpus": 0, "mem": 0, "deadline": 0, "output_cap": 1024}


def test_duplicate_dispatch_runs_once_and_result_is_resent_until_acknowledged(tmp_path):
    f = Fake(tmp_path)
    try:
        f.start()
        reg = f.register()
        assert reg["name"] == "fake-w" and reg["tasks"] == [] and reg["backend"] == "cpu"
        effect = tmp_path / "effect"
        d = dispatch(["sh", "-c", f"echo ran >> {effect}; echo out"])
        f.send("DISPATCH", d)
        f.send("DISPATCH", d)  # delivered twice
        ends = []
        first = f.expect("TASK_END", keep=ends)
        assert first[2]["state"] == "COMPLETED" and first[2]["exit_code"] == 0
        assert first[3][0] == b"out\n" and first[3][1] == b""
        second = f.expect("TASK_END")  # not acknowledged: sent again
        assert (second[2]["job"], second[2]["attempt"]) == (1, 1)
        f.send("REPLY", {}, second[1])
        time.sleep(0.8)
        while (m := f.recv(0.1)) is not None:
            assert m[0] != "TASK_END", "result sent again after its acknowledgement"
            if m[0] == "HEARTBEAT":
                f.send("REPLY", {}, m[1])
        assert effect.read_text() == "ran\n"
    finally:
        f.close()


def test_unacknowledged_result_survives_worker_kill(tmp_path):
    f = Fake(tmp_path)
    try:
        f.start()
        f.register()
        effect = tmp_path / "effect"
        f.send("DISPATCH", dispatch(["sh", "-c", f"echo ran >> {effect}; exit 3"], job=7))
        end = f.expect("TASK_END")
        assert end[2]["state"] == "FAILED" and end[2]["exit_code"] == 3
        os.kill(f.proc.pid, signal.SIGKILL)  # the result was never acknowledged
        f.proc.wait()
        f.start()
        reg = f.register()
        assert reg["tasks"] == [{"job": 7, "task": 0, "attempt": 1, "ended": True}], reg["tasks"]
        again = f.expect("TASK_END")
        assert (again[2]["job"], again[2]["exit_code"]) == (7, 3)
        f.send("REPLY", {}, again[1])
        assert effect.read_text() == "ran\n"  # resent, not run again
    finally:
        f.close()


def test_malformed_messages_leave_the_worker_serving(tmp_path):
    f = Fake(tmp_path)
    try:
        f.start()
        f.register()
        bad = [b"", b"[]", b"{", json.dumps({"job": 1}).encode(),
               json.dumps(dict(dispatch(["true"]), argv="true")).encode(),
               json.dumps(dict(dispatch(["true"]), extra=1)).encode()]
        for b in bad:
            f.send("DISPATCH", None, raw_body=b)
        f.sock.send_multipart([f.peer, b"\x00" * 16, b"{}"])
        f.sock.send_multipart([f.peer, b"short"])
        f.send("KILL", {"job": 99, "task": 0, "attempt": 1, "reason": "cancel"})  # unknown task: fine
        f.send("DISPATCH", dispatch(["true"], job=2))
        end = f.expect("TASK_END")
        assert end[2]["job"] == 2 and end[2]["state"] == "COMPLETED"
        assert f.proc.poll() is None
    finally:
        f.close()


SHA = "0123456789abcdef" * 4


def infer_dispatch():
    """A DISPATCH of rank 0 of a TP=1 infer task whose shard and vocabulary
    (SHA, 10 bytes each) the worker must fetch first (SHARD_GET)."""
    return dict(dispatch([]), kind="infer", rank=0, tp=1, shard=SHA, shard_bytes=10, vocab=SHA,
                vocab_bytes=10)


@pytest.mark.parametrize("field,value", [
    ("shard", "../../escape"), ("shard", "/etc/x"), ("shard", SHA.upper()),
    ("vocab", "../" + SHA[:61]), ("vocab", SHA[:63]),
])
def test_dispatch_with_an_object_name_that_is_no_sha256_is_refused(tmp_path, field, value):
    # The names became paths under objects/: "../../x" fetched to objects/../../x.part.
    f = Fake(tmp_path)
    try:
        f.start()
        f.register()
        d = infer_dispatch()
        d[field] = value
        f.send("DISPATCH", d, blobs=[json.dumps({"texts": ["x"]}).encode()])
        seen = []
        end = f.expect("TASK_END", keep=seen)
        assert "SHARD_GET" not in [m[0] for m in seen], seen  # none went out first
        assert end[2]["state"] == "FAILED", end[2]
        assert end[2]["launch_error"].startswith(f"{field}: not a SHA-256"), end[2]
        assert not list(tmp_path.rglob("*.part")) and not (tmp_path / "escape").exists()
        assert f.proc.poll() is None
    finally:
        f.close()


@pytest.mark.parametrize("sandbox", ["off", "required"])
def test_dispatch_with_an_empty_argv_is_refused_before_launch(tmp_path, sandbox):
    # Sandboxed, the task's child looked up argv[0] == NULL (a crash).
    f = Fake(tmp_path, sandbox=sandbox)
    try:
        f.start()
        f.register()
        f.send("DISPATCH", dispatch([], job=3))
        end = f.expect("TASK_END")
        assert (end[2]["job"], end[2]["state"]) == (3, "FAILED"), end[2]
        assert end[2]["launch_error"] == "argv: empty", end[2]
        f.send("REPLY", {}, end[1])
        f.send("DISPATCH", dispatch(["true"], job=4))  # and it serves on
        end = f.expect("TASK_END")
        assert (end[2]["job"], end[2]["state"]) == (4, "COMPLETED"), end[2]
    finally:
        f.close()


def test_a_shard_request_lost_with_a_restarted_controller_is_sent_again(tmp_path):
    # The controller died between a SHARD_GET and its answer: after the worker
    # registered with the new one, the request was never repeated and the batch
    # stayed RUNNING for ever.
    f = Fake(tmp_path)
    try:
        f.start()
        f.register()
        d = infer_dispatch()
        f.send("DISPATCH", d, blobs=[json.dumps({"texts": ["x"]}).encode()])
        first = f.expect("SHARD_GET")
        assert (first[2]["sha256"], first[2]["offset"]) == (SHA, 0), first
        # unanswered; the restarted controller does not know the worker
        while (m := f.recv(5.0)) is not None and m[0] != "HEARTBEAT":
            pass
        assert m is not None, "no heartbeat"
        f.send("ERROR", {"code": 107, "msg": "heartbeat: node fake-w is not registered; register first"},
               m[1])
        f.register()
        again = f.expect("SHARD_GET")
        assert again[2] == first[2] and again[1] != first[1], (first, again)
        f.send("ERROR", {"code": 2, "msg": "no such object"}, again[1])
        end = f.expect("TASK_END")
        assert end[2]["state"] == "FAILED", end[2]  # the controller said why; its stderr holds it
        assert f.proc.poll() is None
    finally:
        f.close()
