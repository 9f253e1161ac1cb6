/* cli_infer.c: the CLI side of infer jobs: sending documents for `submit --infer`
 * (read by cli_input.c), exporting embeddings (`result --format npy|raw|jsonl`),
 * and `moat search`.
 *
 * NumPy .npy format: version 1.0 (magic "\x93NUMPY", 1, 0, u16 header length,
 * a Python dict literal padded with spaces to a multiple of 64 bytes and ending
 * in '\n'), then the little-endian f32 data in C order (numpy.lib.format docs).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "shared/jobspec.h"
#include "shared/text.h"
#include "shared/units.h"

/* doc_bytes: about the bytes a document takes in the blobs of SUBMIT and DOCS:
 * its text and id (or null) as JSON, a line number, and their commas. */
static size_t doc_bytes(const json_t *text, const json_t *id)
{
    size_t n = json_dumpb(text, NULL, 0, JSON_ENCODE_ANY) + 1;
    n += id ? json_dumpb(id, NULL, 0, JSON_ENCODE_ANY) + 1 : 5;
    return n + 21; /* a line number: at most 20 digits */
}

/* struct part: the documents of one SUBMIT or DOCS: texts, ids (null for
 * none), line numbers. */
struct part {
    json_t *texts, *ids, *lines;
    size_t bytes; /* doc_bytes of them */
};

static void part_clear(struct part *p)
{
    json_array_clear(p->texts);
    json_array_clear(p->ids);
    json_array_clear(p->lines);
    p->bytes = 0;
}

/* part_move: append from's documents to to's and empty from. */
static void part_move(struct part *to, struct part *from)
{
    json_array_extend(to->texts, from->texts);
    json_array_extend(to->ids, from->ids);
    json_array_extend(to->lines, from->lines);
    to->bytes += from->bytes;
    part_clear(from);
}

/* send_part: SUBMIT (spec taken; *id receives the job's) or, when spec is NULL,
 * DOCS to job *id, with p's documents, the job's from index first on; blobs
 * [documents, ids (null when no document of the input has one), lines]
 * (docs/protocol.md). An exit code. */
static int send_part(struct cli *cli, json_t *spec, const struct part *p, bool with_ids, size_t first,
                     uint64_t *id)
{
    char *t = json_dumps(p->texts, JSON_COMPACT);
    char *i = with_ids ? json_dumps(p->ids, JSON_COMPACT) : strdup("null");
    char *l = json_dumps(p->lines, JSON_COMPACT);
    struct proto_blob b[3] = {{t, t ? strlen(t) : 0}, {i, i ? strlen(i) : 0}, {l, l ? strlen(l) : 0}};
    json_t *reply = NULL;
    int rc;
    if (t == NULL || i == NULL || l == NULL) {
        json_decref(spec);
        rc = cli_fail(cli, CLI_FAILED, "out of memory");
    } else if (spec) {
        rc = cli_request_blobs(cli, PROTO_TYPE_SUBMIT, json_pack("{s:o}", "spec", spec), b, 3, true,
                               &reply, NULL, NULL);
        if (rc == CLI_OK)
            *id = (uint64_t)cli_json_int(reply, "id", 0);
    } else {
        rc = cli_request_blobs(cli, PROTO_TYPE_DOCS,
                               json_pack("{s:I, s:I}", "id", (json_int_t)*id, "first", (json_int_t)first),
                               b, 3, true, &reply, NULL, NULL);
    }
    json_decref(reply);
    free(t);
    free(i);
    free(l);
    return rc;
}

/* check_input: the first reading: the documents (or the bad line that stops
 * it), counted into *ndocs, and the largest batch of B in doc_bytes, its
 * first document's index into *big_at. An exit code. */
static int check_input(struct cli_docs *r, size_t B, size_t *ndocs, size_t *big, size_t *big_at)
{
    size_t n = 0, batch = 0;
    *big = *big_at = 0;
    json_t *text, *id;
    long lineno;
    int got;
    while ((got = cli_docs_next(r, &text, &id, &lineno)) == 1) {
        batch += doc_bytes(text, id);
        json_decref(text);
        json_decref(id);
        if (++n % B == 0) {
            if (batch > *big) {
                *big = batch;
                *big_at = n - B;
            }
            batch = 0;
        }
    }
    if (n % B != 0 && batch > *big) { /* the last batch, short */
        *big = batch;
        *big_at = n - n % B;
    }
    *ndocs = n;
    if (got < 0)
        return r->rc;
    if (n == 0)
        return cli_fail(r->cli, CLI_USAGE, "--input: %s: no documents", r->name);
    if (r->bad)
        fprintf(stderr, "moat %s: %s: %ld bad line%s skipped\n", r->cli->cmd, r->name, r->bad,
                r->bad == 1 ? "" : "s");
    if (r->blank)
        fprintf(stderr, "moat %s: %s: %ld empty line%s skipped (each result's \"line\" is its "
                "document's line number)\n", r->cli->cmd, r->name, r->blank, r->blank == 1 ? "" : "s");
    return CLI_OK;
}

/* send_input: the second reading: every document of r in parts of whole batches
 * of B, each part at most budget bytes (doc_bytes), the first with spec (taken)
 * as SUBMIT, the next as DOCS; *id the job's, *sent the documents acknowledged.
 * An exit code; the input changing between the readings is an error. */
static int send_input(struct cli *cli, struct cli_docs *r, json_t *spec, size_t ndocs, size_t B,
                      double budget, uint64_t *id, size_t *sent)
{
    struct part part = {json_array(), json_array(), json_array(), 0};
    struct part batch = {json_array(), json_array(), json_array(), 0};
    bool with_ids = r->any_id, tty = !cli->json && isatty(STDERR_FILENO);
    size_t n = 0;
    int rc = CLI_OK, got = 1;
    while (rc == CLI_OK && got == 1) {
        json_t *text = NULL, *id_v = NULL;
        long lineno = 0;
        if ((got = cli_docs_next(r, &text, &id_v, &lineno)) < 0) {
            rc = r->rc;
            break;
        }
        if (got == 1) {
            if (++n > ndocs) {
                json_decref(text);
                json_decref(id_v);
                break; /* said below */
            }
            batch.bytes += doc_bytes(text, id_v);
            json_array_append_new(batch.texts, text);
            json_array_append_new(batch.ids, id_v ? id_v : json_null());
            json_array_append_new(batch.lines, json_integer(lineno));
        }
        if (json_array_size(batch.texts) < B && got == 1)
            continue;
        if ((double)batch.bytes > budget) { /* the first reading found none such */
            rc = cli_fail(cli, CLI_FAILED, "--input: %s: changed while it was read", r->name);
            break;
        }
        /* a whole batch (or the last): it goes with the part, or after it */
        if (json_array_size(part.texts) > 0 && (double)(part.bytes + batch.bytes) > budget) {
            rc = send_part(cli, spec, &part, with_ids, *sent, id);
            spec = NULL;
            if (rc == CLI_OK) {
                *sent += json_array_size(part.texts);
                if (tty)
                    fprintf(stderr, "\rmoat %s: job %llu: %zu of %zu documents sent", cli->cmd,
                            (unsigned long long)*id, *sent, ndocs);
            }
            part_clear(&part);
        }
        part_move(&part, &batch);
    }
    if (rc == CLI_OK && n != ndocs)
        rc = cli_fail(cli, CLI_FAILED, "--input: %s: changed while it was read (%zu documents, then %s%zu)",
                      r->name, ndocs, n > ndocs ? "more than " : "", n > ndocs ? ndocs : n);
    if (rc == CLI_OK && json_array_size(part.texts) > 0) {
        bool parts = spec == NULL;
        rc = send_part(cli, spec, &part, with_ids, *sent, id);
        spec = NULL;
        if (rc == CLI_OK)
            *sent += json_array_size(part.texts);
        if (rc == CLI_OK && parts && tty)
            fprintf(stderr, "\rmoat %s: job %llu: %zu of %zu documents sent\n", cli->cmd,
                    (unsigned long long)*id, *sent, ndocs);
    }
    json_decref(spec); /* not sent */
    json_decref(part.texts);
    json_decref(part.ids);
    json_decref(part.lines);
    json_decref(batch.texts);
    json_decref(batch.ids);
    json_decref(batch.lines);
    if (rc != CLI_OK && tty && *sent > 0)
        fputc('\n', stderr);
    return rc;
}

int cli_infer_submit(struct cli *cli, json_t *spec, const char *input, int format, bool skip_bad,
                     bool wait)
{
    /* The controller's max_message (default 8 MiB) bounds one message; past it
     * libzmq drops the connection, which would look like an unreachable
     * controller. Documents that do not fit one go in parts of whole batches:
     * the SUBMIT with the first, DOCS with each next (docs/protocol.md). */
    const char *lim = getenv("MOAT_MAX_MESSAGE");
    char *end = NULL;
    double limit = lim ? strtod(lim, &end) : 8.0 * 1048576;
    if (lim && (end == lim || *end != '\0' || !(limit >= 65536))) {
        json_decref(spec);
        return cli_fail(cli, CLI_USAGE, "MOAT_MAX_MESSAGE: '%s': expected bytes, at least 65536 (the "
                        "controller's max_message)", lim);
    }
    double budget = limit - 16384; /* the header and the spec (a few KiB) */
    size_t B = (size_t)cli_json_int(spec, "batch", 64), ndocs = 0, big = 0, big_at = 0;
    struct cli_docs r;
    int rc = cli_docs_open(cli, input, format, skip_bad, &r);
    if (rc == CLI_OK)
        rc = check_input(&r, B, &ndocs, &big, &big_at);
    if (rc == CLI_OK && (double)big > budget)
        rc = cli_fail(cli, CLI_USAGE, "--input: %s: documents %zu..%zu (a batch of --batch %zu) take "
                      "%.2f MiB, more than one message holds (%.2f MiB of the controller's "
                      "max_message, %.2f MiB): lower --batch, or raise max_message and set "
                      "MOAT_MAX_MESSAGE (bytes)", r.name, big_at + 1,
                      big_at + B < ndocs ? big_at + B : ndocs, B, (double)big / 1048576.0,
                      budget / 1048576.0, limit / 1048576.0);
    if (rc != CLI_OK) {
        if (r.f)
            cli_docs_close(&r);
        json_decref(spec);
        return rc;
    }
    long blank = r.blank, bad = r.bad;
    json_object_set_new(spec, "ndocs", json_integer((json_int_t)ndocs));
    uint64_t id = 0;
    size_t sent = 0;
    if ((rc = cli_docs_rewind(&r)) == CLI_OK)
        rc = send_input(cli, &r, spec, ndocs, B, budget, &id, &sent);
    else
        json_decref(spec);
    cli_docs_close(&r);
    if (rc != CLI_OK && id != 0) {
        /* a job that would wait for documents that never come: cancelled now
         * (else the controller's documents_timeout would) */
        json_t *reply;
        if (cli_request(cli, PROTO_TYPE_CANCEL, json_pack("{s:[I]}", "ids", (json_int_t)id), false, &reply,
                        NULL, NULL) == CLI_OK) {
            json_decref(reply);
            fprintf(stderr, "moat %s: job %llu cancelled: %zu of its %zu documents were sent\n", cli->cmd,
                    (unsigned long long)id, sent, ndocs);
        }
        return rc;
    }
    if (rc != CLI_OK)
        return rc;
    json_t *extra = json_pack("{s:I, s:I, s:I}", "documents", (json_int_t)ndocs, "skipped_empty",
                              (json_int_t)blank, "skipped_bad", (json_int_t)bad);
    return cli_submitted_with(cli, id, wait, extra);
}

/* fetch_batch: embeddings and documents of batch b. Caller frees msg. */
static int fetch_batch(struct cli *cli, uint64_t id, long long b, struct proto_msg *msg, json_t **docs,
                       int *count, int *dim)
{
    json_t *reply;
    int rc = cli_request(cli, PROTO_TYPE_RESULT,
                         json_pack("{s:I, s:I, s:b}", "id", (json_int_t)id, "task", (json_int_t)b, "raw", 1),
                         true, &reply, msg, NULL);
    if (rc != CLI_OK)
        return rc;
    *count = (int)cli_json_int(reply, "count", 0);
    *dim = (int)cli_json_int(reply, "dim", 0);
    json_decref(reply);
    *docs = msg->nblobs == 2 ? json_loadb(msg->blobs[1].data, msg->blobs[1].len, 0, NULL) : NULL;
    if (*docs == NULL || *count <= 0 || *dim <= 0 || msg->blobs[0].len != (size_t)*count * (size_t)*dim * 4) {
        json_decref(*docs);
        proto_msg_clear(msg);
        return cli_fail(cli, CLI_FAILED, "job %llu batch %lld: malformed embeddings", (unsigned long long)id, b);
    }
    return CLI_OK;
}

/* done_batches: which of job id's batches are COMPLETED (SHOW, page by page,
 * tasks_state COMPLETED) into done[batches]. */
static int done_batches(struct cli *cli, uint64_t id, long long batches, bool *done)
{
    long long from = 0, asked = -1;
    for (;;) {
        json_t *reply;
        int rc = cli_request(cli, PROTO_TYPE_SHOW,
                             json_pack("{s:I, s:I, s:s}", "id", (json_int_t)id, "tasks_from",
                                       (json_int_t)from, "tasks_state", "COMPLETED"),
                             true, &reply, NULL, NULL);
        if (rc != CLI_OK)
            return rc;
        size_t i;
        const json_t *t;
        json_array_foreach(json_object_get(reply, "tasks"), i, t) {
            long long b = cli_json_int(t, "index", -1);
            if (b >= 0 && b < batches)
                done[b] = true;
        }
        const json_t *nx = json_object_get(reply, "tasks_next");
        from = json_is_integer(nx) ? json_integer_value(nx) : -1;
        json_decref(reply);
        if (from < 0)
            return CLI_OK;
        if ((rc = cli_next_check(cli, asked, from)) != CLI_OK)
            return rc;
        asked = from;
    }
}

/* ids_row: one line of the --ids file: row's input line and id (ids, lines:
 * the batch's arrays, i its place in them), or that it is missing. -1 when out
 * of memory. */
static int ids_row(FILE *f, long long row, const json_t *ids, const json_t *lines, int i, bool missing)
{
    json_t *o = json_pack("{s:I}", "index", (json_int_t)row);
    if (o == NULL)
        return -1;
    const json_t *lv = json_array_get(lines, (size_t)i), *idv = json_array_get(ids, (size_t)i);
    if (missing)
        json_object_set_new(o, "missing", json_true());
    if (json_is_integer(lv))
        json_object_set(o, "line", (json_t *)lv);
    if (idv && !json_is_null(idv))
        json_object_set(o, "id", (json_t *)idv);
    json_dumpf(o, f, JSON_COMPACT);
    fputc('\n', f);
    json_decref(o);
    return 0;
}

int cli_infer_result(struct cli *cli, uint64_t id, const json_t *meta, const char *fmt,
                     long long task, bool partial, FILE *out, const char *outpath, FILE *ids,
                     const char *idspath, json_t **summary)
{
    *summary = NULL;
    long long batches = cli_json_int(meta, "batches", 0), done = cli_json_int(meta, "done", 0);
    long long count = cli_json_int(meta, "count", 0), dim = cli_json_int(meta, "dim", 0);
    long long first = 0, row0 = 0;
    if (task >= 0) { /* one batch: meta is its reply (the controller refused an unfinished one) */
        first = task;
        batches = done = task + 1;
        row0 = task * cli_json_int(meta, "batch", 0);
    }
    if (fmt == NULL) { /* the metadata, to --out when given */
        if (cli->json && out == stdout) {
            cli_json_print(meta);
        } else if (cli->json) {
            json_dumpf(meta, out, JSON_COMPACT);
            fputc('\n', out);
        } else if (task >= 0)
            fprintf(out, "job %llu batch %lld: embeddings f32 [%lld, %lld] (documents %lld..%lld)\n"
                   "export: moat result %llu --task %lld --format npy --out FILE.npy  (or jsonl, raw)\n",
                   (unsigned long long)id, task, count, dim, row0, row0 + count - 1,
                   (unsigned long long)id, task);
        else if (dim == 0) /* no batch finished yet: the width is not known */
            fprintf(out, "job %llu: %lld documents, %lld of %lld batches done\n", (unsigned long long)id,
                   count, done, batches);
        else {
            fprintf(out, "job %llu: %lld documents, %lld of %lld batches done, embeddings f32 [%lld, %lld]\n",
                   (unsigned long long)id, count, done, batches, count, dim);
            if (done == batches)
                fprintf(out, "export: moat result %llu --format npy --out FILE.npy  (or jsonl, raw)\n",
                       (unsigned long long)id);
        }
        return CLI_OK;
    }
    bool *ok = NULL; /* --partial: which batches are there */
    if (done != batches && partial && task < 0) {
        if (done == 0 || dim == 0)
            return cli_fail(cli, CLI_FAILED, "job %llu: no batch done yet: nothing to export",
                            (unsigned long long)id);
        if ((ok = calloc((size_t)batches, sizeof *ok)) == NULL)
            return cli_fail(cli, CLI_FAILED, "out of memory");
        int rc = done_batches(cli, id, batches, ok);
        if (rc != CLI_OK) {
            free(ok);
            return rc;
        }
    } else if (done != batches) {
        const char *state = cli_json_str(meta, "state", "");
        bool over = strcmp(state, "CANCELLED") == 0 || strcmp(state, "FAILED") == 0 ||
                    strcmp(state, "TIMEOUT") == 0;
        if (over)
            return cli_fail(cli, CLI_FAILED, "job %llu is %s with %lld of %lld batches done; "
                            "--partial exports those (the others' rows NaN), --task I one",
                            (unsigned long long)id, state, done, batches);
        return cli_fail(cli, CLI_FAILED, "job %llu: %lld of %lld batches done; wait for the job first "
                        "(or --partial)", (unsigned long long)id, done, batches);
    }
    /* npy: header then the rows; raw: the rows alone (f32 [count, dim], little-endian) */
    bool npy = strcmp(fmt, "npy") == 0, raw = strcmp(fmt, "raw") == 0, bin = npy || raw;
    if (bin && out == stdout && isatty(1)) {
        free(ok);
        return cli_fail(cli, CLI_USAGE, "--format %s writes binary: give --out FILE.%s", fmt,
                        npy ? "npy" : "f32");
    }
    if (npy) {
        char dict[128];
        int hl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                          count, dim);
        int total = 10 + hl + 1, pad = (64 - total % 64) % 64;
        unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((hl + pad + 1) & 0xff),
                                  (unsigned char)((hl + pad + 1) >> 8)};
        fwrite(head, 1, sizeof head, out);
        fwrite(dict, 1, (size_t)hl, out);
        for (int i = 0; i < pad; i++)
            fputc(' ', out);
        fputc('\n', out);
    }
    long long row = row0, missing = 0, nmissing = 0, first_missing = -1;
    float *nanrow = NULL; /* --partial, npy: a row of NaN */
    long long bsize = cli_json_int(meta, "batch", 0);
    for (long long b = first; b < batches; b++) {
        if (ok && !ok[b]) { /* --partial: a batch not done */
            long long n = count - b * bsize < bsize ? count - b * bsize : bsize;
            if (bin && nanrow == NULL) {
                if ((nanrow = malloc((size_t)dim * sizeof *nanrow)) == NULL) {
                    free(ok);
                    return cli_fail(cli, CLI_FAILED, "out of memory");
                }
                for (long long k = 0; k < dim; k++)
                    nanrow[k] = __builtin_nanf("");
            }
            bool oom = false;
            for (long long r = 0; bin && r < n && !oom; r++) {
                fwrite(nanrow, sizeof *nanrow, (size_t)dim, out);
                oom = ids && ids_row(ids, row + r, NULL, NULL, 0, true) != 0;
            }
            if (oom) {
                free(ok);
                free(nanrow);
                return cli_fail(cli, CLI_FAILED, "out of memory");
            }
            row += n;
            missing += n;
            nmissing++;
            first_missing = first_missing < 0 ? b : first_missing;
            continue;
        }
        struct proto_msg msg;
        json_t *docs;
        int n, d;
        int rc = fetch_batch(cli, id, b, &msg, &docs, &n, &d);
        if (rc != CLI_OK) {
            free(ok);
            free(nanrow);
            return rc;
        }
        /* the rows the header promised of this batch: all of count for
         * --task (meta is the batch's own reply), else its share of the job */
        long long want = task >= 0 ? count : count - b * bsize < bsize ? count - b * bsize : bsize;
        if (d != dim || n != want) { /* the header promised [count, dim] */
            json_decref(docs);
            proto_msg_clear(&msg);
            free(ok);
            free(nanrow);
            return cli_fail(cli, CLI_FAILED, "job %llu batch %lld: %d rows of dimension %d where "
                            "%lld rows of dimension %lld were expected; nothing written",
                            (unsigned long long)id, b, n, d, want, dim);
        }
        const float *e = msg.blobs[0].data;
        if (bin) {
            fwrite(e, 4, (size_t)n * (size_t)d, out); /* x86-64 and aarch64 are little-endian */
            for (int i = 0; ids && i < n; i++) {
                if (ids_row(ids, row + i, json_object_get(docs, "ids"), json_object_get(docs, "lines"), i,
                            false) != 0) {
                    json_decref(docs);
                    proto_msg_clear(&msg);
                    free(ok);
                    free(nanrow);
                    return cli_fail(cli, CLI_FAILED, "out of memory");
                }
            }
            row += n;
        } else {
            const json_t *texts = json_object_get(docs, "texts"), *ids = json_object_get(docs, "ids");
            const json_t *lines = json_object_get(docs, "lines"); /* absent: jobs from before */
            for (int i = 0; i < n; i++, row++) {
                json_t *vec = json_array();
                for (int k = 0; k < d; k++)
                    json_array_append_new(vec, json_real(e[(size_t)i * (size_t)d + (size_t)k]));
                json_t *o = json_pack("{s:I, s:O, s:o}", "index", (json_int_t)row, "text",
                                      json_array_get(texts, (size_t)i), "embedding", vec);
                const json_t *idv = json_array_get(ids, (size_t)i);
                if (idv && !json_is_null(idv))
                    json_object_set(o, "id", (json_t *)idv);
                const json_t *lv = json_array_get(lines, (size_t)i);
                if (json_is_integer(lv))
                    json_object_set(o, "line", (json_t *)lv);
                /* 9 significant digits give back the same f32 (IEEE 754 binary32:
                 * FLT_DECIMAL_DIG); 17, a double's, only lengthen the file */
                json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(9));
                fputc('\n', out);
                json_decref(o);
            }
        }
        json_decref(docs);
        proto_msg_clear(&msg);
    }
    free(ok);
    free(nanrow);
    if (missing > 0) /* counted as exported (SHOW), not as RESULT said a moment before */
        fprintf(stderr, "moat result: job %llu: %lld of %lld batches not done (the first: batch %lld, "
                "documents %lld..); their %lld rows are %s\n", (unsigned long long)id,
                nmissing, batches, first_missing, first_missing * bsize, missing,
                bin ? "NaN" : "left out");
    long long rows = count - (bin ? 0 : missing);
    if (outpath && !cli->json)
        fprintf(stderr, "moat result: %lld embeddings of dimension %lld written to %s\n", rows, dim,
                outpath);
    if (idspath && !cli->json)
        fprintf(stderr, "moat result: the ids of those %lld rows written to %s\n", rows, idspath);
    if (outpath && cli->json) {
        *summary = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I}", "path", outpath, "format", fmt, "count",
                             (json_int_t)rows, "dim", (json_int_t)dim, "dtype", "f32", "missing",
                             (json_int_t)missing);
        if (*summary && idspath)
            json_object_set_new(*summary, "ids", json_string(idspath));
    }
    return CLI_OK;
}

/* ---- search ---- */

static const char search_help[] =
    "usage: moat search JOB [-k N] [--timeout DUR] QUERY...\n"
    "\n"
    "Semantic search over the embeddings of a finished infer job: the QUERY texts\n"
    "are embedded on the cluster as a small infer job with the same model and TP\n"
    "degree, then every query prints its N nearest documents (cosine similarity;\n"
    "the embeddings are L2-normalised, so it is a dot product). Default N is 3.\n"
    "A hit is named by its document's id when the job has ids, else #INDEX (its\n"
    "row in the export). A QUERY may not be empty.\n"
    "With --json: {\"queries\": [{query, hits: [{index, id, line, score, text}]}]}\n"
    "(line: the document's line number in the input, null when not known).\n"
    "\n"
    "Example:\n"
    "  moat search 4 \"a computer program that never works\" \"love and marriage\"\n";

struct corpus {
    float *emb;   /* [n, dim] */
    json_t *texts, *ids, *lines; /* ids, lines: one per document, null when none */
    bool any_id;  /* some document has an id */
    long long n;
    int dim;
};

static int load_corpus(struct cli *cli, uint64_t id, struct corpus *c)
{
    json_t *meta;
    int rc = cli_request(cli, PROTO_TYPE_RESULT, json_pack("{s:I}", "id", (json_int_t)id), true, &meta, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    long long batches = cli_json_int(meta, "batches", 0), done = cli_json_int(meta, "done", 0);
    c->n = cli_json_int(meta, "count", 0);
    c->dim = (int)cli_json_int(meta, "dim", 0);
    bool infer = strcmp(cli_json_str(meta, "kind", ""), "infer") == 0;
    json_decref(meta);
    if (!infer)
        return cli_fail(cli, CLI_USAGE, "job %llu is not an infer job", (unsigned long long)id);
    if (done != batches || c->dim <= 0)
        return cli_fail(cli, CLI_FAILED, "job %llu: %lld of %lld batches done", (unsigned long long)id, done, batches);
    c->emb = malloc((size_t)c->n * (size_t)c->dim * sizeof *c->emb);
    c->texts = json_array();
    c->ids = json_array();
    c->lines = json_array();
    if (c->emb == NULL)
        return cli_fail(cli, CLI_FAILED, "out of memory");
    long long row = 0;
    for (long long b = 0; b < batches; b++) {
        struct proto_msg msg;
        json_t *docs;
        int n, d;
        if ((rc = fetch_batch(cli, id, b, &msg, &docs, &n, &d)) != CLI_OK)
            return rc;
        if (d != c->dim || row + n > c->n) {
            json_decref(docs);
            proto_msg_clear(&msg);
            return cli_fail(cli, CLI_FAILED, "job %llu: inconsistent batches", (unsigned long long)id);
        }
        memcpy(c->emb + row * c->dim, msg.blobs[0].data, (size_t)n * (size_t)d * sizeof(float));
        json_array_extend(c->texts, json_object_get(docs, "texts"));
        const json_t *ids = json_object_get(docs, "ids"), *lines = json_object_get(docs, "lines");
        for (int i = 0; i < n; i++) {
            const json_t *idv = json_array_get(ids, (size_t)i), *lv = json_array_get(lines, (size_t)i);
            c->any_id |= idv != NULL && !json_is_null(idv);
            json_array_append_new(c->ids, idv ? json_incref((json_t *)idv) : json_null());
            json_array_append_new(c->lines, json_is_integer(lv) ? json_incref((json_t *)lv) : json_null());
        }
        row += n;
        json_decref(docs);
        proto_msg_clear(&msg);
    }
    return CLI_OK;
}

static void corpus_free(struct corpus *c)
{
    free(c->emb);
    json_decref(c->texts);
    json_decref(c->ids);
    json_decref(c->lines);
}

int cli_search_run(struct cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {{"k", required_argument, NULL, 'k'},
                                             {"timeout", required_argument, NULL, 't'}, CLI_COMMON_OPTS};
    bool first = true;
    long long k = 3;
    double timeout = 600;
    int c;
    while ((c = cli_getopt(cli, argc, argv, "k:", longopts, search_help, &first)) != -1) {
        if (c == CLI_OPT_HELP)
            return CLI_OK;
        if (c == 'k' && cli_parse_int(cli, "-k", optarg, 1, 1000, &k) != 0)
            return CLI_USAGE;
        if (c == 't') {
            struct err e = {0};
            if (units_duration_parse(optarg, &timeout, &e) != 0)
                return cli_fail(cli, CLI_USAGE, "--timeout: %s", e.msg);
        }
        if (c == '?')
            return CLI_USAGE;
    }
    if (argc - optind < 2)
        return cli_usage_error(cli, "expected JOB and at least one QUERY");
    uint64_t id;
    struct err e = {0};
    if (client_jobid_parse(argv[optind], &id, &e) != 0)
        return cli_fail(cli, CLI_USAGE, "%s", e.msg);
    for (int i = optind + 1; i < argc; i++) /* an empty query finds nothing meant */
        if (argv[i][strspn(argv[i], " \t\r\n\v\f")] == '\0')
            return cli_usage_error(cli, "query %d: empty (give the text to search for)", i - optind);
    json_t *job;
    int rc = cli_request(cli, PROTO_TYPE_SHOW,
                         json_pack("{s:I, s:i}", "id", (json_int_t)id, "tasks_limit", 0), true, &job, NULL, NULL);
    if (rc != CLI_OK)
        return rc;
    struct corpus corp = {0}, q = {0};
    const char *model = cli_json_str(job, "model", "");
    long long tp = cli_json_int(job, "tp", 1);
    json_t *spec = json_pack("{s:s, s:s, s:I, s:I, s:s}", "kind", "infer", "model", model, "tp", (json_int_t)tp,
                             "batch", (json_int_t)64, "name", "search-queries");
    json_t *texts = json_array();
    for (int i = optind + 1; i < argc; i++) {
        json_t *s = json_string(argv[i]);
        if (s == NULL) {
            json_decref(texts);
            json_decref(spec);
            json_decref(job);
            return cli_fail(cli, CLI_USAGE, "query %d: not valid UTF-8", i - optind);
        }
        json_array_append_new(texts, s);
    }
    json_decref(job);
    if ((rc = load_corpus(cli, id, &corp)) != CLI_OK)
        goto out;
    json_object_set_new(spec, "ndocs", json_integer((json_int_t)json_array_size(texts)));
    char *t = json_dumps(texts, JSON_COMPACT);
    struct proto_blob blob = {t, t ? strlen(t) : 0};
    json_t *reply;
    rc = cli_request_blobs(cli, PROTO_TYPE_SUBMIT, json_pack("{s:o}", "spec", spec), &blob, 1, true, &reply, NULL, NULL);
    spec = NULL;
    free(t);
    if (rc != CLI_OK)
        goto out;
    uint64_t qid = (uint64_t)cli_json_int(reply, "id", 0);
    json_decref(reply);
    double deadline = units_mono() + timeout;
    for (;;) {
        json_t *s;
        if ((rc = cli_request(cli, PROTO_TYPE_SHOW,
                              json_pack("{s:I, s:i}", "id", (json_int_t)qid, "tasks_limit", 0), true,
                              &s, NULL, NULL)) != CLI_OK)
            goto out;
        const char *st = cli_json_str(s, "state", "?");
        bool finished = !strcmp(st, "COMPLETED"), ended = finished || !strcmp(st, "FAILED") ||
                        !strcmp(st, "CANCELLED") || !strcmp(st, "TIMEOUT");
        json_decref(s);
        if (ended && !finished) {
            rc = cli_fail(cli, CLI_FAILED, "query job %llu ended %s", (unsigned long long)qid, st);
            goto out;
        }
        if (finished)
            break;
        if (units_mono() > deadline) {
            rc = cli_fail(cli, CLI_FAILED, "query job %llu: not done after --timeout", (unsigned long long)qid);
            goto out;
        }
        usleep(20000);
    }
    if ((rc = load_corpus(cli, qid, &q)) != CLI_OK)
        goto out;
    if (q.dim != corp.dim) {
        rc = cli_fail(cli, CLI_FAILED, "query and corpus embeddings differ in dimension");
        goto out;
    }
    json_t *all = json_array();
    for (long long i = 0; i < q.n; i++) {
        long long best[1000];
        float score[1000];
        int nb = 0;
        const float *qv = q.emb + i * q.dim;
        for (long long j = 0; j < corp.n; j++) {
            const float *dv = corp.emb + j * corp.dim;
            float s = 0;
            for (int d = 0; d < corp.dim; d++)
                s += qv[d] * dv[d];
            int pos = nb < k ? nb++ : (int)k;
            if (pos == k && s <= score[k - 1])
                continue;
            if (pos == k)
                pos = (int)k - 1;
            while (pos > 0 && score[pos - 1] < s) {
                score[pos] = score[pos - 1];
                best[pos] = best[pos - 1];
                pos--;
            }
            score[pos] = s;
            best[pos] = j;
        }
        json_t *hits = json_array();
        for (int h = 0; h < nb; h++)
            json_array_append_new(hits, json_pack("{s:I, s:O, s:O, s:f, s:O}", "index", (json_int_t)best[h],
                                                  "id", json_array_get(corp.ids, (size_t)best[h]), "line",
                                                  json_array_get(corp.lines, (size_t)best[h]), "score",
                                                  (double)score[h], "text",
                                                  json_array_get(corp.texts, (size_t)best[h])));
        json_array_append_new(all, json_pack("{s:O, s:o}", "query", json_array_get(texts, (size_t)i), "hits", hits));
    }
    if (cli->json) {
        json_t *doc = json_pack("{s:o}", "queries", all);
        cli_json_print(doc);
        json_decref(doc);
    } else {
        size_t i;
        json_t *qo;
        json_array_foreach(all, i, qo) {
            char *q = strdup(cli_json_str(qo, "query", ""));
            printf("query: %s\n", q ? text_blank_controls(q) : "?");
            free(q);
            size_t h;
            json_t *hit;
            json_array_foreach(json_object_get(qo, "hits"), h, hit) {
                char text[300];
                snprintf(text, sizeof text, "%s", cli_json_str(hit, "text", ""));
                text_blank_controls(text); /* others' documents: no escape reaches the terminal */
                /* the document's id when the job has ids (what the user gave), else #row */
                const json_t *idv = json_object_get(hit, "id");
                char name[64];
                if (corp.any_id && json_is_string(idv))
                    snprintf(name, sizeof name, "%s", json_string_value(idv));
                else if (corp.any_id && json_is_integer(idv))
                    snprintf(name, sizeof name, "%lld", (long long)json_integer_value(idv));
                else
                    snprintf(name, sizeof name, "#%lld", cli_json_int(hit, "index", 0));
                text_blank_controls(name);
                printf("  %.3f  %-7s %s\n", cli_json_num(hit, "score", 0), name, text);
            }
        }
        json_decref(all);
    }
out:
    json_decref(spec);
    json_decref(texts);
    corpus_free(&corp);
    corpus_free(&q);
    return rc;
}
