/* cusim.h: a CPU emulator for the part of CUDA that kernels/cuda/ uses, so that
 * every hand-written kernel runs, exactly and slowly, on machines without a GPU
 * (CI, and every session that was not lent one).
 *
 * What it is: the .cu and .cuh files of kernels/cuda/, rewritten by
 * tests/cusim/cusim_pp.py (kernel launches "k<<<g, b, smem, st>>>(args)" become
 * cusim::launch calls; "extern __shared__" arrays become the launch's dynamic
 * shared memory; __shared__ variables are registered with the emulator), are
 * compiled by g++ as C++17 against this header and the shim headers in
 * tests/cusim/include/ (cuda_runtime.h, cuda_bf16.h, cuda_fp16.h, cuda.h,
 * mma.h), which stand in for the CUDA toolkit's. The result links in place of
 * the cuda backend's nvcc objects (build/libmoatkrn-cusim.a).
 *
 * Execution model: one emulated device ("cusim"), compute capability 8.0 (sm_80:
 * the sm_80 paths run, the sm_90a one is not runnable), or with
 * CUSIM_ARCH=sm_90a (or tests/cusim/arch_sm90a.cc linked in) 9.0 with the
 * sm_90a instructions (mbarrier, TMA, wgmma), Hopper's 227 KiB of shared
 * memory and a tensor-map encoder. A launch runs to
 * completion before it returns (streams are therefore trivially ordered).
 * Blocks run one after another; inside a block every CUDA thread is a fiber
 * with its own stack on the launching OS thread, switched cooperatively at
 * __syncthreads, at warp-collective operations (shuffles, __syncwarp,
 * ldmatrix, mma.sync), at mbarrier waits and phase completions, and at exit.
 * Which ready thread runs next is a seeded random pick (the same in every run;
 * CUSIM_SCHED=fifo for first-in first-out), so that a producer can run ahead
 * of its consumers as on a GPU: a buffer released before its last reader has
 * read it then gets overwritten first. __shared__ variables become function-local
 * statics (shared by the block's fibers, fine since blocks run one at a time).
 *
 * Semantics it checks, each of which a GPU would get wrong silently or fault on:
 *   - __syncthreads reached by every live thread, all at the same source line,
 *     warp collectives (WMMA included) by every live lane of their mask (else
 *     "deadlock"); mbarrier waits that nothing can complete;
 *   - a shuffle reading a lane that has exited, ldmatrix or mma.sync without
 *     all 32 lanes;
 *   - launch limits: block <= 1024 threads, grid y/z <= 65535, dynamic shared
 *     memory <= 48 KiB unless cudaFuncSetAttribute raised the kernel's limit,
 *     static shared memory <= 48 KiB, and the two together within the
 *     device's opt-in maximum (163 KiB on sm_80, 227 KiB on sm_90);
 *   - cp.async: 16-byte aligned source and destination, destination inside the
 *     dynamic shared memory; the copy lands only when the issuing thread waits
 *     for its group (cp.async.wait_group), so a read before the wait sees what
 *     was there before (the poison below, or a stale tile); CUSIM_CP_ASYNC=eager
 *     (or tests/cusim/cp_eager.cc linked in) lands it at issue instead, which
 *     exposes a stage overwritten while other threads still read it;
 *   - ldmatrix: 16-byte aligned row addresses;
 *   - uninitialised memory: dynamic and static shared memory is filled with
 *     0xFF bytes (NaN as f32, bf16 and f16) at the start of every block, as is
 *     memory from cudaMalloc; dynamic shared memory ends at a PROT_NONE page,
 *     and so does every cudaMalloc allocation, so overruns fault at once (a
 *     fault inside a kernel is reported with the kernel, block and thread, and
 *     kills the process as a device fault would); uninitialised locals are a
 *     pattern, not zero (cusim.mk builds with -ftrivial-auto-var-init=pattern).
 * A kernel that fails a check makes the launch fail: the error is sticky, as a
 * device fault is (cudaErrorLaunchFailure from every later call), and a line
 * naming the kernel, block, thread and the check goes to stderr.
 *
 * Fragment layouts of mma.sync, ldmatrix and the WMMA API are implemented from
 * NVIDIA's PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point
 * type", "Warp-level matrix load instruction: ldmatrix") and the CUDA C++
 * Programming Guide ("Warp Matrix Functions"), independently of the kernels'
 * own comments; tests/cusim/test_cusim.cc checks them on known matrices.
 *
 * Not emulated or not checked: atomics, textures, clusters, more than one
 * device, timing of any kind, overruns of static __shared__ arrays, wgmma.fence,
 * host pointers passed to kernels, the approximation of __expf and friends.
 */
#ifndef MOAT_CUSIM_H
#define MOAT_CUSIM_H

#ifndef __cplusplus
#error "cusim.h is C++: it stands in for nvcc's CUDA C++"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#define KRN_CUSIM 1
#define CUDART_VERSION 12080

/* ---- CUDA C++ keywords ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
#define __shared__ static

/* ---- built-in vector types ---- */
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
static inline float4 make_float4(float x, float y, float z, float w)
{
    return float4{x, y, z, w};
}
static inline float2 make_float2(float x, float y)
{
    return float2{x, y};
}

/* ---- runtime types and enums (values as in CUDA's driver_types.h) ---- */
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNotSupported = 801,
    cudaErrorLaunchFailure = 719,
    cudaErrorNoDevice = 100,
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr {
    cudaDevAttrClockRate = 13,
    cudaDevAttrMemoryClockRate = 36,
    cudaDevAttrGlobalMemoryBusWidth = 37,
};
enum cudaDriverEntryPointQueryResult {
    cudaDriverEntryPointSuccess = 0,
    cudaDriverEntryPointSymbolNotFound = 1,
};
enum { cudaEnableDefault = 0, cudaStreamNonBlocking = 1 };
struct CUstream_st;
typedef struct CUstream_st *cudaStream_t;
typedef struct {
    char bytes[16];
} cudaUUID_t;
struct cudaDeviceProp {
    char name[256];
    cudaUUID_t uuid;
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin;
    int major, minor, multiProcessorCount, warpSize, maxThreadsPerBlock;
};

/* ---- runtime API (tests/cusim/cusim_runtime.cc) ---- */
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t bytes)
{
    return cudaMalloc((void **)p, bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t st = 0);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t st = 0);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t st);
cudaError_t cudaStreamSynchronize(cudaStream_t st);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaFuncSetAttributeRaw(const void *fn, cudaFuncAttribute attr, int value);
template <typename F> static inline cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute a, int v)
{
    return cudaFuncSetAttributeRaw((const void *)fn, a, v);
}
cudaError_t cudaGetDriverEntryPoint(const char *sym, void **fn, unsigned long long flags,
                                    cudaDriverEntryPointQueryResult *q);
cudaError_t cudaGetDriverEntryPointByVersion(const char *sym, void **fn, unsigned version,
                                             unsigned long long flags,
                                             cudaDriverEntryPointQueryResult *q);

/* ---- 16-bit floating point (cuda_bf16.h / cuda_fp16.h) ----
 * Conversions round to nearest even, as __float2bfloat16_rn / __float2half_rn
 * do; f16 goes through GCC's _Float16 (IEEE binary16). */
struct __nv_bfloat16 {
    uint16_t __x;
    __nv_bfloat16() = default;
    explicit __nv_bfloat16(float f);
    operator float() const;
};
struct __half {
    uint16_t __x;
    __half() = default;
    explicit __half(float f);
    operator float() const;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
struct alignas(4) __half2 {
    __half x, y;
};

static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u)
        r.__x = 0x7fff; /* every NaN becomes the canonical NaN, as cuda_bf16.hpp does */
    else
        r.__x = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}
static inline float __bfloat162float(__nv_bfloat16 b)
{
    uint32_t u = (uint32_t)b.__x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline __half __float2half_rn(float f)
{
    _Float16 h = (_Float16)f;
    __half r;
    memcpy(&r.__x, &h, 2);
    return r;
}
extern const float *const cusim_half_table; /* all 65,536 f16 values as f32 */
static inline float __half2float(__half h)
{
    return cusim_half_table[h.__x];
}
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(__float2bfloat16_rn(f).__x) {}
inline __nv_bfloat16::operator float() const
{
    return __bfloat162float(*this);
}
inline __half::__half(float f) : __x(__float2half_rn(f).__x) {}
inline __half::operator float() const
{
    return __half2float(*this);
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b)
{
    return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}
static inline __half2 __floats2half2_rn(float a, float b)
{
    return __half2{__float2half_rn(a), __float2half_rn(b)};
}

/* ---- device math ---- */
#define __expf(x) expf(x) /* glibc declares a __expf of its own */
static inline float rsqrtf(float x)
{
    return 1.0f / sqrtf(x);
}
static inline float __fdividef(float a, float b)
{
    return a / b;
}
template <typename T> static inline T min(T a, T b)
{
    return b < a ? b : a;
}
template <typename T> static inline T max(T a, T b)
{
    return a < b ? b : a;
}

/* ---- the emulator's core (tests/cusim/cusim_sched.cc, _sm80.cc, _sm90a.cc) ---- */
extern thread_local uint3 cusim_threadIdx, cusim_blockIdx;
extern thread_local dim3 cusim_blockDim, cusim_gridDim;
#define threadIdx ((const uint3 &)cusim_threadIdx)
#define blockIdx ((const uint3 &)cusim_blockIdx)
#define blockDim ((const dim3 &)cusim_blockDim)
#define gridDim ((const dim3 &)cusim_gridDim)

namespace cusim {

struct cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    cfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s), stream(st)
    {
    }
};

/* launch_raw: run body once per CUDA thread of c's grid (see the file comment);
 * fn identifies the kernel (for cudaFuncSetAttribute limits), name labels
 * errors. Errors are left for cudaGetLastError / the next synchronising call. */
void launch_raw(const char *name, const void *fn, const cfg &c, void (*body)(void *), void *arg);

/* launch: k(args...) on every thread; arguments converted to the kernel's
 * parameter types once, and each thread gets its own copy (by-value params). */
template <typename... P, typename... A>
void launch(const char *name, const cfg &c, void (*k)(P...), A &&...args)
{
    struct pack {
        void (*k)(P...);
        std::tuple<typename std::decay<P>::type...> a;
    } pk{k, std::tuple<typename std::decay<P>::type...>(std::forward<A>(args)...)};
    launch_raw(name, (const void *)k, c, [](void *v) {
        pack *p = (pack *)v;
        auto copy = p->a;
        std::apply(p->k, copy);
    }, &pk);
}

/* in a kernel: */
void sync_block(const char *file, int line); /* __syncthreads, at a source position */
void sync_warp(unsigned mask);           /* __syncwarp and the exchanges below */
int lane();                              /* this thread's lane */
/* shfl_exchange: this lane gives bits, meets the lanes of mask, and gets lane
 * src's bits (which must be in mask, live, and at the same shuffle) */
uint64_t shfl_exchange(unsigned mask, uint64_t bits, int src, const char *what);
void *dynamic_smem();                    /* base of the launch's dynamic shared memory */
void poison_shared(void *p, size_t bytes); /* once per block: fill static smem with 0xFF */
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sm_80 instructions (PTX semantics; see the file comment) */
void cp_async16(void *smem, const void *gmem, bool pred);
void cp_async_commit();
void cp_async_wait(int n);
void ldmatrix_x4(uint32_t r[4], const void *smem, bool trans);
void mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2], bool bf16);

/* the shared-memory address of p (an offset in the launch's window, which is
 * 4096-byte aligned, so address bits 0-11 are those of a real device's) */
size_t shared_offset(const void *p);

/* sm_90a instructions (CUSIM_ARCH=sm_90a): mbarrier (PTX "mbarrier": expected
 * arrivals, transaction bytes, phases and their parity), TMA 2D tile loads with
 * 128-byte swizzle (16-byte chunk c of the 128-byte row r lands at c ^ (r % 8):
 * address bits 4-6 XOR bits 7-9), wgmma m64n128k16 from smem descriptors of
 * K-major 128-byte-swizzled tiles. TMA completes at issue; wgmma completes
 * when wgmma.wait_group retires its group (the latest a GPU may, so operands
 * must stay put until then); mbar_wait yields to the other threads until the
 * phase completes. */
void mbar_init(uint64_t *bar, uint32_t count);
void mbar_arrive(uint64_t *bar, uint32_t tx_bytes); /* arrive.expect_tx when tx_bytes > 0 */
void mbar_wait(uint64_t *bar, uint32_t parity);
void tma_load_2d(void *smem, const void *tmap, uint64_t *bar, int c0, int c1);
void wgmma_m64n128k16(float d[64], uint64_t desc_a, uint64_t desc_b, bool bf16);
void wgmma_m64n256k16(float d[128], uint64_t desc_a, uint64_t desc_b, bool bf16);
void wgmma_commit();
void wgmma_wait(int n); /* retire (execute) all but the newest n committed groups */

} // namespace cusim

#define __syncthreads() cusim::sync_block(__FILE__, __LINE__)
static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    cusim::sync_warp(mask);
}

/* Shuffles: every lane of mask gives its value, all meet, each takes its
 * source lane's (cusim::shfl_exchange). width: segments of width lanes, as
 * CUDA defines for __shfl_*_sync. */
template <typename T> static inline T cusim_shfl(unsigned mask, T v, int src, const char *what)
{
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = cusim::shfl_exchange(mask, bits, src, what);
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    /* PTX shfl.bfly: j = lane ^ mask, valid while j <= the last lane of the
     * caller's segment, so a lane may read an earlier segment, not a later one */
    int l = cusim::lane(), src = l ^ (lane_mask & 31);
    if (src > (l | (width - 1)))
        src = l;
    return cusim_shfl(mask, v, src, "__shfl_xor_sync");
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    int l = cusim::lane();
    return cusim_shfl(mask, v, (l & ~(width - 1)) + (src & (width - 1)), "__shfl_sync");
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int l = cusim::lane(), src = l + (int)delta;
    if ((src & ~(width - 1)) != (l & ~(width - 1)))
        src = l;
    return cusim_shfl(mask, v, src, "__shfl_down_sync");
}

static inline size_t __cvta_generic_to_shared(const void *p)
{
    return cusim::shared_offset(p);
}

#endif
