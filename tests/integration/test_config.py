"""A bad config file gives one line "FILE:LINE: KEY: what is wrong" and a non-zero
exit, from either daemon and through `moat local up`; conf/*.conf as shipped load."""
import os
import re
import subprocess

import pytest

from conftest import BIN, ROOT, Cluster, write_extra

CASES = [
    ("moat-controller", 'state_dir = "/tmp/x";\nheartbeat_interval = "soon";\n', 2,
     "heartbeat_interval", "duration"),
    ("moat-controller", 'max_message = "12 parsecs";\n', 1, "max_message", "unit"),
    ("moat-controller", "heartbeat_tolerance = -4;\n", 1, "heartbeat_tolerance", "range"),
    ("moat-controller", "\n\nno_such_key = 1;\n", 3, "no_such_key", "unknown"),
    ("moat-worker", 'name = "w";\ncpus = "many";\n', 2, "cpus", ""),
    ("moat-worker", 'mem = "lots";\n', 1, "mem", "size"),
    ("moat-worker", "bogus = 1;\n", 1, "bogus", "unknown"),
    # libconfig 1.5 read these as 3 and 0 ("all memory")
    ("moat-controller", "heartbeat_tolerance = 4294967299;\n", 1, "heartbeat_tolerance",
     "4294967299 is out of range"),
    ("moat-worker", "mem = 17179869184;\n", 1, "mem", "give a unit"),
    # libzmq would bind port 34463
    ("moat-controller", 'listen = [ "tcp://127.0.0.1:99999" ];\n', 1, "listen",
     "port out of range 1-65535"),
    ("moat-worker", 'comm_ports = "27503-27501";\n', 1, "comm_ports", "greater than max"),
    ("moat-worker", 'state_dir = "";\n', 1, "state_dir", "empty"),
]


def run_daemon(prog, conf):
    return subprocess.run([str(BIN / prog), "-c", str(conf)], capture_output=True, text=True,
                          timeout=10)


@pytest.mark.parametrize("prog,text,line,key,what", CASES)
def test_bad_config_one_line_error(tmp_path, prog, text, line, key, what):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    p = run_daemon(prog, conf)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert f"{conf}:{line}: {key}: " in lines[0], lines[0]
    assert what in lines[0].lower(), lines[0]


def test_syntax_error_and_missing_file(tmp_path):
    conf = tmp_path / "syntax.conf"
    conf.write_text('listen = [ "tcp://127.0.0.1:1"\n')
    p = run_daemon("moat-controller", conf)
    assert p.returncode != 0 and re.search(re.escape(str(conf)) + r":\d+: ", p.stderr), p.stderr
    p = run_daemon("moat-worker", tmp_path / "missing.conf")
    assert p.returncode != 0 and str(tmp_path / "missing.conf") in p.stderr
    p = run_daemon("moat-controller", tmp_path)  # a directory
    assert p.returncode != 0 and f"{tmp_path}: not a regular file" in p.stderr, p.stderr


def test_an_unreadable_trust_root_stops_the_controller_at_start(tmp_path):
    # It was found only at the first import, and then disabled every root.
    d = tmp_path / "c"
    write_extra(d)
    (d / "trust").mkdir()
    (d / "trust" / "a-broken.pub").write_text("not a key\n")
    c = Cluster(d)
    try:
        r = c.moat("local", "up", "--dir", d, "--workers", "1", check=1, timeout=60)
        assert "trust_roots" in r.err and "a-broken.pub" in r.err, r
    finally:
        c.down()
        c.kill_strays()


def test_local_up_reports_a_daemon_that_fails_on_its_config(tmp_path):
    d = tmp_path / "c"
    write_extra(d, controller='max_attempts = "lots";\n')
    c = Cluster(d)
    try:
        r = c.moat("local", "up", "--dir", d, "--workers", "1", check=1, timeout=60)
        msg = r.err.strip().splitlines()
        assert len(msg) == 1, r
        # the file the user edits and its line, not the config local up made of it
        line = (d / "controller.extra.conf").read_text().splitlines().index('max_attempts = "lots";') + 1
        assert f"{d / 'controller.extra.conf'}:{line}: max_attempts: " in msg[0], r
        assert "controller.log" in msg[0]
    finally:
        c.down()
        c.kill_strays()


def test_local_up_refuses_extra_settings_that_would_split_the_cluster(tmp_path):
    # listen in controller.extra.conf made the controller bind elsewhere than
    # the endpoint the workers and commands use: a 30 s wait for nothing
    for extra, key in (({"controller": '\nlisten = [ "tcp://127.0.0.1:7799" ];\n'}, "listen"),
                       ({"worker": 'controller = "tcp://127.0.0.1:7799";\n'}, "controller"),
                       ({"worker": 'state_dir = "/tmp/shared-by-all";\n'}, "state_dir")):
        d = tmp_path / key
        write_extra(d, **extra)
        c = Cluster(d)
        try:
            r = c.moat("local", "up", "--dir", d, "--workers", "1", check=2, timeout=60)
            which = "controller" if key == "listen" else "worker"
            text = (d / f"{which}.extra.conf").read_text().splitlines()
            line = next(i for i, l in enumerate(text, 1) if l.startswith(key + " ="))
            assert f"{d / (which + '.extra.conf')}:{line}: {key}: set by moat local up itself" in r.err, r
            assert not (d / "controller.pid").exists(), r  # refused before anything started
        finally:
            c.down()
            c.kill_strays()


@pytest.mark.parametrize("name", ["controller.conf", "worker.conf"])
def test_shipped_config_files_parse(tmp_path, name):
    """conf/*.conf documents every key with its default: the daemons accept it
    (checked up to the point where they would bind or open their state)."""
    text = (ROOT / "conf" / name).read_text()
    # keep the documented values but point state somewhere writable, and an
    # endpoint that cannot be bound so the daemon stops right after parsing.
    text = re.sub(r'(?m)^state_dir = .*$', f'state_dir = "{tmp_path}/state";', text)
    text = re.sub(r'(?m)^listen = .*$', 'listen = [ "ipc:///nonexistent/moat.sock" ];', text)
    text = re.sub(r'(?m)^controller = .*$', 'controller = "ipc:///nonexistent/moat.sock";', text)
    conf = tmp_path / name
    conf.write_text(text)
    prog = "moat-controller" if name.startswith("controller") else "moat-worker"
    p = run_daemon(prog, conf)
    assert f"{conf}:" not in p.stderr, p.stderr  # no config error


def test_worker_refuses_gpus_it_cannot_see(make_cluster):
    """gpus = N with no such devices: a --gpus job would be dispatched there and
    fail; the worker refuses to start instead, naming the key and what it saw."""
    c = make_cluster(workers=1, worker_extra="gpus = 1000;\n", up=False)
    c.env.pop("CUDA_VISIBLE_DEVICES", None)
    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    r = c.up(1, check=None)
    assert r.rc != 0, r
    log = (c.dir / "worker-1.log").read_text()
    assert "gpus = 1000, but this machine shows" in log and "/dev/nvidiaN" in log, log


def test_worker_warns_of_cpus_and_mem_beyond_the_machine(make_cluster):
    """Slurm would drain such a node; a warning at start is enough (tests
    oversubscribe on purpose), and the worker runs."""
    c = make_cluster(workers=1, worker_extra='cpus = 999;\nmem = "100 TiB";\n')
    assert c.nodes()["local-1"]["state"] == "UP"
    log = (c.dir / "worker-1.log").read_text()
    assert f"cpus = 999, but this machine has {os.cpu_count()} online CPUs" in log, log
    assert "mem = 109951162777600 bytes, but this machine has" in log, log
