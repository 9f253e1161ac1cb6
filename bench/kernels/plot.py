#!/usr/bin/env python3
"""plot.py ROWS.jsonl OUT.png: bar chart of bench-kernels rows (GFLOP/s or GB/s and % of reference).

Each bar is labelled with % of the row's reference and % of the device's peak
(for GB/s rows on the CPU: the STREAM triad bench-kernels measured).
Needs matplotlib (Debian python3-matplotlib, scripts/install-deps.sh); when it
is not installed, says so and exits 3 without plotting (bench-kernels then exits 1).
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print("usage: plot.py ROWS.jsonl OUT.png", file=sys.stderr)
        return 2
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot.py: matplotlib is not installed; skipping the plot", file=sys.stderr)
        return 3
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
    rows = [r for r in rows if r.get("valid")]
    labels = ["%s %s %s %s" % (r["op"], "x".join(map(str, r["shape"])), r["dtype"], r["backend"])
              for r in rows]
    vals = [r["gflops"] if r["gflops"] is not None else (r["gbps"] or 0) for r in rows]
    fig, ax = plt.subplots(figsize=(10, max(3, 0.3 * len(rows))))
    ax.barh(range(len(rows)), vals)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=7)
    for i, r in enumerate(rows):
        notes = []
        if r.get("pct_of_ref") is not None:
            notes.append("%.0f%% of %s" % (r["pct_of_ref"], r["ref"]))
        if r.get("pct_of_peak") is not None:
            notes.append("%.0f%% of peak" % r["pct_of_peak"])
        if notes:
            ax.text(vals[i], i, " " + ", ".join(notes), va="center", fontsize=6)
    ax.set_xlabel("GFLOP/s (compute ops) or GB/s (memory ops)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
