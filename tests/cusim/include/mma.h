/* mma.h (cusim): the WMMA API (nvcuda::wmma) for 16x16x16 tiles, as the CUDA
 * C++ Programming Guide's "Warp Matrix Functions" define it. A fragment's
 * layout across lanes is unspecified there, so here every lane holds the whole
 * tile: loads and the multiply-accumulate give each lane the complete result;
 * a store writes each lane's 8 of the 256 elements; all three are warp-wide
 * (every live lane must reach them). Checked: load/store pointers
 * 256-bit (32-byte) aligned, and every row too (ldm x element size a multiple
 * of 32 bytes): the PTX ISA's wmma "Address Alignment" asks for this, stricter
 * than the Guide's "multiple of 8 (16-bit) or 4 (float) elements", and NVIDIA's
 * own samples pad rows to keep it. See ../cusim.h. */
#ifndef MOAT_CUSIM_MMA_H
#define MOAT_CUSIM_MMA_H
#include "../cusim.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

/* fragment: a 16x16 tile, x[r * 16 + c]: A (m, k), B (k, n), accumulator (m, n);
 * held as float whatever T is (a 16-bit T converts exactly) */
template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "cusim implements m16n16k16 only");
    enum { num_elements = 256 };
    float x[256];
};

template <typename T> static inline void wmma_check(const void *p, unsigned ldm, const char *call)
{
    if ((uintptr_t)p & 31)
        cusim::fail("wmma::%s: pointer %p not 256-bit aligned", call, p);
    if (ldm * sizeof(T) % 32 != 0)
        cusim::fail("wmma::%s: ldm %u (%zu bytes) keeps rows off 256-bit alignment", call, ldm,
                    ldm * sizeof(T));
}

template <typename Use, typename T, typename L>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const T *p, unsigned ldm)
{
    wmma_check<T>(p, ldm, "load_matrix_sync");
    cusim::sync_warp(0xffffffffu); /* a warp-wide operation: every live lane meets here */
    constexpr bool row = std::is_same<L, row_major>::value;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            f.x[r * 16 + c] = (float)(row ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]);
}

template <typename T>
static inline void fill_fragment(fragment<accumulator, 16, 16, 16, T> &f, T v)
{
    for (int i = 0; i < 256; i++)
        f.x[i] = v;
}

template <typename T, typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                            const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, T, LB> &b,
                            const fragment<accumulator, 16, 16, 16, float> &c)
{
    cusim::sync_warp(0xffffffffu);
    float out[256];
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float acc = c.x[m * 16 + n];
            for (int k = 0; k < 16; k++)
                acc += a.x[m * 16 + k] * b.x[k * 16 + n];
            out[m * 16 + n] = acc;
        }
    memcpy(d.x, out, sizeof out);
}

static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                                     unsigned ldm, layout_t layout)
{
    wmma_check<float>(p, ldm, "store_matrix_sync");
    cusim::sync_warp(0xffffffffu);
    /* each lane writes its share only, as on a GPU: whoever reads other lanes'
     * elements needs the __syncwarp the programming model asks for */
    for (int e = cusim::lane(); e < 256; e += 32) {
        int r = e / 16, c = e % 16;
        size_t i = layout == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r;
        p[i] = f.x[e];
    }
}

} // namespace wmma
} // namespace nvcuda

#endif
