#!/usr/bin/env python3
"""Summarise one bench/slurm/run.sh run as one JSON object on stdout.

Sources, all on this host and clock:
  * DIR/log/slurmctld.log  (millisecond timestamps, SlurmctldDebug=info):
      "_slurm_rpc_submit_batch_job: JobId=N"  -> accepted by slurmctld
      "sched: Allocate JobId=N" / "backfill: Started JobId=N" -> resources allocated
      "_job_complete: JobId=N WEXITSTATUS S"  -> exit status
      "_job_complete: JobId=N done"           -> finished
  * DIR/log/slurmd.*.log: "Launching batch job N" -> slurmd starts the job
  * DIR/jobids: the ids sbatch returned (only those count)
  * DIR/squeue.txt (optional): "id state submit start" from squeue, 1 s resolution

Usage: summarize.py DIR META_JSON
META_JSON carries what run.sh knows: mode, jobs, nodes, cpus_per_node, version,
t_submit0, t_submit1 (epoch s, first sbatch started / last returned),
t_poll_done (epoch s when squeue was seen empty, or null), submit_errors,
error (or null), setup_s.
"""
import datetime
import glob
import json
import math
import re
import sys

TS = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\] (.*)$")
SUBMIT = re.compile(r"_slurm_rpc_submit_batch_job: JobId=(\d+) ")
ALLOC = re.compile(r"(?:sched: Allocate|backfill: Started) JobId=(\d+)\b")
EXIT = re.compile(r"_job_complete: JobId=(\d+) WEXITSTATUS (\d+)")
DONE = re.compile(r"_job_complete: JobId=(\d+) done")
LAUNCH = re.compile(r"Launching batch job (\d+)\b")


def ts(s):
    # Slurm writes local time without a zone; Python reads it in the same zone.
    return datetime.datetime.fromisoformat(s).timestamp()


def scan(path, handlers):
    try:
        f = open(path, errors="replace")
    except OSError:
        return
    with f:
        for line in f:
            m = TS.match(line)
            if not m:
                continue
            t, msg = m.group(1), m.group(2)
            for rx, fn in handlers:
                h = rx.search(msg)
                if h:
                    fn(int(h.group(1)), t, h)
                    break


def pct(vals, p):
    """Nearest-rank percentile."""
    if not vals:
        return None
    v = sorted(vals)
    k = max(1, math.ceil(p / 100.0 * len(v)))
    return v[k - 1]


def r(x, nd=3):
    return None if x is None else round(x, nd)


def main():
    d, meta = sys.argv[1], json.loads(sys.argv[2])
    ids = set()
    try:
        with open(d + "/jobids") as f:
            for line in f:
                line = line.strip().split(";")[0]
                if line.isdigit():
                    ids.add(int(line))
    except OSError:
        pass

    submit, alloc, exitst, done, launch = {}, {}, {}, {}, {}

    def first(dct):
        def put(j, t, _m):
            if j in ids and j not in dct:
                dct[j] = ts(t)
        return put

    def put_exit(j, _t, m):
        if j in ids:
            exitst[j] = int(m.group(2))

    scan(d + "/log/slurmctld.log",
         [(SUBMIT, first(submit)), (ALLOC, first(alloc)),
          (EXIT, put_exit), (DONE, first(done))])
    for p in sorted(glob.glob(d + "/log/slurmd.*.log")):
        scan(p, [(LAUNCH, first(launch))])

    n_ok = sum(1 for j in done if exitst.get(j) == 0)
    n_done = len(done)

    t0, t1 = meta.get("t_submit0"), meta.get("t_submit1")
    n_sub = len(ids)
    submit_s = (t1 - t0) if (t0 is not None and t1 is not None) else None

    # Wall time: first sbatch started -> last job finished (slurmctld log),
    # falling back to the moment squeue was polled empty.
    t_end = max(done.values()) if done else None
    if t_end is None or n_done < n_sub:
        t_end = meta.get("t_poll_done") or t_end
    wall = (t_end - t0) if (t_end is not None and t0 is not None) else None

    lat_launch = [(launch[j] - submit[j]) * 1e3 for j in ids
                  if j in launch and j in submit]
    lat_alloc = [(alloc[j] - submit[j]) * 1e3 for j in ids
                 if j in alloc and j in submit]

    # 1 s resolution cross-check from squeue's SubmitTime/StartTime.
    lat_1s = []
    try:
        with open(d + "/squeue.txt") as f:
            for line in f:
                p = line.split()
                if len(p) >= 4 and p[0].isdigit() and int(p[0]) in ids:
                    try:
                        lat_1s.append((ts(p[3]) - ts(p[2])) * 1e3)
                    except ValueError:
                        pass
    except OSError:
        pass

    if lat_launch:
        lat, src, res = lat_launch, "slurmctld submit RPC -> slurmd 'Launching batch job' (logs)", 1
    elif lat_alloc:
        lat, src, res = lat_alloc, "slurmctld submit RPC -> allocation (slurmctld log)", 1
    elif lat_1s:
        lat, src, res = lat_1s, "squeue SubmitTime -> StartTime", 1000
    else:
        lat, src, res = [], None, None

    out = {
        "system": "slurm",
        "version": meta.get("version"),
        "mode": meta.get("mode"),
        "jobs": meta.get("jobs"),
        "nodes": meta.get("nodes"),
        "cpus_per_node": meta.get("cpus_per_node"),
        "submit_rate": r(n_sub / submit_s, 1) if submit_s and n_sub else None,
        "complete_rate": r(n_ok / wall, 2) if wall and n_ok else None,
        "wall_s": r(wall),
        "latency_p50_ms": r(pct(lat, 50), 1),
        "latency_p99_ms": r(pct(lat, 99), 1),
        "latency_resolution_ms": res,
        "latency_source": src,
        "alloc_latency_p50_ms": r(pct(lat_alloc, 50), 1),
        "alloc_latency_p99_ms": r(pct(lat_alloc, 99), 1),
        "latency_1s_p50_ms": r(pct(lat_1s, 50), 0),
        "latency_1s_p99_ms": r(pct(lat_1s, 99), 0),
        "submitted": n_sub,
        "submit_errors": meta.get("submit_errors", 0),
        "submit_s": r(submit_s),
        "completed": n_ok,
        "failed": n_done - n_ok,
        "setup_s": meta.get("setup_s"),
        "host_cpus": meta.get("host_cpus"),
        "error": meta.get("error"),
    }
    if meta.get("dir"):
        out["dir"] = meta["dir"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
