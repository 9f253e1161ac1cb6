/* cusim_runtime.cc: the emulated device and the CUDA runtime calls the cuda
 * backend makes: properties, memory (guard pages, poison), copies, streams,
 * errors, function attributes; and the f16 conversion table. See cusim.h.
 */
#include "cusim_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>

static float g_half_table[65536];
const float *const cusim_half_table = g_half_table;
__attribute__((constructor)) static void half_table_init(void)
{
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t b = (uint16_t)i;
        _Float16 h;
        memcpy(&h, &b, 2);
        g_half_table[i] = (float)h;
    }
}

/* the emulated architecture: CUSIM_ARCH (sm_80 or sm_90a), else the program's
 * default: sm_80, or sm_90a where tests/cusim/arch_sm90a.cc is linked in */
extern "C" __attribute__((weak)) const char *const cusim_arch_default = "sm_80";

/* when cp.async lands: CUSIM_CP_ASYNC (wait or eager), else the program's
 * default: at the issuing thread's wait, or at issue where
 * tests/cusim/cp_eager.cc is linked in */
extern "C" __attribute__((weak)) const char *const cusim_cp_async_default = "wait";

bool arch_sm90a(void)
{
    static const bool v = [] {
        const char *a = getenv("CUSIM_ARCH");
        return strcmp(a != NULL ? a : cusim_arch_default, "sm_90a") == 0;
    }();
    return v;
}

/* opt-in maximum of dynamic shared memory per block: 163 KiB on sm_80, 227 KiB on sm_90 */
size_t smem_optin(void)
{
    return arch_sm90a() ? 232448 : 166912;
}
static const size_t k_global_mem = (size_t)16 << 30;

std::mutex g_mu; /* guards the maps and the sticky error */
struct alloc {
    char *map;
    size_t len, bytes;
};
static std::map<uintptr_t, alloc> g_allocs;          /* by user pointer */
std::unordered_map<const void *, int> g_smem_attr; /* kernel -> max dynamic smem */
static cudaError_t g_sticky = cudaSuccess;
thread_local cudaError_t t_last = cudaSuccess;

cudaError_t sticky(void)
{
    std::lock_guard<std::mutex> l(g_mu);
    return g_sticky;
}

void set_sticky(void)
{
    std::lock_guard<std::mutex> l(g_mu);
    g_sticky = cudaErrorLaunchFailure;
}

/* ---- runtime API ---- */

static thread_local int t_dev = 0;

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev)
{
    if (dev != 0)
        return t_last = cudaErrorInvalidDevice;
    t_dev = dev;
    return sticky();
}

cudaError_t cudaGetDevice(int *dev)
{
    *dev = t_dev;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev)
{
    if (dev != 0)
        return t_last = cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cusim (CPU emulation of %s)",
             arch_sm90a() ? "sm_90a" : "sm_80");
    memcpy(p->uuid.bytes, "cusim-device-000", 16);
    p->totalGlobalMem = k_global_mem;
    p->sharedMemPerBlock = k_smem_default;
    p->sharedMemPerBlockOptin = smem_optin();
    p->major = arch_sm90a() ? 9 : 8;
    p->minor = 0;
    p->multiProcessorCount = 4;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev)
{
    if (dev != 0)
        return t_last = cudaErrorInvalidDevice;
    switch (attr) {
    case cudaDevAttrClockRate: *v = 1410000; break;       /* kHz */
    case cudaDevAttrMemoryClockRate: *v = 1215000; break; /* kHz */
    case cudaDevAttrGlobalMemoryBusWidth: *v = 5120; break;
    default: return t_last = cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    std::lock_guard<std::mutex> l(g_mu);
    size_t used = 0;
    for (auto &a : g_allocs)
        used += a.second.bytes;
    *total_bytes = k_global_mem;
    *free_bytes = used < k_global_mem ? k_global_mem - used : 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = NULL;
    if (sticky() != cudaSuccess)
        return t_last = sticky();
    size_t data = (bytes + 255) / 256 * 256, pages = (data + k_page - 1) / k_page * k_page;
    size_t len = pages + k_page;
    if (bytes > k_global_mem)
        return t_last = cudaErrorMemoryAllocation;
    char *m = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return t_last = cudaErrorMemoryAllocation;
    mprotect(m + pages, k_page, PROT_NONE);
    char *u = m + pages - data; /* 256-byte aligned; the end meets the guard page */
    memset(m, 0xFF, pages);     /* fresh device memory is not zero, nor what lies before it */
    std::lock_guard<std::mutex> l(g_mu);
    g_allocs[(uintptr_t)u] = alloc{m, len, bytes};
    *p = u;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (p == NULL)
        return cudaSuccess;
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) {
        fprintf(stderr, "cusim: cudaFree(%p): not a pointer cudaMalloc returned\n", p);
        return t_last = cudaErrorInvalidValue;
    }
    munmap(it->second.map, it->second.len);
    g_allocs.erase(it);
    return cudaSuccess;
}

/* dev_range: whether [p, p + n) lies inside one cudaMalloc allocation */
static bool dev_range(const void *p, size_t n)
{
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it == g_allocs.begin())
        return false;
    --it;
    uintptr_t a = it->first, q = (uintptr_t)p;
    return q >= a && q + n <= a + it->second.bytes;
}

static cudaError_t copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                        const char *call)
{
    if (sticky() != cudaSuccess)
        return t_last = sticky();
    bool dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (bytes && ((dd && !dev_range(dst, bytes)) || (sd && !dev_range(src, bytes)))) {
        fprintf(stderr, "cusim: %s(%p <- %p, %zu bytes, kind %d): the device side is not "
                "inside one cudaMalloc allocation\n", call, dst, src, bytes, (int)kind);
        return t_last = cudaErrorInvalidValue;
    }
    if (bytes)
        memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    return copy(dst, src, bytes, kind, "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t st)
{
    (void)st;
    return copy(dst, src, bytes, kind, "cudaMemcpyAsync");
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t st)
{
    (void)st;
    if (sticky() != cudaSuccess)
        return t_last = sticky();
    if (bytes && !dev_range(dst, bytes)) {
        fprintf(stderr, "cusim: cudaMemsetAsync(%p, %zu bytes): not device memory\n", dst, bytes);
        return t_last = cudaErrorInvalidValue;
    }
    memset(dst, value, bytes);
    return cudaSuccess;
}

struct CUstream_st {
    int unused;
};

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned flags)
{
    (void)flags;
    *st = new CUstream_st();
    return sticky();
}

cudaError_t cudaStreamDestroy(cudaStream_t st)
{
    delete st;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t st)
{
    (void)st;
    return sticky();
}

cudaError_t cudaDeviceSynchronize(void)
{
    return sticky();
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = t_last;
    t_last = cudaSuccess;
    return e != cudaSuccess ? e : sticky();
}

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorLaunchFailure: return "a kernel failed an emulator check (see stderr)";
    case cudaErrorInvalidConfiguration: return "invalid launch configuration";
    case cudaErrorInvalidValue: return "invalid argument";
    default: return "error (cusim)";
    }
}

cudaError_t cudaFuncSetAttributeRaw(const void *fn, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > smem_optin())
        return t_last = cudaErrorInvalidValue;
    std::lock_guard<std::mutex> l(g_mu);
    g_smem_attr[fn] = value;
    return cudaSuccess;
}
