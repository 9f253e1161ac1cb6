"""Fixtures for moat's integration tests: real processes on loopback.

- moat(args, ...): run bin/moat, return a Result (rc, out, err, json).
- cluster: a fresh `moat local up --dir TMP` cluster (2 workers, fast
  heartbeats) per test, stopped at teardown together with any task processes
  the test left behind.
- make_cluster(workers=, controller_extra=, worker_extra=, per_worker_extra=):
  the same with settings of the test's choice (keys from conf/*.conf).
- host_cluster: a cluster whose exec tasks run unsandboxed (exec_sandbox =
  "off"), for tests whose tasks leave marks in the test's tmp_path: a
  sandboxed task sees only its own directory and a private /tmp.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# MOAT_BIN runs the suite against other builds (e.g. build-asan/bin after `make asan`).
BIN = Path(os.environ.get("MOAT_BIN", ROOT / "bin")).resolve()
MOAT = BIN / "moat"

# Fast failure detection so that node-loss tests take seconds, not minutes.
CONTROLLER_FAST = """
heartbeat_interval = "200 ms";
heartbeat_tolerance = 3;
kill_grace = "1 s";
"""
WORKER_FAST = """
resend_interval = "200 ms";
kill_grace = "1 s";
"""


class Result:
    def __init__(self, args, proc):
        self.args = args
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"moat {' '.join(map(str, self.args))} -> rc={self.rc}\nstdout: {self.out[:2000]}\nstderr: {self.err[:2000]}"


def run_moat(args, env=None, timeout=60, input=None, check=None):
    """Run bin/moat with args (strings). check: the expected exit status, or None."""
    e = dict(os.environ)
    e.pop("MOAT_CONTROLLER", None)
    e.pop("MOAT_DIR", None)
    e.update(env or {})
    p = subprocess.run([str(MOAT)] + [str(a) for a in args], env=e, capture_output=True,
                       text=True, timeout=timeout, input=input)
    r = Result(args, p)
    if check is not None:
        assert r.rc == check, r
    return r


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned), or fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid):
    """Whether any thread of process pid still runs: a killed multi-threaded
    process's leader is a zombie while its other threads still exit, and they
    hold its files (a controller's state_dir lock) until the last one is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


class Cluster:
    """A local cluster in dir, driven through bin/moat."""

    def __init__(self, dir_):
        self.dir = Path(dir_)
        self.env = {"MOAT_DIR": str(self.dir)}
        self.workers = 0

    def moat(self, *args, check=0, timeout=60, env=None):
        e = dict(self.env)
        e.update(env or {})
        return run_moat(list(args), env=e, timeout=timeout, check=check)

    def j(self, *args, check=0, timeout=60):
        """moat --json ARGS, parsed."""
        return self.moat("--json", *args, check=check, timeout=timeout).json

    def up(self, workers=None, check=0, extra_args=()):
        args = ["local", "up", "--dir", self.dir]
        if workers is not None:
            args += ["--workers", workers]
            self.workers = workers
        r = self.moat("--json", *args, *extra_args, check=check, timeout=90)
        return r.json if r.rc == 0 else r

    def down(self):
        return self.moat("local", "down", "--dir", self.dir, check=None, timeout=60)

    @property
    def endpoint(self):
        return (self.dir / "endpoint").read_text().strip()

    def pid(self, name):
        """pid from DIR/name.pid ("controller", "worker-1")."""
        return int((self.dir / f"{name}.pid").read_text())

    def submit(self, *cmd, opts=()):
        return self.j("submit", *opts, "--", *cmd)["id"]

    def show(self, job):
        return self.j("show", job)

    def wait(self, *jobs, timeout=60, check=0):
        return self.moat("wait", *jobs, "--timeout", f"{timeout}s", check=check,
                         timeout=timeout + 30)

    def wait_state(self, job, states, timeout=30):
        states = {states} if isinstance(states, str) else set(states)
        return wait_for(lambda: (lambda s: s if s["state"] in states else None)(self.show(job)),
                        timeout, what=f"job {job} in {states}")

    def nodes(self):
        return {n["name"]: n for n in self.j("nodes")["nodes"]}

    def kill_strays(self):
        """SIGKILL processes still mentioning this cluster's dir (tasks orphaned by a
        killed worker, daemons a test left)."""
        mine = str(self.dir).encode()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit() or int(p.name) == os.getpid():
                continue
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if mine in cmd:
                try:
                    os.kill(int(p.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def write_extra(dir_, controller="", worker="", per_worker=None):
    dir_ = Path(dir_)
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "controller.extra.conf").write_text(CONTROLLER_FAST + controller)
    (dir_ / "worker.extra.conf").write_text(WORKER_FAST + worker)
    for i, text in (per_worker or {}).items():
        (dir_ / f"worker-{i}.extra.conf").write_text(text)


@pytest.fixture
def fake():
    """make(handler): a scripted fake controller (moatproto.FakeController),
    closed at the end of the test."""
    from moatproto import FakeController
    made = []

    def make(handler):
        f = FakeController(handler)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture(scope="session", autouse=True)
def _built():
    assert MOAT.exists(), "bin/moat is missing: run 'make' first"


@pytest.fixture
def moat():
    return run_moat


@pytest.fixture
def make_cluster(tmp_path):
    made = []
    for b in ("moat-controller", "moat-worker"):
        assert (BIN / b).exists(), f"bin/{b} is missing: run 'make' first"

    def make(workers=2, controller_extra="", worker_extra="", per_worker_extra=None, up=True,
             name="c"):
        d = tmp_path / name
        write_extra(d, controller_extra, worker_extra, per_worker_extra)
        c = Cluster(d)
        made.append(c)
        if up:
            c.up(workers)
        c.workers = workers
        return c

    yield make
    for c in made:
        c.down()
        c.kill_strays()


@pytest.fixture
def cluster(make_cluster):
    return make_cluster()


HOST_EXEC = 'exec_sandbox = "off";\n'


@pytest.fixture
def host_cluster(make_cluster):
    return make_cluster(worker_extra=HOST_EXEC)
