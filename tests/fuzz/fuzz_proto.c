/* fuzz_proto.c: libFuzzer target for the message decoder (proto_msg_decode).
 * Input: frames separated by the 4-byte marker "\xffMT\xff"; the first two are the
 * header and the JSON body, the rest blobs. A crash, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <string.h>

#include "shared/proto.h"

#define MARK "\xffMT\xff"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const void *frames[2 + PROTO_MAX_BLOBS + 2];
    size_t lens[2 + PROTO_MAX_BLOBS + 2];
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i + 4 <= size && n < (int)(sizeof lens / sizeof lens[0]) - 1; i++) {
        if (memcmp(data + i, MARK, 4) == 0) {
            frames[n] = data + start;
            lens[n++] = i - start;
            start = i + 4;
            i += 3;
        }
    }
    frames[n] = data + start;
    lens[n++] = size - start;
    struct proto_msg msg;
    struct err err = {0};
    if (proto_msg_decode(&msg, frames, lens, n, &err) == 0)
        proto_msg_clear(&msg);
    return 0;
}
