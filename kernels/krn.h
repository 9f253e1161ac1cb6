/* krn.h: moat's one op API (plain C, no CUDA types) over the ref, cpu and cuda backends.
 *
 * Model code, worker tasks and benchmarks call only this header. A backend owns
 * its buffers (host memory for "ref"/"cpu", cudaMalloc for "cuda"), so code
 * written against krn_buf_t runs unchanged on every backend.
 *
 * Conventions for every op:
 * - Tensors are row-major; each op's comment gives shapes as [dim0, dim1, ...]
 *   with the last dimension contiguous. Element counts are int64_t.
 * - Buffers passed to an op must belong to that backend (EINVAL otherwise) and
 *   be large enough for the shapes given (EINVAL, checked before any work).
 * - Ops are stream-ordered: on "cuda" an op returns once queued; results are
 *   visible to krn_buf_download (which waits) or after krn_backend_sync. On
 *   "ref"/"cpu" an op returns when done. Argument errors are reported at call
 *   time on every backend; an asynchronous CUDA fault is reported by the next
 *   call that synchronises, with EIO.
 * - Ops never allocate device memory in the hot path; scratch space grows in the
 *   backend's context on first use of a larger shape and is reused.
 * - Errors: 0 or -1 with *err (shared/err.h). EINVAL bad argument or shape,
 *   ENOTSUP dtype/head dim/epilogue not supported by this backend, ENOMEM
 *   allocation failure (host or device), ENODEV no such CUDA device or a build
 *   without CUDA, EIO any other CUDA error (message names the call and
 *   cudaGetErrorName).
 *
 * Thread-safety: one backend handle (and its buffers) per thread. Different
 * handles may be used from different threads concurrently, with one exception:
 * the OpenBLAS thread count is process-wide, so two "cpu" handles with
 * different thread counts share the last one set.
 */
#ifndef MOAT_KRN_H
#define MOAT_KRN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "shared/err.h"

/* ---- dtypes ---- */

/* Element types. bf16 is the top 16 bits of an IEEE binary32 (round to nearest
 * even on conversion); f16 is IEEE binary16. */
enum krn_dtype {
    KRN_DTYPE_F32,
    KRN_DTYPE_BF16,
    KRN_DTYPE_F16,
    KRN_DTYPE_COUNT
};
extern const char *const krn_dtype_names[KRN_DTYPE_COUNT]; /* "f32", "bf16", "f16" */

/* krn_dtype_size: bytes per element (4, 2, 2); 0 for an out-of-range value. */
size_t krn_dtype_size(enum krn_dtype dtype);

/* krn_dtype_parse: "f32"|"fp32"|"float32", "bf16"|"bfloat16", "f16"|"fp16"|"float16"
 * into *out. EINVAL for anything else. */
int krn_dtype_parse(const char *name, enum krn_dtype *out, struct err *err);

/* Host-side conversions (round to nearest even; NaN stays NaN). n elements;
 * src and dst must not overlap. */
void krn_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void krn_bf16_to_f32(const uint16_t *src, float *dst, size_t n);
void krn_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void krn_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/* ---- backends ---- */

typedef struct krn_backend krn_backend_t;

/* krn_backend_create: open a backend by name.
 *   "ref"  plain-loop references (single thread, slow, obviously right); param ignored.
 *   "cpu"  the CPU backend; param = thread count (0 = all online cores). The
 *          count drives both OpenBLAS and the backend's own attention threads.
 *   "cuda" the CUDA backend on device index param; one stream per handle.
 * Returns a handle, or NULL with EINVAL (unknown name, bad param), ENODEV (no
 * such device, or built without CUDA: msg "built without CUDA"), ENOMEM, EIO.
 * Caller frees with krn_backend_destroy(). */
krn_backend_t *krn_backend_create(const char *name, int param, struct err *err);

/* krn_backend_destroy: free the handle and its scratch space. Every buffer
 * allocated from it must be freed first (N.B. buffers are not tracked).
 * NULL is a no-op. */
void krn_backend_destroy(krn_backend_t *be);

/* krn_backend_name: "ref", "cpu" or "cuda". Borrowed: static string. */
const char *krn_backend_name(const krn_backend_t *be);

/* krn_backend_threads_set: change a "cpu" handle's thread count (>= 1; 0 = all
 * online cores). EINVAL on other backends or a negative count. */
int krn_backend_threads_set(krn_backend_t *be, int threads, struct err *err);

/* krn_backend_sync: wait until every op queued on be has finished; returns the
 * first asynchronous error (EIO). No-op (0) on "ref"/"cpu". */
int krn_backend_sync(krn_backend_t *be, struct err *err);

/* What a backend runs on: the worker reports it at registration; benchmarks use
 * the peaks for "% of peak". Peaks come from a table of known parts
 * (shared/FIGURES.md: H100/H200 SXM, the 2-vCPU EPYC Zen 4) or, failing that,
 * an estimate from SM count and clock (CUDA) or 32 FLOP/cycle/core at 3.6 GHz
 * (CPU, AVX-512 FMA); peak_from_table says which. */
struct krn_device_info {
    char name[96];            /* "NVIDIA H200", "AMD EPYC (2 threads)" */
    char arch[16];            /* "sm_90", "x86_64" */
    int cc_major, cc_minor;   /* compute capability; 0 on CPU */
    int multiprocessors;      /* SMs on CUDA; threads in use on CPU */
    int64_t mem_total;        /* bytes; physical RAM on CPU */
    int64_t mem_free;         /* bytes, at the time of the call */
    double peak_f32_gflops;   /* dense fp32 FMA peak (CUDA: non-tensor fp32) */
    double peak_bf16_gflops;  /* dense bf16/f16 tensor (CUDA) or vdpbf16ps (CPU) peak */
    double peak_gbps;         /* memory bandwidth, GB/s (1e9 bytes/s); 0 if unknown (always
                               * on CPU: bench programs measure it, krn_bench.h) */
    bool peak_from_table;
};

/* krn_backend_info: fill *out for the device be runs on. EIO on CUDA failure. */
int krn_backend_info(const krn_backend_t *be, struct krn_device_info *out, struct err *err);

/* krn_cpu_process_init: call first thing in main() of a program that runs the
 * "cpu" backend (argv: main's). The backend threads through its own pool and
 * keeps OpenBLAS at one thread; but OpenBLAS starts its own threads when it is
 * loaded (OPENBLAS_NUM_THREADS of them, else one per core), and they spin for
 * ~2^28 cycles (its THREAD_TIMEOUT), taking cores from the pool: GEMMs in the
 * first ~0.1 s of a process ran 2-6x slow. So unless OPENBLAS_NUM_THREADS is
 * "1", this sets it and re-executes the program (execv of /proc/self/exe with
 * the same argv; same pid), once. Returns only when no re-execution was needed
 * or it failed (then with a line on stderr; the program still works). */
void krn_cpu_process_init(char **argv);

/* krn_cuda_device_count: number of CUDA devices visible to this process; 0 in a
 * build without CUDA, without a driver or without a device. Never fails. */
int krn_cuda_device_count(void);

/* krn_cuda_device_info: describe CUDA device index dev without opening a
 * backend (the worker's registration). ENODEV when dev is out of range or the
 * build has no CUDA; EIO on a driver error. */
int krn_cuda_device_info(int dev, struct krn_device_info *out, struct err *err);

/* krn_cuda_device_uuid: the 16-byte UUID of CUDA device index dev
 * (cudaDeviceProp.uuid; nvidia-smi prints it as "GPU-" + 8-4-4-4-12 hex).
 * It names the physical GPU (a MIG instance has its own), whatever index
 * CUDA_VISIBLE_DEVICES gives it in this process, so processes can tell whether
 * they share a device (NCCL cannot place two ranks of one communicator on one
 * GPU). out: 16 bytes, written on success only. ENODEV when dev is out of range
 * or the build has no CUDA; EIO on a driver error (call and cudaGetErrorName). */
int krn_cuda_device_uuid(int dev, uint8_t out[16], struct err *err);

/* krn_backend_cuda_stream: the handle's cudaStream_t as void * (for NCCL), or
 * NULL on other backends. Borrowed: valid until krn_backend_destroy. */
void *krn_backend_cuda_stream(krn_backend_t *be);

/* ---- kernel variants (the cuda backend's run-time selection) ---- */

/* One kernel variant of an op on a backend. The "cuda" backend has several per
 * op (kernels/cuda/, numbered as in kernels/dev/): automatic selection picks
 * one per call from the shape, dtype, alignment and the device's architecture.
 * Safety net: when the handle is created, every fast variant that the device
 * can run is run once on small problems (odd sizes, tails, masks) against the
 * simple variant it replaces; one that disagrees beyond tolerance, or returns
 * non-finite values, is disabled for the handle's lifetime, so a fast path
 * that has never run on this GPU cannot produce wrong results. (A variant that
 * faults the device cannot be caught this way: creation then fails with EIO.)
 * The "ref" and "cpu" backends have no variants. */
struct krn_variant {
    char op[16];     /* "gemm", "attention" */
    char name[32];   /* "gemm_kernel7": the number of its kernels/dev/ version */
    bool runnable;   /* compiled for this device's architecture (e.g. sm_90a only) */
    bool checked;    /* the self-check ran (false: a reference variant, or not runnable) */
    bool enabled;    /* usable by automatic selection: runnable and (reference or agreed) */
    double check_err; /* self-check: max |variant - reference| / (atol + rtol |reference|);
                        * <= 1 passes; 0 when not checked */
    char note[96];   /* what it is for ("bf16/f16, A row-major, B [N,K], sm_90a"), or why
                      * it is disabled */
};

/* krn_backend_variants: fill out[0 .. min(n, max)) and return n, the number
 * of variants on be (0 on "ref"/"cpu"); -1 with EINVAL when out is NULL and
 * max > 0. Never touches the device. */
int krn_backend_variants(const krn_backend_t *be, struct krn_variant *out, int max,
                         struct err *err);

/* krn_backend_variant_force: make every later call of op ("gemm", "attention")
 * on be use the variant named name (e.g. "gemm_kernel6"), bypassing automatic
 * selection and the safety net (tests use it to exercise each variant against
 * cuBLAS); name NULL restores automatic selection. A forced variant that cannot
 * handle a call's shape, layout, alignment or dtype makes that call fail with
 * ENOTSUP. EINVAL unknown op, ENOENT unknown variant, ENOTSUP not runnable on
 * this device or a backend without variants. */
int krn_backend_variant_force(krn_backend_t *be, const char *op, const char *name,
                              struct err *err);

/* ---- buffers ---- */

typedef struct krn_buf krn_buf_t;

/* krn_buf_alloc: bytes of backend memory (64-byte aligned on the host, 256 on
 * CUDA), contents undefined. bytes == 0 is EINVAL. ENOMEM when the host or the
 * device is out of memory. Caller frees with krn_buf_free(). */
krn_buf_t *krn_buf_alloc(krn_backend_t *be, size_t bytes, struct err *err);

/* krn_buf_view: a handle on bytes [offset, offset+bytes) of parent, usable
 * wherever a buffer is (weights packed in one allocation, Q/K/V inside a fused
 * QKV output). EINVAL when the range is outside parent. Borrowed memory: valid
 * until parent is freed; the view handle itself is freed with krn_buf_free()
 * (which then frees only the handle). A view of a view refers to the root. */
krn_buf_t *krn_buf_view(krn_buf_t *parent, size_t offset, size_t bytes, struct err *err);

/* krn_buf_free: free a buffer or a view handle. NULL is a no-op. N.B. on
 * "cuda" this waits for queued ops on the owning stream before freeing. */
void krn_buf_free(krn_buf_t *buf);

/* krn_buf_size: size in bytes given at alloc/view time. */
size_t krn_buf_size(const krn_buf_t *buf);

/* krn_buf_ptr: the raw address (host pointer on "ref"/"cpu", device pointer on
 * "cuda"), for NCCL/ZeroMQ all-reduce and zero-copy host access. Borrowed:
 * valid until the buffer (or its root) is freed. */
void *krn_buf_ptr(krn_buf_t *buf);

/* krn_buf_upload: copy bytes from host src into buf at offset. Synchronous:
 * src may be reused on return. EINVAL when out of range; EIO on CUDA error. */
int krn_buf_upload(krn_buf_t *buf, size_t offset, const void *src, size_t bytes,
                   struct err *err);

/* krn_buf_download: wait for queued ops, then copy bytes at offset into host
 * dst. EINVAL when out of range; EIO on a CUDA error (including an earlier
 * asynchronous fault). */
int krn_buf_download(const krn_buf_t *buf, size_t offset, void *dst, size_t bytes,
                     struct err *err);

/* krn_buf_zero: set every byte of buf to 0 (stream-ordered on "cuda"). */
int krn_buf_zero(krn_buf_t *buf, struct err *err);

/* Copies through a raw backend pointer, for code that holds krn_buf_ptr() (plus
 * an offset) but not the buffer: a TP all-reduce callback (worker/wrk_bert.h
 * struct wrk_allreduce) that stages device memory through host memory.
 * ptr must point into one buffer of be, with bytes more bytes inside it
 * (krn_buf_ptr(buf) + offset, offset + bytes <= krn_buf_size(buf)). This is
 * NOT checked (buffers are not tracked): any other pointer is undefined
 * behaviour on "ref"/"cpu", and EIO (cudaErrorInvalidValue) or a device fault
 * on "cuda". Both are synchronous and stream-ordered: on "cuda" the copy is
 * queued on be's stream after every op queued before it
 * (cudaMemcpyAsync) and the stream is synchronised before the call returns, so
 * the host side may be read or reused on return; on "ref"/"cpu" a memmove.
 * bytes == 0 is a no-op (0; ptr and the host pointer may then be NULL).
 * Errors: EINVAL (be NULL, or a NULL pointer with bytes > 0); on "cuda" EIO
 * naming the CUDA call and cudaGetErrorName, including an earlier asynchronous
 * fault on the stream. Thread-safety: as for be (one handle per thread). */

/* krn_ptr_download: copy bytes at backend pointer ptr into host dst. */
int krn_ptr_download(krn_backend_t *be, void *dst, const void *ptr, size_t bytes,
                     struct err *err);

/* krn_ptr_upload: copy bytes from host src to backend pointer ptr. */
int krn_ptr_upload(krn_backend_t *be, void *ptr, const void *src, size_t bytes,
                   struct err *err);

/* ---- ops ---- */

/* Op names, used by the cost model, the benchmarks and the worker's bench task. */
enum krn_op {
    KRN_OP_GEMM,
    KRN_OP_ATTENTION,
    KRN_OP_LAYERNORM,
    KRN_OP_GELU,
    KRN_OP_SOFTMAX,
    KRN_OP_ADD,
    KRN_OP_EMBEDDING,
    KRN_OP_MEAN_POOL,
    KRN_OP_L2NORM,
    KRN_OP_COUNT
};
/* "gemm", "attention", "layernorm", "gelu", "softmax", "add", "embedding",
 * "mean_pool", "l2norm" */
extern const char *const krn_op_names[KRN_OP_COUNT];

/* krn_op_parse: name -> enum; EINVAL for an unknown name. */
int krn_op_parse(const char *name, enum krn_op *out, struct err *err);

/* Cost model: the same numbers for tests, benchmarks and logs. shape is the
 * op's shape vector:
 *   gemm       M, N, K [, batch]       flops 2*M*N*K*batch
 *   attention  B, T, H, D [, causal]   flops 4*B*H*T*T*D (halved when causal != 0;
 *                                      the FlashAttention-2 paper's convention)
 *   layernorm  rows, cols              flops 8*rows*cols
 *   gelu       n                       flops 8*n (erf counted as ~6)
 *   softmax    rows, cols              flops 5*rows*cols
 *   add        n                       flops n
 *   embedding  n_ids, dim              flops 0
 *   mean_pool  B, T, D                 flops 2*B*T*D
 *   l2norm     rows, cols              flops 3*rows*cols
 * bytes is the minimum traffic: every input read once and every output written
 * once, at dtype's size for gemm/attention inputs and outputs (f32 for the
 * others, int32 for ids/masks). Both return 0 for an unknown op or a bad shape. */
double krn_op_flops(enum krn_op op, const int64_t *shape, int nshape, enum krn_dtype dtype);
double krn_op_bytes(enum krn_op op, const int64_t *shape, int nshape, enum krn_dtype dtype);

/* GEMM epilogue, applied to each element of C after alpha/beta:
 *   C[m,n] = act(alpha * sum_k op(A)[m,k] op(B)[k,n] + beta * C[m,n] + bias[n])
 * with act the identity (NONE, BIAS) or GELU erf form (BIAS_GELU). */
enum krn_epilogue {
    KRN_EPI_NONE,
    KRN_EPI_BIAS,
    KRN_EPI_BIAS_GELU,
    KRN_EPI_COUNT
};

/* GEMM arguments (row-major, like cblas with CblasRowMajor).
 *   op(A) is [M, K]: A stored [M, K] (lda >= K), or [K, M] when trans_a (lda >= M).
 *   op(B) is [K, N]: B stored [K, N] (ldb >= N), or [N, K] when trans_b (ldb >= K).
 *     (an nn.Linear weight W [out, in] gives y = x W^T with trans_b = true)
 *   C is [M, N] (ldc >= N).
 *   ld* are row strides in elements; 0 means tight (the minimum above).
 *   batch >= 1 strided-batched items: item i reads A + i*stride_a, B + i*stride_b
 *   and writes C + i*stride_c (elements; a stride of 0 broadcasts that operand,
 *   but stride_c must not be 0 when batch > 1, and items of C must not overlap:
 *   they may interleave, e.g. heads with stride_c = D, ldc = H*D). The bias is
 *   shared by all items.
 *   dtype_ab: A and B element type. dtype_c: C's, F32 or equal to dtype_ab.
 *   Accumulation is always fp32. beta == 0 never reads C (NaN in C is ignored).
 * Zero-initialise the struct and set what you need; batch 0 counts as 1. */
struct krn_gemm_args {
    int64_t M, N, K;
    bool trans_a, trans_b;
    int64_t lda, ldb, ldc;
    float alpha, beta;
    enum krn_epilogue epilogue;
    enum krn_dtype dtype_ab, dtype_c;
    int64_t batch;
    int64_t stride_a, stride_b, stride_c;
};

/* krn_gemm: C = act(alpha op(A) op(B) + beta C + bias) (see above).
 * a, b: dtype_ab; c: dtype_c; bias: f32 [N], required for KRN_EPI_BIAS*, else
 * ignored (may be NULL). c must not overlap a, b or bias.
 * Sources: BLAS sgemm semantics (netlib); GELU per Hendrycks & Gimpel 2016,
 * erf form as in BERT/HF "gelu": 0.5 x (1 + erf(x / sqrt 2)).
 * EINVAL (dims < 1, bad ld/stride, short buffers), ENOTSUP (dtype pair). */
int krn_gemm(krn_backend_t *be, const struct krn_gemm_args *args, const krn_buf_t *a,
             const krn_buf_t *b, const krn_buf_t *bias, krn_buf_t *c, struct err *err);

/* Attention arguments. q, k, v, o are [B, T, H, D] row-major in memory order
 * (token t of sequence b, head h at element offset (b*T + t)*ld + h*D), where
 * ld_* is the stride between consecutive tokens in elements; 0 means H*D.
 * A fused QKV output [B, T, 3, H, D] is used with three views and
 * ld_q = ld_k = ld_v = 3*H*D.
 *   D in {32, 64, 128} (ENOTSUP otherwise; the ref backend accepts any D >= 1).
 *   scale: multiplies Q.K^T; 0 means 1/sqrt(D).
 *   causal: query t sees keys j <= t only.
 *   dtype: q, k, v element type; dtype_o: o's (F32 or equal to dtype).
 * Zero-initialise and set what you need. */
struct krn_attn_args {
    int64_t B, T, H, D;
    int64_t ld_q, ld_k, ld_v, ld_o;
    float scale;
    bool causal;
    enum krn_dtype dtype, dtype_o;
};

/* krn_attention: O = softmax(scale Q K^T + mask) V per (b, h), fused with an
 * online softmax (FlashAttention, Dao et al. 2022; FA-2 loop order, Dao 2023):
 * no [T, T] matrix is materialised on "cpu"/"cuda" (memory O(T*D) per head).
 * mask: int32 [B, T] key-padding mask (nonzero = key valid, the HF
 * attention_mask), or NULL for all valid. Masked keys get weight exactly 0.
 * A query row with no visible key (all keys masked) gets O = 0.
 * o must not overlap q, k, v. EINVAL, ENOTSUP (D, dtype). */
int krn_attention(krn_backend_t *be, const struct krn_attn_args *args, const krn_buf_t *q,
                  const krn_buf_t *k, const krn_buf_t *v, const krn_buf_t *mask,
                  krn_buf_t *o, struct err *err);

/* The ops below are f32 only. Each y may equal x (in place); partial overlap is
 * not allowed. */

/* krn_layernorm: y[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta,
 * biased variance over cols (Ba et al. 2016; torch.nn.LayerNorm).
 * x, y: [rows, cols]; gamma, beta: [cols]. BERT uses eps = 1e-12. */
int krn_layernorm(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                  const krn_buf_t *x, const krn_buf_t *gamma, const krn_buf_t *beta,
                  krn_buf_t *y, struct err *err);

/* krn_gelu: y = 0.5 x (1 + erf(x / sqrt 2)) elementwise (erf form, as in BERT).
 * x, y: [n]. */
int krn_gelu(krn_backend_t *be, int64_t n, const krn_buf_t *x, krn_buf_t *y,
             struct err *err);

/* krn_softmax: y[r,:] = exp(x[r,:] - m) / sum_c exp(x[r,c] - m), m = max_c x[r,c],
 * over the last dim. x, y: f32 [rows, cols] row-major. Subtracting the row
 * maximum leaves the result unchanged mathematically and keeps exp() from
 * overflowing (Goodfellow, Bengio & Courville, Deep Learning, 2016, §4.1
 * "Overflow and Underflow"); the softmax itself is the one of scaled
 * dot-product attention (Vaswani et al. 2017, §3.2.1; torch.softmax(x, -1)).
 * No mask: a row whose elements are all -inf gives NaN (krn_attention is the
 * masked op). */
int krn_softmax(krn_backend_t *be, int64_t rows, int64_t cols, const krn_buf_t *x,
                krn_buf_t *y, struct err *err);

/* krn_add: y[i] = a[i] + b[i] elementwise. a, b, y: f32 [n] (any shape, flattened);
 * y may equal a or b. Used for the residual connection x + Sublayer(x) (He et
 * al. 2016, "Deep Residual Learning"; in the Transformer as LayerNorm(x +
 * Sublayer(x)), Vaswani et al. 2017, §3.1) and to sum BERT's input embeddings
 * (see krn_embedding). */
int krn_add(krn_backend_t *be, int64_t n, const krn_buf_t *a, const krn_buf_t *b,
            krn_buf_t *y, struct err *err);

/* krn_embedding: row gather out[i,:] = table[ids[i], :] (torch.nn.Embedding's
 * lookup). ids: int32 [n]; table: f32 [vocab, dim] row-major; out: f32 [n, dim]
 * row-major. BERT's input representation is the sum of three such lookups,
 * word (WordPiece id), position and token-type (segment) embeddings, then
 * LayerNorm (Devlin et al. 2019, §3 "Input/Output Representations", Fig. 2):
 * worker/wrk_bert.c composes it as three krn_embedding calls and two krn_add.
 * An id outside [0, vocab) gives a zero row (moat's choice, where torch raises;
 * checked on the device, so it cannot fail at run time), which wrk_bert.c also
 * uses to pack and unpack padded rows. */
int krn_embedding(krn_backend_t *be, int64_t n, int64_t dim, int64_t vocab,
                  const krn_buf_t *ids, const krn_buf_t *table, krn_buf_t *out,
                  struct err *err);

/* krn_mean_pool: out[b,:] = sum_t mask[b,t] x[b,t,:] / max(sum_t mask[b,t], 1e-9)
 * (sentence-transformers Pooling, mean mode; mask taken as 0/1).
 * x: [B, T, D]; mask: int32 [B, T] or NULL (all valid); out: [B, D]. */
int krn_mean_pool(krn_backend_t *be, int64_t B, int64_t T, int64_t D, const krn_buf_t *x,
                  const krn_buf_t *mask, krn_buf_t *out, struct err *err);

/* krn_l2_normalize: y[r,:] = x[r,:] / max(||x[r,:]||_2, eps) (torch
 * F.normalize; sentence-transformers uses eps = 1e-12). x, y: [rows, cols]. */
int krn_l2_normalize(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                     const krn_buf_t *x, krn_buf_t *y, struct err *err);

/* ---- benchmark (the worker's `bench` task kind and bench-kernels) ---- */

/* krn_bench_run: validate, then time op on shape (see krn_op_flops for the
 * shape vector) with dtype on be, up to repeat timed runs after one warm-up
 * (repeat 0 = 10; a series stops after ~4 s once it has 3 runs; the row's
 * "repeat" is the number of runs timed, 0 when not valid). A tensor of more
 * than 2^36 elements is EINVAL (krn_bench_footprint). Appends nothing to
 * stdout; returns in *json_rows one or more JSON objects, one per line, each
 * ending in '\n':
 *   {"op","shape":[...],"dtype","backend","device","threads","repeat",
 *    "time_ms" (median),"time_ms_min","gflops","gbps","ref","ref_time_ms",
 *    "pct_of_ref","peak","peak_unit","peak_source","pct_of_peak","max_abs_err",
 *    "valid","checksum"}
 * "ref" names the reference timed in the same run (gemm on cpu: "openblas",
 * cblas_sgemm called directly with OpenBLAS's own threads at the backend's
 * thread count; attention: "unfused", the materialised
 * Q.K^T -> softmax -> .V on the same backend; else null). Inputs are uniform
 * random in [-1, 1) from a fixed seed, so checksum (sum of the output) is
 * comparable across nodes. "peak" is the device's (krn_device_info: GFLOP/s
 * for gemm/attention at the row's dtype, GB/s for the others) and
 * "peak_source" says where it comes from: "table (...)", "estimate (...)" with
 * the formula, or "stream-triad (measured)" for memory-bound rows on
 * "cpu"/"ref" once the program has measured the host's bandwidth
 * (kernels/krn_bench.h krn_bench_host_gbps_set; bench-kernels and the worker's
 * bench task do); both null when unknown. A validation failure is not an error: the row says
 * "valid":false and is not timed.
 * Caller frees *json_rows with free(). EINVAL (op, shape, repeat), ENOTSUP,
 * ENOMEM, EIO. */
int krn_bench_run(const char *op, const int64_t *shape, int nshape, enum krn_dtype dtype,
                  int repeat, krn_backend_t *be, char **json_rows, struct err *err);

/* krn_bench_footprint: what krn_bench_run would allocate for this case, in
 * bytes: *host_bytes of host memory (f32 inputs, output copy, validation's
 * reference, ids) and *backend_bytes of the backend's (inputs and output at
 * dtype, ids, the unfused attention reference's [H, T, T] scores and f32
 * copies; on "cpu"/"ref" that is host memory too). An estimate within the
 * allocator's rounding, for refusing a case before it starts. EINVAL (unknown
 * op, bad shape or dtype, a tensor over 2^36 elements or an overflowing size:
 * the same checks krn_bench_run makes). */
int krn_bench_footprint(const char *op, const int64_t *shape, int nshape, enum krn_dtype dtype,
                        uint64_t *host_bytes, uint64_t *backend_bytes, struct err *err);

#ifdef __cplusplus
}
#endif

#endif
