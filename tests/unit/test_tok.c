/* test_tok.c: the WordPiece tokeniser (worker/wrk_tok.c) against HF `tokenizers`.
 *
 * Golden data in tests/data/tok/ comes from tests/tools/gen_tok_golden.py
 * (see tests/tools/README.md); run from the repository root.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/wrk_tok.h"

#define DATA "tests/data/tok/"
#define VOCAB DATA "vocab.txt"

static wrk_tok_t *tok; /* shared by the tests: also exercises "encode on a shared const handle" */

static int group_setup(void **state)
{
    (void)state;
    struct err err = {0};
    tok = wrk_tok_create(VOCAB, &err);
    if (tok == NULL)
        fprintf(stderr, "wrk_tok_create(%s): %s\n", VOCAB, err.msg);
    return tok == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    wrk_tok_destroy(tok);
    return 0;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    buf[sz] = '\0';
    fclose(f);
    *n = (size_t)sz;
    return buf;
}

/* Lines of a file split on '\n' only (corpus lines may hold \r, NUL, U+2028). */
struct lines {
    char *buf;
    size_t n;
    const char **s;
    size_t *len;
};

static void lines_load(struct lines *l, const char *path)
{
    size_t n;
    l->buf = slurp(path, &n);
    l->n = 0;
    for (size_t i = 0; i < n; i++)
        l->n += l->buf[i] == '\n';
    l->s = malloc(l->n * sizeof *l->s);
    l->len = malloc(l->n * sizeof *l->len);
    assert_true(l->s != NULL && l->len != NULL);
    size_t k = 0, start = 0;
    for (size_t i = 0; i < n; i++)
        if (l->buf[i] == '\n') {
            l->s[k] = l->buf + start;
            l->len[k++] = i - start;
            start = i + 1;
        }
}

static void lines_free(struct lines *l)
{
    free(l->buf);
    free(l->s);
    free(l->len);
}

static int parse_ids(const char *s, size_t len, int32_t *ids, int cap)
{
    int n = 0;
    const char *end = s + len;
    while (s < end) {
        char *next;
        long v = strtol(s, &next, 10);
        if (next == s)
            break;
        assert_true(n < cap);
        ids[n++] = (int32_t)v;
        s = next;
    }
    return n;
}

static void ids_print(const char *what, const int32_t *ids, int n)
{
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Checks corpus lines [from, to) step `step`; returns the first bad line (1-based) or 0. */
static size_t corpus_check(const struct lines *corpus, const struct lines *exp, size_t from, size_t step,
                           bool verbose)
{
    int32_t got[WRK_TOK_MAX_LEN_DEFAULT], want[WRK_TOK_MAX_LEN_DEFAULT];
    for (size_t i = from; i < corpus->n; i += step) {
        struct err err = {0};
        int32_t n = 0;
        int rc = wrk_tok_encode(tok, corpus->s[i], corpus->len[i], WRK_TOK_MAX_LEN_DEFAULT, got, &n, &err);
        int nw = parse_ids(exp->s[i], exp->len[i], want, WRK_TOK_MAX_LEN_DEFAULT);
        if (rc != 0 || n != nw || memcmp(got, want, (size_t)n * sizeof *got) != 0) {
            if (verbose) {
                fprintf(stderr, "corpus line %zu: %s\n", i + 1, rc ? err.msg : "ids differ");
                ids_print("expected (HF)", want, nw);
                ids_print("got", got, n);
            }
            return i + 1;
        }
    }
    return 0;
}

/* wrk_tok_encode(every corpus line) equals HF tokenizers' ids */
static void test_corpus_golden(void **state)
{
    (void)state;
    struct lines corpus, exp;
    lines_load(&corpus, DATA "corpus.txt");
    lines_load(&exp, DATA "expected.txt");
    assert_int_equal(corpus.n, exp.n);
    assert_true(corpus.n >= 2000);
    size_t bad = corpus_check(&corpus, &exp, 0, 1, true);
    if (bad != 0)
        fail_msg("corpus line %zu differs from HF (ids above)", bad);
    lines_free(&corpus);
    lines_free(&exp);
}

struct thread_arg {
    const struct lines *corpus, *exp;
    size_t from, step, bad;
};

static void *corpus_thread(void *p)
{
    struct thread_arg *a = p;
    a->bad = corpus_check(a->corpus, a->exp, a->from, a->step, false);
    return NULL;
}

/* wrk_tok_encode from 4 threads on one shared handle gives the golden ids */
static void test_corpus_threads(void **state)
{
    (void)state;
    struct lines corpus, exp;
    lines_load(&corpus, DATA "corpus.txt");
    lines_load(&exp, DATA "expected.txt");
    pthread_t th[4];
    struct thread_arg arg[4];
    for (int t = 0; t < 4; t++) {
        arg[t] = (struct thread_arg){.corpus = &corpus, .exp = &exp, .from = (size_t)t, .step = 4};
        assert_int_equal(pthread_create(&th[t], NULL, corpus_thread, &arg[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        if (arg[t].bad != 0)
            fail_msg("thread %d: corpus line %zu differs", t, arg[t].bad);
    }
    lines_free(&corpus);
    lines_free(&exp);
}

/* wrk_tok_pretokenize("a" c "a") equals HF's normaliser + pre-tokeniser for every code point */
static void test_codepoints(void **state)
{
    (void)state;
    struct lines cp;
    lines_load(&cp, DATA "codepoints.txt");
    int bad = 0;
    long checked = 0;
    for (size_t li = 0; li < cp.n; li++) {
        unsigned lo, hi;
        char kind;
        int pos = 0;
        char line[512];
        assert_true(cp.len[li] < sizeof line);
        memcpy(line, cp.s[li], cp.len[li]);
        line[cp.len[li]] = '\0';
        assert_int_equal(sscanf(line, "%x %x %c %n", &lo, &hi, &kind, &pos), 3);
        /* MAP for M and I: '.'-joined hex code points, possibly absent */
        char map[64];
        int nmap = 0;
        for (const char *m = line + pos; *m;) {
            char *next;
            unsigned long v = strtoul(m, &next, 16);
            if (next == m)
                break;
            char *d = map + nmap;
            if (v < 0x80) { *d = (char)v; nmap += 1; }
            else if (v < 0x800) { d[0] = (char)(0xC0 | (v >> 6)); d[1] = (char)(0x80 | (v & 0x3F)); nmap += 2; }
            else if (v < 0x10000) { d[0] = (char)(0xE0 | (v >> 12)); d[1] = (char)(0x80 | ((v >> 6) & 0x3F)); d[2] = (char)(0x80 | (v & 0x3F)); nmap += 3; }
            else { d[0] = (char)(0xF0 | (v >> 18)); d[1] = (char)(0x80 | ((v >> 12) & 0x3F)); d[2] = (char)(0x80 | ((v >> 6) & 0x3F)); d[3] = (char)(0x80 | (v & 0x3F)); nmap += 4; }
            m = *next == '.' ? next + 1 : next;
        }
        for (unsigned c = lo; c <= hi; c++) {
            if (c >= 0xD800 && c <= 0xDFFF)
                continue;
            char in[8], ch[4], want[96], got[96];
            int nch;
            if (c < 0x80) { ch[0] = (char)c; nch = 1; }
            else if (c < 0x800) { ch[0] = (char)(0xC0 | (c >> 6)); ch[1] = (char)(0x80 | (c & 0x3F)); nch = 2; }
            else if (c < 0x10000) { ch[0] = (char)(0xE0 | (c >> 12)); ch[1] = (char)(0x80 | ((c >> 6) & 0x3F)); ch[2] = (char)(0x80 | (c & 0x3F)); nch = 3; }
            else { ch[0] = (char)(0xF0 | (c >> 18)); ch[1] = (char)(0x80 | ((c >> 12) & 0x3F)); ch[2] = (char)(0x80 | ((c >> 6) & 0x3F)); ch[3] = (char)(0x80 | (c & 0x3F)); nch = 4; }
            in[0] = 'a';
            memcpy(in + 1, ch, (size_t)nch);
            in[1 + nch] = 'a';
            size_t nw = 0;
            switch (kind) {
            case 'T': nw = (size_t)sprintf(want, "a%.*sa\n", nch, ch); break;
            case 'D': nw = (size_t)sprintf(want, "aa\n"); break;
            case 'S': nw = (size_t)sprintf(want, "a\na\n"); break;
            case 'P': nw = (size_t)sprintf(want, "a\n%.*s\na\n", nch, ch); break;
            case 'M': nw = (size_t)sprintf(want, "a%.*sa\n", nmap, map); break;
            case 'I': nw = (size_t)sprintf(want, "a\n%.*s\na\n", nmap, map); break;
            default: fail_msg("codepoints.txt line %zu: kind %c", li + 1, kind);
            }
            struct err err = {0};
            size_t ng = 0;
            int rc = wrk_tok_pretokenize(tok, in, (size_t)(2 + nch), got, sizeof got, &ng, &err);
            if (rc != 0 || ng != nw || memcmp(got, want, nw) != 0) {
                if (bad++ < 20)
                    fprintf(stderr, "U+%04X (kind %c): want \"%.*s\" got \"%.*s\" %s\n", c, kind, (int)nw, want,
                            (int)ng, got, rc ? err.msg : "");
            }
            checked++;
        }
    }
    lines_free(&cp);
    assert_int_equal(checked, 0x110000 - 0x800);
    if (bad != 0)
        fail_msg("%d code points differ from HF (first 20 above; utf8proc version? see wrk_tok.c tok_ov_table)", bad);
}

static int encode_str(const char *s, int max_len, int32_t *ids, struct err *err)
{
    int32_t n = -1;
    if (wrk_tok_encode(tok, s, strlen(s), max_len, ids, &n, err) != 0)
        return -1;
    return n;
}

/* wrk_tok_encode(max_len) keeps [CLS] + the first max_len-2 pieces + [SEP] */
static void test_truncation(void **state)
{
    (void)state;
    struct err err = {0};
    const char *text = "the quick brown fox jumps over the lazy dog, unbelievably quickly!";
    int32_t full[WRK_TOK_MAX_LEN_DEFAULT], cut[16];
    int nf = encode_str(text, WRK_TOK_MAX_LEN_DEFAULT, full, &err);
    assert_true(nf > 10);
    for (int max_len = 2; max_len <= 10; max_len++) {
        int n = encode_str(text, max_len, cut, &err);
        assert_int_equal(n, max_len);
        assert_int_equal(cut[0], wrk_tok_cls_id(tok));
        assert_int_equal(cut[n - 1], wrk_tok_sep_id(tok));
        assert_memory_equal(cut, full, (size_t)(n - 1) * sizeof *cut);
    }
    /* a limit above the text's length changes nothing */
    int32_t big[512];
    assert_int_equal(encode_str(text, 512, big, &err), nf);
    assert_memory_equal(big, full, (size_t)nf * sizeof *big);
    /* empty text: [CLS] [SEP] */
    assert_int_equal(encode_str("", 2, cut, &err), 2);
    int32_t n = -1;
    assert_int_equal(wrk_tok_encode(tok, NULL, 0, 4, cut, &n, &err), 0);
    assert_int_equal(n, 2);
    /* max_len below 2 is a bad argument */
    assert_int_equal(wrk_tok_encode(tok, "a", 1, 1, cut, &n, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(n, 0);
}

/* a word over 100 code points after normalisation is one [UNK]; 100 is not */
static void test_long_word_unk(void **state)
{
    (void)state;
    struct err err = {0};
    char buf[4 * 202 + 1];
    int32_t ids[WRK_TOK_MAX_LEN_DEFAULT];
    memset(buf, 'x', 101);
    buf[101] = '\0';
    assert_int_equal(encode_str(buf, WRK_TOK_MAX_LEN_DEFAULT, ids, &err), 3);
    assert_int_equal(ids[1], wrk_tok_unk_id(tok));
    buf[100] = '\0';
    int n = encode_str(buf, WRK_TOK_MAX_LEN_DEFAULT, ids, &err);
    assert_true(n > 3);
    for (int i = 1; i < n - 1; i++)
        assert_int_not_equal(ids[i], wrk_tok_unk_id(tok));
    /* 100 x "e" + U+0301: 200 code points raw, 100 once the accents are stripped */
    size_t k = 0;
    for (int i = 0; i < 100; i++) {
        buf[k++] = 'e';
        buf[k++] = (char)0xCC;
        buf[k++] = (char)0x81;
    }
    buf[k] = '\0';
    n = encode_str(buf, WRK_TOK_MAX_LEN_DEFAULT, ids, &err);
    assert_true(n > 3);
    assert_int_not_equal(ids[1], wrk_tok_unk_id(tok));
    /* an over-long word among others: only it is [UNK] */
    memset(buf, 'y', 150);
    strcpy(buf + 150, " hello");
    memmove(buf + 6, buf, 157);
    memcpy(buf, "hello ", 6);
    n = encode_str(buf, WRK_TOK_MAX_LEN_DEFAULT, ids, &err);
    assert_int_equal(n, 5);
    assert_int_equal(ids[1], wrk_tok_token_id(tok, "hello", 5));
    assert_int_equal(ids[2], wrk_tok_unk_id(tok));
    assert_int_equal(ids[3], ids[1]);
}

/* wrk_tok_encode_batch pads to the longest row (or to max_len) with [PAD] and mask 0 */
static void test_batch_padding(void **state)
{
    (void)state;
    struct err err = {0};
    const char *texts[] = {"hello world", "", "a somewhat longer sentence, with punctuation!", "[MASK] café"};
    size_t lens[4];
    for (int b = 0; b < 4; b++)
        lens[b] = strlen(texts[b]);
    enum { B = 4, L = 32 };
    int32_t ids[B * L], mask[B * L], rl[B], one[L];
    for (int fixed = 0; fixed <= 1; fixed++) {
        int T = 0;
        assert_int_equal(wrk_tok_encode_batch(tok, texts, lens, B, L, fixed, ids, mask, rl, &T, &err), 0);
        int longest = 0;
        for (int b = 0; b < B; b++) {
            int n = encode_str(texts[b], L, one, &err);
            assert_int_equal(rl[b], n);
            if (n > longest)
                longest = n;
            assert_memory_equal(ids + b * T, one, (size_t)n * sizeof *one);
            for (int t = 0; t < T; t++) {
                assert_int_equal(mask[b * T + t], t < n);
                if (t >= n)
                    assert_int_equal(ids[b * T + t], wrk_tok_pad_id(tok));
            }
        }
        assert_int_equal(T, fixed ? L : longest);
    }
    /* a bad row fails the batch and is named */
    const char *bad[] = {"fine", "bad \xff byte"};
    size_t bad_len[] = {4, 10};
    int T = 0;
    assert_int_equal(wrk_tok_encode_batch(tok, bad, bad_len, 2, L, false, ids, mask, NULL, &T, &err), -1);
    assert_int_equal(err.code, EILSEQ);
    assert_non_null(strstr(err.msg, "text 1"));
    /* lens_out may be NULL; B = 0 is an empty batch */
    assert_int_equal(wrk_tok_encode_batch(tok, texts, lens, 2, L, false, ids, mask, NULL, &T, &err), 0);
    assert_int_equal(mask[0], 1);
    assert_int_equal(wrk_tok_encode_batch(tok, NULL, NULL, 0, L, false, NULL, NULL, NULL, &T, &err), 0);
}

/* invalid UTF-8 fails with EILSEQ naming the byte offset, never a crash */
static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        const char *off;
    } cases[] = {
        {"abc\xff", 4, "byte 3"},           /* never a lead byte */
        {"\x80" "abc", 4, "byte 0"},        /* stray continuation */
        {"ab\xc0\xaf", 4, "byte 2"},        /* overlong '/' */
        {"ab\xe0\x80\xaf", 5, "byte 3"},    /* overlong 3-byte */
        {"\xed\xa0\x80", 3, "byte 1"},      /* surrogate U+D800 */
        {"x\xf4\x90\x80\x80", 5, "byte 2"}, /* > U+10FFFF */
        {"hello \xe4\xb8", 8, "byte 6"},    /* cut at end of text */
        {"\xe4\x41\x80", 3, "byte 1"},      /* missing continuation */
        {"\xf0\x9f\x98\x41", 4, "byte 3"},  /* bad 4th byte */
        {"\xf8\x88\x80\x80\x80", 5, "byte 0"},
    };
    int32_t ids[WRK_TOK_MAX_LEN_DEFAULT];
    char words[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct err err = {0};
        int32_t n = -1;
        assert_int_equal(wrk_tok_encode(tok, cases[i].s, cases[i].len, WRK_TOK_MAX_LEN_DEFAULT, ids, &n, &err), -1);
        assert_int_equal(err.code, EILSEQ);
        assert_int_equal(n, 0);
        if (strstr(err.msg, cases[i].off) == NULL)
            fail_msg("case %zu: \"%s\" does not name %s", i, err.msg, cases[i].off);
        size_t nw = 1;
        assert_int_equal(wrk_tok_pretokenize(tok, cases[i].s, cases[i].len, words, sizeof words, &nw, &err), -1);
        assert_int_equal(err.code, EILSEQ);
    }
    /* validated beyond the truncation point too */
    char text[600];
    memset(text, 'a', sizeof text);
    for (size_t i = 1; i < sizeof text; i += 2)
        text[i] = ' ';
    text[599] = '\xff';
    struct err err = {0};
    int32_t n;
    assert_int_equal(wrk_tok_encode(tok, text, sizeof text, 8, ids, &n, &err), -1);
    assert_int_equal(err.code, EILSEQ);
    assert_non_null(strstr(err.msg, "byte 599"));
    /* embedded NUL is valid UTF-8 and dropped as in HF */
    assert_int_equal(wrk_tok_encode(tok, "a\0b", 3, 8, ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], wrk_tok_token_id(tok, "ab", 2));
}

/* wrk_tok_create(missing file) fails with ENOENT naming the path */
static void test_vocab_missing(void **state)
{
    (void)state;
    struct err err = {0};
    assert_null(wrk_tok_create("tests/data/tok/no-such-vocab.txt", &err));
    assert_int_equal(err.code, ENOENT);
    assert_non_null(strstr(err.msg, "no-such-vocab.txt"));
    assert_null(wrk_tok_create(NULL, &err));
    assert_int_equal(err.code, EINVAL);
    assert_null(wrk_tok_create("tests/data/tok", &err)); /* a directory */
    assert_int_equal(err.code, EINVAL);
    wrk_tok_destroy(NULL);
}

static char *vocab_tmp(const char *content)
{
    static char path[64];
    strcpy(path, "/tmp/moat-test-tok-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

/* wrk_tok_create(vocab without [SEP]) fails with EINVAL naming the token */
static void test_vocab_missing_special(void **state)
{
    (void)state;
    struct err err = {0};
    char *path = vocab_tmp("[PAD]\n[UNK]\n[CLS]\nhello\n");
    assert_null(wrk_tok_create(path, &err));
    assert_int_equal(err.code, EINVAL);
    assert_non_null(strstr(err.msg, "[SEP]"));
    unlink(path);
    path = vocab_tmp("");
    assert_null(wrk_tok_create(path, &err));
    assert_int_equal(err.code, EINVAL);
    unlink(path);
    /* CRLF lines, no final newline, no [MASK]: accepted; later duplicates win */
    path = vocab_tmp("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##lo\r\nhel\r\nhello");
    wrk_tok_t *t = wrk_tok_create(path, &err);
    unlink(path);
    assert_non_null(t);
    assert_int_equal(wrk_tok_vocab_size(t), 8);
    assert_int_equal(wrk_tok_mask_id(t), -1);
    assert_int_equal(wrk_tok_sep_id(t), 3);
    assert_int_equal(wrk_tok_token_id(t, "hello", 5), 7);
    int32_t ids[8], n;
    assert_int_equal(wrk_tok_encode(t, "HELLO hello, hello [MASK]", 25, 8, ids, &n, &err), 0);
    int32_t want[] = {2, 7, 7, 1, 7, 1, 1, 3}; /* ',' and '[', 'mask', ']' are not in this vocab */
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    assert_int_equal(wrk_tok_encode(t, "helo", 4, 8, ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 1); /* "hel" + "##o" is not covered: [UNK] */
    wrk_tok_destroy(t);
}

/* added tokens in the text ("[MASK]", "[SEP]") become those ids, as in HF */
static void test_added_tokens(void **state)
{
    (void)state;
    struct err err = {0};
    int32_t ids[16];
    int n = encode_str("a[MASK]b [mask]", 16, ids, &err);
    assert_int_equal(n, 8);
    assert_int_equal(ids[2], wrk_tok_mask_id(tok));
    assert_int_equal(ids[4], wrk_tok_token_id(tok, "[", 1));
    assert_int_equal(ids[5], wrk_tok_token_id(tok, "mask", 4));
    assert_int_equal(wrk_tok_cls_id(tok), 101);
    assert_int_equal(wrk_tok_sep_id(tok), 102);
    assert_int_equal(wrk_tok_unk_id(tok), 100);
    assert_int_equal(wrk_tok_pad_id(tok), 0);
    assert_int_equal(wrk_tok_mask_id(tok), 103);
    assert_int_equal(wrk_tok_vocab_size(tok), 30522);
}

/* null arguments fail with EINVAL; pretokenize reports a short buffer with ENOSPC */
static void test_bad_args(void **state)
{
    (void)state;
    struct err err = {0};
    int32_t ids[8], n;
    assert_int_equal(wrk_tok_encode(NULL, "a", 1, 8, ids, &n, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(wrk_tok_encode(tok, NULL, 1, 8, ids, &n, &err), -1);
    assert_int_equal(wrk_tok_encode(tok, "a", 1, 8, NULL, &n, &err), -1);
    assert_int_equal(wrk_tok_encode(tok, "a", 1, 8, ids, NULL, &err), -1);
    int T;
    assert_int_equal(wrk_tok_encode_batch(tok, NULL, NULL, 1, 8, false, ids, ids, NULL, &T, &err), -1);
    assert_int_equal(err.code, EINVAL);
    char out[4];
    size_t no;
    assert_int_equal(wrk_tok_pretokenize(tok, "hello world", 11, out, sizeof out, &no, &err), -1);
    assert_int_equal(err.code, ENOSPC);
    assert_int_equal(wrk_tok_token_id(tok, "no-such-token", 13), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_golden),
        cmocka_unit_test(test_corpus_threads),
        cmocka_unit_test(test_codepoints),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_long_word_unk),
        cmocka_unit_test(test_batch_padding),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_vocab_missing),
        cmocka_unit_test(test_vocab_missing_special),
        cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
