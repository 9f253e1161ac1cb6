/* bench_infer.c: end-to-end embedding throughput of moat's encoder, TP=1 in-process.
 *
 * Reads one document per line, tokenises (worker/wrk_tok.c) and embeds
 * (worker/wrk_bert.c, "cpu" backend) them in batches formed as
 * sentence-transformers forms them (sorted by character length, longest first,
 * padded to the longest in the batch), so that st_ref.py measures the same work.
 * Prints one JSON object on stdout:
 *   {"bench":"infer","impl":"moat","tp":1,"backend","threads","batch","max_len",
 *    "docs","tokens","time_s","docs_per_s","tokens_per_s","first_batch_s",
 *    "peak_rss_kib"}
 * tokens counts real tokens ([CLS]/[SEP] included, padding excluded). First the
 * first batch (the longest documents) runs untimed as the warm-up:
 * first_batch_s (time to first result after set-up). Then time_s covers
 * tokenisation and forward of every batch of all the documents, so docs and
 * tokens are the whole input, the same set that st_ref.py times and that
 * bench/infer/cluster.py's jobs embed.
 * --out FILE writes the embeddings of the timed pass, raw little-endian f32
 * [docs, dim] in input order, for run.sh to validate against sentence-transformers.
 * --tokens-only: no model forward; tokenise every document as the timed pass
 * would and print {"bench":"infer","case":"tokens","docs","tokens","max_len"}
 * (cluster.py counts the tokens of the documents a job embedded with it).
 * Usage: bench-infer --model DIR --input FILE [--backend cpu|cuda|ref] [--device N]
 *                    [--threads N] [--batch N] [--max-len N] [--out FILE] [--tokens-only]
 * (--device: the CUDA device index for --backend cuda; --threads: cpu only, 0 = all.)
 * Built by `make bench`; run by bench/infer/run.sh and cluster.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kernels/krn.h"
#include "worker/wrk_bert.h"
#include "shared/model.h"
#include "worker/wrk_tok.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const size_t *g_len;
static int by_len_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (g_len[x] != g_len[y])
        return g_len[x] < g_len[y] ? 1 : -1;
    return x - y;
}

static int die(const char *what, const struct err *err)
{
    fprintf(stderr, "bench-infer: %s: %s\n", what, err ? err->msg : strerror(errno));
    return 1;
}

/* count_tokens: the --tokens-only output; 0, or 1 after a message. */
static int count_tokens(wrk_tok_t *tok, char **docs, const size_t *lens, size_t n, int max_len)
{
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    int32_t *mask = malloc((size_t)max_len * sizeof *mask);
    struct err err = {0};
    long long tokens = 0;
    if (ids == NULL || mask == NULL)
        return die("tokens", &(struct err){ENOMEM, "out of memory"});
    for (size_t i = 0; i < n; i++) {
        const char *text = docs[i];
        int32_t got;
        int T;
        if (wrk_tok_encode_batch(tok, &text, &lens[i], 1, max_len, false, ids, mask, &got, &T,
                                 &err) != 0)
            return die("tokenise", &err);
        tokens += got;
    }
    printf("{\"bench\":\"infer\",\"case\":\"tokens\",\"docs\":%zu,\"tokens\":%lld,"
           "\"max_len\":%d}\n", n, tokens, max_len);
    free(ids);
    free(mask);
    return 0;
}

int main(int argc, char **argv)
{
    krn_cpu_process_init(argv); /* OpenBLAS at one thread from load on */
    const char *model_dir = "build/model", *input = NULL, *out_path = NULL, *backend = "cpu";
    int device = 0, threads = 0, batch = 32, max_len = WRK_TOK_MAX_LEN_DEFAULT;
    bool tokens_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--tokens-only")) {
            tokens_only = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "bench-infer: %s: missing value\n", a);
            return 2;
        }
        if (!strcmp(a, "--model"))
            model_dir = v;
        else if (!strcmp(a, "--input"))
            input = v;
        else if (!strcmp(a, "--out"))
            out_path = v;
        else if (!strcmp(a, "--backend"))
            backend = v;
        else if (!strcmp(a, "--device"))
            device = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else if (!strcmp(a, "--max-len"))
            max_len = atoi(v);
        else {
            fprintf(stderr, "bench-infer: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (input == NULL || batch < 1 || max_len < 2 || threads < 0) {
        fprintf(stderr, "usage: bench-infer --model DIR --input FILE [--backend NAME] "
                        "[--device N] [--threads N] [--batch N] [--max-len N] [--out FILE] "
                        "[--tokens-only]\n");
        return 2;
    }
    struct err err = {0};
    FILE *f = fopen(input, "rb");
    if (f == NULL)
        return die(input, NULL);
    size_t cap = 1024, n = 0;
    char **docs = malloc(cap * sizeof *docs);
    size_t *lens = malloc(cap * sizeof *lens);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t r;
    while ((r = getline(&line, &lcap, f)) >= 0) {
        if (r > 0 && line[r - 1] == '\n')
            r--;
        if (n == cap) {
            cap *= 2;
            docs = realloc(docs, cap * sizeof *docs);
            lens = realloc(lens, cap * sizeof *lens);
        }
        docs[n] = malloc((size_t)r + 1);
        memcpy(docs[n], line, (size_t)r);
        lens[n++] = (size_t)r;
    }
    free(line);
    fclose(f);
    if (n == 0)
        return die(input, &(struct err){EINVAL, "no documents"});

    model_t *model = model_open(model_dir, &err);
    if (model == NULL)
        return die("model", &err);
    wrk_tok_t *tok = wrk_tok_create(model_vocab_path(model), &err);
    if (tok != NULL && tokens_only)
        return count_tokens(tok, docs, lens, n, max_len);
    krn_backend_t *be = tok ? krn_backend_create(backend,
                                                   strcmp(backend, "cuda") ? threads : device,
                                                   &err) : NULL;
    model_shard_t *shard = be ? model_shard_extract(model, 1, 0, &err) : NULL;
    wrk_bert_t *m = shard ? wrk_bert_create(be, shard, batch, max_len, NULL, &err) : NULL;
    if (m == NULL)
        return die("set-up", &err);
    model_shard_destroy(shard);
    struct krn_device_info info;
    krn_backend_info(be, &info, &err);
    int dim = wrk_bert_dim(m);

    int *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = (int)i;
    g_len = lens;
    qsort(order, n, sizeof *order, by_len_desc);
    int32_t *ids = malloc((size_t)batch * max_len * sizeof *ids);
    int32_t *mask = malloc((size_t)batch * max_len * sizeof *mask);
    int32_t *got = malloc((size_t)batch * sizeof *got);
    const char **texts = malloc((size_t)batch * sizeof *texts);
    size_t *tl = malloc((size_t)batch * sizeof *tl);
    float *e = malloc((size_t)batch * dim * sizeof *e);
    float *all = out_path ? malloc(n * (size_t)dim * sizeof *all) : NULL;

    /* pass 0: the first batch alone, untimed (warm-up); pass 1: every batch, timed */
    double t_first = 0, t = 0;
    long long tokens = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t end = pass == 0 ? (n < (size_t)batch ? n : (size_t)batch) : n;
        double t0 = now_s();
        for (size_t at = 0; at < end; at += (size_t)batch) {
            int B = (int)(end - at < (size_t)batch ? end - at : (size_t)batch), T;
            for (int b = 0; b < B; b++) {
                texts[b] = docs[order[at + (size_t)b]];
                tl[b] = lens[order[at + (size_t)b]];
            }
            if (wrk_tok_encode_batch(tok, texts, tl, B, max_len, false, ids, mask, got, &T,
                                     &err) != 0)
                return die("tokenise", &err);
            if (wrk_bert_forward(m, ids, mask, B, T, e, &err) != 0)
                return die("forward", &err);
            if (pass == 0)
                continue;
            for (int b = 0; b < B; b++)
                tokens += got[b];
            if (all != NULL)
                for (int b = 0; b < B; b++)
                    memcpy(all + (size_t)order[at + (size_t)b] * dim, e + (size_t)b * dim,
                           (size_t)dim * sizeof *e);
        }
        if (pass == 0)
            t_first = now_s() - t0;
        else
            t = now_s() - t0;
    }
    size_t timed = n;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (all != NULL) {
        FILE *o = fopen(out_path, "wb");
        if (o == NULL || fwrite(all, sizeof *all, n * (size_t)dim, o) != n * (size_t)dim
            || fclose(o) != 0)
            return die(out_path, NULL);
    }
    printf("{\"bench\":\"infer\",\"impl\":\"moat\",\"tp\":1,\"backend\":\"%s\",\"threads\":%d,"
           "\"batch\":%d,\"max_len\":%d,\"docs\":%zu,\"tokens\":%lld,\"time_s\":%.4f,"
           "\"docs_per_s\":%.2f,\"tokens_per_s\":%.1f,\"first_batch_s\":%.4f,"
           "\"peak_rss_kib\":%ld,\"device\":\"%s\"}\n",
           krn_backend_name(be), info.multiprocessors, batch, max_len, timed, tokens, t,
           t > 0 ? timed / t : 0.0, t > 0 ? tokens / t : 0.0, t_first, ru.ru_maxrss, info.name);
    wrk_bert_destroy(m);
    krn_backend_destroy(be);
    wrk_tok_destroy(tok);
    model_destroy(model);
    for (size_t i = 0; i < n; i++)
        free(docs[i]);
    free(docs);
    free(lens);
    free(order);
    free(ids);
    free(mask);
    free(got);
    free(texts);
    free(tl);
    free(e);
    free(all);
    return 0;
}
