"""An admin takes nodes out of service and back: moat admin node drain,
resume, remove (controller/ctl_nodeadm.h)."""
import os
import signal

from conftest import pid_alive, wait_for


def audit_actions(c):
    return [(r["action"], r["object"]) for r in c.j("audit")["records"]]


def test_drain_keeps_running_tasks_sends_no_new_work_and_outlives_restarts(cluster):
    c = cluster
    long = c.submit("sh", "-c", "sleep 2; echo long done")
    c.wait_state(long, "RUNNING")
    busy = c.show(long)["tasks"][0]["node"]
    other = ({"local-1", "local-2"} - {busy}).pop()
    r = c.moat("admin", "node", "drain", busy, "--reason", "DIMM errors, ticket 4411")
    assert r.out == f"node {busy}: DRAINING (DIMM errors, ticket 4411)\n"
    n = c.nodes()[busy]
    assert (n["state"], n["drained"], n["reason"]) == ("DRAINING", True, "DIMM errors, ticket 4411")
    assert "DIMM errors" in c.moat("nodes").out
    arr = c.submit("true", opts=["--array", "0-9"])
    c.wait(long, arr, timeout=60)
    assert c.moat("result", long).out == "long done\n"  # the drain did not touch it
    assert {t["node"] for t in c.show(arr)["tasks"]} == {other}

    # A drain holds across a worker restart and a controller restart.
    wpid = c.pid("worker-" + busy.split("-")[1])
    os.kill(wpid, signal.SIGKILL)
    wait_for(lambda: c.nodes()[busy]["state"] == "DOWN", 20, what=f"{busy} DOWN")
    cpid = c.pid("controller")
    os.kill(cpid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(cpid), 5)
    out = c.moat("local", "up", "--dir", c.dir, timeout=90).out
    assert "1 worker UP and 1 DRAINING (an admin's drain" in out, out  # not "2 workers UP"
    wait_for(lambda: c.nodes()[busy]["registered"], 20, what=f"{busy} registered")
    assert c.nodes()[busy]["state"] == "DRAINING"

    # Resume; with the other node drained, new work can only go to it.
    c.moat("admin", "node", "drain", other)
    assert c.nodes()[other]["reason"] == "drained by an admin"
    r = c.moat("admin", "node", "resume", busy)
    assert r.out == f"node {busy}: UP\n"
    n = c.nodes()[busy]
    assert (n["state"], n["drained"], n["reason"]) == ("UP", False, "")
    jid = c.submit("true", opts=["--array", "0-3"])
    c.wait(jid, timeout=60)
    assert {t["node"] for t in c.show(jid)["tasks"]} == {busy}
    acts = audit_actions(c)
    for a in (("node.drain", f"node {busy}"), ("node.resume", f"node {busy}"),
              ("node.drain", f"node {other}")):
        assert a in acts, acts
    c.moat("audit", "verify")


def test_remove_forgets_a_down_node_but_not_its_history(cluster, tmp_path):
    c = cluster
    jid = c.submit("true", opts=["--array", "0-5"])
    c.wait(jid, timeout=60)
    ran = {t["index"]: t["node"] for t in c.show(jid)["tasks"]}
    victim = "local-2"
    # an UP node is not removed; nor an unknown one
    r = c.moat("admin", "node", "remove", victim, check=1)
    assert "is UP" in r.err and "stop its worker first" in r.err
    r = c.moat("admin", "node", "remove", "no-such-node", check=2)
    assert "no node 'no-such-node'" in r.err
    os.kill(c.pid("worker-2"), signal.SIGKILL)
    wait_for(lambda: c.nodes()[victim]["state"] == "DOWN", 20, what=f"{victim} DOWN")
    r = c.moat("admin", "node", "remove", victim)
    assert r.out == f"node {victim}: removed\n"
    assert set(c.nodes()) == {"local-1"}
    assert c.j("ping")["nodes"] == 1
    r = c.moat("admin", "node", "drain", victim, check=2)  # gone for the admin commands too
    assert "no node" in r.err
    assert ("node.remove", f"node {victim}") in audit_actions(c)

    # Its old tasks still name it, also after a controller restart.
    cpid = c.pid("controller")
    os.kill(cpid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(cpid), 5)
    c.up()  # also starts worker-2 again: it registers, and is a node again
    assert {t["index"]: t["node"] for t in c.show(jid)["tasks"]} == ran
    wait_for(lambda: c.nodes().get(victim, {}).get("state") == "UP", 20, what=f"{victim} back UP")
    assert c.j("ping")["nodes"] == 2


def test_node_admin_needs_an_admin_key_and_checks_its_arguments(cluster, tmp_path):
    c = cluster
    c.moat("--json", "keygen", "--out", tmp_path, "--name", "ops")
    c.moat("admin", "key", "add", tmp_path / "ops.pub", "--role", "client", "--name", "ops")
    env = {"MOAT_KEY": str(tmp_path / "ops.key")}
    r = c.moat("admin", "node", "drain", "local-1", env=env, check=1)
    assert "may not drain, resume or remove nodes (ADMIN_NODE takes an admin key)" in r.err, r
    assert c.nodes()["local-1"]["state"] == "UP"
    r = c.moat("admin", "node", "resume", "local-1", "--reason", "x", check=2)
    assert "--reason applies to 'drain' only" in r.err
    r = c.moat("admin", "node", "drain", "local-1", "--reason", "x" * 81, check=2)
    assert "at most 80" in r.err
    r = c.moat("admin", "node", "evict", "local-1", check=2)
    assert "unknown operation 'evict'" in r.err
    r = c.moat("--json", "admin", "node", "drain", "local-1")
    assert (r.json["name"], r.json["state"]) == ("local-1", "DRAINING")
