/* cuda_mma.cuh: inline-PTX wrappers for the tensor-core kernels (sm_80+:
 * cp.async, ldmatrix, mma.sync; sm_90a: mbarrier, TMA, wgmma). nvcc only.
 *
 * Sources: NVIDIA "Parallel Thread Execution ISA" (CUDA 12/13), by section
 * title (section numbers move between releases):
 *   "Data Movement and Conversion Instructions: cp.async" (.cg, 16 bytes, src-size
 *     zero-fill) and "cp.async.commit_group" / "cp.async.wait_group";
 *   "Warp-level matrix load instruction: ldmatrix" (.x4, .trans);
 *   "Matrix Fragments for mma.m16n8k16 with floating point type": with
 *     g = lane / 4 (groupID), t = lane % 4 (threadID_in_group),
 *     A (16x16, .row): a0a1 (row g, cols 2t, 2t+1), a2a3 (g+8, 2t..), a4a5 (g, 2t+8..),
 *                      a6a7 (g+8, 2t+8..)
 *     B (16x8, .col):  b0b1 (k 2t, 2t+1; n g), b2b3 (k 2t+8, 2t+9; n g)
 *     C/D (16x8):      c0c1 (row g, cols 2t, 2t+1), c2c3 (row g+8, same cols)
 *     (the lower-index element sits in the lower 16 bits of each .b32);
 *   "Parallel Synchronization and Communication Instructions: mbarrier" (init,
 *     arrive, arrive.expect_tx, try_wait.parity, and fence.mbarrier_init);
 *   "cp.async.bulk.tensor" (.2d .tile, .mbarrier::complete_tx::bytes) and, for
 *     the tensor map, the CUDA driver API's cuTensorMapEncodeTiled (box inner
 *     dimension x element size <= 128 bytes with CU_TENSOR_MAP_SWIZZLE_128B);
 *   "Asynchronous Warpgroup Level Matrix Multiply-Accumulate": wgmma.mma_async,
 *     "Matrix Descriptor Format" (bits 0-13 start address >> 4, 16-29 leading
 *     dimension byte offset >> 4, 32-45 stride dimension byte offset >> 4, 49-51
 *     base offset, 62-63 swizzle mode: 1 = 128B), wgmma.fence / commit_group /
 *     wait_group, and the accumulator fragment of .m64nNk16: warp w of the
 *     warpgroup owns rows 16w..16w+15; d[4i + 0/1] = (16w + g, 8i + 2t + 0/1),
 *     d[4i + 2/3] = (16w + g + 8, 8i + 2t + 0/1).
 * Every wrapper is a single instruction; the callers carry the layout reasoning.
 * Under the CPU emulator (KRN_CUSIM, tests/cusim/cusim.h) every wrapper calls
 * its implementation of the same instruction instead (sm_90a ones included: the
 * emulator can present an sm_90a device, CUSIM_ARCH=sm_90a).
 */
#ifndef MOAT_KRN_CUDA_MMA_CUH
#define MOAT_KRN_CUDA_MMA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* ---- sm_80+: cp.async, ldmatrix, mma.sync ---- */

/* cp_async16: 16 bytes global -> shared, bypassing L1 (.cg); when pred is false no
 * byte is read and the 16 destination bytes are zero-filled (src-size 0). */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool pred)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)),
                 "l"(gmem), "r"(pred ? 16 : 0)
                 : "memory");
#elif defined(KRN_CUSIM)
    cusim::cp_async16(smem, gmem, pred);
#endif
}

__device__ __forceinline__ void cp_async_commit()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(KRN_CUSIM)
    cusim::cp_async_commit();
#endif
}

/* cp_async_wait<N>: wait until at most N committed groups are pending. */
template <int N> __device__ __forceinline__ void cp_async_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(KRN_CUSIM)
    cusim::cp_async_wait(N);
#endif
}

/* ldmatrix_x4: four 8x8 b16 matrices; lane l gives the address of row l % 8 of
 * matrix l / 8; r[i] is this lane's part of matrix i (row lane/4, cols 2(lane%4)..+1;
 * with .trans, row and column swap). */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void *smem)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(smem)));
#elif defined(KRN_CUSIM)
    cusim::ldmatrix_x4(r, smem, false);
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void *smem)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(smem)));
#elif defined(KRN_CUSIM)
    cusim::ldmatrix_x4(r, smem, true);
#endif
}

/* mma_16816: d (16x8 f32) += a (16x16) b (16x8), T = __nv_bfloat16 or __half. */
template <typename T>
__device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2]);

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float d[4], const uint32_t a[4],
                                                         const uint32_t b[2])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(KRN_CUSIM)
    cusim::mma_16816(d, a, b, true);
#endif
}

template <>
__device__ __forceinline__ void mma_16816<__half>(float d[4], const uint32_t a[4],
                                                  const uint32_t b[2])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(KRN_CUSIM)
    cusim::mma_16816(d, a, b, false);
#endif
}

/* pack2: two floats as one b32 of T (x in the low half: the lower column index). */
template <typename T> __device__ __forceinline__ uint32_t pack2(float x, float y);

template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float x, float y)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *(uint32_t *)&v;
}

template <> __device__ __forceinline__ uint32_t pack2<__half>(float x, float y)
{
    __half2 v = __floats2half2_rn(x, y);
    return *(uint32_t *)&v;
}

/* ---- sm_90a: mbarrier, TMA, wgmma (compiled only where the feature set exists;
 * under the CPU emulator, its implementations) ---- */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(KRN_CUSIM)
#define KRN_HAVE_SM90A 1

__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count)
{
#ifdef KRN_CUSIM
    cusim::mbar_init(bar, count);
#else
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count)
                 : "memory");
#endif
}

/* Make the initialised barriers visible to the async (TMA) proxy. */
__device__ __forceinline__ void mbar_fence_init()
{
#ifndef KRN_CUSIM
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive(uint64_t *bar)
{
#ifdef KRN_CUSIM
    cusim::mbar_arrive(bar, 0);
#else
    asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(
                     smem_u32(bar))
                 : "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t *bar, uint32_t bytes)
{
#ifdef KRN_CUSIM
    cusim::mbar_arrive(bar, bytes);
#else
    asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(
                     smem_u32(bar)),
                 "r"(bytes)
                 : "memory");
#endif
}

/* mbar_wait: spin until the phase with parity `parity` has completed. */
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity)
{
#ifdef KRN_CUSIM
    cusim::mbar_wait(bar, parity);
#else
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(smem_u32(bar)), "r"(parity)
                     : "memory");
#endif
}

/* tma_load_2d: box at element coordinates (c0 innermost, c1) of the tensor map
 * into smem; completes as transaction bytes on bar (out-of-bounds parts are
 * zero-filled and still counted). */
__device__ __forceinline__ void tma_load_2d(void *smem, const void *tmap, uint64_t *bar, int c0,
                                            int c1)
{
#ifdef KRN_CUSIM
    cusim::tma_load_2d(smem, tmap, bar, c0, c1);
#else
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4}], [%2];\n" ::"r"(smem_u32(smem)),
                 "l"((uint64_t)tmap), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
                 : "memory");
#endif
}

/* wgmma_desc: K-major operand tile in smem written by TMA with 128-byte swizzle:
 * rows of 64 b16 (128 B), 8-row groups 1024 B apart (stride byte offset), the
 * leading byte offset unused for swizzled K-major layouts (set to 1 as CUTLASS
 * does); smem tile base 1024-byte aligned. */
__device__ __forceinline__ uint64_t wgmma_desc(const void *smem)
{
    uint64_t a = smem_u32(smem);
    return ((a & 0x3FFFF) >> 4) | (1ull << 16) | ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence()
{
#ifndef KRN_CUSIM
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit()
{
#ifdef KRN_CUSIM
    cusim::wgmma_commit();
#else
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

template <int N> __device__ __forceinline__ void wgmma_wait()
{
#ifdef KRN_CUSIM
    cusim::wgmma_wait(N);
#else
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

/* Keep the compiler from moving accumulator reads/writes across wgmma. */
__device__ __forceinline__ void wgmma_fence_operand(float &r)
{
#ifdef KRN_CUSIM
    (void)r;
#else
    asm volatile("" : "+f"(r)::"memory");
#endif
}

#define KRN_WG_D8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), \
                     "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define KRN_WG_ASM(ty)                                                                        \
    "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"                                          \
    " wgmma.mma_async.sync.aligned.m64n128k16.f32." ty "." ty " "                             \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                 \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "       \
    "%64, %65, p, 1, 1, 0, 0;\n}\n"

/* wgmma_m64n128k16: d (64x128 f32 per warpgroup, 64 regs per thread) += A B^T
 * with A (64x16) and B (128x16) both K-major in smem (no transposes). */
template <typename T>
__device__ __forceinline__ void wgmma_m64n128k16(float d[64], uint64_t da, uint64_t db);

template <>
__device__ __forceinline__ void wgmma_m64n128k16<__nv_bfloat16>(float d[64], uint64_t da,
                                                                uint64_t db)
{
#ifdef KRN_CUSIM
    cusim::wgmma_m64n128k16(d, da, db, true);
#else
    asm volatile(KRN_WG_ASM("bf16")
                 : KRN_WG_D8(0), KRN_WG_D8(8), KRN_WG_D8(16), KRN_WG_D8(24), KRN_WG_D8(32),
                   KRN_WG_D8(40), KRN_WG_D8(48), KRN_WG_D8(56)
                 : "l"(da), "l"(db), "r"(1));
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64n128k16<__half>(float d[64], uint64_t da, uint64_t db)
{
#ifdef KRN_CUSIM
    cusim::wgmma_m64n128k16(d, da, db, false);
#else
    asm volatile(KRN_WG_ASM("f16")
                 : KRN_WG_D8(0), KRN_WG_D8(8), KRN_WG_D8(16), KRN_WG_D8(24), KRN_WG_D8(32),
                   KRN_WG_D8(40), KRN_WG_D8(48), KRN_WG_D8(56)
                 : "l"(da), "l"(db), "r"(1));
#endif
}
#define KRN_WG256_ASM(ty)                                                                     \
    "{\n .reg .pred p;\n setp.ne.b32 p, %130, 0;\n"                                         \
    " wgmma.mma_async.sync.aligned.m64n256k16.f32." ty "." ty " {"                            \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \
    "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
#define KRN_WG_D128 KRN_WG_D8(0), KRN_WG_D8(8), KRN_WG_D8(16), KRN_WG_D8(24), \
    KRN_WG_D8(32), KRN_WG_D8(40), KRN_WG_D8(48), KRN_WG_D8(56), \
    KRN_WG_D8(64), KRN_WG_D8(72), KRN_WG_D8(80), KRN_WG_D8(88), \
    KRN_WG_D8(96), KRN_WG_D8(104), KRN_WG_D8(112), KRN_WG_D8(120)

/* wgmma_m64n256k16: d (64x256 f32 per warpgroup, 128 regs per thread) += A B^T
 * with A (64x16) and B (256x16) both K-major in smem (no transposes); the
 * accumulator layout extends m64n128k16's: d[4i + e] at column 8i + 2t + e%2. */
template <typename T>
__device__ __forceinline__ void wgmma_m64n256k16(float d[128], uint64_t da, uint64_t db);

template <>
__device__ __forceinline__ void wgmma_m64n256k16<__nv_bfloat16>(float d[128], uint64_t da,
                                                                uint64_t db)
{
#ifdef KRN_CUSIM
    cusim::wgmma_m64n256k16(d, da, db, true);
#else
    asm volatile(KRN_WG256_ASM("bf16")
                 : KRN_WG_D128
                 : "l"(da), "l"(db), "r"(1));
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64n256k16<__half>(float d[128], uint64_t da, uint64_t db)
{
#ifdef KRN_CUSIM
    cusim::wgmma_m64n256k16(d, da, db, false);
#else
    asm volatile(KRN_WG256_ASM("f16")
                 : KRN_WG_D128
                 : "l"(da), "l"(db), "r"(1));
#endif
}

#endif /* __CUDA_ARCH_FEAT_SM90_ALL || KRN_CUSIM */

#endif
