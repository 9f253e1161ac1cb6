/* wrk_bench.h: a bench task, run as its own process (`moat-worker --run-bench JSON`).
 *
 * The worker starts one such process per bench task (controller/ctl_bench.h),
 * outside the exec sandbox (it runs moat's own benchmark code, no user code,
 * and needs the node's GPUs), with the task's stdout and stderr captured like
 * any task's. JSON is one object; unknown keys and wrong types are refused
 * (exit 2), naming the key:
 *   "node"     string, required: this node's name, copied into every row
 *   "op"       a kernels/krn.h op name, required ("gemm", "attention", ...)
 *   "shape"    array of 1..5 integers, required: the op's shape vector
 *              (krn_op_flops: gemm M,N,K[,batch]; attention B,T,H,D[,causal]; ...)
 *   "dtype"    "f32" | "bf16" | "f16" (default "f32")
 *   "repeat"   timed runs, 1..1000 (default 10)
 *   "backend"  "auto" (cuda when "gpus" > 0 and a CUDA device is visible, else
 *              cpu), "cpu" or "cuda" (default "auto")
 *   "threads"  cpu threads, 0 = "cpus" (default 0)
 *   "cpus", "gpus"  what the node reserved for the task (>= 1, >= 0); threads
 *              above cpus are cut to cpus (with a line on stderr)
 *   "mem"      bytes the node reserved (all of its memory; 0 or absent: not
 *              told, physical RAM is used). A case whose krn_bench_footprint()
 *              exceeds 90% of it (or, on cuda, of the GPU's free memory) is
 *              refused before anything is allocated, naming both sizes.
 * Output: krn_bench_run's rows on stdout, one JSON object per line, each
 * starting with {"node": NAME, ...}; on a CUDA build the GEMM rows on cuda carry
 * % of cuBLAS (bench/kernels/bench_cublas.h); a memory-bound op on cpu first
 * measures the node's bandwidth (STREAM triad, kernels/krn_bench.h; three
 * arrays of 4 x the last-level cache, skipped when they do not fit) so that
 * its row has a peak. Messages go to stderr.
 * Exit status: 0 every row validated; 1 a row failed validation, the op failed
 * (ENOMEM, EIO, ENOTSUP), the case does not fit in memory, or no backend could
 * be opened;
 * 2 bad JSON.
 */
#ifndef MOAT_WRK_BENCH_H
#define MOAT_WRK_BENCH_H

/* wrk_bench_main: argv[0] "--run-bench", argv[1] the JSON above. */
int wrk_bench_main(int argc, char **argv);

#endif
