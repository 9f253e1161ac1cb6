"""Bench jobs on a real local cluster: `moat submit --bench OP --shape ... --nodes ...`
runs the kernel benchmark on each chosen node, one task per node, and the JSON rows
become the job's result."""
import json

import pytest

from conftest import wait_for


def rows_of(cluster, jid):
    out = cluster.moat("result", jid).out
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert rows, f"job {jid}: no rows in {out!r}"
    return rows


def test_gemm_on_all_nodes_gives_one_validated_row_per_node(cluster):
    jid = cluster.j("submit", "--bench", "gemm", "--shape", "96,80,112", "--repeat", "3",
                    "--nodes", "all", "--name", "g")["id"]
    cluster.wait(jid, timeout=60)
    job = cluster.show(jid)
    assert job["state"] == "COMPLETED" and job["kind"] == "bench" and job["name"] == "g"
    assert job["nodes"] == ["local-1", "local-2"]  # "all", expanded at submission
    assert job["bench"] == {"op": "gemm", "shape": [96, 80, 112], "dtype": "f32", "repeat": 3,
                            "backend": "auto", "threads": 0}
    assert [t["node"] for t in sorted(job["tasks"], key=lambda t: t["index"])] == \
        ["local-1", "local-2"]
    rows = rows_of(cluster, jid)
    assert [r["node"] for r in rows] == ["local-1", "local-2"]
    for r in rows:
        assert r["op"] == "gemm" and r["shape"] == [96, 80, 112] and r["dtype"] == "f32"
        assert r["backend"] == "cpu" and r["repeat"] == 3 and r["valid"] is True
        assert r["time_ms"] > 0 and r["gflops"] > 0
        assert r["ref"] == "openblas" and r["pct_of_ref"] > 0  # OpenBLAS timed in the same run
        assert r["max_abs_err"] < 1e-3
        assert r["peak_unit"] == "gflops" and r["peak"] > 0 and r["pct_of_peak"] > 0
    # inputs come from a fixed seed: every node computes the same output
    assert rows[0]["checksum"] == rows[1]["checksum"]
    # each row is also the task's stdout, with its index
    res = cluster.j("result", jid)
    per_task = {t["index"]: t for t in res["tasks"]}
    assert json.loads(per_task[1]["stdout"])["node"] == "local-2"
    # and --json gives the rows themselves, parsed (PRODUCT.md: "bench: the JSON rows")
    assert res["kind"] == "bench" and res["rows"] == rows


def test_other_ops_dtypes_and_one_named_node(cluster):
    jid = cluster.j("submit", "--bench", "attention", "--shape", "2,64,2,32,1", "--dtype", "bf16",
                    "--repeat", "2", "--nodes", "local-2", "--backend", "cpu",
                    "--threads", "1")["id"]
    cluster.wait(jid, timeout=60)
    (row,) = rows_of(cluster, jid)
    assert row["node"] == "local-2" and row["op"] == "attention" and row["dtype"] == "bf16"
    assert row["shape"] == [2, 64, 2, 32, 1] and row["threads"] == 1
    assert row["valid"] is True and row["max_abs_err"] < 0.05  # bf16 inputs, causal: no reference
    jid = cluster.j("submit", "--bench", "layernorm", "--shape", "64,384", "--nodes",
                    "local-1,local-2")["id"]
    cluster.wait(jid, timeout=60)
    rows = rows_of(cluster, jid)
    assert [r["node"] for r in rows] == ["local-1", "local-2"]
    assert all(r["op"] == "layernorm" and r["valid"] and r["gbps"] > 0 for r in rows)
    # a memory-bound op on cpu: % of the node's bandwidth, measured by a STREAM triad
    for r in rows:
        assert r["peak_unit"] == "gbps" and r["peak_source"] == "stream-triad (measured)", r
        assert r["peak"] > 0 and r["pct_of_peak"] > 0, r


def test_waits_for_its_node_to_be_idle_then_takes_all_of_it(cluster):
    sleeper = cluster.submit("sleep", "3", opts=["--cpus", "1"])
    job = cluster.wait_state(sleeper, "RUNNING")
    node = job["tasks"][0]["node"]
    jid = cluster.j("submit", "--bench", "add", "--shape", "4096", "--nodes", node)["id"]
    waiting = wait_for(lambda: (lambda j: j if "busy" in j["reason"] else None)(cluster.show(jid)),
                       10, what="bench waiting for its node")
    assert waiting["state"] == "PENDING"
    assert waiting["reason"] == f"waiting for node {node} (busy)"
    cluster.wait(jid, timeout=60)
    end_sleep = cluster.show(sleeper)["end_time"]
    bench = cluster.show(jid)
    assert bench["state"] == "COMPLETED"
    assert bench["tasks"][0]["node"] == node
    assert bench["start_time"] >= end_sleep
    (row,) = rows_of(cluster, jid)
    assert row["node"] == node and row["valid"] is True


def test_a_running_bench_blocks_other_work_on_its_node(cluster):
    # A larger GEMM with many runs keeps local-1 busy for a moment.
    jid = cluster.j("submit", "--bench", "gemm", "--shape", "1024,1024,1024", "--repeat", "200",
                    "--nodes", "local-1")["id"]
    cluster.wait_state(jid, "RUNNING")
    n = cluster.nodes()["local-1"]
    assert n["used_cpus"] == n["cpus"]  # the whole node
    cluster.moat("cancel", jid, check=0)
    done = cluster.wait_state(jid, "CANCELLED", timeout=30)
    assert done["state"] == "CANCELLED"
    wait_for(lambda: cluster.nodes()["local-1"]["used_cpus"] == 0, 10, what="node freed")


def test_bad_bench_requests_name_what_is_wrong(cluster):
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "8,8,8", "--nodes", "nope", check=None)
    assert r.rc != 0 and "unknown node 'nope'" in r.err
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "8,8", check=2)
    assert "bench.shape: gemm takes M,N,K[,BATCH], not 2 values" in r.err
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "8,8,8", "--cpus", "2", check=2)
    assert "whole node" in r.err
    r = cluster.moat("submit", "--shape", "8,8,8", "--", "true", check=2)
    assert "go with --bench" in r.err
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "8,8,8", "--dtype", "fp8", check=2)
    assert "bench.dtype" in r.err
    r = cluster.moat("submit", "--bench", "gelu", "--shape", "100", "--dtype", "bf16", check=2)
    assert "bf16 only for gemm and attention" in r.err
    r = cluster.moat("submit", "--bench", "attention", "--shape", "1,128,2,48", check=2)
    assert "head dim 48" in r.err
    # sizes whose product wraps 64 bits once crashed the benchmark (heap overflow)
    r = cluster.moat("submit", "--bench", "softmax", "--shape", "1104524548,16701072065", check=2)
    assert "multiply past 2^62" in r.err
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "8,99999999999999999999,8", check=2)
    assert "out of range" in r.err
    # nothing was accepted by any of these
    assert cluster.j("queue", "--all")["jobs"] == []


def test_cuda_on_nodes_without_a_gpu_is_refused_at_submit(cluster):
    """As a job that could never start is refused (--gpus on GPU-less nodes),
    not accepted to fail on its node."""
    nodes = cluster.nodes()
    if nodes["local-1"].get("gpus", 0) > 0:
        pytest.skip("this machine has a GPU: the cuda backend would run")
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "64,64,64", "--backend", "cuda",
                     "--nodes", "local-1", check=2)
    assert r.err.strip() == "moat submit: backend cuda: node 'local-1' has no GPU (--backend cpu, " \
                            "or auto: cuda where there are GPUs)", r
    r = cluster.moat("submit", "--bench", "gemm", "--shape", "64,64,64", "--backend", "cuda",
                     "--nodes", "all", check=2)
    assert "nodes: all: no node UP has a GPU for backend cuda" in r.err, r
    assert cluster.j("queue", "--all")["jobs"] == []


def test_a_case_larger_than_the_node_fails_before_allocating(cluster):
    # 2^34 floats in three arrays and their copies: ~450 GiB, more than any node here
    jid = cluster.j("submit", "--bench", "add", "--shape", str(1 << 34), "--nodes", "local-1")["id"]
    cluster.wait(jid, timeout=60, check=1)
    (task,) = cluster.j("result", jid)["tasks"]
    assert task["state"] == "FAILED" and task["exit_code"] == 1 and task["signal"] == 0
    assert "GiB of host memory; the node has" in task["stderr"], task
    # and the node is free again
    wait_for(lambda: cluster.nodes()["local-1"]["used_cpus"] == 0, 10, what="node freed")
