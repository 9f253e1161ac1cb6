"""moatproto: docs/protocol.md in Python, for tests.

- encode/decode of the 16-byte header,
- Client: a DEALER that sends requests and matches replies by request id, with
  a pipelined submit (submit_burst) that records which submissions were
  acknowledged,
- FakeController: a ROUTER on a loopback port whose replies a test scripts, to
  test the CLI without the real daemons.
- CURVE: every link is encrypted and authenticated (docs/security.md). Client
  and curve_client() take a directory holding client.key and controller.pub
  (a `moat local up` dir) or explicit key files; FakeController is a CURVE
  server with this session's fake controller key (FAKE_ENV points the CLI at it).
"""
import json
import os
import struct
import tempfile
import threading
import time

import zmq

MAGIC = 0x4D54
VERSION = 1
TYPES = ["?", "REPLY", "ERROR", "PING", "SUBMIT", "SHOW", "QUEUE", "CANCEL", "RESULT",
         "NODES", "REGISTER", "HEARTBEAT", "TASK_END", "DISPATCH", "KILL", "MODEL_PUT",
         "MODEL_COMMIT", "MODEL_LIST", "MODEL_VERIFY", "SHARD_GET", "ADMIN_KEY", "AUDIT",
         "ADMIN_NODE", "HOLD", "REQUEUE", "DOCS"]
T = {name: i for i, name in enumerate(TYPES) if i}

EINVAL, ENOENT, ENOSPC, EPROTO, ENOTCONN, EACCES, EPERM, EAGAIN = 22, 2, 28, 71, 107, 13, 1, 11


def read_key(path):
    """The Z85 key in a key file (its first line that is not a comment)."""
    for line in open(path).read().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line.encode()
    raise ValueError(f"{path}: no key")


def write_pair(dir_, name):
    """A new key pair as dir_/name.key (0600) and dir_/name.pub; the public key."""
    pub, sec = zmq.curve_keypair()
    key = os.path.join(dir_, name + ".key")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, sec + b"\n")
    os.close(fd)
    with open(os.path.join(dir_, name + ".pub"), "wb") as f:
        f.write(pub + b"\n")
    return pub


def curve_client(sock, dir_=None, key=None, server=None):
    """Make sock a CURVE client: its secret key from key (a file; default
    dir_/client.key), the controller's public key from server (default
    dir_/controller.pub)."""
    sec = read_key(key or os.path.join(str(dir_), "client.key"))
    sock.curve_secretkey = sec
    sock.curve_publickey = zmq.curve_public(sec)
    sock.curve_serverkey = read_key(server or os.path.join(str(dir_), "controller.pub"))
    return sock


# This session's fake controller key and a client pair, for FakeController and
# the scripted ROUTER of test_worker_protocol (which run no ZAP handler, so they
# accept any client key).
FAKE_DIR = tempfile.mkdtemp(prefix="moat-fake-keys-")
FAKE_PUB = write_pair(FAKE_DIR, "controller")
write_pair(FAKE_DIR, "client")
FAKE_SECRET = read_key(os.path.join(FAKE_DIR, "controller.key"))
FAKE_ENV = {"MOAT_KEY": os.path.join(FAKE_DIR, "client.key"),
            "MOAT_CONTROLLER_KEY": os.path.join(FAKE_DIR, "controller.pub")}


def curve_server(sock):
    """Make sock a CURVE server with the fake controller key."""
    sock.curve_secretkey = FAKE_SECRET
    sock.curve_publickey = FAKE_PUB
    sock.curve_server = True
    return sock


def header(type_, req_id, flags=0, magic=MAGIC, version=VERSION, reserved=0):
    if isinstance(type_, str):
        type_ = T[type_]
    return struct.pack(">HBBHHQ", magic, version, type_, flags, reserved, req_id)


def parse_header(frame):
    magic, version, type_, flags, reserved, req_id = struct.unpack(">HBBHHQ", frame)
    assert magic == MAGIC and version == VERSION and reserved == 0, frame
    return TYPES[type_], req_id


def message(type_, req_id, body=None, blobs=()):
    return [header(type_, req_id), json.dumps({} if body is None else body).encode()] + list(blobs)


class Client:
    """A DEALER speaking the moat protocol to endpoint, over CURVE with the keys
    of keydir (a `moat local up` dir) or the files key and server."""

    def __init__(self, endpoint, keydir=None, ctx=None, key=None, server=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        curve_client(self.sock, keydir, key, server)
        self.sock.connect(endpoint)
        self.next_id = 1

    def close(self):
        self.sock.close(0)

    def send(self, type_, body=None, blobs=()):
        rid = self.next_id
        self.next_id += 1
        self.sock.send_multipart(message(type_, rid, body, blobs))
        return rid

    def recv(self, timeout):
        """Next reply as (type, req_id, body, blobs), or None after timeout seconds."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        type_, rid = parse_header(frames[0])
        return type_, rid, json.loads(frames[1]), frames[2:]

    def call(self, type_, body=None, timeout=10.0, blobs=()):
        """(type, body, blobs) of the reply to one request; TimeoutError if none."""
        rid = self.send(type_, body, blobs)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            r = self.recv(max(left, 0)) if left > 0 else None
            if r is None:
                raise TimeoutError(f"{type_}: no reply in {timeout} s")
            if r[1] == rid:
                return r[0], r[2], r[3]

    def ok(self, type_, body=None, timeout=10.0):
        t, b, _ = self.call(type_, body, timeout)
        assert t == "REPLY", (type_, body, b)
        return b

    def submit_burst(self, specs, window=500, stop=None, on_ack=None, idle_timeout=5.0):
        """Pipeline SUBMIT of every spec (a list of job spec dicts), keeping at
        most window requests outstanding. Returns {spec index: job id} for the
        acknowledged ones. Stops sending once stop() is true; calls on_ack(count)
        after each acknowledgement; returns when every sent request is answered
        or nothing arrives for idle_timeout s (the controller died)."""
        acked, pending = {}, {}
        i = 0
        last = time.monotonic()
        while True:
            while i < len(specs) and len(pending) < window and not (stop and stop()):
                pending[self.send("SUBMIT", {"spec": specs[i]})] = i
                i += 1
            if not pending and (i == len(specs) or (stop and stop())):
                return acked
            r = self.recv(0.05)
            if r is None:
                if time.monotonic() - last > idle_timeout:
                    return acked
                continue
            last = time.monotonic()
            type_, rid, body, _ = r
            k = pending.pop(rid, None)
            if k is not None and type_ == "REPLY":
                acked[k] = body["id"]
                if on_ack:
                    on_ack(len(acked))


class FakeController:
    """A ROUTER on 127.0.0.1:<free port>; handler(type, body, blobs) returns
    None (no reply), (type, body) or (type, body, blobs). Requests are kept in
    self.requests as (type, body)."""

    def __init__(self, handler):
        self.handler = handler
        self.requests = []
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        curve_server(self.sock)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            peer, frames = frames[0], frames[1:]
            try:
                type_, rid = parse_header(frames[0])
                body = json.loads(frames[1])
            except Exception:  # a malformed message: ignore, like the controller
                continue
            self.requests.append((type_, body))
            r = self.handler(type_, body, frames[2:])
            if r is None:
                continue
            rtype, rbody = r[0], r[1]
            blobs = r[2] if len(r) > 2 else ()
            self.sock.send_multipart([peer] + message(rtype, rid, rbody, blobs))

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close(0)
        self.ctx.term()
