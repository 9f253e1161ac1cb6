/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser
 * (st_file_parse): any bytes; an accepted file's tensors are walked. */
#include <stdint.h>
#include <string.h>

#include "shared/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err err = {0};
    st_file_t *f = st_file_parse(data, size, &err);
    if (f == NULL)
        return 0;
    size_t n = st_file_count(f);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_file_tensor(f, i);
        if (t->end > t->begin)
            sink ^= ((const uint8_t *)t->data)[t->end - t->begin - 1]; /* inside the buffer */
        (void)st_file_find(f, t->name);
    }
    (void)sink;
    (void)st_file_metadata(f, "format");
    st_file_destroy(f);
    return 0;
}
