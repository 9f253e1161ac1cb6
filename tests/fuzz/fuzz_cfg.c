/* fuzz_cfg.c: libFuzzer target for the config loader (cfg_load through the
 * worker's and the controller's key tables), on a file holding the input. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "controller/ctl_cfg.h"
#include "worker/wrk_cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz.conf", 0);
        if (fd < 0)
            return 0;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    struct err err = {0};
    static struct wrk_cfg w;
    static struct ctl_cfg c;
    (void)wrk_cfg_load(path, &w, &err);
    (void)ctl_cfg_load(path, &c, &err);
    return 0;
}
