"""A daemon's start-up: one daemon per state_dir (a second one is refused
before it touches anything), and a worker or CLI that cannot get through to
the controller says why. Real daemons on loopback, started by hand beside a
`moat local up` cluster."""
import re
import subprocess

from conftest import BIN, wait_for


def start_by_hand(prog, conf, timeout=15):
    return subprocess.run([str(BIN / prog), "-c", str(conf)], capture_output=True, text=True,
                          timeout=timeout)


def test_second_controller_on_a_state_dir_is_refused_and_the_first_serves_on(cluster, tmp_path):
    c = cluster
    before = c.submit("true")
    c.wait(before)
    # a copy of the config on another port: the same state_dir
    text = (c.dir / "controller.conf").read_text()
    text = re.sub(r'(?m)^listen = .*$', 'listen = [ "tcp://127.0.0.1:*" ];', text)
    conf = tmp_path / "second.conf"
    conf.write_text(text)
    p = start_by_hand("moat-controller", conf)
    assert p.returncode == 2, p
    assert p.stderr == (f"moat-controller: state_dir {c.dir}/controller is in use by another "
                        f"moat-controller (pid {c.pid('controller')})\n"), p.stderr
    # the first one still serves: old jobs, new jobs
    assert c.show(before)["state"] == "COMPLETED"
    jid = c.submit("echo", "after")
    c.wait(jid)
    assert c.moat("result", jid).out == "after\n"


def test_second_worker_on_a_state_dir_is_refused_and_leaves_running_tasks_alone(cluster):
    c = cluster
    jid = c.submit("sh", "-c", "sleep 3; echo survived")
    c.wait_state(jid, "RUNNING")
    node = c.show(jid)["tasks"][0]["node"]
    i = node.split("-")[1]
    p = start_by_hand("moat-worker", c.dir / f"worker-{i}.conf")
    assert p.returncode == 2, p
    assert p.stderr == (f"moat-worker: state_dir {c.dir}/worker-{i} is in use by another "
                        f"moat-worker (pid {c.pid('worker-' + i)})\n"), p.stderr
    c.wait(jid, timeout=30)
    s = c.show(jid)
    assert (s["state"], s["tasks"][0]["attempts"]) == ("COMPLETED", 1), s
    assert c.moat("result", jid).out == "survived\n"


def keygen(c, dir_, name):
    return c.j("keygen", "--out", dir_, "--name", name)["public_key"]


def test_a_worker_that_cannot_register_says_why(cluster, tmp_path):
    """Four workers that cannot get through, each for another reason, say which
    within ~15 s (it was silence, or a send EAGAIN twice a second)."""
    c = cluster
    keygen(c, tmp_path, "other-controller")
    stranger = keygen(c, tmp_path, "stranger")
    good_ctl = c.dir / "controller.pub"
    wrong_ctl = tmp_path / "other-controller.pub"
    cases = {  # name: (controller, its public key file, worker key, the reason's words)
        "wrongkey": (c.endpoint, wrong_ctl, c.dir / "worker-1.key",
                     f"connected to the controller at {c.endpoint} but the CURVE handshake did not "
                     f"complete: is controller_public_key_file ({wrong_ctl}) its public key?"),
        "unlisted": (c.endpoint, good_ctl, tmp_path / "stranger.key",
                     f"the controller at {c.endpoint} refused this worker's key ({stranger}): "
                     "add it to its allowlist"),
        "noone": ("tcp://127.0.0.1:1", good_ctl, c.dir / "worker-1.key",
                  "cannot connect to the controller at tcp://127.0.0.1:1 (connection refused"),
        "noname": ("tcp://no-such-host.invalid:7700", good_ctl, c.dir / "worker-1.key",
                   "the host of the controller address tcp://no-such-host.invalid:7700 does not "
                   "resolve"),
    }
    procs = {}
    try:
        for name, (ep, ctl_pub, key, _) in cases.items():
            conf = tmp_path / f"{name}.conf"
            conf.write_text(f'name = "{name}";\ncontroller = "{ep}";\n'
                            f'state_dir = "{tmp_path}/{name}";\n'
                            f'curve_secret_key_file = "{key}";\n'
                            f'controller_public_key_file = "{ctl_pub}";\n')
            log = open(tmp_path / f"{name}.log", "w")
            procs[name] = subprocess.Popen([str(BIN / "moat-worker"), "-c", str(conf)],
                                           stderr=log, stdout=log)
            log.close()
        logs = {}

        def all_said():
            for name in cases:
                logs[name] = (tmp_path / f"{name}.log").read_text()
            return all("not registered after" in t for t in logs.values())

        wait_for(all_said, 16, interval=0.5, what="a 'not registered' line from each worker")
        for name, (_, _, _, words) in cases.items():
            lines = [ln for ln in logs[name].splitlines() if "not registered after" in ln]
            assert len(lines) == 1, logs[name]
            assert re.search(r"not registered after 1\d s: ", lines[0]), lines[0]
            assert words in lines[0], (name, lines[0])
            # send failures, if any, are not repeated twice a second
            assert sum("send " in ln for ln in logs[name].splitlines()) <= 1, logs[name]
        assert not set(cases) & set(c.nodes())
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_cli_with_a_wrong_controller_key_says_the_handshake_failed(cluster, tmp_path):
    c = cluster
    keygen(c, tmp_path, "other-controller")
    r = c.moat("queue", env={"MOAT_CONTROLLER_KEY": str(tmp_path / "other-controller.pub"),
                             "MOAT_TIMEOUT": "2s"}, check=3)
    assert r.err.strip() == (f"moat queue: connected to {c.endpoint} but the CURVE handshake did not "
                             "complete: wrong controller public key, this client's key is "
                             "not allowlisted, or the controller is too busy to answer (recovering "
                             "a large store, or a long request)"), r
    # a controller that is not there: nothing listens (it said "no reply in 1s")
    r = c.moat("queue", env={"MOAT_CONTROLLER": "tcp://127.0.0.1:1", "MOAT_TIMEOUT": "1s"},
               check=3)
    assert r.err.strip() == "moat queue: cannot reach the controller at tcp://127.0.0.1:1: nothing " \
                            "listens there (connection refused or host unreachable): is it running? " \
                            "('moat local status' for a local cluster)", r
