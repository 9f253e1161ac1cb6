/* fuzz_manifest.c: libFuzzer target for the artifact manifest parser
 * (manifest_parse), and manifest_verify on the same bytes as a signature. An
 * accepted manifest must encode and parse back to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest m, again;
    struct err err = {0};
    if (manifest_parse((const char *)data, size, &m, &err) == 0) {
        char *text = manifest_encode(&m);
        if (text == NULL || manifest_parse(text, strlen(text), &again, &err) != 0 ||
            memcmp(&m, &again, sizeof m) != 0)
            abort(); /* encode and parse disagree */
        free(text);
    }
    static const uint8_t pk[MANIFEST_PK_BYTES] = {1};
    char *sig = malloc(size + 1);
    if (sig) {
        memcpy(sig, data, size);
        sig[size] = '\0';
        (void)manifest_verify("x", 1, sig, pk, &err);
        free(sig);
    }
    return 0;
}
