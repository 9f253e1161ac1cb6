/* cli_idset.c: the set of document ids seen while a JSONL input is first read
 * (cli_input.c), to find an id that repeats.
 *
 * An id is kept as a 96-bit BLAKE2b digest (RFC 7693, libsodium's
 * crypto_generichash) of its typed form ("s:" + the string's bytes, or "i:" +
 * the integer in decimal, so that "7" and 7 are two ids) with the 1-based line
 * that had it first: 16 bytes a slot in an open-addressing table (linear
 * probing, at most 3/4 full, doubled as it fills), about 28 bytes an id on
 * average instead of the ~90 of a jansson object of the ids. Two different
 * ids with one digest would be taken for a repeat: for n ids the chance is
 * about n^2 / 2^97 (10^-15 for ten million).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct cli_idslot {
    uint8_t digest[12];
    uint32_t line; /* 0: empty; UINT32_MAX: a line past 2^32 - 2 */
};

/* idset_place: the slot of digest in slots[cap] (cap a power of two): its own,
 * or the empty one where it would go. */
static struct cli_idslot *idset_place(struct cli_idslot *slots, size_t cap, const uint8_t *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof h); /* a BLAKE2b digest's bytes are uniform */
    for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct cli_idslot *s = &slots[i];
        if (s->line == 0 || memcmp(s->digest, digest, sizeof s->digest) == 0)
            return s;
    }
}

static int idset_grow(struct cli_idset *set)
{
    size_t cap = set->cap ? set->cap * 2 : 1024;
    struct cli_idslot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i].line != 0)
            *idset_place(slots, cap, set->slots[i].digest) = set->slots[i];
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
    return 0;
}

int cli_idset_add(struct cli_idset *set, const json_t *id, long line, long *first)
{
    if (set->n + 1 > set->cap / 4 * 3 && idset_grow(set) != 0)
        return -1;
    if (sodium_init() < 0)
        return -1;
    crypto_generichash_state st;
    char head[32];
    size_t hlen;
    if (json_is_string(id))
        hlen = (size_t)snprintf(head, sizeof head, "s:");
    else
        hlen = (size_t)snprintf(head, sizeof head, "i:%lld", (long long)json_integer_value(id));
    uint8_t digest[crypto_generichash_BYTES_MIN]; /* 16: the first 12 are kept */
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    crypto_generichash_update(&st, (const unsigned char *)head, hlen);
    if (json_is_string(id))
        crypto_generichash_update(&st, (const unsigned char *)json_string_value(id), json_string_length(id));
    crypto_generichash_final(&st, digest, sizeof digest);
    struct cli_idslot *s = idset_place(set->slots, set->cap, digest);
    if (s->line != 0) {
        *first = s->line == UINT32_MAX ? -1 : (long)s->line;
        return 1;
    }
    memcpy(s->digest, digest, sizeof s->digest);
    s->line = line > 0 && line < (long)UINT32_MAX ? (uint32_t)line : UINT32_MAX;
    set->n++;
    return 0;
}

void cli_idset_free(struct cli_idset *set)
{
    free(set->slots);
    memset(set, 0, sizeof *set);
}
