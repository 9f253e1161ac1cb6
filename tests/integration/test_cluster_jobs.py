"""Jobs on a real local cluster (moat local up): arrays, dependencies, begin times,
%MAX, exit codes, and `moat local` itself."""
import json
import os
import signal
import time

import pytest

from conftest import pid_alive, wait_for


def test_array_of_200_runs_on_both_workers_with_right_outputs(cluster):
    jid = cluster.submit("sh", "-c", "echo out-{index}; echo err-{index} >&2",
                         opts=["--array", "0-199", "--name", "arr200"])
    cluster.wait(jid, timeout=120)
    job = cluster.show(jid)
    assert job["state"] == "COMPLETED" and job["kind"] == "exec" and job["name"] == "arr200"
    assert job["progress"] == 1
    assert sorted(t["index"] for t in job["tasks"]) == list(range(200))
    assert all(t["state"] == "COMPLETED" and t["exit_code"] == 0 for t in job["tasks"]), job
    assert {t["node"] for t in job["tasks"]} == {"local-1", "local-2"}
    res = {t["index"]: t for t in cluster.j("result", jid)["tasks"]}
    assert sorted(res) == list(range(200))
    for i in range(200):
        assert (res[i]["stdout"], res[i]["stderr"], res[i]["exit_code"]) == \
            (f"out-{i}\n", f"err-{i}\n", 0)
    assert cluster.moat("result", jid).out == "".join(f"out-{i}\n" for i in range(200))
    assert cluster.moat("result", jid, "--task", "137", "--format", "raw").out == "out-137\n"
    one = cluster.j("result", jid, "--task", "5")
    assert one["index"] == 5 and one["stdout"] == "out-5\n"
    cluster.moat("result", jid, "--task", "200", check=2)


def test_array_indices_start_anywhere_and_exit_codes_count(cluster):
    jid = cluster.submit("sh", "-c", "exit $(( {index} == 12 ? 3 : 0 ))",
                         opts=["--array", "10-14"])
    r = cluster.wait(jid, check=1)
    assert f"job {jid} FAILED" in r.err
    job = cluster.show(jid)
    assert job["state"] == "FAILED"
    codes = {t["index"]: (t["state"], t["exit_code"]) for t in job["tasks"]}
    assert codes[12] == ("FAILED", 3)
    assert all(codes[i] == ("COMPLETED", 0) for i in (10, 11, 13, 14))
    assert job["reason"] == "task 12: exit code 3", job  # queue's REASON says which and how


def test_array_lists_and_steps_run_just_those_indices(cluster):
    jid = cluster.submit("sh", "-c", "echo {index} $MOAT_TASK_INDEX",
                         opts=["--array", "10-20:5,1-3,7%2"])
    cluster.wait(jid)
    job = cluster.show(jid)
    want = [1, 2, 3, 7, 10, 15, 20]
    assert job["array"] == "1-3,7,10-20:5%2" and [t["index"] for t in job["tasks"]] == want, job
    assert cluster.moat("result", jid).out == "".join(f"{i} {i}\n" for i in want)
    assert cluster.j("result", jid, "--task", "15")["stdout"] == "15 15\n"
    assert cluster.moat("result", f"{jid}_15").out == "15 15\n"  # JOB_I, as sacct -j 17_3
    r = cluster.moat("result", jid, "--task", "4", check=2)
    assert "no task 4" in r.err, r
    cluster.moat("result", f"{jid}_4", check=2)
    r = cluster.moat("result", f"{jid}_15", "--task", "7", check=2)
    assert "name different tasks" in r.err, r
    r = cluster.moat("submit", "--array", "0-999999,1000000", "--", "true", check=2)
    assert "--array" in r.err and "more than 1000000 elements" in r.err, r
    again = cluster.submit("sh", "-c", "echo {index}", opts=["--array", "7,3,3,4-5"])  # a set
    cluster.wait(again)
    assert cluster.show(again)["array"] == "3-5,7"
    assert cluster.moat("result", again).out == "3\n4\n5\n7\n"


def test_cancel_array_elements_alone(cluster):
    """moat cancel J_I / J_[LIST], as Slurm's scancel: a running element is
    killed, pending ones never start, the rest run; nothing is retried."""
    c = cluster
    jid = c.submit("sh", "-c", "if [ {index} = 0 ]; then sleep 60; fi; echo {index}",
                   opts=["--array", "0-4%1", "--retries", "2"])
    c.wait_state(jid, "RUNNING")
    wait_for(lambda: c.show(jid)["tasks"][0]["state"] == "RUNNING", 20, what="element 0 running")
    r = c.j("cancel", f"{jid}_0", f"{jid}_[2,4]")
    assert r["cancelled_tasks"] == [{"id": jid, "index": i} for i in (0, 2, 4)], r
    c.moat("cancel", f"{jid}_2")  # again (as the CLI resends a slow request): no error
    r = c.moat("cancel", f"{jid}_1,7", check=2)  # not all of job 7: refused before sending
    assert "a whole job (7) after an element" in r.err, r
    c.moat("wait", jid, "--timeout", "30s", check=1)
    job = c.show(jid)
    states = {t["index"]: (t["state"], t["attempts"]) for t in job["tasks"]}
    assert states == {0: ("CANCELLED", 1), 1: ("COMPLETED", 1), 2: ("CANCELLED", 0),
                      3: ("COMPLETED", 1), 4: ("CANCELLED", 0)}, job
    assert job["state"] == "CANCELLED" and job["reason"] == "task 0: cancelled by user (and 2 more)"
    assert c.moat("result", jid).out == "1\n3\n"
    r = c.moat("cancel", f"{jid}_1", f"{jid}_[9-5000]", check=2)
    assert "already COMPLETED" in r.err and "no task 9 (and 4991 more not in its array)" in r.err, r
    assert len(r.err.splitlines()) == 2, r  # one line for the 4,992 elements past the end
    assert c.j("result", jid, "--task", "2")["exit_code"] is None  # never ran
    r = c.moat("cancel", str(jid), check=2)  # the job has ended: as scancel, an error
    assert "already CANCELLED" in r.err, r
    plain = c.submit("true")
    c.wait(plain)
    r = c.moat("cancel", f"{plain}_0", check=2)
    assert "not an array" in r.err, r
    c.moat("cancel", "1_x", check=2)
    c.moat("cancel", f"{jid}_[1%2]", check=2)


def test_cancelled_element_stays_cancelled_after_a_controller_kill(cluster):
    """An element cancelled before it ran has a task record: a controller
    killed right after (kill -9) and started again does not run it."""
    c = cluster
    jid = c.submit("sh", "-c", "if [ {index} = 0 ]; then sleep 6; fi; echo {index}",
                   opts=["--array", "0-2%1"])
    wait_for(lambda: c.show(jid)["tasks"][0]["state"] == "RUNNING", 20, what="element 0 running")
    c.moat("cancel", f"{jid}_2")
    os.kill(c.pid("controller"), signal.SIGKILL)
    wait_for(lambda: not pid_alive(c.pid("controller")), 10, what="controller gone")
    c.up()
    c.moat("wait", jid, "--timeout", "60s", check=1)
    job = c.show(jid)
    states = [(t["state"], t["attempts"], t["exit_code"]) for t in job["tasks"]]
    assert states == [("COMPLETED", 1, 0), ("COMPLETED", 1, 0), ("CANCELLED", 0, None)], job
    assert job["state"] == "CANCELLED" and job["exit_code"] == 0, job
    assert job["reason"] == "task 2: cancelled by user", job
    assert c.moat("result", jid).out == "0\n1\n"


def test_env_reaches_the_tasks(make_cluster):
    """--env NAME=VALUE (Slurm's --export): in the task's environment, the last
    of a NAME winning, over the sandbox's PATH too; sandboxed and not."""
    probe = 'echo "$DATA|$MODE|$PATH|$(env | grep -c ^PATH=)"'
    for extra in ("", 'exec_sandbox = "off";\n'):
        c = make_cluster(workers=1, worker_extra=extra, name="host" if extra else "sb")
        jid = c.submit("sh", "-c", probe, opts=["--env", "DATA=/srv/x y", "--env", "MODE=a",
                                                 "--env", "MODE=b", "--env", "PATH=/opt/bin:/usr/bin:/bin"])
        c.wait(jid)
        assert c.moat("result", jid).out == "/srv/x y|b|/opt/bin:/usr/bin:/bin|1\n"
        assert c.show(jid)["env"] == ["DATA", "MODE", "PATH"]  # names only
        assert "env:       DATA, MODE, PATH (--env; values not shown)" in c.moat("show", jid).out
        # the task's PATH, not the worker's, is where its command is looked up
        nowhere = c.submit("true", opts=["--env", "PATH=/nonexistent"])
        missing = c.submit("no-such-command-here")
        denied = c.submit("/usr")  # there, not executable: 126 as a shell says
        c.moat("wait", nowhere, missing, denied, check=1)
        for j in (nowhere, missing):
            r = c.j("result", j)["tasks"][0]
            assert r["exit_code"] == 127 and "No such file or directory" in r["stderr"], r
        r = c.j("result", denied)["tasks"][0]
        assert r["exit_code"] == 126 and "Permission denied" in r["stderr"], r
        c.down()
    r = c.moat("submit", "--env", "MOAT_NODE=x", "--", "true", check=2)
    assert "--env 'MOAT_NODE=x': MOAT_* variables are set by moat" in r.err, r
    r = c.moat("submit", "--env", "CUDA_VISIBLE_DEVICES=3", "--", "true", check=2)
    assert "set by moat from --gpus" in r.err, r


def test_hold_and_release(cluster):
    """moat hold / release / submit --hold, as scontrol hold/release and
    sbatch -H: a held job starts nothing (a running array goes on with what
    runs), says so, keeps the hold over a controller kill, and runs once
    released."""
    c = cluster
    held = c.submit("echo", "a", opts=["--hold"])
    arr = c.submit("sh", "-c", "sleep 1; echo {index}", opts=["--array", "0-3%1"])
    wait_for(lambda: c.show(arr)["tasks"][0]["state"] == "RUNNING", 20, what="element 0 running")
    c.moat("hold", arr)
    time.sleep(2.5)  # element 0 ends; no other starts
    j = c.show(arr)
    assert [t["state"] for t in j["tasks"]] == ["COMPLETED", "PENDING", "PENDING", "PENDING"], j
    assert j["held"] and j["reason"] == f"held (moat release {arr})", j
    h = c.show(held)
    assert h["state"] == "PENDING" and h["held"] and h["reason"] == f"held (moat release {held})", h
    after = c.submit("true", opts=["--after", str(held)])
    wait_for(lambda: c.show(after)["reason"] == f"waiting for job {held} (held)", 10,
             what="the dependant says its dependency is held")
    assert f"held (moat release {held})" in c.moat("queue").out
    os.kill(c.pid("controller"), signal.SIGKILL)
    wait_for(lambda: not pid_alive(c.pid("controller")), 10, what="controller gone")
    c.up()
    time.sleep(1)
    assert c.show(held)["state"] == "PENDING" and c.show(held)["held"]
    r = c.j("release", held, arr)
    assert r == {"done": [held, arr], "errors": []}, r
    c.wait(held, arr, after, timeout=60)
    assert c.moat("result", held).out == "a\n" and c.moat("result", arr).out == "0\n1\n2\n3\n"
    assert not c.show(arr)["held"] and c.show(arr)["reason"] == ""
    r = c.moat("hold", held, "999", check=2)
    assert "already COMPLETED" in r.err and "no such job" in r.err, r


def test_a_job_no_node_could_hold_is_refused_at_submit(cluster):
    """As sbatch ('Requested node configuration is not available') and Flux
    (unsatisfiable): refused with exit 2 and the largest node, not PENDING
    for ever; what only waits for room is accepted."""
    c = cluster
    cpus = c.nodes()["local-1"]["cpus"]
    time.sleep(1)  # past the controller's first heartbeat tolerance (0.6 s here): nodes settled
    r = c.moat("submit", "--cpus", str(cpus + 1), "--", "true", check=2)
    assert f"no node of this cluster has {cpus + 1} cpus" in r.err and "could never start" in r.err, r
    r = c.moat("--json", "submit", "--gpus", "1024", "--", "true", check=2)
    assert "1024 gpus" in json.loads(r.out)["error"], r
    assert c.j("queue", "--all")["jobs"] == []  # nothing was stored
    ok = c.submit("true", opts=["--cpus", str(cpus)])
    c.wait(ok)


def test_submit_wait_returns_when_the_job_ends(cluster):
    """submit --wait, as sbatch --wait: the id, then the job's outcome as exit status."""
    r = cluster.moat("submit", "--wait", "--", "sh", "-c", "sleep 1; echo hi", check=0)
    jid = int(r.out.strip())
    assert cluster.show(jid)["state"] == "COMPLETED"  # ended before submit returned
    r = cluster.moat("submit", "--wait", "--", "false", check=1)
    assert "FAILED (exit code 1)" in r.err, r
    doc = cluster.j("submit", "--wait", "--", "true")  # one document: wait's, with the id
    assert doc["timed_out"] is False and doc["jobs"][0]["state"] == "COMPLETED", doc


def test_a_script_without_shebang_runs_with_sh(host_cluster, tmp_path):
    """As execvp (and before moat-reap): a script with no #! runs with /bin/sh,
    by path and found in PATH. Unsandboxed here (the script is under /tmp,
    which a sandboxed task does not see; the sandbox's own path search does
    the same, worker/wrk_sandbox.c exec_task_path)."""
    c = host_cluster
    script = tmp_path / "plain-script"
    script.write_text('echo "ran with $1"\n')
    script.chmod(0o755)
    a = c.submit(str(script), "x")
    b = c.submit("plain-script", "y", opts=["--env", f"PATH={tmp_path}:/usr/bin:/bin"])
    c.wait(a, b)
    assert c.moat("result", a).out == "ran with x\n" and c.moat("result", b).out == "ran with y\n"


def test_plain_job_and_exit_status_contract(cluster):
    jid = cluster.moat("submit", "--", "sh", "-c", "printf 'a\\377b'").out.strip()
    assert jid.isdigit()
    cluster.moat("wait", jid)
    cluster.moat("result", jid, "--task", "0", "--format", "raw", "--out",
                       cluster.dir / "raw.bin")
    assert (cluster.dir / "raw.bin").read_bytes() == b"a\xffb"
    assert cluster.j("result", jid, "--task", "0")["stdout"] == "a\ufffdb"
    q = cluster.j("queue", "--all")["jobs"]
    assert [j["id"] for j in q] == [int(jid)] and "tasks" not in q[0]
    assert cluster.j("queue")["jobs"] == []  # finished jobs only with --all
    assert cluster.j("queue", "--state", "COMPLETED")["jobs"][0]["id"] == int(jid)
    bad = cluster.submit("false")
    cluster.wait(bad, check=1)
    assert [j["id"] for j in cluster.j("queue", "--state", "F,CD")["jobs"]] == [int(jid), int(bad)]
    assert [j["id"] for j in cluster.j("queue", "--state", "failed,pd")["jobs"]] == [int(bad)]
    assert cluster.j("queue", "--state", "R,PD")["jobs"] == []
    cluster.moat("show", jid, "--state", "F,CD", check=2)
    cluster.moat("show", "999", check=2)
    # one version everywhere: the CLI's, the controller's (PING), each worker's (REGISTER)
    version = cluster.j("--version")["version"]
    assert cluster.moat("--version").out == f"moat {version} (protocol 1)\n"
    assert cluster.j("ping")["version"] == version
    assert {n["version"] for n in cluster.j("nodes")["nodes"]} == {version}
    assert f"moat-controller {version} listening" in (cluster.dir / "controller.log").read_text()
    cluster.moat("wait", "999", check=2)
    cluster.moat("cancel", "999", check=2)
    cluster.moat("queue", env={"MOAT_DIR": str(cluster.dir / "nowhere")}, check=3)


def test_after_waits_for_success_and_cancels_on_failure(host_cluster, tmp_path):
    cluster = host_cluster  # its tasks write to tmp_path: unsandboxed
    a = cluster.submit("sh", "-c", "sleep 1")
    b = cluster.submit("true", opts=["--after", a])
    assert cluster.show(b)["state"] == "PENDING"
    cluster.wait(b)
    ja, jb = cluster.show(a), cluster.show(b)
    assert jb["start_time"] >= ja["end_time"]
    bad = cluster.submit("false")
    mark = tmp_path / "ran"
    c = cluster.submit("touch", mark, opts=["--after", f"{a},{bad}"])
    cluster.wait_state(c, ["CANCELLED", "FAILED"], timeout=20)
    assert cluster.show(c)["state"] == "CANCELLED"
    assert not mark.exists()
    cluster.moat("wait", c, check=1)


def test_afterany_and_afternotok_as_in_slurm(cluster):
    c = cluster
    bad = c.submit("sh", "-c", "sleep 1; exit 3")
    good = c.submit("true")
    cleanup = c.submit("true", opts=["--after-any", bad])
    alert = c.submit("true", opts=["--after-notok", bad])
    needs_ok = c.submit("true", opts=["--after", bad])
    no_alert = c.submit("true", opts=["--after-notok", good])
    both = c.submit("true", opts=["--dependency", f"afterany:{bad}:{good},afterok:{good}"])
    assert c.show(both)["after_any"] == [bad, good] and c.show(both)["after"] == [good]
    assert c.show(cleanup)["state"] == "PENDING" and "waiting for job" in c.show(cleanup)["reason"]
    c.moat("wait", cleanup, alert, both, "--timeout", "60s", timeout=90)
    for j in (cleanup, alert, both):
        assert c.show(j)["state"] == "COMPLETED", c.show(j)
    c.wait_state(needs_ok, "CANCELLED")
    j = c.wait_state(no_alert, "CANCELLED")
    assert "COMPLETED (afternotok" in j["reason"], j
    assert "each must end, in any state" in c.moat("show", cleanup).out
    # a dependency that can no longer be met cancels the job whatever its place
    later = c.submit("true", opts=["--begin", "now+1h"])
    for order in ([later, bad], [bad, later]):
        j = c.submit("true", opts=["--after", ",".join(map(str, order))])
        assert c.wait_state(j, "CANCELLED")["reason"] == f"dependency {bad} ended FAILED"
    j = c.submit("true", opts=["--after-any", str(later), "--after-notok", str(good)])
    assert "COMPLETED (afternotok" in c.wait_state(j, "CANCELLED")["reason"]
    c.moat("cancel", later)
    for bad_spec in ("afterok", "afterok:", "after:1", "afterany:x", f"afterok:{good}:", "",
                     f"afterok:{good},", f",afterok:{good}", f"afterok:{good},,afterany:{good}"):
        r = c.moat("submit", "--dependency", bad_spec, "--", "true", check=2)
        assert "--dependency" in r.err, r


def test_retries_run_a_failed_task_again(host_cluster, tmp_path):
    c = host_cluster  # its tasks count their runs in tmp_path: unsandboxed
    count = tmp_path / "runs"
    # fails twice (exit 3), then succeeds
    script = f"n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}; echo run $n; [ $n -ge 2 ] || exit 3"
    ok = c.submit("sh", "-c", script, opts=["--retries", "3"])
    never = c.submit("false", opts=["--retries", "1"])
    plain = c.submit("false")
    c.moat("wait", ok, never, plain, "--timeout", "60s", timeout=90, check=1)
    j = c.show(ok)
    assert j["state"] == "COMPLETED" and j["tasks"][0]["attempts"] == 3 and j["retries"] == 3, j
    assert count.read_text() == "3\n"
    assert c.moat("result", ok).out == "run 2\n"  # the last attempt's output
    j = c.show(never)
    assert j["state"] == "FAILED" and j["tasks"][0]["attempts"] == 2, j
    assert j["reason"] == "task 0: exit code 1", j  # not the last retry's note
    assert c.show(ok)["reason"] == "", c.show(ok)
    assert c.show(plain)["tasks"][0]["attempts"] == 1
    assert "retries:   3" in c.moat("show", ok).out
    c.moat("submit", "--retries", "101", "--", "true", check=2)


def test_begin_delays_start(cluster):
    t0 = time.time()
    jid = cluster.submit("true", opts=["--begin", "now+2s"])
    assert cluster.show(jid)["state"] == "PENDING"
    later = cluster.submit("true", opts=["--begin", time.strftime("%H:%M", time.localtime(
        time.time() + 3600))])
    cluster.wait(jid, timeout=30)
    job = cluster.show(jid)
    assert job["start_time"] >= t0 + 2 - 0.01, job
    assert cluster.show(later)["state"] == "PENDING"
    cluster.moat("cancel", later)
    j = cluster.wait_state(later, "CANCELLED")
    assert j["exit_code"] is None and j["tasks"][0]["exit_code"] is None, j  # it never ran


def test_array_max_bounds_concurrency(cluster):
    script = "s=$(date +%s.%N); sleep 0.4; e=$(date +%s.%N); echo $s $e"
    jid = cluster.submit("sh", "-c", script, opts=["--array", "0-7%2"])
    cluster.wait(jid, timeout=60)
    spans = [tuple(map(float, cluster.moat("result", jid, "--task", i).out.split())) for i in range(8)]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans],
                    key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2, spans
    assert peak == 2, spans  # 4 CPUs free: %2, not the cluster, is the bound


def test_local_up_is_idempotent_and_restarts_what_is_missing(cluster):
    first = cluster.up()
    again = cluster.up()
    assert again["controller_pid"] == first["controller_pid"]
    assert again["worker_pids"] == first["worker_pids"]
    assert again["endpoint"] == first["endpoint"] == cluster.endpoint
    assert len(first["worker_pids"]) == 2
    st = cluster.j("local", "status")
    assert all(d["running"] for d in st["daemons"]) and len(st["daemons"]) == 3
    victim = first["worker_pids"][1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), 5)
    cluster.moat("local", "status", check=1)
    third = cluster.up()
    assert third["controller_pid"] == first["controller_pid"]
    assert third["worker_pids"][0] == first["worker_pids"][0]
    assert third["worker_pids"][1] != victim and pid_alive(third["worker_pids"][1])
    assert cluster.nodes()["local-2"]["state"] == "UP"
    down = cluster.j("local", "down")
    assert {d["name"] for d in down["stopped"]} == {"controller", "worker-1", "worker-2"}
    for pid in [third["controller_pid"]] + third["worker_pids"]:
        assert not pid_alive(pid)
    cluster.moat("ping", env={"MOAT_TIMEOUT": "500ms"}, check=3)
    # same endpoint and state after a full restart
    back = cluster.up()
    assert back["endpoint"] == first["endpoint"]
    assert cluster.j("queue", "--all")["jobs"] == []


def test_finished_jobs_leave_memory_and_are_read_back(make_cluster):
    # inactive_age 0: a finished job leaves the controller's memory at the next
    # pass; show, result, queue --all, --after and a restart read it from LMDB
    c = make_cluster(controller_extra='inactive_age = "0 s";\n')
    arr = c.submit("sh", "-c", "echo out-{index}; exit $(({index} % 2))",
                   opts=["--array", "0-9", "--name", "purged"])
    ok = c.submit("echo", "fine")
    c.moat("wait", arr, ok, timeout=90, check=None)
    wait_for(lambda: c.j("ping")["resident"] == 0, 10, what="finished jobs purged")
    job = c.show(arr)
    # progress: the share COMPLETED (5 of 10), from the tasks read back, and
    # from the job's record alone in a listing
    assert job["state"] == "FAILED" and job["name"] == "purged" and job["progress"] == 0.5
    assert [t["exit_code"] for t in sorted(job["tasks"], key=lambda t: t["index"])] == \
        [i % 2 for i in range(10)]
    assert c.moat("result", arr, "--task", "7", "--format", "raw").out == "out-7\n"
    assert c.moat("result", ok).out == "fine\n"
    listed = {j["id"]: (j["state"], j["progress"]) for j in c.j("queue", "--all")["jobs"]}
    assert listed == {arr: ("FAILED", 0.5), ok: ("COMPLETED", 1)}
    assert c.j("queue")["jobs"] == []
    after = c.submit("true", opts=["--after", ok])
    failed_dep = c.submit("true", opts=["--after", arr])
    c.wait(after)
    c.wait_state(failed_dep, ["CANCELLED"], timeout=20)
    assert "dependency %d ended FAILED" % arr in c.show(failed_dep)["reason"]
    # a restart keeps only unfinished jobs in memory, and loses nothing
    os.kill(c.pid("controller"), signal.SIGKILL)
    time.sleep(0.2)
    c.up()
    assert c.j("ping")["resident"] == 0 and c.j("ping")["jobs"] == 4
    assert c.show(arr)["state"] == "FAILED"
    assert c.moat("result", arr, "--task", "4", "--format", "raw").out == "out-4\n"


def test_a_task_over_its_mem_is_killed_and_says_so(cluster):
    # --mem was only a placement figure: a task could use any amount. The
    # worker measures each task's resident memory (all its processes) and
    # kills one over its limit, as Slurm's OverMemoryKill does without cgroups.
    hog = "import time; x = bytearray(300 << 20); time.sleep(10)"
    big = cluster.submit("sh", "-c", f"python3 -c '{hog}' & wait", opts=["--mem", "64MiB"])
    fits = cluster.submit("python3", "-c", "x = bytearray(20 << 20); print(len(x))",
                          opts=["--mem", "256MiB"])
    r = cluster.wait(big, fits, timeout=60, check=1)
    job = cluster.show(big)
    assert job["state"] == "FAILED", job
    assert "over its --mem of 64.0 MiB" in job["reason"], job
    assert "over its --mem" in r.err  # moat wait says why
    assert cluster.show(fits)["state"] == "COMPLETED"
    assert cluster.moat("result", fits).out == f"{20 << 20}\n"


def test_show_and_queue_say_what_a_job_asked_for_and_why_it_waits(cluster):
    c = cluster
    a = c.submit("sh", "-c", 'echo {index} "a b"',
                 opts=["--array", "0-9%2", "--mem", "100MiB", "--time-limit", "90m",
                       "--priority", "5", "--begin", "now+2h"])
    b = c.submit("true", opts=["--after", str(a), "--cpus", "2"])
    text = c.moat("show", a).out
    for line in ("command:   sh -c 'echo {index} \"a b\"'", "array:     0-9%2",
                 "resources: 1 cpu, 100.0 MiB per task", "priority:  5", "limit:     1h30m00s",
                 "reason:    begin time not reached"):
        assert line in text, text
    assert "begin:     " in text
    text = c.moat("show", b).out
    assert "after:     " + str(a) in text and "resources: 2 cpus per task" in text, text
    rows = {l.split()[0]: l for l in c.moat("queue").out.splitlines()[1:]}
    assert rows[str(a)].endswith("begin time not reached"), rows
    assert rows[str(b)].endswith(f"waiting for job {a}"), rows
    assert "REASON" in c.moat("queue").out.splitlines()[0]


BIND_PROBE = ("grep Cpus_allowed_list /proc/self/status; echo cpus=$MOAT_CPUS; "
              "echo gpus=$MOAT_GPUS; echo cuda=${CUDA_VISIBLE_DEVICES-unset}; "
              "echo nproc=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc); "
              "sleep 2")


def _probe(c, jid):
    """{index: (cpu list, fields)} from BIND_PROBE's output, and the job."""
    job = c.show(jid)
    out = {}
    for t in c.j("result", jid)["tasks"]:
        lines = t["stdout"].splitlines()
        cpus = lines[0].split(":")[1].strip()
        out[t["index"]] = (cpus, dict(l.split("=", 1) for l in lines[1:]))
    return job, out


def _overlap(job):
    a, b = job["tasks"][0], job["tasks"][1]
    return a["start_time"] < b["end_time"] and b["start_time"] < a["end_time"]


def test_task_binding_cpus_and_gpus(make_cluster):
    """A lone worker pins each task to CPUs of its own (cpu_bind = "cpus") and
    gives each GPU task its own device through CUDA_VISIBLE_DEVICES; a task
    that asked for no GPU sees none. Sandboxed and unsandboxed (moat-reap).
    The worker's own CUDA_VISIBLE_DEVICES names the devices it may give."""
    mine = sorted(os.sched_getaffinity(0))
    for extra in ("", 'exec_sandbox = "off";\n'):
        c = make_cluster(workers=1, worker_extra=extra + "gpus = 2;\n", up=False,
                         name="sb" if not extra else "host")
        c.env.update({"CUDA_VISIBLE_DEVICES": "5,7", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
        c.up(1)
        jid = c.submit("sh", "-c", BIND_PROBE, opts=["--array", "0-1", "--cpus", "1", "--gpus", "1"])
        none = c.submit("sh", "-c", BIND_PROBE, opts=["--cpus", "1"])
        c.wait(jid, none, timeout=60)
        job, got = _probe(c, jid)
        for i in (0, 1):
            cpus, f = got[i]
            assert cpus.isdigit() and int(cpus) in mine, got  # one CPU, one of the worker's
            assert f["nproc"] == "1" and f["cpus"] == "1", got
            assert f["cuda"] in ("5", "7") and f["gpus"] == f["cuda"], got
        if _overlap(job):  # side by side: their own CPU and GPU each
            assert got[0][1]["cuda"] != got[1][1]["cuda"], got
            if len(mine) >= 2:
                assert got[0][0] != got[1][0], got
        _, got = _probe(c, none)
        assert got[0][1]["cuda"] == "" and got[0][1]["gpus"] == "", got
        c.down()


def test_workers_sharing_a_machine_do_not_pin(make_cluster):
    """`moat local up` with 2 workers writes cpu_bind = "none": both workers'
    tasks would otherwise be pinned to the same first CPUs."""
    cluster = make_cluster(worker_extra="gpus = 0;\n")
    assert 'cpu_bind = "none"' in (cluster.dir / "worker-1.conf").read_text()
    jid = cluster.submit("sh", "-c", BIND_PROBE.replace("sleep 2", "true"), opts=["--cpus", "1"])
    cluster.wait(jid)
    _, got = _probe(cluster, jid)
    assert got[0][1]["nproc"] == str(len(os.sched_getaffinity(0))), got
    # a node offering no GPU: the environment as it was, or (CUDA sees some) none
    assert got[0][1]["cuda"] in ("", os.environ.get("CUDA_VISIBLE_DEVICES", "unset")), got


def test_worker_refuses_more_gpus_than_it_is_given(make_cluster):
    c = make_cluster(workers=1, worker_extra="gpus = 2;\n", up=False)
    c.env["CUDA_VISIBLE_DEVICES"] = "3"
    r = c.up(1, check=None)
    assert r.rc != 0, r
    log = (c.dir / "worker-1.log").read_text()
    assert "gpus = 2, but CUDA_VISIBLE_DEVICES" in log, log


def test_show_names_the_signal_that_killed_a_task(cluster):
    """Slurm shows 0:9 for a task SIGKILL ended; show's task objects carry
    `signal` beside exit_code -1, and plain show says "signal 9"."""
    jid = cluster.submit("sh", "-c", "if [ {index} = 1 ]; then kill -9 $$; fi; exit {index}",
                         opts=["--array", "0-2"])
    cluster.wait(jid, check=1)
    tasks = {t["index"]: t for t in cluster.show(jid)["tasks"]}
    assert (tasks[0]["exit_code"], tasks[0]["signal"]) == (0, 0), tasks
    assert (tasks[1]["exit_code"], tasks[1]["signal"]) == (-1, 9), tasks
    assert (tasks[2]["exit_code"], tasks[2]["signal"]) == (2, 0), tasks
    rows = {ln.split()[0]: ln for ln in cluster.moat("show", jid).out.splitlines()
            if ln.split() and ln.split()[0] in ("0", "1", "2")}
    assert rows["1"].rstrip().endswith("signal 9") and rows["2"].rstrip().endswith(" 2"), rows
    # JOB_I shows that element alone, as scontrol show job 17_1 does
    one = cluster.j("show", f"{jid}_1")
    assert one["tasks"] == [tasks[1]] and one["tasks_next"] is None, one
    assert "signal 9" in cluster.moat("show", f"{jid}_1").out
    r = cluster.moat("show", f"{jid}_7", check=2)
    assert r.err.strip() == f"moat show: job {jid} has no task 7", r


USAGE_PROBE = ("import sys, time\n"
               "if sys.argv[1] == '1':\n"
               "    b = bytearray(96 << 20)\n"
               "    t = time.process_time()\n"
               "    while time.process_time() - t < 1.2: pass\n")  # two samples at least


@pytest.mark.parametrize("extra", ["", 'exec_sandbox = "off";\n'], ids=["sandboxed", "unsandboxed"])
def test_show_reports_each_tasks_cpu_time_and_peak_memory(make_cluster, extra):
    """As sacct's TotalCPU and MaxRSS: each task's CPU seconds and peak resident
    memory, measured by its node at its end (wait4, and the sandbox's init for
    what it reaped), kept in the task's record across a controller restart;
    the job's are the sum and the largest."""
    c = make_cluster(workers=1, worker_extra=extra)
    jid = c.submit("python3", "-c", USAGE_PROBE, "{index}", opts=["--array", "0-1"])
    c.wait(jid)
    for attempt in range(2):
        job = c.show(jid)
        small, big = sorted(job["tasks"], key=lambda t: t["index"])
        assert 1.1 <= big["cpu_time"] < 6 and 96 << 20 <= big["max_rss"] < 400 << 20, big
        # sampled every 0.5 s: a task shorter than that may have none
        assert 0 < small["cpu_time"] < 0.5 and (small["max_rss"] or 0) < 32 << 20, small
        assert abs(job["cpu_time"] - small["cpu_time"] - big["cpu_time"]) < 1e-3, job
        assert job["max_rss"] == big["max_rss"], job
        if attempt == 0:  # the figures are in LMDB, not only in memory
            os.kill(c.pid("controller"), signal.SIGKILL)
            c.up(1)
    rows = [ln.split() for ln in c.moat("show", jid).out.splitlines() if ln.split()[:1] == ["1"]]
    assert rows and rows[0][4].endswith("s") and rows[0][5].endswith("MiB"), rows


def test_local_up_with_fewer_workers_shrinks_the_cluster(make_cluster):
    """A plain `local up` after `up --workers 2` on a cluster of 3 started the
    third again, and `local status` said it was missing (exit 1)."""
    c = make_cluster(workers=3)
    r = c.moat("local", "up", "--dir", c.dir, "--workers", "2")
    assert "1 more worker of this directory still runs (to have 2: moat local down" in r.out, r
    c.down()
    c.up(2)
    c.down()
    c.up()  # no --workers: the number DIR has now
    assert c.moat("local", "status", "--dir", c.dir).out.count("running") == 3  # controller + 2
    assert not (c.dir / "worker-3.conf").exists()
    # a worker that died (its pid file left) is shrunk away too: status is whole
    c.up(3)
    w3 = c.pid("worker-3")
    os.kill(w3, signal.SIGKILL)
    wait_for(lambda: not pid_alive(w3), 10, what="worker-3 to die")
    c.up(2)
    r = c.moat("local", "status", "--dir", c.dir)  # exit 0: all of the 2 run
    assert "worker-3" not in r.out, r


def test_local_up_again_keeps_the_cpus_per_worker_it_was_given(make_cluster):
    """`local up` restarts whichever daemon is not running; a worker it starts
    again offers what --cpus-per-worker gave it before, not all the CPUs."""
    c = make_cluster(workers=1, up=False)
    c.up(1, extra_args=["--cpus-per-worker", "1"])
    assert c.nodes()["local-1"]["cpus"] == 1
    os.kill(c.pid("worker-1"), signal.SIGKILL)
    wait_for(lambda: not pid_alive(c.pid("worker-1")), 10, what="worker-1 to die")
    c.up()
    wait_for(lambda: c.nodes()["local-1"]["state"] == "UP", 20, what="local-1 UP again")
    assert c.nodes()["local-1"]["cpus"] == 1
    # asked of a running worker: not done, and said so (it was silent)
    r = c.moat("local", "up", "--dir", c.dir, "--workers", "1", "--cpus-per-worker", "2")
    assert "--cpus-per-worker 2: 1 worker already ran and keeps its CPUs" in r.err, r
    assert c.nodes()["local-1"]["cpus"] == 1
    c.down()
    c.up(1, extra_args=["--cpus-per-worker", "2"])  # asked again: the new figure
    assert c.nodes()["local-1"]["cpus"] == 2
    # a cpus of worker.extra.conf is the extra file's: once taken out of it,
    # it is not kept (worker-1.conf holds a copy of the extra files' text)
    c.down()
    extra = c.dir / "worker.extra.conf"
    base = extra.read_text()
    extra.write_text(base + "cpus = 1;\n")
    c.up(1)
    assert c.nodes()["local-1"]["cpus"] == 1
    c.down()
    extra.write_text(base)
    c.up(1)
    assert c.nodes()["local-1"]["cpus"] == len(os.sched_getaffinity(0)), c.nodes()


def test_a_job_queued_behind_a_full_cluster_says_why_at_once(make_cluster):
    """A pass that finds the cluster full does not judge the jobs after it; their
    reasons were empty until the next refresh (up to a second later)."""
    c = make_cluster(workers=1, worker_extra="cpus = 1;\n")
    busy = c.submit("sleep", "60")
    wait_for(lambda: c.show(busy)["state"] == "RUNNING", 20, what="the node busy")
    first = c.submit("true")
    top = c.j("submit", "--priority", "5", "--", "true")["id"]
    dep = c.j("submit", "--after", str(first), "--", "true")["id"]
    reasons = {j["id"]: j["reason"] for j in c.j("queue")["jobs"]}
    assert reasons[top] == "waiting for resources", reasons
    assert reasons[dep] == f"waiting for job {first}", reasons
    c.moat("cancel", busy, first, top, dep)


def test_requeue_runs_again_only_what_did_not_complete(make_cluster, tmp_path):
    """moat requeue (Slurm's scontrol requeue): an ended job's failed elements
    run again as new attempts; completed ones keep their attempt and output.
    With inactive_age 0 an ended job leaves the controller's memory, and the
    restart index with the next batch: a requeue reads it back and puts it in
    the index again, whether its drop from the index is still pending (job a)
    or done (job b), so a controller killed before they end still ends them."""
    c = make_cluster(workers=1, controller_extra='inactive_age = "0 s";\n',
                     worker_extra='exec_sandbox = "off";\n')
    mark = tmp_path / "mark"
    cmd = ["sh", "-c", f'[ {{index}} != 1 ] || [ -e {mark} ] || exit 3; '
           f'[ -e {mark} ] && sleep 2; echo run-{{index}}']
    b = c.submit(*cmd, opts=["--array", "0-2"])
    c.wait(b, check=1)
    a = c.submit(*cmd, opts=["--array", "0-2"])  # a write: b's drop from the index is done
    c.wait(a, check=1)
    assert c.show(a)["exit_code"] == 3
    c.moat("requeue", a + 1, check=2)  # no such job
    mark.write_text("")
    time.sleep(1.5)  # a's first run is over a second old
    requeued = time.time()
    r = c.j("requeue", a, b)
    assert r == {"requeued": [a, b], "errors": []}, r
    job = c.show(a)
    assert job["state"] in ("PENDING", "RUNNING") and job["exit_code"] is None, job
    # its times are the new run's, not the first run's start to now
    assert job["start_time"] is None or job["start_time"] >= requeued - 1, job
    assert c.moat("requeue", a, check=2).err.strip().endswith("requeue runs again what an "
                                                              "ended job did not complete")
    wait_for(lambda: c.show(a)["tasks"][1]["state"] == "RUNNING", 20, what="element 1 to run")
    os.kill(c.pid("controller"), signal.SIGKILL)
    c.up(1)
    c.wait(a, b, timeout=60)
    for jid in (a, b):
        job = c.show(jid)
        assert job["state"] == "COMPLETED" and job["exit_code"] == 0, job
        assert [t["attempts"] for t in job["tasks"]] == [1, 2, 1], job["tasks"]
        assert c.moat("result", jid).out == "run-0\nrun-1\nrun-2\n"
    r = c.moat("requeue", a, check=2)
    assert r.err.strip() == f"moat requeue: job {a}: COMPLETED: nothing to run again", r
    assert [x["action"] for x in c.j("audit")["records"]].count("requeue") == 2


def test_requeue_of_a_million_elements_answers_and_keeps_the_nodes(make_cluster):
    """A REQUEUE of a cancelled 1,000,000-element array held the controller's
    loop for seconds: the CLI sent it again after 1 s and took the repeat's
    reply ("job is PENDING": exit 1 though the job was requeued), and the
    commit's seconds counted as the nodes' silence (DOWN). Never-started
    elements are now reset without a record, the time of a commit is the
    controller's own, and a reply to any send of a request answers it."""
    c = make_cluster(workers=1)
    c.moat("admin", "node", "drain", "local-1")
    jid = c.submit("true", opts=["--array", "0-999999"])
    c.moat("cancel", jid)
    state = lambda: {j["id"]: j["state"] for j in c.j("queue", "--all")["jobs"]}[jid]
    wait_for(lambda: state() == "CANCELLED", 60, what="the cancel")
    assert c.j("requeue", jid, timeout=120) == {"requeued": [jid], "errors": []}
    assert state() == "PENDING"

    def restart():
        cpid = c.pid("controller")
        os.kill(cpid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(cpid), 30, what="the controller to go")
        c.up(1)

    restart()  # the requeue was committed
    assert state() == "PENDING"
    job = c.j("show", f"{jid}_0")  # element 0 alone
    assert job["tasks"][0]["state"] == "PENDING" and job["task_states"] == {"PENDING": 1000000}, job
    # Cancelled elements have records: reading a million of them at the next
    # start took seconds, and were counted as the nodes' silence.
    for lo in range(0, 1000000, 100000):  # at most 100,000 elements a cancel
        c.moat("cancel", f"{jid}_[{lo}-{min(lo + 99999, 999998)}]", timeout=120)
    restart()
    job = c.j("show", f"{jid}_999999")
    assert job["task_states"] == {"CANCELLED": 999999, "PENDING": 1}, job
    assert " DOWN" not in (c.dir / "controller.log").read_text()
    assert c.nodes()["local-1"]["state"] == "DRAINING"


def test_requeue_of_a_job_and_its_cancelled_dependent_runs_both(host_cluster, tmp_path):
    """A dependent cancelled because its --after job failed comes back with it:
    `moat requeue A B` (in either order) runs A again, then B once A COMPLETED."""
    c = host_cluster
    mark = tmp_path / "mark"
    a = c.submit("sh", "-c", f"[ -e {mark} ] && echo a")
    b = c.submit("echo", "b", opts=["--after", a])
    c.wait(a, b, check=1)
    assert c.show(b)["state"] == "CANCELLED", c.show(b)
    mark.write_text("")
    assert c.j("requeue", b, a) == {"requeued": [b, a], "errors": []}
    c.wait(a, b, timeout=60)
    assert c.moat("result", b).out == "b\n" and c.moat("result", a).out == "a\n"
    assert c.show(b)["start_time"] >= c.show(a)["end_time"]


def test_result_of_a_task_not_ended_says_so(cluster):
    jid = cluster.submit("echo", "hi", opts=["--hold"])
    for args in (("result", jid, "--task", "0"), ("result", f"{jid}_0", "--format", "raw")):
        r = cluster.moat(*args)
        assert r.out == "" and r.err == f"moat result: task 0 of job {jid} is PENDING: no output " \
                                         "until it ends\n", r
    cluster.moat("release", jid)
    cluster.wait(jid)
    r = cluster.moat("result", f"{jid}_0")
    assert (r.out, r.err) == ("hi\n", ""), r


def test_wait_for_one_element_of_an_array(cluster):
    jid = cluster.submit("sh", "-c", "[ {index} = 1 ] && exit 3; [ {index} = 2 ] && sleep 30; "
                         "echo {index}", opts=["--array", "0-2"])
    r = cluster.j("wait", f"{jid}_0", "--timeout", "20s")  # while element 2 still runs
    assert r["jobs"] == [{"id": jid, "index": 0, "state": "COMPLETED", "exit_code": 0}], r
    r = cluster.moat("wait", f"{jid}_1,{jid}_0", check=1)
    assert r.err.strip() == f"moat wait: job {jid}_1 FAILED (exit code 3)", r
    assert cluster.show(jid)["state"] == "RUNNING"
    r = cluster.moat("wait", f"{jid}_2", "--timeout", "1s", check=1)
    assert f"1 job not ended: job {jid}_2 RUNNING" in r.err, r
    assert "has no task 9" in cluster.moat("wait", f"{jid}_9", check=2).err
    cluster.moat("wait", f"{jid}_x", check=2)
    cluster.moat("cancel", jid)


def test_a_cancelled_job_shows_what_it_got_done(host_cluster, tmp_path):
    # A job cancelled after 2 of its 5 elements completed: 40%, not the 100%
    # of its tasks having ended, and no exit code 0 as if all went well.
    c = host_cluster
    jid = c.submit("sh", "-c", "[ {index} -lt 2 ] || sleep 30", opts=["--array", "0-4"])
    wait_for(lambda: c.show(jid)["task_states"].get("COMPLETED") == 2, 20, what="2 completed")
    c.moat("cancel", jid)
    c.wait(jid, check=1)
    job = c.show(jid)
    assert (job["state"], job["progress"], job["exit_code"]) == ("CANCELLED", 0.4, -1), job
    row = c.moat("queue", "--all").out.splitlines()[-1].split()
    assert row[2:4] == ["CANCELLED", "40%"], row
