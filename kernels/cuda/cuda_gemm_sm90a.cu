/* cuda_gemm_sm90a.cu: gemm_kernel7 (TMA + wgmma, cuda_gemm.cuh) in a translation
 * unit of its own, compiled for sm_90a only (kernels.mk), with its host-side
 * launch and probe.
 *
 * Why a separate unit: when one fatbinary holds both sm_90 and sm_90a code, it
 * is not something to rely on which of the two the runtime loads on a cc 9.0
 * device; here there is only sm_90a code, so on an H100/H200 the wgmma kernel
 * is what runs, and on any other device nothing of this unit can launch (the
 * probe fails with cudaErrorNoKernelImageForDevice, and kernel 7 is marked not
 * runnable). cuda_gemm.cu calls only the three functions below.
 */
#include "kernels/cuda/cuda_gemm.cuh"

/* cuda_gemm7_probe: *ok = whether this unit's sm_90a code runs on the current
 * device. Returns the launch/copy error, cudaSuccess otherwise; N.B. clears a
 * cudaErrorNoKernelImageForDevice (not sticky) and reports *ok = false. */
cudaError_t cuda_gemm7_probe(cudaStream_t st, bool *ok)
{
    int *d = NULL, seen = 0;
    *ok = false;
    cudaError_t e = cudaMalloc(&d, sizeof(int));
    if (e != cudaSuccess)
        return e;
    gemm_probe_sm90a<<<1, 1, 0, st>>>(d);
    e = cudaGetLastError();
    if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction) {
        cudaFree(d);
        return cudaSuccess; /* not an sm_90a device: kernel 7 not runnable */
    }
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(&seen, d, sizeof seen, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(st);
    cudaFree(d);
    *ok = e == cudaSuccess && seen == 1;
    if (*ok) {
        const void *fns[4] = {(const void *)gemm_kernel7<__nv_bfloat16, 128>,
                              (const void *)gemm_kernel7<__half, 128>,
                              (const void *)gemm_kernel7<__nv_bfloat16, 256>,
                              (const void *)gemm_kernel7<__half, 256>};
        const int bytes[4] = {K7_SMEM, K7_SMEM, K8_SMEM, K8_SMEM};
        for (int i = 0; i < 4 && e == cudaSuccess; i++)
            e = cudaFuncSetAttribute(fns[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     bytes[i]);
    }
    return e;
}

/* cuda_gemm7_encoder: cuTensorMapEncodeTiled, or NULL. */
void *cuda_gemm7_encoder(void)
{
    return (void *)k7_encoder();
}

/* cuda_gemm7_launch: queue gemm_kernel7 (bn 128) or gemm_kernel8 (bn 256) for p
 * (the caller checked that it fits: ta 0, tb 1, batch 1, 128-byte aligned, K
 * and ld multiples of 8). cudaErrorInvalidValue when the driver rejects a
 * tensor map. */
cudaError_t cuda_gemm7_launch(const gemm_params &p, void *encoder, int bn, cudaStream_t st)
{
    CUtensorMap ta, tb;
    bool bf = p.dt_ab == KRN_DTYPE_BF16;
    k7_encode_fn enc = (k7_encode_fn)encoder;
    if (enc == NULL || !k7_tensor_map(enc, &ta, p.a, bf, p.M, p.K, p.lda, K7_BM) ||
        !k7_tensor_map(enc, &tb, p.b, bf, p.N, p.K, p.ldb, bn))
        return cudaErrorInvalidValue;
    /* grid = (ceil(N/bn), ceil(M/128)); block = 384 = 1 producer + 2 consumer warpgroups */
    dim3 grid((unsigned)((p.N + bn - 1) / bn), (unsigned)((p.M + K7_BM - 1) / K7_BM));
    if (bn == 128 && bf)
        gemm_kernel7<__nv_bfloat16, 128><<<grid, 384, K7_SMEM, st>>>(ta, tb, p);
    else if (bn == 128)
        gemm_kernel7<__half, 128><<<grid, 384, K7_SMEM, st>>>(ta, tb, p);
    else if (bf)
        gemm_kernel7<__nv_bfloat16, 256><<<grid, 384, K8_SMEM, st>>>(ta, tb, p);
    else
        gemm_kernel7<__half, 256><<<grid, 384, K8_SMEM, st>>>(ta, tb, p);
    return cudaGetLastError();
}
