/* krn_bench.h: hooks into krn_bench_run for what the library does not own: a
 * reference it must not depend on (cuBLAS in bench-kernels and the GPU tests),
 * and the host's measured memory bandwidth (STREAM triad, krn_stream.c) that
 * memory-bound rows on "cpu"/"ref" quote as their peak.
 * Private to kernels/, bench/, tests/ and the worker's bench task.
 * Thread-safety: the setters are called once at start-up, before any
 * krn_bench_run; krn_bench_stream_triad is safe from any thread.
 */
#ifndef MOAT_KRN_BENCH_H
#define MOAT_KRN_BENCH_H

#include "kernels/krn.h"

/* A reference GEMM on the same backend's buffers (device pointers on cuda),
 * same semantics as krn_gemm without epilogue. Returns 0, or -1 with *err. */
struct krn_bench_ref {
    const char *name; /* "cublas" */
    const char *backend; /* the backend it applies to: "cuda" */
    int (*gemm)(void *ctx, krn_backend_t *be, const struct krn_gemm_args *g, const krn_buf_t *a,
                const krn_buf_t *b, krn_buf_t *c, struct err *err);
    void *ctx;
};

/* krn_bench_ref_set: use ref for GEMM rows on ref->backend (NULL clears).
 * Borrowed: ref must stay valid while krn_bench_run may be called. */
void krn_bench_ref_set(const struct krn_bench_ref *ref);

/* krn_bench_stream_triad: measure host memory bandwidth with McCalpin's STREAM
 * triad, a[i] = b[i] + s * c[i] over three double arrays of array_bytes each
 * (0: krn_bench_stream_bytes(), well beyond the last-level cache), on threads
 * threads (0 = all online cores; use the bench's thread count), each sweeping
 * its own slice between barriers. One untimed pass, then reps timed passes
 * (0 = 5); *gbps = 24 bytes per element (STREAM's count: 2 reads + 1 write,
 * write-allocate not counted) / the best pass, in GB/s (1e9 bytes/s). The
 * result is checked (every a[i] exact) before it is reported. Allocates
 * 3 x array_bytes for the call and frees it. Source: J. D. McCalpin, "Memory
 * Bandwidth and Machine Balance in Current High Performance Computers", IEEE
 * TCCA Newsletter, 1995 (www.cs.virginia.edu/stream).
 * Errors: EINVAL (gbps NULL, threads < 0 or > 4096, reps < 0 or > 100,
 * 0 < array_bytes < 4096), ENOMEM, EAGAIN (a thread could not be started),
 * EIO (a wrong element, or a pass too short to time). */
int krn_bench_stream_triad(int threads, size_t array_bytes, int reps, double *gbps,
                           struct err *err);

/* krn_bench_stream_bytes: the default bytes per triad array: 4 x the total
 * last-level cache (STREAM's rule; from /sys/devices/system/cpu/cpu0/cache),
 * at least 32 MiB, 256 MiB when sysfs does not say, at most RAM / 16. */
size_t krn_bench_stream_bytes(void);

/* krn_bench_host_gbps_set: from now on, memory-bound rows (every op but gemm
 * and attention) that krn_bench_run makes on a "cpu" or "ref" backend running
 * threads threads quote gbps as "peak" with "peak_source":
 * "stream-triad (measured)" (a measured figure: the CPU has no readable spec
 * bandwidth). Rows at another thread count keep "peak":null. gbps <= 0 clears. */
void krn_bench_host_gbps_set(int threads, double gbps);

/* krn_bench_host_gbps: what was set for threads threads, else 0. */
double krn_bench_host_gbps(int threads);

#endif
