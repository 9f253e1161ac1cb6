"""A daemon's start-up: one daemon per state_dir (a second one is refused
before it touches anything), and a worker or CLI that cannot get through to
the controller says why. Real daemons on loopback, started by hand beside a
`moat local up` cluster."""
import re
import subprocess

from conftest import BIN


def start_by_hand(prog, conf, timeout=15):
    return subprocess.run([str(BIN / prog), "-c", str(conf)], capture_output=True, text=True,
                          timeout=timeout)


def test_second_controller_on_a_state_dir_is_refused_and_the_first_serves_on(cluster, tmp_path):
    c = cluster
    before = c.submit("true")
    c.wait(before)
    # a copy of the config on another port: the same state_dir
    text = (c.dir / "controller.conf").read_text()
    text = re.sub(r'(?m)^listen = .*$', 'listen = [ "tcp://127.0.0.1:0" ];', text)
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
