/* cuda_stub.c: the cuda backend's entry points in a build without CUDA (CUDA=0).
 *
 * The API stays whole so that callers need no #ifdef: there are no devices,
 * and opening the backend fails with ENODEV "built without CUDA".
 */
#include "kernels/krn_impl.h"

#include <errno.h>

krn_backend_t *krn_cuda_backend_create(int dev, struct err *err)
{
    err_set(err, ENODEV, "backend cuda: device %d: built without CUDA", dev);
    return NULL;
}

int krn_cuda_device_count(void)
{
    return 0;
}

int krn_cuda_device_info(int dev, struct krn_device_info *out, struct err *err)
{
    (void)out;
    return err_set(err, ENODEV, "cuda device %d: built without CUDA", dev);
}

int krn_cuda_device_uuid(int dev, uint8_t out[16], struct err *err)
{
    (void)out;
    return err_set(err, ENODEV, "cuda device %d: built without CUDA", dev);
}
