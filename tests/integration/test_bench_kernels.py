"""bench-kernels on tiny runs: every row quotes a peak (GB/s rows on the CPU: the
STREAM triad measured at the start), and --plot draws a PNG.

No figure is judged: the rows' numbers are only checked to be there. matplotlib
is a dependency (scripts/install-deps.sh installs python3-matplotlib), so the
plot test fails, not skips, when it is missing.
"""
import json
import subprocess

from conftest import BIN, ROOT

BENCH = BIN / "bench-kernels"
# tiny: MiniLM at seq 128 (M = 4096), GEMMs under 2 GFLOP, one timed run
TINY = ["--set", "minilm", "--seq", "128", "--max-gflop", "2", "--repeat", "1"]


def run_bench(args, cwd=ROOT, env=None):
    return subprocess.run([str(BENCH)] + [str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_cpu_row_has_a_peak_memory_bound_ones_the_measured_triad(tmp_path):
    out = tmp_path / "rows.jsonl"
    p = run_bench(["--ops", "gemm,add,gelu,layernorm,softmax,embedding,mean_pool,l2norm",
                   "--out", out] + TINY)
    assert p.returncode == 0, p.stderr
    assert "STREAM triad" in p.stderr, p.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ops = {r["op"] for r in rows}
    assert ops == {"gemm", "add", "gelu", "layernorm", "softmax", "embedding", "mean_pool",
                   "l2norm"}, ops
    for r in rows:
        assert r["backend"] == "cpu" and r["valid"] is True, r
        assert isinstance(r["peak"], (int, float)) and r["peak"] > 0, r
        assert isinstance(r["pct_of_peak"], (int, float)) and r["pct_of_peak"] > 0, r
        if r["op"] == "gemm":
            assert r["peak_unit"] == "gflops", r
            assert r["peak_source"].startswith(("table (", "estimate (")), r
        else:  # memory-bound: % of the bandwidth measured at the start
            assert r["peak_unit"] == "gbps", r
            assert r["peak_source"] == "stream-triad (measured)", r
    # one measurement for the run: every GB/s row quotes the same figure
    assert len({r["peak"] for r in rows if r["peak_unit"] == "gbps"}) == 1


def test_plot_draws_a_png_from_the_rows(tmp_path):
    out, png = tmp_path / "rows.jsonl", tmp_path / "rows.png"
    # from another directory: plot.py is found beside bin/, not in the cwd
    p = run_bench(["--ops", "add,gemm", "--out", out, "--plot", png] + TINY, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    assert len(data) > 1000


def test_plot_without_rows_file_fails(tmp_path):
    png = tmp_path / "rows.png"
    p = run_bench(["--ops", "add", "--plot", png] + TINY, cwd=tmp_path)
    assert p.returncode == 1
    assert "--plot needs --out" in p.stderr
    assert not png.exists()
