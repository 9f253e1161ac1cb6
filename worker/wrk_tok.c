/* wrk_tok.c: BERT uncased WordPiece tokeniser, equal to HF `tokenizers` (see wrk_tok.h).
 *
 * Invariants: the handle is read-only after wrk_tok_create(); the vocabulary
 * lives in one pool (the vocab file's bytes) indexed by an open-addressing hash
 * table of power-of-two size at most half full; encoding streams the text once,
 * code point by code point, keeps the current word (at most
 * WRK_TOK_MAX_WORD_CHARS code points) in a stack buffer and never allocates.
 * Reference: HF tokenizers, normalizers/bert.rs, pre_tokenizers/bert.rs,
 * models/wordpiece/mod.rs; Devlin et al., BERT, tokenization.py.
 */
#include "worker/wrk_tok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#define TOK_VOCAB_MAX_BYTES (64u << 20)
#define TOK_WORD_BYTES (4 * WRK_TOK_MAX_WORD_CHARS + 8)
#define TOK_NFD_MAX 8 /* longest canonical decomposition of one code point is 4 */
#define TOK_SPECIAL_COUNT 5

struct tok_slot {
    uint32_t tag; /* high 32 bits of the 64-bit FNV-1a hash */
    uint32_t len; /* token bytes */
    uint32_t off; /* token start in pool */
    int32_t id;   /* -1: empty slot */
};

struct tok_special {
    const char *text;
    size_t len;
    int32_t id;
};

struct wrk_tok {
    char *pool;
    struct tok_slot *slots;
    uint64_t slot_mask;
    uint32_t max_tok_bytes;
    int32_t n_vocab;
    int32_t cls, sep, unk, pad, msk;
    struct tok_special special[TOK_SPECIAL_COUNT]; /* HF added tokens present in the vocab */
    int n_special;
};

/* ---- hashing and lookup ---- */

#define TOK_FNV_BASIS 0xcbf29ce484222325ull
#define TOK_FNV_PRIME 0x100000001b3ull

static inline uint64_t tok_fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= TOK_FNV_PRIME;
    }
    return h;
}

/* Lookup of pfx ("##" or "") + s[0..n) whose hash is h. Returns id or -1. */
static int32_t tok_lookup_h(const wrk_tok_t *tok, uint64_t h, bool pfx, const char *s, size_t n)
{
    size_t total = n + (pfx ? 2 : 0);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        const struct tok_slot *sl = &tok->slots[i];
        if (sl->id < 0)
            return -1;
        if (sl->tag != tag || sl->len != total)
            continue;
        const char *k = tok->pool + sl->off;
        if (pfx) {
            if (k[0] != '#' || k[1] != '#')
                continue;
            k += 2;
        }
        if (memcmp(k, s, n) == 0)
            return sl->id;
    }
}

int32_t wrk_tok_token_id(const wrk_tok_t *tok, const char *token, size_t len)
{
    if (tok == NULL || (token == NULL && len > 0))
        return -1;
    return tok_lookup_h(tok, tok_fnv(TOK_FNV_BASIS, token, len), false, token, len);
}

/* ---- vocabulary ---- */

static int tok_slot_put(wrk_tok_t *tok, uint32_t off, uint32_t len, int32_t id)
{
    uint64_t h = tok_fnv(TOK_FNV_BASIS, tok->pool + off, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
        struct tok_slot *sl = &tok->slots[i];
        if (sl->id < 0) {
            *sl = (struct tok_slot){.tag = tag, .len = len, .off = off, .id = id};
            return 0;
        }
        if (sl->tag == tag && sl->len == len && memcmp(tok->pool + sl->off, tok->pool + off, len) == 0) {
            sl->id = id; /* a later duplicate line takes the token, as in HF read_file */
            sl->off = off;
            return 0;
        }
    }
}

static char *tok_file_read(const char *path, size_t *n_out, struct err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        err_set(err, errno, "vocab %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0) {
        err_set(err, errno, "vocab %s: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, EINVAL, "vocab %s: not a regular file", path);
        goto out_close;
    }
    if ((uint64_t)st.st_size > TOK_VOCAB_MAX_BYTES) {
        err_set(err, EFBIG, "vocab %s: %lld bytes, max %u", path, (long long)st.st_size,
                TOK_VOCAB_MAX_BYTES);
        goto out_close;
    }
    size_t n = (size_t)st.st_size;
    buf = malloc(n + 1);
    if (buf == NULL) {
        err_set(err, ENOMEM, "vocab %s: out of memory for %zu bytes", path, n);
        goto out_close;
    }
    if (fread(buf, 1, n, f) != n) {
        err_set(err, ferror(f) ? EIO : EINVAL, "vocab %s: short read", path);
        free(buf);
        buf = NULL;
        goto out_close;
    }
    buf[n] = '\0';
    *n_out = n;
out_close:
    fclose(f);
    return buf;
}

wrk_tok_t *wrk_tok_create(const char *vocab_path, struct err *err)
{
    if (vocab_path == NULL) {
        err_set(err, EINVAL, "vocab: no path");
        return NULL;
    }
    wrk_tok_t *tok = calloc(1, sizeof *tok);
    if (tok == NULL) {
        err_set(err, ENOMEM, "vocab %s: out of memory", vocab_path);
        return NULL;
    }
    size_t n = 0;
    tok->pool = tok_file_read(vocab_path, &n, err);
    if (tok->pool == NULL)
        goto fail;

    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += tok->pool[i] == '\n';
    if (n > 0 && tok->pool[n - 1] != '\n')
        lines++;
    if (lines == 0) {
        err_set(err, EINVAL, "vocab %s: empty", vocab_path);
        goto fail;
    }
    if (lines > INT32_MAX / 2) {
        err_set(err, EFBIG, "vocab %s: %zu lines", vocab_path, lines);
        goto fail;
    }
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)lines)
        cap <<= 1;
    tok->slots = malloc(cap * sizeof *tok->slots);
    if (tok->slots == NULL) {
        err_set(err, ENOMEM, "vocab %s: out of memory for %zu tokens", vocab_path, lines);
        goto fail;
    }
    for (uint64_t i = 0; i < cap; i++)
        tok->slots[i].id = -1;
    tok->slot_mask = cap - 1;

    int32_t id = 0;
    for (size_t pos = 0; pos < n; id++) {
        const char *nl = memchr(tok->pool + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - tok->pool) : n;
        size_t e = end;
        while (e > pos && (tok->pool[e - 1] == ' ' || (tok->pool[e - 1] >= '\t' && tok->pool[e - 1] <= '\r')))
            e--;
        tok_slot_put(tok, (uint32_t)pos, (uint32_t)(e - pos), id);
        if (e - pos > tok->max_tok_bytes)
            tok->max_tok_bytes = (uint32_t)(e - pos);
        pos = end + 1;
    }
    tok->n_vocab = id;

    static const char *const names[TOK_SPECIAL_COUNT] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    int32_t sid[TOK_SPECIAL_COUNT];
    for (int i = 0; i < TOK_SPECIAL_COUNT; i++) {
        sid[i] = wrk_tok_token_id(tok, names[i], strlen(names[i]));
        if (sid[i] < 0 && i < 4) {
            err_set(err, EINVAL, "vocab %s: missing special token %s", vocab_path, names[i]);
            goto fail;
        }
        if (sid[i] >= 0)
            tok->special[tok->n_special++] =
                (struct tok_special){.text = names[i], .len = strlen(names[i]), .id = sid[i]};
    }
    tok->pad = sid[0];
    tok->unk = sid[1];
    tok->cls = sid[2];
    tok->sep = sid[3];
    tok->msk = sid[4];
    return tok;
fail:
    wrk_tok_destroy(tok);
    return NULL;
}

void wrk_tok_destroy(wrk_tok_t *tok)
{
    if (tok == NULL)
        return;
    free(tok->slots);
    free(tok->pool);
    free(tok);
}

int32_t wrk_tok_vocab_size(const wrk_tok_t *tok) { return tok->n_vocab; }
int32_t wrk_tok_cls_id(const wrk_tok_t *tok) { return tok->cls; }
int32_t wrk_tok_sep_id(const wrk_tok_t *tok) { return tok->sep; }
int32_t wrk_tok_unk_id(const wrk_tok_t *tok) { return tok->unk; }
int32_t wrk_tok_pad_id(const wrk_tok_t *tok) { return tok->pad; }
int32_t wrk_tok_mask_id(const wrk_tok_t *tok) { return tok->msk; }

/* ---- UTF-8 ---- */

/* Strict UTF-8 check (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
static int tok_utf8_check(const unsigned char *s, size_t n, struct err *err)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return err_set(err, EILSEQ, "invalid utf-8 at byte %zu: lead byte 0x%02x", i, c);
        }
        if (n - i <= need)
            return err_set(err, EILSEQ, "invalid utf-8 at byte %zu: sequence cut at end of text", i);
        if (s[i + 1] < lo || s[i + 1] > hi)
            return err_set(err, EILSEQ, "invalid utf-8 at byte %zu: byte 0x%02x after 0x%02x", i + 1,
                           s[i + 1], c);
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return err_set(err, EILSEQ, "invalid utf-8 at byte %zu: byte 0x%02x is not a continuation",
                               i + k, s[i + k]);
        i += need + 1;
    }
    return 0;
}

/* Decode one code point of already validated UTF-8; returns its byte length. */
static inline int tok_utf8_get(const unsigned char *s, int32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = (int32_t)c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = (int32_t)(((c & 0x1F) << 6) | (s[1] & 0x3F));
        return 2;
    }
    if (c < 0xF0) {
        *cp = (int32_t)(((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F));
        return 3;
    }
    *cp = (int32_t)(((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F));
    return 4;
}

static inline int tok_utf8_put(char *d, int32_t cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- per code point normalisation (steps 2-5 of wrk_tok.h) ---- */

enum tok_cls {
    TOK_CLS_DROP,  /* removed by clean-up */
    TOK_CLS_SPACE, /* word boundary */
    TOK_CLS_PUNCT, /* a word of its own */
    TOK_CLS_CJK,   /* a word of its own (padded with spaces by HF) */
    TOK_CLS_TEXT,  /* part of a word */
};

/* ASCII: the class of each byte; letters are lower-cased separately. */
static const unsigned char tok_ascii_cls[128] = {
    [0x00 ... 0x08] = TOK_CLS_DROP, ['\t'] = TOK_CLS_SPACE, ['\n'] = TOK_CLS_SPACE,
    [0x0B ... 0x0C] = TOK_CLS_DROP, ['\r'] = TOK_CLS_SPACE, [0x0E ... 0x1F] = TOK_CLS_DROP,
    [' '] = TOK_CLS_SPACE,          [33 ... 47] = TOK_CLS_PUNCT, [48 ... 57] = TOK_CLS_TEXT,
    [58 ... 64] = TOK_CLS_PUNCT,    [65 ... 90] = TOK_CLS_TEXT,  [91 ... 96] = TOK_CLS_PUNCT,
    [97 ... 122] = TOK_CLS_TEXT,    [123 ... 126] = TOK_CLS_PUNCT, [0x7F] = TOK_CLS_DROP,
};

/* Rust char::is_whitespace (Unicode White_Space), as HF uses. */
static inline bool tok_is_space(int32_t c)
{
    if (c < 0x80)
        return c == ' ' || (c >= '\t' && c <= '\r');
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* HF normalizers/bert.rs is_chinese_char (N.B. 0x2B920, not BERT's 0x2B820). */
static inline bool tok_is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static inline bool tok_is_punct(int32_t c)
{
    if (c < 0x80)
        return tok_ascii_cls[c] == TOK_CLS_PUNCT;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* Where utf8proc's Unicode data (2.8.0: Unicode 15.0) and HF's differ. HF takes
 * categories from the unicode_categories crate (older Unicode: no Mn, Cf or P*
 * assigned after it), lower case from Rust's char::to_lowercase (newer Unicode)
 * and NFD from unicode-normalization-alignments. Generated by comparing
 * wrk_tok_pretokenize() with HF tokenizers 0.23.3 on "a" + c + "a" for every
 * code point c (tests/data/tok/codepoints.txt, made by
 * tests/tools/gen_tok_golden.py); test_tok's test_codepoints checks all of them,
 * so a different utf8proc or HF shows up there. Sorted, disjoint. */
enum tok_ov_kind {
    TOK_OV_TEXT,  /* a plain letter: no mapping, no split */
    TOK_OV_PUNCT, /* a word of its own */
    TOK_OV_DROP,  /* removed */
    TOK_OV_LOWER, /* a letter that lower-cases to .map */
};

struct tok_ov {
    int32_t lo, hi;
    enum tok_ov_kind kind;
    int32_t map;
};

static const struct tok_ov tok_ov_table[] = {
    {0x61D, 0x61D, TOK_OV_TEXT, 0x0}, {0x7FD, 0x7FD, TOK_OV_TEXT, 0x0},
    {0x890, 0x891, TOK_OV_TEXT, 0x0}, {0x898, 0x89F, TOK_OV_TEXT, 0x0},
    {0x8CA, 0x8E2, TOK_OV_TEXT, 0x0}, {0x9FD, 0x9FE, TOK_OV_TEXT, 0x0},
    {0xA76, 0xA76, TOK_OV_TEXT, 0x0}, {0xAFA, 0xAFF, TOK_OV_TEXT, 0x0},
    {0xB55, 0xB55, TOK_OV_TEXT, 0x0}, {0xC04, 0xC04, TOK_OV_TEXT, 0x0},
    {0xC3C, 0xC3C, TOK_OV_TEXT, 0x0}, {0xC77, 0xC77, TOK_OV_TEXT, 0x0},
    {0xC84, 0xC84, TOK_OV_TEXT, 0x0}, {0xD00, 0xD00, TOK_OV_TEXT, 0x0},
    {0xD3B, 0xD3C, TOK_OV_TEXT, 0x0}, {0xD81, 0xD81, TOK_OV_TEXT, 0x0},
    {0xEBA, 0xEBA, TOK_OV_TEXT, 0x0}, {0xECE, 0xECE, TOK_OV_TEXT, 0x0},
    {0x166D, 0x166D, TOK_OV_PUNCT, 0x0}, {0x1734, 0x1734, TOK_OV_DROP, 0x0},
    {0x180F, 0x180F, TOK_OV_TEXT, 0x0}, {0x1885, 0x1886, TOK_OV_TEXT, 0x0},
    {0x1ABF, 0x1ACE, TOK_OV_TEXT, 0x0}, {0x1B7D, 0x1B7E, TOK_OV_TEXT, 0x0},
    {0x1C89, 0x1C89, TOK_OV_LOWER, 0x1C8A}, {0x1DF6, 0x1DFB, TOK_OV_TEXT, 0x0},
    {0x2E43, 0x2E4F, TOK_OV_TEXT, 0x0}, {0x2E52, 0x2E5D, TOK_OV_TEXT, 0x0},
    {0xA7CB, 0xA7CB, TOK_OV_LOWER, 0x264}, {0xA7CC, 0xA7CC, TOK_OV_LOWER, 0xA7CD},
    {0xA7CE, 0xA7CE, TOK_OV_LOWER, 0xA7CF}, {0xA7D2, 0xA7D2, TOK_OV_LOWER, 0xA7D3},
    {0xA7D4, 0xA7D4, TOK_OV_LOWER, 0xA7D5}, {0xA7DA, 0xA7DA, TOK_OV_LOWER, 0xA7DB},
    {0xA7DC, 0xA7DC, TOK_OV_LOWER, 0x19B}, {0xA82C, 0xA82C, TOK_OV_TEXT, 0x0},
    {0xA8C5, 0xA8C5, TOK_OV_TEXT, 0x0}, {0xA8FF, 0xA8FF, TOK_OV_TEXT, 0x0},
    {0xA9BD, 0xA9BD, TOK_OV_TEXT, 0x0}, {0x10D24, 0x10D27, TOK_OV_TEXT, 0x0},
    {0x10D50, 0x10D50, TOK_OV_LOWER, 0x10D70}, {0x10D51, 0x10D51, TOK_OV_LOWER, 0x10D71},
    {0x10D52, 0x10D52, TOK_OV_LOWER, 0x10D72}, {0x10D53, 0x10D53, TOK_OV_LOWER, 0x10D73},
    {0x10D54, 0x10D54, TOK_OV_LOWER, 0x10D74}, {0x10D55, 0x10D55, TOK_OV_LOWER, 0x10D75},
    {0x10D56, 0x10D56, TOK_OV_LOWER, 0x10D76}, {0x10D57, 0x10D57, TOK_OV_LOWER, 0x10D77},
    {0x10D58, 0x10D58, TOK_OV_LOWER, 0x10D78}, {0x10D59, 0x10D59, TOK_OV_LOWER, 0x10D79},
    {0x10D5A, 0x10D5A, TOK_OV_LOWER, 0x10D7A}, {0x10D5B, 0x10D5B, TOK_OV_LOWER, 0x10D7B},
    {0x10D5C, 0x10D5C, TOK_OV_LOWER, 0x10D7C}, {0x10D5D, 0x10D5D, TOK_OV_LOWER, 0x10D7D},
    {0x10D5E, 0x10D5E, TOK_OV_LOWER, 0x10D7E}, {0x10D5F, 0x10D5F, TOK_OV_LOWER, 0x10D7F},
    {0x10D60, 0x10D60, TOK_OV_LOWER, 0x10D80}, {0x10D61, 0x10D61, TOK_OV_LOWER, 0x10D81},
    {0x10D62, 0x10D62, TOK_OV_LOWER, 0x10D82}, {0x10D63, 0x10D63, TOK_OV_LOWER, 0x10D83},
    {0x10D64, 0x10D64, TOK_OV_LOWER, 0x10D84}, {0x10D65, 0x10D65, TOK_OV_LOWER, 0x10D85},
    {0x10EAB, 0x10EAD, TOK_OV_TEXT, 0x0}, {0x10EFD, 0x10EFF, TOK_OV_TEXT, 0x0},
    {0x10F46, 0x10F50, TOK_OV_TEXT, 0x0}, {0x10F55, 0x10F59, TOK_OV_TEXT, 0x0},
    {0x10F82, 0x10F89, TOK_OV_TEXT, 0x0}, {0x11070, 0x11070, TOK_OV_TEXT, 0x0},
    {0x11073, 0x11074, TOK_OV_TEXT, 0x0}, {0x110C2, 0x110C2, TOK_OV_TEXT, 0x0},
    {0x110CD, 0x110CD, TOK_OV_TEXT, 0x0}, {0x111C9, 0x111C9, TOK_OV_PUNCT, 0x0},
    {0x111CF, 0x111CF, TOK_OV_TEXT, 0x0}, {0x1123E, 0x1123E, TOK_OV_TEXT, 0x0},
    {0x11241, 0x11241, TOK_OV_TEXT, 0x0}, {0x1133B, 0x1133B, TOK_OV_TEXT, 0x0},
    {0x11438, 0x1143F, TOK_OV_TEXT, 0x0}, {0x11442, 0x11444, TOK_OV_TEXT, 0x0},
    {0x11446, 0x11446, TOK_OV_TEXT, 0x0}, {0x1144B, 0x1144F, TOK_OV_TEXT, 0x0},
    {0x1145A, 0x1145B, TOK_OV_TEXT, 0x0}, {0x1145D, 0x1145E, TOK_OV_TEXT, 0x0},
    {0x11660, 0x1166C, TOK_OV_TEXT, 0x0}, {0x116B9, 0x116B9, TOK_OV_TEXT, 0x0},
    {0x1182F, 0x11837, TOK_OV_TEXT, 0x0}, {0x11839, 0x1183B, TOK_OV_TEXT, 0x0},
    {0x11938, 0x11938, TOK_OV_TEXT, 0x0}, {0x1193B, 0x1193C, TOK_OV_TEXT, 0x0},
    {0x1193E, 0x1193E, TOK_OV_TEXT, 0x0}, {0x11943, 0x11946, TOK_OV_TEXT, 0x0},
    {0x119D4, 0x119D7, TOK_OV_TEXT, 0x0}, {0x119DA, 0x119DB, TOK_OV_TEXT, 0x0},
    {0x119E0, 0x119E0, TOK_OV_TEXT, 0x0}, {0x119E2, 0x119E2, TOK_OV_TEXT, 0x0},
    {0x11A01, 0x11A0A, TOK_OV_TEXT, 0x0}, {0x11A33, 0x11A38, TOK_OV_TEXT, 0x0},
    {0x11A3B, 0x11A47, TOK_OV_TEXT, 0x0}, {0x11A51, 0x11A56, TOK_OV_TEXT, 0x0},
    {0x11A59, 0x11A5B, TOK_OV_TEXT, 0x0}, {0x11A8A, 0x11A96, TOK_OV_TEXT, 0x0},
    {0x11A98, 0x11A9C, TOK_OV_TEXT, 0x0}, {0x11A9E, 0x11AA2, TOK_OV_TEXT, 0x0},
    {0x11B00, 0x11B09, TOK_OV_TEXT, 0x0}, {0x11C30, 0x11C36, TOK_OV_TEXT, 0x0},
    {0x11C38, 0x11C3D, TOK_OV_TEXT, 0x0}, {0x11C3F, 0x11C3F, TOK_OV_TEXT, 0x0},
    {0x11C41, 0x11C45, TOK_OV_TEXT, 0x0}, {0x11C70, 0x11C71, TOK_OV_TEXT, 0x0},
    {0x11C92, 0x11CA7, TOK_OV_TEXT, 0x0}, {0x11CAA, 0x11CB0, TOK_OV_TEXT, 0x0},
    {0x11CB2, 0x11CB3, TOK_OV_TEXT, 0x0}, {0x11CB5, 0x11CB6, TOK_OV_TEXT, 0x0},
    {0x11D31, 0x11D36, TOK_OV_TEXT, 0x0}, {0x11D3A, 0x11D3A, TOK_OV_TEXT, 0x0},
    {0x11D3C, 0x11D3D, TOK_OV_TEXT, 0x0}, {0x11D3F, 0x11D45, TOK_OV_TEXT, 0x0},
    {0x11D47, 0x11D47, TOK_OV_TEXT, 0x0}, {0x11D90, 0x11D91, TOK_OV_TEXT, 0x0},
    {0x11D95, 0x11D95, TOK_OV_TEXT, 0x0}, {0x11D97, 0x11D97, TOK_OV_TEXT, 0x0},
    {0x11EF3, 0x11EF4, TOK_OV_TEXT, 0x0}, {0x11EF7, 0x11EF8, TOK_OV_TEXT, 0x0},
    {0x11F00, 0x11F01, TOK_OV_TEXT, 0x0}, {0x11F36, 0x11F3A, TOK_OV_TEXT, 0x0},
    {0x11F40, 0x11F40, TOK_OV_TEXT, 0x0}, {0x11F42, 0x11F4F, TOK_OV_TEXT, 0x0},
    {0x11FFF, 0x11FFF, TOK_OV_TEXT, 0x0}, {0x12FF1, 0x12FF2, TOK_OV_TEXT, 0x0},
    {0x13430, 0x13440, TOK_OV_TEXT, 0x0}, {0x13447, 0x13455, TOK_OV_TEXT, 0x0},
    {0x16E97, 0x16E9A, TOK_OV_TEXT, 0x0}, {0x16EA0, 0x16EA0, TOK_OV_LOWER, 0x16EBB},
    {0x16EA1, 0x16EA1, TOK_OV_LOWER, 0x16EBC}, {0x16EA2, 0x16EA2, TOK_OV_LOWER, 0x16EBD},
    {0x16EA3, 0x16EA3, TOK_OV_LOWER, 0x16EBE}, {0x16EA4, 0x16EA4, TOK_OV_LOWER, 0x16EBF},
    {0x16EA5, 0x16EA5, TOK_OV_LOWER, 0x16EC0}, {0x16EA6, 0x16EA6, TOK_OV_LOWER, 0x16EC1},
    {0x16EA7, 0x16EA7, TOK_OV_LOWER, 0x16EC2}, {0x16EA8, 0x16EA8, TOK_OV_LOWER, 0x16EC3},
    {0x16EA9, 0x16EA9, TOK_OV_LOWER, 0x16EC4}, {0x16EAA, 0x16EAA, TOK_OV_LOWER, 0x16EC5},
    {0x16EAB, 0x16EAB, TOK_OV_LOWER, 0x16EC6}, {0x16EAC, 0x16EAC, TOK_OV_LOWER, 0x16EC7},
    {0x16EAD, 0x16EAD, TOK_OV_LOWER, 0x16EC8}, {0x16EAE, 0x16EAE, TOK_OV_LOWER, 0x16EC9},
    {0x16EAF, 0x16EAF, TOK_OV_LOWER, 0x16ECA}, {0x16EB0, 0x16EB0, TOK_OV_LOWER, 0x16ECB},
    {0x16EB1, 0x16EB1, TOK_OV_LOWER, 0x16ECC}, {0x16EB2, 0x16EB2, TOK_OV_LOWER, 0x16ECD},
    {0x16EB3, 0x16EB3, TOK_OV_LOWER, 0x16ECE}, {0x16EB4, 0x16EB4, TOK_OV_LOWER, 0x16ECF},
    {0x16EB5, 0x16EB5, TOK_OV_LOWER, 0x16ED0}, {0x16EB6, 0x16EB6, TOK_OV_LOWER, 0x16ED1},
    {0x16EB7, 0x16EB7, TOK_OV_LOWER, 0x16ED2}, {0x16EB8, 0x16EB8, TOK_OV_LOWER, 0x16ED3},
    {0x16F4F, 0x16F4F, TOK_OV_TEXT, 0x0}, {0x16FE2, 0x16FE2, TOK_OV_TEXT, 0x0},
    {0x16FE4, 0x16FE4, TOK_OV_TEXT, 0x0}, {0x1CF00, 0x1CF2D, TOK_OV_TEXT, 0x0},
    {0x1CF30, 0x1CF46, TOK_OV_TEXT, 0x0}, {0x1E000, 0x1E006, TOK_OV_TEXT, 0x0},
    {0x1E008, 0x1E018, TOK_OV_TEXT, 0x0}, {0x1E01B, 0x1E021, TOK_OV_TEXT, 0x0},
    {0x1E023, 0x1E024, TOK_OV_TEXT, 0x0}, {0x1E026, 0x1E02A, TOK_OV_TEXT, 0x0},
    {0x1E08F, 0x1E08F, TOK_OV_TEXT, 0x0}, {0x1E130, 0x1E136, TOK_OV_TEXT, 0x0},
    {0x1E2AE, 0x1E2AE, TOK_OV_TEXT, 0x0}, {0x1E2EC, 0x1E2EF, TOK_OV_TEXT, 0x0},
    {0x1E4EC, 0x1E4EF, TOK_OV_TEXT, 0x0}, {0x1E944, 0x1E94A, TOK_OV_TEXT, 0x0},
    {0x1E95E, 0x1E95F, TOK_OV_TEXT, 0x0},
};

static const struct tok_ov *tok_ov_find(int32_t c)
{
    size_t lo = 0, hi = sizeof tok_ov_table / sizeof tok_ov_table[0];
    if (c < tok_ov_table[0].lo)
        return NULL;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < tok_ov_table[mid].lo)
            hi = mid;
        else if (c > tok_ov_table[mid].hi)
            lo = mid + 1;
        else
            return &tok_ov_table[mid];
    }
    return NULL;
}

/* Class of a raw (input) code point, non-ASCII. */
static enum tok_cls tok_raw_cls(int32_t c)
{
    if (c == 0xFFFD)
        return TOK_CLS_DROP;
    utf8proc_category_t cat = utf8proc_category(c);
    if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
        cat == UTF8PROC_CATEGORY_CS)
        return TOK_CLS_DROP;
    if (tok_is_space(c))
        return TOK_CLS_SPACE;
    if (tok_is_cjk(c))
        return TOK_CLS_CJK;
    return TOK_CLS_TEXT;
}

/* NFD of c, combining marks (Mn) dropped, lower-cased: into out[], count returned. */
static int tok_fold(int32_t c, int32_t out[TOK_NFD_MAX])
{
    utf8proc_int32_t d[TOK_NFD_MAX];
    int bound = 0;
    utf8proc_ssize_t nd = utf8proc_decompose_char(c, d, TOK_NFD_MAX, UTF8PROC_DECOMPOSE, &bound);
    if (nd <= 0 || nd > TOK_NFD_MAX) { /* cannot happen for valid code points */
        d[0] = c;
        nd = 1;
    }
    int n = 0;
    for (utf8proc_ssize_t i = 0; i < nd; i++) {
        if (utf8proc_category(d[i]) == UTF8PROC_CATEGORY_MN)
            continue;
        out[n++] = utf8proc_tolower(d[i]);
    }
    return n;
}

/* ---- the streaming tokeniser: one driver, two sinks (ids or words) ---- */

struct tok_run {
    const wrk_tok_t *tok;
    /* ids sink */
    int32_t *ids;
    int n_ids, limit; /* limit: ids before [SEP] */
    char word[TOK_WORD_BYTES];
    uint16_t off[WRK_TOK_MAX_WORD_CHARS + 2]; /* off[i]: byte end of char i-1; off[0] = 0 */
    int nchars;
    /* words sink (wrk_tok_pretokenize) when out != NULL */
    char *out;
    size_t cap, len;
};

/* Append id; returns 1 when the id budget is spent. */
static inline int tok_emit(struct tok_run *r, int32_t id)
{
    r->ids[r->n_ids++] = id;
    return r->n_ids >= r->limit;
}

/* WordPiece on r->word: greedy longest match first, "##" on continuations. */
static int tok_word_flush(struct tok_run *r)
{
    int nc = r->nchars;
    if (nc == 0)
        return 0;
    r->nchars = 0;
    if (r->out != NULL) {
        if (r->len >= r->cap)
            return -1;
        r->out[r->len++] = '\n';
        return 0;
    }
    const wrk_tok_t *tok = r->tok;
    if (nc > WRK_TOK_MAX_WORD_CHARS)
        return tok_emit(r, tok->unk);
    int32_t pieces[WRK_TOK_MAX_WORD_CHARS];
    uint64_t hs[WRK_TOK_MAX_WORD_CHARS + 1];
    int np = 0;
    for (int start = 0; start < nc;) {
        bool pfx = start > 0;
        uint64_t h = pfx ? tok_fnv(TOK_FNV_BASIS, "##", 2) : TOK_FNV_BASIS;
        size_t b0 = r->off[start], budget = tok->max_tok_bytes - (pfx ? 2 : 0);
        int last = start;
        for (int e = start + 1; e <= nc && r->off[e] - b0 <= budget; e++) {
            h = tok_fnv(h, r->word + r->off[e - 1], r->off[e] - r->off[e - 1]);
            hs[e] = h;
            last = e;
        }
        int32_t id = -1;
        int e = last;
        for (; e > start; e--) {
            id = tok_lookup_h(tok, hs[e], pfx, r->word + b0, r->off[e] - b0);
            if (id >= 0)
                break;
        }
        if (id < 0)
            return tok_emit(r, tok->unk);
        pieces[np++] = id;
        start = e;
    }
    for (int i = 0; i < np; i++)
        if (tok_emit(r, pieces[i]))
            return 1;
    return 0;
}

static inline int tok_word_add(struct tok_run *r, int32_t c)
{
    if (r->out != NULL) {
        if (r->cap - r->len < 4)
            return -1;
        r->len += (size_t)tok_utf8_put(r->out + r->len, c);
        r->nchars = 1;
        return 0;
    }
    if (r->nchars < WRK_TOK_MAX_WORD_CHARS) {
        int k = tok_utf8_put(r->word + r->off[r->nchars], c);
        r->off[r->nchars + 1] = (uint16_t)(r->off[r->nchars] + k);
    }
    if (r->nchars <= WRK_TOK_MAX_WORD_CHARS)
        r->nchars++; /* WRK_TOK_MAX_WORD_CHARS + 1 means "too long" */
    return 0;
}

/* A word made of one thing (punctuation, CJK, an added token). */
static int tok_single(struct tok_run *r, const int32_t *cps, int n, int32_t id)
{
    int rc = tok_word_flush(r);
    if (rc != 0)
        return rc;
    if (r->out == NULL && id >= 0)
        return tok_emit(r, id);
    for (int i = 0; i < n; i++)
        if (tok_word_add(r, cps[i]) != 0)
            return -1;
    return tok_word_flush(r);
}

/* Returns 0 at the end of text, 1 when the id budget is spent, -1 when out is full. */
static int tok_run_text(struct tok_run *r, const unsigned char *s, size_t n)
{
    const wrk_tok_t *tok = r->tok;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        int32_t c = s[i];
        if (c == '[') {
            const struct tok_special *sp = NULL;
            for (int k = 0; k < tok->n_special; k++)
                if (n - i >= tok->special[k].len && memcmp(s + i, tok->special[k].text, tok->special[k].len) == 0)
                    sp = &tok->special[k];
            if (sp != NULL) {
                int32_t cps[8];
                for (size_t k = 0; k < sp->len; k++)
                    cps[k] = (unsigned char)sp->text[k];
                rc = tok_single(r, cps, (int)sp->len, sp->id);
                i += sp->len;
                continue;
            }
        }
        enum tok_cls cls;
        if (c < 0x80) {
            i++;
            cls = tok_ascii_cls[c];
            if (cls == TOK_CLS_TEXT) {
                if (c >= 'A' && c <= 'Z')
                    c += 'a' - 'A';
                rc = tok_word_add(r, c);
                continue;
            }
        } else {
            i += (size_t)tok_utf8_get(s + i, &c);
            const struct tok_ov *ov = tok_ov_find(c);
            if (ov != NULL) {
                if (ov->kind == TOK_OV_PUNCT)
                    rc = tok_single(r, &c, 1, -1);
                else if (ov->kind != TOK_OV_DROP)
                    rc = tok_word_add(r, ov->kind == TOK_OV_LOWER ? ov->map : c);
                continue;
            }
            cls = tok_raw_cls(c);
        }
        if (cls == TOK_CLS_DROP)
            continue;
        if (cls == TOK_CLS_SPACE) {
            rc = tok_word_flush(r);
            continue;
        }
        if (cls == TOK_CLS_PUNCT) { /* ASCII punctuation */
            rc = tok_single(r, &c, 1, -1);
            continue;
        }
        int32_t f[TOK_NFD_MAX];
        int nf = tok_fold(c, f);
        if (cls == TOK_CLS_CJK) {
            rc = tok_single(r, f, nf, -1);
            continue;
        }
        for (int k = 0; k < nf && rc == 0; k++) {
            if (tok_is_space(f[k]))
                rc = tok_word_flush(r);
            else if (tok_is_punct(f[k]))
                rc = tok_single(r, &f[k], 1, -1);
            else
                rc = tok_word_add(r, f[k]);
        }
    }
    if (rc == 0)
        rc = tok_word_flush(r);
    return rc;
}

int wrk_tok_encode(const wrk_tok_t *tok, const char *text, size_t len, int max_len, int32_t *ids,
                   int32_t *n_ids, struct err *err)
{
    if (n_ids != NULL)
        *n_ids = 0;
    if (tok == NULL || (text == NULL && len > 0) || ids == NULL || n_ids == NULL)
        return err_set(err, EINVAL, "tokenise: null argument");
    if (max_len < 2)
        return err_set(err, EINVAL, "tokenise: max_len %d, min 2 ([CLS] and [SEP])", max_len);
    if (tok_utf8_check((const unsigned char *)text, len, err) != 0)
        return -1;
    struct tok_run r;
    r.tok = tok;
    r.ids = ids;
    r.n_ids = 0;
    r.limit = max_len - 1;
    r.off[0] = 0;
    r.nchars = 0;
    r.out = NULL;
    ids[r.n_ids++] = tok->cls;
    if (r.n_ids < r.limit)
        tok_run_text(&r, (const unsigned char *)text, len);
    ids[r.n_ids++] = tok->sep;
    *n_ids = r.n_ids;
    return 0;
}

int wrk_tok_pretokenize(const wrk_tok_t *tok, const char *text, size_t len, char *out, size_t cap,
                        size_t *out_len, struct err *err)
{
    if (tok == NULL || (text == NULL && len > 0) || (out == NULL && cap > 0) || out_len == NULL)
        return err_set(err, EINVAL, "pretokenise: null argument");
    *out_len = 0;
    if (tok_utf8_check((const unsigned char *)text, len, err) != 0)
        return -1;
    char dummy;
    struct tok_run r;
    r.tok = tok;
    r.nchars = 0;
    r.out = out != NULL ? out : &dummy;
    r.cap = cap;
    r.len = 0;
    if (tok_run_text(&r, (const unsigned char *)text, len) != 0)
        return err_set(err, ENOSPC, "pretokenise: output over %zu bytes", cap);
    *out_len = r.len;
    return 0;
}

int wrk_tok_encode_batch(const wrk_tok_t *tok, const char *const *texts, const size_t *lens, int B,
                         int max_len, bool pad_to_max, int32_t *ids, int32_t *mask, int32_t *lens_out,
                         int *T, struct err *err)
{
    if (tok == NULL || (B > 0 && (texts == NULL || lens == NULL || ids == NULL || mask == NULL)) ||
        T == NULL)
        return err_set(err, EINVAL, "tokenise batch: null argument");
    if (B < 0 || max_len < 2)
        return err_set(err, EINVAL, "tokenise batch: B %d, max_len %d", B, max_len);
    /* Pass 1 encodes row b at ids + b * max_len and parks its length in the last
     * slot of its own max_len-sized mask region. Pass 2 lays rows out with stride
     * t <= max_len in increasing b. N.B. row b's new ids and mask regions end at or
     * before its old ones, so pass 2 never overwrites a row or length not yet read. */
    int t_max = 2;
    for (int b = 0; b < B; b++) {
        int32_t n = 0;
        if (wrk_tok_encode(tok, texts[b], lens[b], max_len, ids + (size_t)b * max_len, &n, err) != 0)
            return err_prefix(err, "text %d", b);
        mask[(size_t)b * max_len + max_len - 1] = n;
        if (n > t_max)
            t_max = n;
    }
    int t = pad_to_max ? max_len : t_max;
    for (int b = 0; b < B; b++) {
        int32_t n = mask[(size_t)b * max_len + max_len - 1];
        if (lens_out != NULL)
            lens_out[b] = n;
        int32_t *dst = ids + (size_t)b * t, *m = mask + (size_t)b * t;
        if (t != max_len)
            memmove(dst, ids + (size_t)b * max_len, (size_t)n * sizeof *dst);
        for (int k = 0; k < t; k++) {
            if (k >= n)
                dst[k] = tok->pad;
            m[k] = k < n;
        }
    }
    *T = t;
    return 0;
}
