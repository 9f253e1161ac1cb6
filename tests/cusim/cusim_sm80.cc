/* cusim_sm80.cc: the sm_80 instructions: cp.async, ldmatrix, mma.sync (PTX ISA
 * semantics, see cusim.h). */
#include "cusim_impl.h"

#include <string.h>

bool in_smem(const void *p, size_t n)
{
    launch_state *ls = t_ls;
    const char *c = (const char *)p;
    if (c >= ls->smem && c + n <= ls->smem + ls->smem_bytes)
        return true;
    for (auto &e : ls->statics) {
        const char *s = (const char *)e.first;
        if (c >= s && c + n <= s + e.second.second)
            return true;
    }
    return false;
}

static void cp_land(const cp_op &op)
{
    if (op.pred)
        memcpy(op.dst, op.src, 16);
    else
        memset(op.dst, 0, 16);
}

namespace cusim {

/* full_warp_op: the exchange of an ldmatrix or mma.sync, which are undefined
 * unless all 32 lanes execute them: each lane stamps its count of such
 * operations, all meet, and every stamp must match (a lane that has exited, is
 * absent or is elsewhere leaves a stale one). Returns the exchange phase. */
static unsigned full_warp_op(void)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    uint64_t mine = ++f->nfull;
    unsigned ph = (unsigned)(mine & 1);
    ls->w[f->warp].seq[ph][f->lane] = mine;
    return ph;
}

static void full_warp_check(unsigned ph, const char *what)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    for (int l = 0; l < 32; l++)
        if (w.seq[ph][l] != f->nfull)
            fail("%s: lane %d did not take part (exited, absent or at another one): every lane "
                 "must execute it", what, l);
}

void cp_async16(void *smem, const void *gmem, bool pred)
{
    launch_state *ls = t_ls;
    if ((uintptr_t)smem & 15)
        fail("cp.async destination %p not 16-byte aligned", smem);
    if (!in_smem(smem, 16))
        fail("cp.async destination %p outside shared memory (dynamic [%p, %p))", smem,
             (void *)ls->smem, (void *)(ls->smem + ls->smem_bytes));
    if (pred && ((uintptr_t)gmem & 15))
        fail("cp.async source %p not 16-byte aligned", gmem);
    cp_op op{smem, gmem, pred, ls->cur->committed};
    if (ls->cp_eager)
        cp_land(op);
    else
        ls->cur->cp.push_back(op);
}

void cp_async_commit()
{
    t_ls->cur->committed++;
}

void cp_async_wait(int n)
{
    fiber *f = t_ls->cur;
    size_t keep = 0;
    for (size_t i = 0; i < f->cp.size(); i++) {
        if (f->cp[i].group < f->committed - n)
            cp_land(f->cp[i]);
        else
            f->cp[keep++] = f->cp[i];
    }
    f->cp.resize(keep);
}

/* ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lanes 8j..8j+7 give the row
 * addresses of matrix j (8 rows of 8 b16). Without .trans lane l receives, of
 * each matrix, row l/4, columns 2(l%4) and 2(l%4)+1 (low half = lower column);
 * with .trans, row and column swap: (row 2(l%4), col l/4) and (row 2(l%4)+1,
 * col l/4). */
void ldmatrix_x4(uint32_t r[4], const void *smem, bool trans)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    if ((uintptr_t)smem & 15)
        fail("ldmatrix row address %p not 16-byte aligned", smem);
    if (!in_smem(smem, 16))
        fail("ldmatrix row address %p outside shared memory", smem);
    unsigned ph = full_warp_op();
    const void *const *addr = w.addr[ph];
    w.addr[ph][f->lane] = smem;
    sync_warp(0xffffffffu);
    full_warp_check(ph, "ldmatrix");
    int l = f->lane;
    for (int j = 0; j < 4; j++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t *row = (const uint16_t *)addr[j * 8 + l / 4];
            lo = row[2 * (l % 4)];
            hi = row[2 * (l % 4) + 1];
        } else {
            lo = ((const uint16_t *)addr[j * 8 + 2 * (l % 4)])[l / 4];
            hi = ((const uint16_t *)addr[j * 8 + 2 * (l % 4) + 1])[l / 4];
        }
        r[j] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
}

float b16_to_float(uint32_t bits, bool bf16)
{
    if (bf16) {
        __nv_bfloat16 b;
        b.__x = (uint16_t)bits;
        return __bfloat162float(b);
    }
    __half h;
    h.__x = (uint16_t)bits;
    return __half2float(h);
}

/* mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D = A (16x16) B (16x8) + C.
 * g = lane/4, t = lane%4. A: reg i of lane (g, t) holds row g + 8 (i%2), cols
 * 2t + 8 (i/2) (+1 in the high half). B: reg i holds rows (k) 2t + 8i (+1),
 * column (n) g. C/D: element e at row g + 8 (e/2), column 2t + e%2.
 * Each lane places its operands into the warp's A and B matrices (as f32,
 * exact), all meet, each computes its four elements of D in fp32. */
void mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2], bool bf16)
{
    launch_state *ls = t_ls;
    fiber *f = ls->cur;
    warp_state &w = ls->w[f->warp];
    int g = f->lane / 4, t = f->lane % 4;
    unsigned ph = full_warp_op();
    float(*A)[16] = w.A[ph], (*B)[8] = w.B[ph];
    for (int i = 0; i < 4; i++)
        for (int h = 0; h < 2; h++)
            A[g + 8 * (i % 2)][2 * t + 8 * (i / 2) + h] = b16_to_float(a[i] >> (16 * h), bf16);
    for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++)
            B[2 * t + 8 * i + h][g] = b16_to_float(b[i] >> (16 * h), bf16);
    sync_warp(0xffffffffu);
    full_warp_check(ph, "mma.sync");
    for (int e = 0; e < 4; e++) {
        int row = g + 8 * (e / 2), col = 2 * t + e % 2;
        float acc = d[e];
        for (int k = 0; k < 16; k++)
            acc += A[row][k] * B[k][col];
        d[e] = acc;
    }
}

} // namespace cusim
