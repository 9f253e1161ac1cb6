/* cuda_backend.cu: the "cuda" backend's handle, memory, device queries and its
 * row/elementwise ops. GEMM is in cuda_gemm.cu, attention in cuda_attn.cu.
 *
 * Memory is plain cudaMalloc/cudaFree; copies and memsets are ordered on the
 * handle's stream, and downloads synchronise it. Row ops use one block per row
 * (block-wide reductions through warp shuffles); elementwise ops a grid-stride
 * loop. Peaks of known parts come from shared/FIGURES.md.
 */
#include "kernels/cuda/cuda.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- device queries ---- */

extern "C" int krn_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear: no driver / no device is not sticky */
        return 0;
    }
    return n;
}

/* fill_info: properties and peaks (table for H100/H200 SXM, else an estimate:
 * fp32 = SMs x 128 lanes x 2 x clock; tensor bf16 = 8x that on sm_80, 16x on sm_90). */
static int fill_info(int dev, struct krn_device_info *out, struct err *err)
{
    cudaDeviceProp p;
    memset(out, 0, sizeof *out);
    CUDA_TRY(cudaGetDeviceProperties(&p, dev), err);
    snprintf(out->name, sizeof out->name, "%.95s", p.name);
    snprintf(out->arch, sizeof out->arch, "sm_%d%d", p.major, p.minor);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->multiprocessors = p.multiProcessorCount;
    size_t fr = 0, tot = 0;
    int prev = -1;
    cudaGetDevice(&prev);
    if (cudaSetDevice(dev) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
        out->mem_free = (int64_t)fr;
        out->mem_total = (int64_t)tot;
    } else {
        cudaGetLastError();
        out->mem_total = (int64_t)p.totalGlobalMem;
    }
    if (prev >= 0)
        cudaSetDevice(prev);
    int clock_khz = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev);
    if (strstr(p.name, "H100") != NULL || strstr(p.name, "H200") != NULL) {
        out->peak_from_table = true;
        out->peak_f32_gflops = 67e3;
        out->peak_bf16_gflops = 989e3;
        out->peak_gbps = strstr(p.name, "H200") ? 4800 : 3350;
    } else {
        double f32 = p.multiProcessorCount * 128.0 * 2 * clock_khz / 1e6;
        out->peak_f32_gflops = f32;
        out->peak_bf16_gflops = f32 * (p.major >= 9 ? 16 : 8);
        int mem_khz = 0, bus = 0;
        cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev);
        cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev);
        out->peak_gbps = 2.0 * mem_khz * 1e3 * (bus / 8) / 1e9;
    }
    return 0;
}

extern "C" int krn_cuda_device_info(int dev, struct krn_device_info *out, struct err *err)
{
    int n = krn_cuda_device_count();
    if (dev < 0 || dev >= n)
        return err_set(err, ENODEV, "cuda device %d: %d device(s) present", dev, n);
    return fill_info(dev, out, err);
}

extern "C" int krn_cuda_device_uuid(int dev, uint8_t out[16], struct err *err)
{
    int n = krn_cuda_device_count();
    if (dev < 0 || dev >= n)
        return err_set(err, ENODEV, "cuda device %d: %d device(s) present", dev, n);
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, dev), err);
    static_assert(sizeof p.uuid.bytes == 16, "cudaUUID_t is 16 bytes");
    memcpy(out, p.uuid.bytes, 16);
    return 0;
}

/* ---- handle ---- */

static void cu_destroy(krn_backend_t *be)
{
    struct cuda_backend *cb = cuda_of(be);
    cudaSetDevice(cb->dev);
    cudaStreamSynchronize(cb->stream);
    cudaStreamDestroy(cb->stream);
    free(cb);
}

static int cu_sync(krn_backend_t *be, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    CUDA_TRY(cudaStreamSynchronize(cb->stream), err);
    return 0;
}

static int cu_info(const krn_backend_t *be, struct krn_device_info *out, struct err *err)
{
    return fill_info(((const struct cuda_backend *)be)->dev, out, err);
}

static void *cu_stream(krn_backend_t *be)
{
    return (void *)cuda_of(be)->stream;
}

static void *cu_alloc(krn_backend_t *be, size_t bytes, struct err *err)
{
    void *p = NULL;
    cudaError_t rc = cudaSetDevice(cuda_of(be)->dev);
    if (rc == cudaSuccess)
        rc = cudaMalloc(&p, bytes);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        cuda_fail(err, rc, "cudaMalloc");
        return NULL;
    }
    return p;
}

static void cu_free(krn_backend_t *be, void *p)
{
    struct cuda_backend *cb = cuda_of(be);
    cudaSetDevice(cb->dev);
    cudaStreamSynchronize(cb->stream); /* N.B. queued ops may still read p */
    cudaFree(p);
}

static int cu_upload(krn_backend_t *be, void *dst, const void *src, size_t bytes,
                     struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cb->stream), err);
    CUDA_TRY(cudaStreamSynchronize(cb->stream), err); /* src may be reused on return */
    return 0;
}

static int cu_download(krn_backend_t *be, void *dst, const void *src, size_t bytes,
                       struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cb->stream), err);
    CUDA_TRY(cudaStreamSynchronize(cb->stream), err);
    return 0;
}

static int cu_zero(krn_backend_t *be, void *dst, size_t bytes, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    CUDA_TRY(cudaMemsetAsync(dst, 0, bytes, cb->stream), err);
    return 0;
}

/* ---- row ops ---- */

/* block_sum: sum of v over the block (blockDim.x a multiple of 32, <= 1024). */
__device__ float block_sum(float v, float *sh)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads(); /* N.B. sh may still be read by the previous reduction */
    if (l == 0)
        sh[w] = v;
    __syncthreads();
    float t = 0;
    for (int i = 0; i < (int)(blockDim.x / 32); i++)
        t += sh[i];
    return t;
}

__device__ float block_max(float v, float *sh)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads();
    if (l == 0)
        sh[w] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x / 32); i++)
        t = fmaxf(t, sh[i]);
    return t;
}

/* layernorm: grid = rows, block = 256; x, y: [rows, cols] (two passes over x). */
__global__ void layernorm_kernel(int64_t cols, float eps, const float *x, const float *gamma,
                                 const float *beta, float *y)
{
    __shared__ float sh[32];
    const float *xr = x + blockIdx.x * cols;
    float *yr = y + blockIdx.x * cols;
    float s = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        s += xr[i];
    float mean = block_sum(s, sh) / (float)cols;
    float v = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        v += (xr[i] - mean) * (xr[i] - mean);
    float inv = rsqrtf(block_sum(v, sh) / (float)cols + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        yr[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
}

static int cu_layernorm(krn_backend_t *be, int64_t rows, int64_t cols, float eps, const float *x,
                        const float *gamma, const float *beta, float *y, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    layernorm_kernel<<<(unsigned)rows, 256, 0, cb->stream>>>(cols, eps, x, gamma, beta, y);
    CUDA_LAUNCHED("layernorm_kernel", err);
    return 0;
}

/* softmax: grid = rows, block = 256; x, y: [rows, cols]. */
__global__ void softmax_kernel(int64_t cols, const float *x, float *y)
{
    __shared__ float sh[32];
    const float *xr = x + blockIdx.x * cols;
    float *yr = y + blockIdx.x * cols;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        m = fmaxf(m, xr[i]);
    m = block_max(m, sh);
    float s = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        s += __expf(xr[i] - m);
    float inv = 1.0f / block_sum(s, sh);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        yr[i] = __expf(xr[i] - m) * inv;
}

static int cu_softmax(krn_backend_t *be, int64_t rows, int64_t cols, const float *x, float *y,
                      struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    softmax_kernel<<<(unsigned)rows, 256, 0, cb->stream>>>(cols, x, y);
    CUDA_LAUNCHED("softmax_kernel", err);
    return 0;
}

/* l2norm: grid = rows, block = 128; y = x / max(||x||, eps). */
__global__ void l2norm_kernel(int64_t cols, float eps, const float *x, float *y)
{
    __shared__ float sh[32];
    const float *xr = x + blockIdx.x * cols;
    float s = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        s += xr[i] * xr[i];
    float inv = 1.0f / fmaxf(sqrtf(block_sum(s, sh)), eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        y[blockIdx.x * cols + i] = xr[i] * inv;
}

static int cu_l2_normalize(krn_backend_t *be, int64_t rows, int64_t cols, float eps,
                           const float *x, float *y, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    l2norm_kernel<<<(unsigned)rows, 128, 0, cb->stream>>>(cols, eps, x, y);
    CUDA_LAUNCHED("l2norm_kernel", err);
    return 0;
}

/* Elementwise: grid-stride loops, 256 threads, at most 4 blocks per SM x 32. */
__global__ void gelu_kernel(int64_t n, const float *x, float *y)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = krn_dgelu(x[i]);
}

__global__ void add_kernel(int64_t n, const float *a, const float *b, float *y)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

static unsigned grid_for(const struct cuda_backend *cb, int64_t n)
{
    int64_t g = (n + 255) / 256, cap = (int64_t)cb->sms * 32;
    return (unsigned)(g < cap ? g : cap);
}

static int cu_gelu(krn_backend_t *be, int64_t n, const float *x, float *y, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    gelu_kernel<<<grid_for(cb, n), 256, 0, cb->stream>>>(n, x, y);
    CUDA_LAUNCHED("gelu_kernel", err);
    return 0;
}

static int cu_add(krn_backend_t *be, int64_t n, const float *a, const float *b, float *y,
                  struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    add_kernel<<<grid_for(cb, n), 256, 0, cb->stream>>>(n, a, b, y);
    CUDA_LAUNCHED("add_kernel", err);
    return 0;
}

/* embedding: grid = n ids, block = 128 over dim; out-of-range id -> zero row. */
__global__ void embedding_kernel(int64_t dim, int64_t vocab, const int32_t *ids,
                                 const float *table, float *out)
{
    int32_t id = ids[blockIdx.x];
    bool ok = id >= 0 && id < vocab;
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x)
        out[blockIdx.x * dim + d] = ok ? table[(int64_t)id * dim + d] : 0.0f;
}

static int cu_embedding(krn_backend_t *be, int64_t n, int64_t dim, int64_t vocab,
                        const int32_t *ids, const float *table, float *out, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    embedding_kernel<<<(unsigned)n, 128, 0, cb->stream>>>(dim, vocab, ids, table, out);
    CUDA_LAUNCHED("embedding_kernel", err);
    return 0;
}

/* mean_pool: grid = (B, ceil(D/128)), block = 128 over d; x: [B, T, D]. */
__global__ void mean_pool_kernel(int64_t T, int64_t D, const float *x, const int32_t *mask,
                                 float *out)
{
    int64_t b = blockIdx.x, d = blockIdx.y * (int64_t)blockDim.x + threadIdx.x;
    if (d >= D)
        return;
    float acc = 0, cnt = 0;
    for (int64_t t = 0; t < T; t++) {
        if (mask != NULL && mask[b * T + t] == 0)
            continue;
        acc += x[(b * T + t) * D + d];
        cnt += 1;
    }
    out[b * D + d] = acc / fmaxf(cnt, 1e-9f);
}

static int cu_mean_pool(krn_backend_t *be, int64_t B, int64_t T, int64_t D, const float *x,
                        const int32_t *mask, float *out, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    CUDA_TRY(cudaSetDevice(cb->dev), err);
    dim3 grid((unsigned)B, (unsigned)((D + 127) / 128));
    mean_pool_kernel<<<grid, 128, 0, cb->stream>>>(T, D, x, mask, out);
    CUDA_LAUNCHED("mean_pool_kernel", err);
    return 0;
}

/* ---- kernel variants ---- */

static void variant_fill(struct krn_variant *out, const char *op, const char *name,
                         const struct cuda_variant *cv)
{
    memset(out, 0, sizeof *out);
    snprintf(out->op, sizeof out->op, "%s", op);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->runnable = cv->runnable;
    out->checked = cv->checked;
    out->enabled = cv->enabled;
    out->check_err = cv->check_err;
    snprintf(out->note, sizeof out->note, "%s", cv->note);
}

static int cu_variants(const krn_backend_t *be, struct krn_variant *out, int max)
{
    const struct cuda_backend *cb = (const struct cuda_backend *)be;
    int n = 0;
    for (int v = 0; v < CU_GEMM_COUNT; v++, n++)
        if (n < max)
            variant_fill(&out[n], "gemm", cuda_gemm_variant_names[v], &cb->gemm_v[v]);
    for (int v = 0; v < CU_ATTN_COUNT; v++, n++)
        if (n < max)
            variant_fill(&out[n], "attention", cuda_attn_variant_names[v], &cb->attn_v[v]);
    return n;
}

static int cu_variant_force(krn_backend_t *be, enum krn_op op, const char *name, struct err *err)
{
    struct cuda_backend *cb = cuda_of(be);
    bool gemm = op == KRN_OP_GEMM;
    int count = gemm ? (int)CU_GEMM_COUNT : (int)CU_ATTN_COUNT;
    const char *const *names = gemm ? cuda_gemm_variant_names : cuda_attn_variant_names;
    const struct cuda_variant *vs = gemm ? cb->gemm_v : cb->attn_v;
    int *force = gemm ? &cb->gemm_force : &cb->attn_force;
    if (name == NULL) {
        *force = -1;
        return 0;
    }
    for (int v = 0; v < count; v++)
        if (strcmp(names[v], name) == 0) {
            if (!vs[v].runnable)
                return err_set(err, ENOTSUP, "variant %s: %s", name, vs[v].note);
            *force = v;
            return 0;
        }
    return err_set(err, ENOENT, "variant %s: no such %s variant", name, krn_op_names[op]);
}

static const struct krn_backend_ops cuda_ops = {
    "cuda",        cu_destroy,   NULL,          cu_sync,     cu_info,   cu_stream,
    cu_alloc,      cu_free,      cu_upload,     cu_download, cu_zero,   cuda_gemm,
    cuda_attention, cu_layernorm, cu_gelu,      cu_softmax,  cu_add,    cu_embedding,
    cu_mean_pool,  cu_l2_normalize, cu_variants, cu_variant_force,
};

extern "C" krn_backend_t *krn_cuda_backend_create(int dev, struct err *err)
{
    int n = krn_cuda_device_count();
    if (dev >= n) {
        err_set(err, ENODEV, "backend cuda: device %d: %d device(s) present", dev, n);
        return NULL;
    }
    struct cuda_backend *cb = (struct cuda_backend *)calloc(1, sizeof *cb);
    if (cb == NULL) {
        err_set(err, ENOMEM, "backend cuda: out of host memory");
        return NULL;
    }
    cb->base.ops = &cuda_ops;
    cb->dev = dev;
    cudaDeviceProp p;
    cudaError_t rc = cudaSetDevice(dev);
    const char *call = "cudaSetDevice";
    if (rc == cudaSuccess) {
        call = "cudaGetDeviceProperties";
        rc = cudaGetDeviceProperties(&p, dev);
    }
    if (rc == cudaSuccess) {
        call = "cudaStreamCreateWithFlags";
        rc = cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking);
    }
    if (rc != cudaSuccess) {
        cuda_fail(err, rc, call);
        free(cb);
        return NULL;
    }
    cb->cc_major = p.major;
    cb->cc_minor = p.minor;
    cb->sms = p.multiProcessorCount;
    /* kernel variants: which can run here, and the self-checks of the fast ones */
    if (cuda_gemm_init(cb, err) != 0 || cuda_attn_init(cb, err) != 0) {
        cudaStreamDestroy(cb->stream);
        free(cb);
        return NULL;
    }
    return &cb->base;
}
