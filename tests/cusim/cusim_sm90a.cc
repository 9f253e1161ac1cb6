/* cusim_sm90a.cc: the sm_90a instructions: mbarrier, TMA 2D tile loads with the
 * 128-byte swizzle, wgmma from smem descriptors, and the driver's tensor-map
 * encoder (see cusim.h). */
#include "cusim_impl.h"

#include <stdio.h>
#include <string.h>

namespace cusim {

/* ---- sm_90a ---- */

size_t shared_offset(const void *p)
{
    launch_state *ls = t_ls;
    const char *c = (const char *)p, *w = ls->smem_map + k_page;
    if (c < w || c > ls->smem + ls->smem_bytes)
        fail("shared address of %p: not in the dynamic shared memory window", p);
    return (size_t)(c - w);
}

/* swizzle128: the 128-byte swizzle on a shared-memory offset: the 16-byte chunk
 * (bits 4-6) XOR the row within 8 rows of 128 bytes (bits 7-9) */
static inline size_t swizzle128(size_t off)
{
    return off ^ (((off >> 7) & 7) << 4);
}

static launch_state::mbar *mbar_get(uint64_t *bar, const char *what)
{
    launch_state *ls = t_ls;
    auto it = ls->mbars.find(bar);
    if (it == ls->mbars.end())
        fail("%s on %p, which no mbarrier.init of this block initialised", what, (void *)bar);
    return &it->second;
}

/* mbar_check_phase: complete the phase when nothing is pending; the threads
 * waiting on it then run first, before the thread that completed it goes on
 * (the order most likely to expose a buffer released too early) */
static void mbar_check_phase(uint64_t *bar, launch_state::mbar *m)
{
    if (m->pending == 0 && m->tx == 0) {
        m->phases++;
        m->pending = m->count;
        launch_state *ls = t_ls;
        ls->ready.to_front([&](int id) { return ls->f[(size_t)id].spin_bar == bar; });
        ls->ready.push(ls->cur->id);
        block_here(ls->cur);
    }
}

void mbar_init(uint64_t *bar, uint32_t count)
{
    launch_state *ls = t_ls;
    if (((uintptr_t)bar & 7) || count == 0)
        fail("mbarrier.init: %p not 8-byte aligned or count %u", (void *)bar, count);
    ls->mbars[bar] = launch_state::mbar{count, count, 0, 0};
    ls->epoch++;
}

void mbar_arrive(uint64_t *bar, uint32_t tx_bytes)
{
    launch_state *ls = t_ls;
    launch_state::mbar *m = mbar_get(bar, "mbarrier.arrive");
    if (m->pending == 0)
        fail("mbarrier.arrive on %p: more arrivals than its count %u in one phase", (void *)bar,
             m->count);
    m->tx += tx_bytes;
    if (m->tx > (1 << 20) - 1)
        fail("mbarrier.expect_tx on %p: tx-count %lld past 2^20 - 1", (void *)bar,
             (long long)m->tx);
    m->pending--;
    ls->epoch++;
    mbar_check_phase(bar, m);
}

void mbar_wait(uint64_t *bar, uint32_t parity)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    bool counted = false;
    while ((mbar_get(bar, "mbarrier.try_wait")->phases & 1) == (parity & 1)) {
        /* the phase of this parity is the current one: not complete; let others run.
         * Deadlock: every ready thread is such a waiter and each has looked again
         * since the last change anything could make */
        if (!counted) {
            counted = true;
            ls->spinning++;
        }
        if (ls->stale_epoch != ls->epoch) {
            ls->stale_epoch = ls->epoch;
            ls->stale_spinners = 0;
        }
        if (f->seen_epoch != ls->epoch || !f->seen_valid) {
            f->seen_epoch = ls->epoch;
            f->seen_valid = true;
            ls->stale_spinners++;
        }
        if (ls->stale_spinners == ls->spinning && (size_t)ls->spinning == ls->ready.count + 1)
            fail("deadlock: waiting on mbarrier %p (parity %u) that no thread or copy will "
                 "complete", (void *)bar, parity);
        f->spin_bar = bar;
        ls->ready.push(f->id);
        block_here(f);
        f->spin_bar = NULL;
    }
    if (counted)
        ls->spinning--;
    f->seen_valid = false;
}

/* the tensor map as cusim_tensor_map_encode stores it in CUtensorMap */
struct tmap {
    uint64_t magic;
    const char *base;
    uint64_t dims[2], stride; /* elements; bytes between rows */
    uint32_t box[2], esize, swizzle128;
};
static const uint64_t k_tmap_magic = 0x43555349'4d544d41ull;
static_assert(sizeof(tmap) <= sizeof(CUtensorMap), "tensor map fits");

void tma_load_2d(void *smem, const void *tm, uint64_t *bar, int c0, int c1)
{
    launch_state *ls = t_ls;
    const tmap *t = (const tmap *)tm;
    if (t->magic != k_tmap_magic)
        fail("cp.async.bulk.tensor: %p is not a tensor map from cuTensorMapEncodeTiled", tm);
    size_t row = (size_t)t->box[0] * t->esize, bytes = row * t->box[1];
    size_t off = shared_offset(smem);
    if (off % 128) /* the swizzle follows the absolute address: 128 is enough */
        fail("cp.async.bulk.tensor: destination offset %zu not 128-byte aligned", off);
    if (!in_smem(smem, bytes))
        fail("cp.async.bulk.tensor: %zu bytes at %p leave shared memory", bytes, smem);
    char *w = ls->smem_map + k_page;
    for (uint32_t r = 0; r < t->box[1]; r++)
        for (uint32_t c = 0; c < t->box[0]; c++) {
            int64_t gx = (int64_t)c0 + c, gy = (int64_t)c1 + r;
            size_t o = off + r * row + (size_t)c * t->esize;
            char *dst = w + (t->swizzle128 ? swizzle128(o) : o);
            if (gx >= 0 && gy >= 0 && (uint64_t)gx < t->dims[0] && (uint64_t)gy < t->dims[1])
                memcpy(dst, t->base + (uint64_t)gy * t->stride + (uint64_t)gx * t->esize, t->esize);
            else
                memset(dst, 0, t->esize); /* out of bounds: zero fill, bytes still counted */
        }
    launch_state::mbar *m = mbar_get(bar, "cp.async.bulk.tensor complete_tx");
    m->tx -= (int64_t)bytes;
    if (m->tx < -((1 << 20) - 1))
        fail("cp.async.bulk.tensor: tx-count of mbarrier %p below -(2^20 - 1)", (void *)bar);
    ls->epoch++;
    mbar_check_phase(bar, m);
}

/* wgmma.mma_async.sync.aligned.m64n128k16.f32.{bf16,f16}, A and B K-major in
 * smem (imm-trans 0), scale-d 1: D (64x128) += A (64x16) B^T (B 128x16).
 * Descriptor ("Matrix Descriptor Format"): bits 0-13 start address >> 4, 16-29
 * leading byte offset >> 4, 32-45 stride byte offset >> 4, 62-63 swizzle (1 =
 * 128B). K-major with 128-byte swizzle: row r, element k at start + (r / 8) *
 * SBO + (r % 8) * 128 + 2k, then swizzled (the leading offset is unused).
 * Accumulators: thread (warp w of the warpgroup, g = lane/4, t = lane%4) holds
 * d[4i + e] = D[16w + g + 8 (e / 2)][8i + 2t + e % 2]. */
static float wg_elem(const char *w, uint64_t desc, int r, int k, bool bf16)
{
    size_t start = (size_t)(desc & 0x3FFF) << 4, sbo = (size_t)((desc >> 32) & 0x3FFF) << 4;
    size_t off = swizzle128(start + (size_t)(r / 8) * sbo + (size_t)(r % 8) * 128 + 2 * (size_t)k);
    uint16_t v;
    memcpy(&v, w + off, 2);
    return b16_to_float(v, bf16);
}

/* wg_exec: one wgmma as it completes: D += A B^T from smem as it is now */
static void wg_exec(const wg_op &op)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    const char *w = ls->smem_map + k_page;
    int tw = f->id % 128, wi = tw / 32, g = (tw % 32) / 4, t = tw % 4;
    float a[2][16], b[2][16];
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 16; k++)
            a[h][k] = wg_elem(w, op.da, 16 * wi + g + 8 * h, k, op.bf16);
    for (int i = 0; i < op.n / 8; i++) {
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 16; k++)
                b[c][k] = wg_elem(w, op.db, 8 * i + 2 * t + c, k, op.bf16);
        for (int e = 0; e < 4; e++) {
            float acc = op.d[4 * i + e];
            for (int k = 0; k < 16; k++)
                acc += a[e / 2][k] * b[e % 2][k];
            op.d[4 * i + e] = acc;
        }
    }
}

/* wgmma m64nNk16 (N = 128 or 256): queued, and executed when wgmma.wait_group
 * retires its group, reading shared memory then: the latest a GPU may read it,
 * so a stage released before its wgmma completed is overwritten first */
static void wgmma_issue(float *d, uint64_t da, uint64_t db, int n, bool bf16)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    for (int o = 0; o < 2; o++) {
        uint64_t desc = o == 0 ? da : db;
        if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0)
            fail("wgmma: descriptor 0x%016llx: only 128-byte swizzle with base offset 0 is "
                 "emulated", (unsigned long long)desc);
        size_t start = (size_t)(desc & 0x3FFF) << 4, sbo = (size_t)((desc >> 32) & 0x3FFF) << 4;
        size_t rows = o == 0 ? 64 : (size_t)n, last = start + (rows / 8 - 1) * sbo + 8 * 128;
        if (last > (size_t)(ls->smem + ls->smem_bytes - (ls->smem_map + k_page)))
            fail("wgmma: operand at shared offset %zu (stride %zu) runs past shared memory", start,
                 sbo);
    }
    f->wg.push_back(wg_op{d, da, db, n, bf16, f->wg_committed});
}

void wgmma_m64n128k16(float d[64], uint64_t da, uint64_t db, bool bf16)
{
    wgmma_issue(d, da, db, 128, bf16);
}

void wgmma_m64n256k16(float d[128], uint64_t da, uint64_t db, bool bf16)
{
    wgmma_issue(d, da, db, 256, bf16);
}

void wgmma_commit()
{
    t_ls->cur->wg_committed++;
}

void wgmma_wait(int n)
{
    fiber *f = t_ls->cur;
    size_t keep = 0;
    std::vector<wg_op> ops;
    ops.swap(f->wg);
    for (const wg_op &op : ops) {
        if (op.group < f->wg_committed - n)
            wg_exec(op);
        else
            ops[keep++] = op;
    }
    ops.resize(keep);
    f->wg.swap(ops);
}

} // namespace cusim

/* cuTensorMapEncodeTiled, as the driver API documents it, for what the
 * emulator's TMA implements: rank 2, 16-bit elements, element strides 1, no
 * interleave, swizzle none or 128B (with 128-byte inner box rows), zero fill
 * out of bounds. Checks: base 16-byte aligned; dimensions 1..2^32; the row
 * stride a multiple of 16 bytes below 2^40; box dimensions 1..256, the inner
 * one a multiple of 16 bytes and, with 128B swizzle, at most 128 bytes. */
static CUresult tensor_map_encode(CUtensorMap *tm, CUtensorMapDataType dt, cuuint32_t rank,
                                  void *base, const cuuint64_t *dims, const cuuint64_t *strides,
                                  const cuuint32_t *box, const cuuint32_t *estr,
                                  CUtensorMapInterleave il, CUtensorMapSwizzle sw,
                                  CUtensorMapL2promotion l2, CUtensorMapFloatOOBfill oob)
{
    (void)l2;
    uint32_t es = dt == CU_TENSOR_MAP_DATA_TYPE_FLOAT16 || dt == CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                      ? 2 : 0;
    const char *why = NULL;
    if (es == 0 || rank != 2)
        why = "emulated: rank 2, 16-bit elements only";
    else if ((uintptr_t)base & 15)
        why = "global address not 16-byte aligned";
    else if (dims[0] == 0 || dims[1] == 0 || dims[0] > (1ull << 32) || dims[1] > (1ull << 32))
        why = "global dimensions must be 1..2^32";
    else if (strides[0] % 16 || strides[0] >= (1ull << 40))
        why = "row stride not a multiple of 16 bytes, or not below 2^40";
    else if (box[0] == 0 || box[1] == 0 || box[0] > 256 || box[1] > 256 || (box[0] * es) % 16)
        why = "box dimensions";
    else if (sw == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * es > 128)
        why = "inner box dimension over 128 bytes with 128B swizzle";
    else if (sw == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * es < 128)
        why = "emulated: 128B swizzle with an inner box of exactly 128 bytes only";
    else if (estr[0] != 1 || estr[1] != 1 || il != CU_TENSOR_MAP_INTERLEAVE_NONE ||
             oob != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE ||
             (sw != CU_TENSOR_MAP_SWIZZLE_NONE && sw != CU_TENSOR_MAP_SWIZZLE_128B))
        why = "emulated: element strides 1, no interleave, zero fill, swizzle none or 128B";
    if (why != NULL) {
        fprintf(stderr, "cusim: cuTensorMapEncodeTiled: %s\n", why);
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(tm, 0, sizeof *tm);
    cusim::tmap t = {cusim::k_tmap_magic, (const char *)base, {dims[0], dims[1]}, strides[0],
                     {box[0], box[1]}, es, sw == CU_TENSOR_MAP_SWIZZLE_128B};
    memcpy(tm, &t, sizeof t);
    return CUDA_SUCCESS;
}

cudaError_t cudaGetDriverEntryPoint(const char *sym, void **fn, unsigned long long flags,
                                    cudaDriverEntryPointQueryResult *q)
{
    (void)flags;
    *fn = NULL;
    *q = cudaDriverEntryPointSymbolNotFound;
    if (arch_sm90a() && strcmp(sym, "cuTensorMapEncodeTiled") == 0) {
        *fn = (void *)tensor_map_encode;
        *q = cudaDriverEntryPointSuccess;
    }
    return cudaSuccess;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *sym, void **fn, unsigned version,
                                             unsigned long long flags,
                                             cudaDriverEntryPointQueryResult *q)
{
    (void)version;
    return cudaGetDriverEntryPoint(sym, fn, flags, q);
}
