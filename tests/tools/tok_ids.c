/* tok_ids.c: the set of token ids that moat's tokeniser (worker/wrk_tok.c) gives
 * a set of documents; scripts/gpu-model.py keeps only those rows of the word
 * embedding table in the GPU test copy of the model.
 *
 * Usage: tok_ids VOCAB FILE...
 * Each FILE holds one document per line, split on '\n' only (as test_bert.c
 * and bench-infer read theirs; a last line without '\n' counts too). Every
 * document is tokenised whole, with no truncation (max_len = its byte length
 * + 2, which no token count can exceed), so the set holds the ids of any
 * max_len. [CLS], [SEP], [PAD], [UNK] and [MASK] (when the vocabulary has it)
 * are always in it.
 * Prints the distinct ids in increasing order, one a line, on stdout, and one
 * line of counts on stderr. Exit status: 0 done; 1 an unreadable file, a
 * document the tokeniser refuses (invalid UTF-8) or out of memory; 2 usage.
 * Build (no Makefile target; scripts/gpu-model.py does this itself):
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -I. tests/tools/tok_ids.c \
 *      worker/wrk_tok.c shared/err.c -lutf8proc -o tok_ids
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/wrk_tok.h"

static int tok_ids_file_add(const wrk_tok_t *tok, const char *path, unsigned char *seen,
                            long long *docs, long long *tokens)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "tok_ids: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0;
    int32_t *ids = NULL;
    size_t icap = 0;
    ssize_t r;
    long long lineno = 0;
    int rc = 0;
    while ((r = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (r > 0 && line[r - 1] == '\n')
            r--;
        size_t need = (size_t)r + 2;
        if (need > icap) {
            int32_t *p = realloc(ids, need * sizeof *ids);
            if (p == NULL || need > (size_t)INT32_MAX) {
                fprintf(stderr, "tok_ids: %s:%lld: out of memory\n", path, lineno);
                free(p != NULL ? p : ids);
                ids = NULL;
                rc = -1;
                break;
            }
            ids = p;
            icap = need;
        }
        struct err err = {0};
        int32_t n = 0;
        if (wrk_tok_encode(tok, line, (size_t)r, (int)need, ids, &n, &err) != 0) {
            fprintf(stderr, "tok_ids: %s:%lld: %s\n", path, lineno, err.msg);
            rc = -1;
            break;
        }
        for (int32_t i = 0; i < n; i++)
            seen[ids[i]] = 1;
        (*docs)++;
        *tokens += n;
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "tok_ids: %s: read error\n", path);
        rc = -1;
    }
    free(line);
    free(ids);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tok_ids VOCAB FILE...\n");
        return 2;
    }
    struct err err = {0};
    wrk_tok_t *tok = wrk_tok_create(argv[1], &err);
    if (tok == NULL) {
        fprintf(stderr, "tok_ids: %s\n", err.msg);
        return 1;
    }
    int32_t V = wrk_tok_vocab_size(tok);
    unsigned char *seen = calloc((size_t)V, 1);
    if (seen == NULL) {
        fprintf(stderr, "tok_ids: out of memory\n");
        wrk_tok_destroy(tok);
        return 1;
    }
    seen[wrk_tok_cls_id(tok)] = seen[wrk_tok_sep_id(tok)] = 1;
    seen[wrk_tok_pad_id(tok)] = seen[wrk_tok_unk_id(tok)] = 1;
    if (wrk_tok_mask_id(tok) >= 0)
        seen[wrk_tok_mask_id(tok)] = 1;
    long long docs = 0, tokens = 0;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++)
        if (tok_ids_file_add(tok, argv[i], seen, &docs, &tokens) != 0)
            rc = 1;
    long long distinct = 0;
    for (int32_t id = 0; rc == 0 && id < V; id++)
        if (seen[id]) {
            printf("%d\n", id);
            distinct++;
        }
    if (rc == 0)
        fprintf(stderr, "tok_ids: %lld documents, %lld tokens, %lld distinct ids of %d\n", docs,
                tokens, distinct, V);
    free(seen);
    wrk_tok_destroy(tok);
    return rc;
}
