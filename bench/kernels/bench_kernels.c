/* bench_kernels.c: bench-kernels, one JSON row per (op, shape, dtype, backend).
 *
 * Every row comes from krn_bench_run (validated before timed; see krn.h). Shapes:
 * all-MiniLM-L6-v2 (hidden 384, 12 heads x 32, FFN 1536) and BERT-large (1024,
 * 16 x 64, FFN 4096) at batch 32, seq 128 and 512 (M = 4096, 16384 tokens), and
 * square GEMMs 1024..8192. On cuda builds the GEMM rows carry % of cuBLAS
 * (cublasGemmEx, fp32 accumulation, default math: no TF32 for f32).
 *
 *   bench-kernels [--backend cpu|cuda|ref|all] [--ops gemm,attention,...]
 *                 [--dtype f32,bf16,f16] [--set minilm,bert-large,square,fa2]
 *                 [--seq 128,512] [--max-gflop X] [--repeat N] [--threads N]
 *                 [--device I] [--variants] [--plot FILE.png] [--out FILE]
 * --set fa2: attention at the FlashAttention papers' benchmark shape (16k tokens,
 * hidden 2048: B 1, T 16384, H 32 x D 64 and H 16 x D 128, bf16/f16, non-causal);
 * those rows carry "published_gflops", FlashAttention-2's forward on an H100 SXM
 * (324 and 370 TFLOP/s, FA-3 paper arXiv 2407.08608, shared/FIGURES.md), and
 * "pct_of_published".
 * --variants (cuda): instead of the sets, force each kernel variant in turn
 * (krn_backend_variant_force) and time it: GEMM at 4096^3 and 8192^3 (f32 for
 * gemm_kernel3/4, bf16 for the others; % of cuBLAS in each row), attention at the
 * fa2 shapes; every row gets "variant", and the backend's self-check verdicts
 * are printed to stderr.
 * Peaks ("peak", "peak_source", "pct_of_peak" in every row): GFLOP/s rows use
 * the device's figure (krn_device_info: a table of known parts or an estimate
 * from threads x clock x FLOP/cycle, or SMs x clock on CUDA); GB/s rows on
 * cuda the HBM figure; GB/s rows on cpu/ref the host bandwidth measured at
 * the start of that backend's rows by a STREAM triad at the backend's thread
 * count (krn_bench_stream_triad; printed to stderr), since a CPU has no
 * readable bandwidth figure.
 * --plot FILE.png: after the rows, bench/kernels/plot.py (found beside the
 * program's bin/ directory, else under the working directory) draws them from
 * --out's file; it needs matplotlib (python3-matplotlib, scripts/install-deps.sh;
 * run by $PYTHON, else /usr/bin/python3, else python3 from PATH).
 * Exit: 0 when every row validated, 1 when a row failed validation, an op
 * failed, the bandwidth could not be measured or the plot could not be drawn,
 * 2 on bad usage.
 */
#include "bench/kernels/bench_cublas.h"
#include "kernels/krn_bench.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


struct shape {
    const char *op;
    int64_t s[5];
    int n;
};

#define MAXS 64

static int add(struct shape *v, int n, const char *op, int ns, int64_t a, int64_t b, int64_t c,
               int64_t d)
{
    if (n < MAXS)
        v[n] = (struct shape){op, {a, b, c, d, 0}, ns};
    return n + 1;
}

/* model_shapes: the ops of one encoder layer at batch 32, seq T. */
static int model_shapes(struct shape *v, int n, int64_t hidden, int64_t heads, int64_t ffn,
                        int64_t T)
{
    int64_t M = 32 * T;
    n = add(v, n, "gemm", 3, M, 3 * hidden, hidden, 0); /* fused QKV projection */
    n = add(v, n, "gemm", 3, M, hidden, hidden, 0);     /* attention output */
    n = add(v, n, "gemm", 3, M, ffn, hidden, 0);        /* FFN up */
    n = add(v, n, "gemm", 3, M, hidden, ffn, 0);        /* FFN down */
    n = add(v, n, "attention", 4, 32, T, heads, hidden / heads);
    n = add(v, n, "layernorm", 2, M, hidden, 0, 0);
    n = add(v, n, "gelu", 1, M * ffn, 0, 0, 0);
    n = add(v, n, "add", 1, M * hidden, 0, 0, 0);
    n = add(v, n, "softmax", 2, 32 * heads * T, T, 0, 0);
    n = add(v, n, "embedding", 2, M, hidden, 0, 0);
    n = add(v, n, "mean_pool", 3, 32, T, hidden, 0);
    n = add(v, n, "l2norm", 2, 32, hidden, 0, 0);
    return n;
}

/* print_row: rows (one JSON object per line) to out, with extra fields
 * inserted after each opening brace. */
static void print_rows(FILE *out, const char *rows, const char *extra)
{
    for (const char *p = rows; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 1 && p[0] == '{' && extra[0] != '\0')
            fprintf(out, "{%s,%.*s\n", extra, (int)(len - 1), p + 1);
        else
            fprintf(out, "%.*s\n", (int)len, p);
        p += len + (nl != NULL);
    }
    fflush(out);
}

/* published: FlashAttention-2 forward TFLOP/s on an H100 SXM at 16k tokens
 * (FIGURES.md), or 0 for shapes without a published figure. */
static double published_gflops(const struct shape *sh, int dt)
{
    if (strcmp(sh->op, "attention") != 0 || dt == KRN_DTYPE_F32 || sh->s[1] != 16384)
        return 0;
    return sh->s[3] == 64 ? 324e3 : sh->s[3] == 128 ? 370e3 : 0;
}

static bool listed(const char *list, const char *name)
{
    if (list == NULL)
        return true;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

/* plot_spawn: python plot.py rows png; plot.py's exit status, 127 when python
 * could not be executed, -1 when no process could be started. */
static int plot_spawn(const char *python, const char *script, const char *rows, const char *png)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp(python, python, script, rows, png, (char *)NULL);
        fprintf(stderr, "bench-kernels: %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* plot_run: draw rows into png with plot.py, from ../bench/kernels/ beside this
 * program's directory (bin/), else bench/kernels/ under the working directory.
 * The interpreter: $PYTHON when set; else /usr/bin/python3, the one Debian's
 * python3-matplotlib installs for, then python3 from PATH (a pyenv or venv
 * python3 first on PATH does not see Debian's packages), the next one tried
 * only when the previous lacks matplotlib (plot.py exit 3) or cannot run.
 * Returns plot.py's exit status (0 drawn, 3 matplotlib missing), or -1. */
static int plot_run(const char *rows, const char *png)
{
    char exe[PATH_MAX], script[PATH_MAX + 64] = "bench/kernels/plot.py";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            char cand[PATH_MAX + 64];
            snprintf(cand, sizeof cand, "%s/../bench/kernels/plot.py", exe);
            if (access(cand, R_OK) == 0)
                snprintf(script, sizeof script, "%s", cand);
        }
    }
    const char *env = getenv("PYTHON");
    const char *pythons[] = {"/usr/bin/python3", "python3"};
    if (env != NULL && env[0] != '\0')
        return plot_spawn(env, script, rows, png);
    int rc = -1;
    for (int i = 0; i < 2; i++) {
        if (i == 0 && access(pythons[0], X_OK) != 0)
            continue;
        rc = plot_spawn(pythons[i], script, rows, png);
        if (rc != 3 && rc != 127)
            break;
    }
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-kernels [--backend cpu|cuda|ref|all] [--ops LIST] "
                    "[--dtype LIST] [--set minilm,bert-large,square] [--seq 128,512] "
                    "[--max-gflop X] [--repeat N] [--threads N] [--device I] [--variants] "
                    "[--plot FILE.png] "
                    "[--out FILE]\n");
}

int main(int argc, char **argv)
{
    krn_cpu_process_init(argv); /* OpenBLAS at one thread from load on */
    const char *backends = "cpu", *ops = NULL, *dtypes = "f32", *sets = "minilm,bert-large,square";
    const char *seqs = "128,512", *plot = NULL, *outpath = NULL;
    double max_gflop = 1e30;
    int repeat = 5, threads = 0, device = 0;
    bool variants = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--variants")) {
            variants = true;
            continue;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--backend")) backends = v;
        else if (!strcmp(a, "--ops")) ops = v;
        else if (!strcmp(a, "--dtype")) dtypes = v;
        else if (!strcmp(a, "--set")) sets = v;
        else if (!strcmp(a, "--seq")) seqs = v;
        else if (!strcmp(a, "--max-gflop")) max_gflop = atof(v);
        else if (!strcmp(a, "--repeat")) repeat = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--device")) device = atoi(v);
        else if (!strcmp(a, "--plot")) plot = v;
        else if (!strcmp(a, "--out")) outpath = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!strcmp(backends, "all"))
        backends = "cpu,cuda";
    if (variants && !strcmp(dtypes, "f32"))
        dtypes = "f32,bf16"; /* the default: each variant in its own dtype */
    struct shape sh[MAXS];
    int n = 0;
    for (int64_t T = 128; T <= 512; T *= 4) {
        char t[16];
        snprintf(t, sizeof t, "%lld", (long long)T);
        if (!listed(seqs, t))
            continue;
        if (listed(sets, "minilm"))
            n = model_shapes(sh, n, 384, 12, 1536, T);
        if (listed(sets, "bert-large"))
            n = model_shapes(sh, n, 1024, 16, 4096, T);
    }
    if (listed(sets, "square"))
        for (int64_t s = 1024; s <= 8192; s *= 2)
            n = add(sh, n, "gemm", 3, s, s, s, 0);
    if (listed(sets, "fa2") || variants) {
        n = add(sh, n, "attention", 4, 1, 16384, 32, 64);
        n = add(sh, n, "attention", 4, 1, 16384, 16, 128);
    }
    if (variants) { /* only the variant shapes */
        n = 0;
        n = add(sh, n, "gemm", 3, 4096, 4096, 4096, 0);
        n = add(sh, n, "gemm", 3, 8192, 8192, 8192, 0);
        n = add(sh, n, "attention", 4, 1, 16384, 32, 64);
        n = add(sh, n, "attention", 4, 1, 16384, 16, 128);
    }
    if (n > MAXS)
        n = MAXS;
    FILE *out = stdout;
    if (outpath != NULL && (out = fopen(outpath, "w")) == NULL) {
        fprintf(stderr, "bench-kernels: %s: %s\n", outpath, strerror(errno));
        return 1;
    }
    int status = 0;
    static const char *names[] = {"cpu", "cuda", "ref"};
    for (int bi = 0; bi < 3; bi++) {
        if (!listed(backends, names[bi]))
            continue;
        struct err e = {0};
        int param = bi == 1 ? device : threads;
        if (bi == 1 && krn_cuda_device_count() == 0) {
            fprintf(stderr, "bench-kernels: cuda: skipped: no CUDA device (built %s)\n",
#ifdef KRN_TEST_CUBLAS
                    "with CUDA"
#else
                    "without CUDA"
#endif
            );
            continue;
        }
        krn_backend_t *be = krn_backend_create(names[bi], param, &e);
        if (be == NULL) {
            fprintf(stderr, "bench-kernels: %s: %s\n", names[bi], e.msg);
            status = 1;
            continue;
        }
        bench_cublas_install(be); /* cuda: GEMM rows get % of cuBLAS */
        if (bi != 1) { /* cpu, ref: the bandwidth that GB/s rows are a % of */
            struct krn_device_info info;
            double gbps = 0;
            if (krn_backend_info(be, &info, &e) != 0 ||
                krn_bench_stream_triad(info.multiprocessors, 0, 0, &gbps, &e) != 0) {
                fprintf(stderr, "bench-kernels: %s: stream triad: %s\n", names[bi], e.msg);
                status = 1;
            } else {
                fprintf(stderr, "bench-kernels: %s: STREAM triad, %d threads, 3 x %zu MiB: "
                                "%.1f GB/s (best of 5; the peak of GB/s rows)\n",
                        names[bi], info.multiprocessors, krn_bench_stream_bytes() >> 20, gbps);
            }
            krn_bench_host_gbps_set(info.multiprocessors, gbps);
        }
        /* variant passes: one automatic pass, or (--variants) one per variant */
        struct krn_variant vs[16];
        int nv = variants ? krn_backend_variants(be, vs, 16, &e) : 0;
        if (nv > 16)
            nv = 16;
        for (int k = 0; k < nv; k++)
            fprintf(stderr, "bench-kernels: %s %s: runnable=%d enabled=%d check_err=%.3g (%s)\n",
                    vs[k].op, vs[k].name, vs[k].runnable, vs[k].enabled, vs[k].check_err,
                    vs[k].note);
        for (int pass = variants ? 0 : -1; pass < (variants ? nv : 0); pass++) {
            const char *vname = pass >= 0 ? vs[pass].name : NULL;
            if (pass >= 0) {
                if (!vs[pass].runnable)
                    continue;
                if (krn_backend_variant_force(be, vs[pass].op, vname, &e) != 0) {
                    fprintf(stderr, "bench-kernels: %s: %s\n", vname, e.msg);
                    continue;
                }
            }
            for (int i = 0; i < n; i++) {
                if (!listed(ops, sh[i].op))
                    continue;
                if (pass >= 0 && strcmp(sh[i].op, vs[pass].op) != 0)
                    continue;
                for (int dt = 0; dt < KRN_DTYPE_COUNT; dt++) {
                    if (!listed(dtypes, krn_dtype_names[dt]))
                        continue;
                    bool typed = !strcmp(sh[i].op, "gemm") || !strcmp(sh[i].op, "attention");
                    if (dt != KRN_DTYPE_F32 && !typed)
                        continue;
                    if (pass >= 0) { /* f32 for the f32 variants, bf16 for the rest */
                        bool f32v = !strcmp(vname, "gemm_kernel3") ||
                                    !strcmp(vname, "gemm_kernel4") || !strcmp(vname, "attn_kernel1");
                        if ((f32v && dt != KRN_DTYPE_F32) ||
                            (!f32v && dt != KRN_DTYPE_BF16))
                            continue;
                    }
                    enum krn_op op;
                    krn_op_parse(sh[i].op, &op, NULL);
                    double gf = krn_op_flops(op, sh[i].s, sh[i].n, (enum krn_dtype)dt) / 1e9;
                    if (gf > max_gflop)
                        continue;
                    char *rows = NULL;
                    if (krn_bench_run(sh[i].op, sh[i].s, sh[i].n, (enum krn_dtype)dt, repeat, be,
                                      &rows, &e) != 0) {
                        fprintf(stderr, "bench-kernels: %s %s %s: %s\n", sh[i].op, names[bi],
                                vname ? vname : "auto", e.msg);
                        if (e.code != ENOTSUP)
                            status = 1;
                        continue;
                    }
                    char extra[256] = "";
                    int len = 0;
                    if (vname != NULL)
                        len = snprintf(extra, sizeof extra, "\"variant\":\"%s\"", vname);
                    double pub = published_gflops(&sh[i], dt);
                    const char *tf = strstr(rows, "\"gflops\":");
                    double got = tf ? atof(tf + 9) : 0;
                    if (pub > 0)
                        snprintf(extra + len, sizeof extra - (size_t)len,
                                 "%s\"published\":\"FlashAttention-2 fwd, H100 SXM\","
                                 "\"published_gflops\":%.0f,\"pct_of_published\":%.1f",
                                 len ? "," : "", pub, 100.0 * got / pub);
                    print_rows(out, rows, extra);
                    if (strstr(rows, "\"valid\":false") != NULL)
                        status = 1;
                    free(rows);
                }
            }
            if (pass >= 0)
                krn_backend_variant_force(be, vs[pass].op, NULL, &e);
        }
        bench_cublas_remove();
        krn_backend_destroy(be);
    }
    if (out != stdout)
        fclose(out);
    if (plot != NULL) {
        int prc = outpath != NULL ? plot_run(outpath, plot) : -1;
        if (outpath == NULL)
            fprintf(stderr, "bench-kernels: --plot needs --out (the rows to plot)\n");
        else if (prc != 0)
            fprintf(stderr, "bench-kernels: plot %s not drawn (plot.py exit %d%s)\n", plot, prc,
                    prc == 3 ? ": matplotlib missing; scripts/install-deps.sh installs it" : "");
        if (prc != 0)
            status = 1;
    }
    return status;
}
