/* krn_host.c: host-side dtype conversions and the host CPU's description.
 *
 * bf16 and f16 conversions round to nearest even and keep NaN a NaN (IEEE 754-2008;
 * bf16 is the upper half of binary32). Host peaks come from shared/FIGURES.md.
 */
#include "kernels/krn_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

float krn_bf16_to_f32_1(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t krn_f32_to_bf16_1(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet and a NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float krn_f16_to_f32_1(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t krn_f32_to_f16_1(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00u; /* NaN */
    if (a >= 0x477ff000u)      /* rounds to >= 65520: inf */
        return sign | 0x7c00u;
    if (a < 0x38800000u) { /* below 2^-14: subnormal or zero, in units of 2^-24 */
        float mag;
        memcpy(&mag, &a, 4);
        return sign | (uint16_t)rintf(mag * 16777216.0f); /* exact scale; rint ties to even */
    }
    uint32_t v = ((a >> 13) - ((127 - 15) << 10)) & 0xffffu;
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (v & 1u)))
        v++;
    return sign | (uint16_t)v;
}

void krn_f32_to_bf16(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = krn_f32_to_bf16_1(src[i]);
}

void krn_bf16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = krn_bf16_to_f32_1(src[i]);
}

void krn_f32_to_f16(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = krn_f32_to_f16_1(src[i]);
}

void krn_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = krn_f16_to_f32_1(src[i]);
}

/* krn_host_info: name from /proc/cpuinfo. Peaks per FIGURES.md: the 2-vCPU
 * EPYC Zen 4 measured 115 GFLOP/s fp32 per core (2 x 256-bit FMA per cycle,
 * the same with or without AVX-512) and 225 bf16 with avx512_bf16; other CPUs
 * with FMA get 32 FLOP/cycle at 3.6 GHz as an estimate, without FMA 8. */
void krn_host_info(int threads, struct krn_device_info *out)
{
    char model[80] = "unknown CPU";
    bool fma = false, bf16 = false, have_model = false, have_flags = false;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char *line = NULL;
        size_t cap = 0;
        while ((!have_model || !have_flags) && getline(&line, &cap, f) > 0) {
            if (!have_model && strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                if (p != NULL) {
                    p += (p[1] == ' ') ? 2 : 1;
                    p[strcspn(p, "\n")] = '\0';
                    snprintf(model, sizeof model, "%s", p);
                    have_model = true;
                }
            }
            if (!have_flags && strncmp(line, "flags", 5) == 0) {
                fma = strstr(line, " fma") != NULL;
                bf16 = strstr(line, " avx512_bf16") != NULL;
                have_flags = true;
            }
        }
        free(line);
        fclose(f);
    }
    snprintf(out->name, sizeof out->name, "%s (%d threads)", model, threads);
    snprintf(out->arch, sizeof out->arch, "x86_64");
    out->multiprocessors = threads;
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long psz = sysconf(_SC_PAGESIZE);
    out->mem_total = pages > 0 && psz > 0 ? (int64_t)pages * psz : 0;
    out->mem_free = avail > 0 && psz > 0 ? (int64_t)avail * psz : 0;
    out->peak_from_table = fma && strstr(model, "AMD EPYC") != NULL;
    double core = out->peak_from_table ? 115.0 : (fma ? 115.2 : 28.8);
    out->peak_f32_gflops = core * threads;
    out->peak_bf16_gflops = (bf16 ? 225.0 : core) * threads;
    out->peak_gbps = 0; /* no figure a process can read: bench programs measure it
                         * (krn_bench_stream_triad, krn_bench.h) */
}
