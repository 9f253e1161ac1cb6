/* test_cusim.cc: the CPU emulator's own semantics (tests/cusim/cusim.h), so that a
 * kernel passing on it means something.
 *
 * Fragment layouts are written here in the PTX ISA's own form, per element
 * index i ("Matrix Fragments for mma.m16n8k16 with floating point type"):
 *   A a0..a7: row = groupID for i in {0,1,4,5}, groupID + 8 otherwise;
 *             col = threadID_in_group * 2 + (i & 1), + 8 for i >= 4
 *   B b0..b3: row = threadID_in_group * 2 + (i & 1), + 8 for i >= 2; col = groupID
 *   C c0..c3: row = groupID, + 8 for i >= 2; col = threadID_in_group * 2 + (i & 1)
 * with element pairs packed low half first into .b32 registers; and
 * ("ldmatrix") thread l receives, of each 8x8 matrix, row l / 4, elements
 * 2 (l % 4) and 2 (l % 4) + 1, matrix j's rows addressed by threads 8j..8j+7.
 * The emulator's code states the same layouts per register; a mismatch fails here.
 *
 * Checks that must make a launch fail run in a child process (the failure is
 * sticky for the process, as a device fault is); the parent checks its status.
 */
#include "cusim.h"
#include "include/cuda.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include <cmocka.h> /* its own C++ guard does not cover every declaration */
}

static uint16_t bf16_bits(float f)
{
    return __float2bfloat16_rn(f).__x;
}

/* ---- mma.sync m16n8k16 ---- */

struct mma_io {
    float A[16][16], B[16][8], C[16][8], D[16][8];
};

static void mma_kernel(mma_io *io)
{
    int lane = (int)threadIdx.x, g = lane / 4, t = lane % 4;
    uint16_t a[8], b[4];
    for (int i = 0; i < 8; i++) {
        int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
        int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
        a[i] = bf16_bits(io->A[row][col]);
    }
    for (int i = 0; i < 4; i++) {
        int row = t * 2 + (i & 1) + (i >= 2 ? 8 : 0);
        b[i] = bf16_bits(io->B[row][g]);
    }
    uint32_t ar[4], br[2];
    for (int r = 0; r < 4; r++)
        ar[r] = (uint32_t)a[2 * r] | ((uint32_t)a[2 * r + 1] << 16);
    for (int r = 0; r < 2; r++)
        br[r] = (uint32_t)b[2 * r] | ((uint32_t)b[2 * r + 1] << 16);
    float c[4];
    for (int i = 0; i < 4; i++)
        c[i] = io->C[g + (i >= 2 ? 8 : 0)][t * 2 + (i & 1)];
    cusim::mma_16816(c, ar, br, true);
    for (int i = 0; i < 4; i++)
        io->D[g + (i >= 2 ? 8 : 0)][t * 2 + (i & 1)] = c[i];
}

static void test_mma_layout(void **state)
{
    (void)state;
    mma_io io;
    /* small integers: every product and sum is exact in fp32 and in bf16 */
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            io.A[r][c] = (float)((r * 7 + c * 3) % 9 - 4);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 8; c++) {
            io.B[r][c] = (float)((r * 5 + c * 11) % 7 - 3);
            io.C[r][c] = (float)(r - c);
        }
    cusim::launch("mma_kernel", cusim::cfg(1, 32), mma_kernel, &io);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            float want = io.C[m][n];
            for (int k = 0; k < 16; k++)
                want += io.A[m][k] * io.B[k][n];
            if (io.D[m][n] != want)
                fail_msg("D[%d][%d] = %g, want %g", m, n, (double)io.D[m][n], (double)want);
        }
}

/* ---- ldmatrix.x4 (and .trans) ---- */

struct ldm_io {
    uint32_t r[32][4], rt[32][4];
};

static void ldmatrix_kernel(ldm_io *io)
{
    __shared__ __align__(16) uint16_t m[32][8]; /* 4 matrices of 8x8: rows 8j..8j+7 */
    cusim::poison_shared(m, sizeof m);           /* what cusim_pp.py adds after __shared__ */
    int lane = (int)threadIdx.x;
    for (int c = 0; c < 8; c++)
        m[lane][c] = (uint16_t)(lane * 8 + c); /* matrix lane/8, row lane%8, col c */
    __syncwarp();
    cusim::ldmatrix_x4(io->r[lane], &m[lane][0], false);
    cusim::ldmatrix_x4(io->rt[lane], &m[lane][0], true);
}

static void test_ldmatrix_layout(void **state)
{
    (void)state;
    static ldm_io io;
    cusim::launch("ldmatrix_kernel", cusim::cfg(1, 32), ldmatrix_kernel, &io);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    for (int l = 0; l < 32; l++)
        for (int j = 0; j < 4; j++) {
            int row = l / 4, col = 2 * (l % 4);
            uint32_t want = (uint32_t)((j * 8 + row) * 8 + col) |
                            ((uint32_t)((j * 8 + row) * 8 + col + 1) << 16);
            assert_int_equal(io.r[l][j], want);
            /* .trans: the transposed matrix, so element (row, col) of the
             * transpose is (col, row) of the matrix as stored */
            uint32_t want_t = (uint32_t)((j * 8 + col) * 8 + row) |
                              ((uint32_t)((j * 8 + col + 1) * 8 + row) << 16);
            assert_int_equal(io.rt[l][j], want_t);
        }
}

/* ---- shuffles, including divergent partial masks ---- */

static void shfl_kernel(int *out)
{
    int lane = (int)threadIdx.x % 32;
    int v = (int)threadIdx.x * 10;
    int x = __shfl_xor_sync(0xffffffffu, v, 1) + __shfl_xor_sync(0xffffffffu, v, 16);
    /* quads take different paths; each quad shuffles within itself only */
    unsigned quad = 0xfu << (lane & ~3);
    int y = 0;
    if ((lane / 4) % 2 == 0)
        y = __shfl_xor_sync(quad, v, 2);
    else
        y = -__shfl_xor_sync(quad, v, 3);
    out[threadIdx.x] = x * 1000 + y;
}

static void test_shuffles(void **state)
{
    (void)state;
    int out[64];
    cusim::launch("shfl_kernel", cusim::cfg(1, 64), shfl_kernel, out);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    for (int t = 0; t < 64; t++) {
        int lane = t % 32, base = t - lane;
        int x = (base + (lane ^ 1)) * 10 + (base + (lane ^ 16)) * 10;
        int y = (lane / 4) % 2 == 0 ? (base + (lane ^ 2)) * 10 : -(base + (lane ^ 3)) * 10;
        assert_int_equal(out[t], x * 1000 + y);
    }
}

/* ---- cp.async lands at the issuing thread's wait, not before ---- */

static void cp_async_kernel(const float *src, float *out)
{
    float *s = (float *)cusim::dynamic_smem();
    int t = (int)threadIdx.x;
    cusim::cp_async16(s + 4 * t, src + 4 * t, true);
    cusim::cp_async_commit();
    out[t] = s[4 * t]; /* before the wait: still the poison */
    cusim::cp_async_wait(0);
    out[32 + t] = s[4 * t];
    cusim::cp_async16(s + 4 * t, src, false); /* src-size 0: zero fill */
    cusim::cp_async_commit();
    cusim::cp_async_wait(0);
    out[64 + t] = s[4 * t + 1];
}

static void test_cp_async(void **state)
{
    (void)state;
    float *src = NULL, host[128], out[96];
    for (int i = 0; i < 128; i++)
        host[i] = (float)i + 0.5f;
    assert_int_equal(cudaMalloc(&src, sizeof host), cudaSuccess);
    assert_int_equal(cudaMemcpy(src, host, sizeof host, cudaMemcpyHostToDevice), cudaSuccess);
    const char *mode = getenv("CUSIM_CP_ASYNC");
    if (mode != NULL && strcmp(mode, "eager") == 0)
        skip(); /* eager mode lands at issue by design */
    cusim::launch("cp_async_kernel", cusim::cfg(1, 32, 512), cp_async_kernel, (const float *)src,
                  out);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    for (int t = 0; t < 32; t++) {
        assert_true(isnan(out[t]));
        assert_true(out[32 + t] == (float)(4 * t) + 0.5f);
        assert_true(out[64 + t] == 0.0f);
    }
    cudaFree(src);
}

/* ---- dynamic shared memory limits ---- */

static void smem_kernel(int *out)
{
    unsigned char *s = (unsigned char *)cusim::dynamic_smem();
    s[64 * 1024 - 1] = 1;
    *out = s[64 * 1024 - 1];
}

static void test_smem_limit(void **state)
{
    (void)state;
    int out = 0;
    cusim::launch("smem_kernel", cusim::cfg(1, 1, 64 * 1024), smem_kernel, &out);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidValue); /* 48 KiB without the attribute */
    assert_int_equal(cudaGetLastError(), cudaSuccess);           /* not sticky */
    assert_int_equal(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          64 * 1024),
                     cudaSuccess);
    cusim::launch("smem_kernel", cusim::cfg(1, 1, 64 * 1024), smem_kernel, &out);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    assert_int_equal(out, 1);
    assert_int_equal(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          240 * 1024),
                     cudaErrorInvalidValue); /* above sm_80's 163 KiB and sm_90's 227 KiB */
    cusim::launch("smem_kernel", cusim::cfg(1, 1025), smem_kernel, &out);
    assert_int_equal(cudaGetLastError(), cudaErrorInvalidConfiguration);
}

/* ---- sm_90a: mbarrier phases and TMA's 128-byte swizzle ---- */

struct tma_io {
    uint16_t *g;           /* [rows][64] b16, row stride 64 elements (global) */
    CUtensorMap map;
    int ok_fresh, ok_after; /* wait(1) on a fresh barrier returns; wait(0) after the load */
    uint16_t smem[2][64];   /* rows 1 and 6 of the box as they lie in shared memory */
};

static void tma_kernel(tma_io *io)
{
    __shared__ __align__(8) uint64_t bar;
    cusim::poison_shared(&bar, sizeof bar);
    unsigned char *raw = (unsigned char *)cusim::dynamic_smem();
    unsigned char *box = (unsigned char *)(((uintptr_t)raw + 1023) & ~(uintptr_t)1023);
    if (threadIdx.x == 0) {
        cusim::mbar_init(&bar, 1);
        cusim::mbar_wait(&bar, 1); /* the phase before the first: complete */
        io->ok_fresh = 1;
        cusim::mbar_arrive(&bar, 8 * 128); /* expect a box of 8 rows x 128 bytes */
        cusim::tma_load_2d(box, &io->map, &bar, 0, 2); /* rows 2..9; rows >= 6 are outside */
    }
    __syncthreads();
    cusim::mbar_wait(&bar, 0);
    if (threadIdx.x == 0) {
        io->ok_after = 1;
        memcpy(io->smem[0], box + 1 * 128, 128);
        memcpy(io->smem[1], box + 6 * 128, 128);
    }
}

static CUresult (*tma_encoder(void))(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                     const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                     const cuuint32_t *, CUtensorMapInterleave,
                                     CUtensorMapSwizzle, CUtensorMapL2promotion,
                                     CUtensorMapFloatOOBfill)
{
    void *fn = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &q) !=
            cudaSuccess || q != cudaDriverEntryPointSuccess)
        return NULL;
    return (CUresult(*)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                        const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                        const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                        CUtensorMapL2promotion, CUtensorMapFloatOOBfill))fn;
}

static void test_sm90a(void **state)
{
    (void)state;
    cudaDeviceProp p;
    assert_int_equal(cudaGetDeviceProperties(&p, 0), cudaSuccess);
    auto enc = tma_encoder();
    if (p.major != 9) {
        assert_null(enc); /* sm_80: no tensor maps */
        print_message("sm_80 device: TMA not checked (run with CUSIM_ARCH=sm_90a)\n");
        return;
    }
    assert_non_null(enc);
    static tma_io io;
    memset(&io, 0, sizeof io);
    const int rows = 6;
    assert_int_equal(cudaMalloc(&io.g, rows * 64 * 2), cudaSuccess);
    uint16_t host[6 * 64];
    for (int i = 0; i < rows * 64; i++)
        host[i] = (uint16_t)(i + 1);
    assert_int_equal(cudaMemcpy(io.g, host, sizeof host, cudaMemcpyHostToDevice), cudaSuccess);
    cuuint64_t dims[2] = {64, (cuuint64_t)rows}, strides[1] = {128};
    cuuint32_t box[2] = {64, 8}, estr[2] = {1, 1};
    assert_int_equal(enc(&io.map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, io.g, dims, strides, box,
                         estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                         CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                     CUDA_SUCCESS);
    cuuint32_t wide[2] = {128, 8}; /* 256-byte rows: too wide for the 128-byte swizzle */
    assert_int_equal(enc(&io.map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, io.g, dims, strides, wide,
                         estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                         CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(enc(&io.map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, io.g, dims, strides, box,
                         estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                         CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                     CUDA_SUCCESS);
    cusim::launch("tma_kernel", cusim::cfg(1, 64, 4096), tma_kernel, &io);
    assert_int_equal(cudaGetLastError(), cudaSuccess);
    assert_true(io.ok_fresh && io.ok_after);
    /* box row 1 = tensor row 3: its 16-byte chunk j holds logical chunk j ^ 1;
     * box row 6 = tensor row 8, outside the tensor: zeros */
    for (int c = 0; c < 64; c++) {
        int logical = ((c / 8) ^ 1) * 8 + c % 8;
        assert_int_equal(io.smem[0][c], host[3 * 64 + logical]);
        assert_int_equal(io.smem[1][c], 0);
    }
    cudaFree(io.g);
}

/* ---- failures: in a child; status 0 = launch failed as expected ---- */

static void barrier_skip_kernel(int *x)
{
    if (threadIdx.x >= 48)
        return; /* fine: exited threads do not hold up __syncthreads */
    __syncthreads();
    /* thread 0 waits for the block, its warp-mates wait for it at __syncwarp */
    if (threadIdx.x == 0 || threadIdx.x >= 32)
        __syncthreads();
    else
        __syncwarp();
    x[threadIdx.x] = 1;
}

static void exited_lane_kernel(int *x)
{
    if (threadIdx.x == 5)
        return;
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

static void two_sites_kernel(int *x)
{
    int t = (int)threadIdx.x;
    if (t < 16) {
        x[t] = 1;
        __syncthreads();
    } else {
        __syncthreads(); /* another __syncthreads than the first 16 threads': an error */
        x[t] = 2;
    }
}

/* an exited lane in a mask is not waited for, and nothing reads it: allowed */
static void exited_ok_kernel(int *x)
{
    if (threadIdx.x == 0)
        return;
    __syncwarp();
    x[threadIdx.x] = __shfl_xor_sync(0xfffffffeu, (int)threadIdx.x, 1 + (threadIdx.x == 1));
}

static void misaligned_cp_kernel(const float *src)
{
    float *s = (float *)cusim::dynamic_smem();
    cusim::cp_async16(s + 1, src, true);
}

static void overrun_kernel(float *buf)
{
    buf[1024 + threadIdx.x] = 1.0f; /* one float past a 4096-byte allocation */
}

static void mbar_never_kernel(int *x)
{
    __shared__ __align__(8) uint64_t bar;
    if (threadIdx.x == 0)
        cusim::mbar_init(&bar, 2);
    __syncthreads();
    if (threadIdx.x == 0)
        cusim::mbar_arrive(&bar, 0); /* one arrival of two: the phase never completes */
    cusim::mbar_wait(&bar, 0);
    x[threadIdx.x] = 1;
}

enum fail_case { F_DEADLOCK, F_EXITED_LANE, F_MISALIGNED, F_OVERRUN, F_TWO_SITES, F_EXITED_OK,
                 F_MBAR_NEVER };

static int child(fail_case c)
{
    int *x = NULL;
    float *buf = NULL;
    if (cudaMalloc(&x, 64 * sizeof(int)) != cudaSuccess ||
        cudaMalloc(&buf, 1024 * sizeof(float)) != cudaSuccess)
        return 3;
    switch (c) {
    case F_DEADLOCK: cusim::launch("barrier_skip", cusim::cfg(1, 64), barrier_skip_kernel, x); break;
    case F_EXITED_LANE: cusim::launch("exited_lane", cusim::cfg(1, 32), exited_lane_kernel, x); break;
    case F_MISALIGNED:
        cusim::launch("misaligned_cp", cusim::cfg(1, 1, 64), misaligned_cp_kernel,
                      (const float *)buf);
        break;
    case F_OVERRUN: cusim::launch("overrun", cusim::cfg(1, 1), overrun_kernel, buf); break;
    case F_TWO_SITES: cusim::launch("two_sites", cusim::cfg(1, 64), two_sites_kernel, x); break;
    case F_MBAR_NEVER: cusim::launch("mbar_never", cusim::cfg(1, 64), mbar_never_kernel, x); break;
    case F_EXITED_OK:
        cusim::launch("exited_ok", cusim::cfg(1, 32), exited_ok_kernel, x);
        return cudaGetLastError() == cudaSuccess ? 0 : 2;
    }
    cudaError_t e = cudaGetLastError();
    /* a failed kernel is sticky, as a device fault is */
    if (e == cudaErrorLaunchFailure && cudaDeviceSynchronize() == cudaErrorLaunchFailure)
        return 0;
    return 1;
}

static int run_child(fail_case c)
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        signal(SIGSEGV, SIG_DFL); /* not cmocka's handler: the child must die of a fault */
        _exit(child(c));
    }
    int st = 0;
    waitpid(p, &st, 0);
    return st;
}

static void test_failures(void **state)
{
    (void)state;
    int st = run_child(F_DEADLOCK);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = run_child(F_EXITED_LANE);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = run_child(F_MISALIGNED);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = run_child(F_TWO_SITES);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = run_child(F_EXITED_OK);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = run_child(F_MBAR_NEVER);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = run_child(F_OVERRUN); /* the guard page: the process dies as on a device fault */
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
}

/* ---- conversions: round to nearest even, NaN kept ---- */

static void test_conversions(void **state)
{
    (void)state;
    assert_int_equal(bf16_bits(1.0f), 0x3f80);
    assert_int_equal(bf16_bits(1.00390625f), 0x3f80);  /* halfway, even stays */
    assert_int_equal(bf16_bits(1.01171875f), 0x3f82);  /* halfway, odd rounds up */
    assert_int_equal(__float2bfloat16_rn(-NAN).__x, 0x7fff); /* canonical NaN */
    assert_int_equal(__float2half_rn(1.0f).__x, 0x3c00);
    assert_true(__half2float(__float2half_rn(65504.0f)) == 65504.0f);
    assert_true(isinf(__half2float(__float2half_rn(65520.0f))));
    assert_true(__half2float(__float2half_rn(5.9604645e-8f)) == 5.9604645e-8f); /* subnormal */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions), cmocka_unit_test(test_mma_layout),
        cmocka_unit_test(test_ldmatrix_layout), cmocka_unit_test(test_shuffles),
        cmocka_unit_test(test_cp_async), cmocka_unit_test(test_smem_limit),
        cmocka_unit_test(test_sm90a),   cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests_name("cusim (CPU emulation of CUDA)", tests, NULL, NULL);
}
