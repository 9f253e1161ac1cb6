/* cli_input.c: the documents of `moat submit --infer --input FILE`, one at a time.
 *
 * Input files ("-": stdin): one document per line (empty and blank lines are
 * skipped, and counted; a leading UTF-8 byte order mark is dropped), or JSON
 * Lines (--input-format jsonl, a .jsonl or .ndjson file, or, when neither
 * option nor extension (.txt: text) says, one whose first non-blank line
 * starts with '{') of objects with a string "text" and an optional "id" kept
 * with the result (RFC 8259 JSON; JSON Lines: jsonlines.org). Each document
 * keeps its 1-based line number. A bad line (invalid UTF-8, a NUL byte, more
 * than JOBSPEC_DOC_MAX_BYTES, invalid JSON, no "text", or an "id" an earlier
 * line has, since results are found by id) is reported as FILE:LINE: why, on
 * one line; with --on-bad-line fail (the default) the reading stops there,
 * with skip it is left out and counted.
 *
 * The input is read twice (cli_docs_rewind): once to check and count it, once
 * to send it, so that the CLI holds one message's worth of documents, not the
 * corpus (and, for JSONL with ids, each id's digest while checking them:
 * about 28 bytes an id, cli_idset.c). A file that changes in between (size,
 * mtime, inode) is an error. stdin and other inputs that cannot be read twice
 * (a pipe, a FIFO) are copied as the first reading goes into an unlinked
 * file of $TMPDIR (default /tmp), read back the second time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "shared/jobspec.h"

/* input_format_by_name: 1 (JSONL: .jsonl, .ndjson) or 0 (text: .txt) as path's
 * extension says, -1 when it says nothing (the first non-blank line decides). */
static int input_format_by_name(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot == NULL || (slash && dot < slash))
        return -1;
    if (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".ndjson") == 0)
        return 1;
    if (strcmp(dot, ".txt") == 0)
        return 0;
    return -1;
}

/* id_repeats: 1 when id (a string or an integer) was seen on an earlier line
 * (msg then says which), 0 when it is new (now kept with lineno), -1 out of
 * memory. */
static int id_repeats(struct cli_idset *seen, const json_t *id, long lineno, char *msg, size_t cap)
{
    long first;
    int rc = cli_idset_add(seen, id, lineno, &first);
    if (rc == 1) {
        char *shown = json_dumps(id, JSON_ENCODE_ANY);
        char where[40] = "an earlier line's";
        if (first > 0)
            snprintf(where, sizeof where, "line %ld's", first);
        snprintf(msg, cap, "\"id\" %.60s%s is %s too: ids must be unique", shown ? shown : "?",
                 shown && strlen(shown) > 60 ? "..." : "", where);
        free(shown);
    }
    return rc;
}

int cli_docs_open(struct cli *cli, const char *path, int format, bool skip_bad, struct cli_docs *r)
{
    memset(r, 0, sizeof *r);
    r->cli = cli;
    r->skip_bad = skip_bad;
    r->std_in = strcmp(path, "-") == 0;
    r->name = r->std_in ? "stdin" : path; /* in FILE:LINE messages */
    r->f = r->std_in ? stdin : fopen(path, "rb");
    if (r->f == NULL)
        return cli_fail(cli, CLI_USAGE, "--input: %s: %s", path, strerror(errno));
    if (fstat(fileno(r->f), &r->st) == 0 && S_ISDIR(r->st.st_mode)) {
        int rc = cli_fail(cli, CLI_USAGE, "--input: %s: is a directory (give a text or JSONL file)", r->name);
        cli_docs_close(r); /* after: it clears r->name */
        return rc;
    }
    if (r->std_in || !S_ISREG(r->st.st_mode)) {
        /* stdin, a pipe (<(zcat F.gz)), a FIFO, a device: cannot be read twice, so
         * the first reading keeps a copy of what it read (and stops at the
         * first bad line as the file does) in an unlinked file of $TMPDIR, as
         * sort(1) spills: a corpus is not held in memory */
        const char *dir = getenv("TMPDIR");
        if (dir == NULL || dir[0] == '\0')
            dir = "/tmp";
        if ((size_t)snprintf(r->copy_dir, sizeof r->copy_dir, "%s", dir) >= sizeof r->copy_dir) {
            int rc = cli_fail(cli, CLI_USAGE, "TMPDIR: %.60s...: path too long", dir);
            cli_docs_close(r);
            return rc;
        }
        char tmp[sizeof r->copy_dir + 32];
        snprintf(tmp, sizeof tmp, "%s/moat-input.XXXXXX", dir);
        int fd = mkstemp(tmp);
        if (fd >= 0)
            unlink(tmp); /* gone when the CLI is, whatever way it ends */
        if (fd < 0 || (r->copy = fdopen(fd, "w+b")) == NULL) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            int rc = cli_fail(cli, CLI_FAILED, "--input: %s: a copy in %s (TMPDIR): %s", r->name, dir,
                              strerror(e));
            cli_docs_close(r);
            return rc;
        }
    }
    /* --input-format, else the extension, else the first non-blank line */
    r->jsonl0 = r->jsonl = format >= 0 ? format : r->std_in ? -1 : input_format_by_name(path);
    r->checking = true;
    return CLI_OK;
}

int cli_docs_rewind(struct cli_docs *r)
{
    if (r->copy) {
        if (fflush(r->copy) != 0 || fseeko(r->copy, 0, SEEK_SET) != 0)
            return cli_fail(r->cli, CLI_FAILED, "--input: %s: its copy in %s (TMPDIR): %s", r->name,
                            r->copy_dir, strerror(errno));
        if (!r->std_in)
            fclose(r->f);
        r->f = r->copy; /* ours */
        r->copy = NULL;
        r->std_in = false;
    } else {
        struct stat now;
        if (fstat(fileno(r->f), &now) != 0 || now.st_size != r->st.st_size || now.st_ino != r->st.st_ino ||
            now.st_mtim.tv_sec != r->st.st_mtim.tv_sec || now.st_mtim.tv_nsec != r->st.st_mtim.tv_nsec)
            return cli_fail(r->cli, CLI_FAILED, "--input: %s: changed while it was read", r->name);
        rewind(r->f);
    }
    r->jsonl = r->jsonl0;
    r->lineno = r->blank = r->bad = 0;
    r->quiet = true; /* its bad lines were said the first time */
    cli_idset_free(&r->seen); /* the second reading skips the lines the first found repeating an id */
    r->checking = false;
    r->ndup_next = 0;
    return CLI_OK;
}

void cli_docs_close(struct cli_docs *r)
{
    if (r->copy)
        fclose(r->copy);
    if (r->f && !r->std_in)
        fclose(r->f);
    free(r->line);
    free(r->dups);
    cli_idset_free(&r->seen);
    memset(r, 0, sizeof *r);
}

/* dup_note: line repeats an id (the first reading): kept for the second. */
static void dup_note(struct cli_docs *r, long line)
{
    if (r->ndups == r->dups_cap) {
        size_t cap = r->dups_cap ? 2 * r->dups_cap : 64;
        long *d = realloc(r->dups, cap * sizeof *d);
        if (d == NULL)
            return; /* the second reading then takes the line: the controller's ids check stays */
        r->dups = d;
        r->dups_cap = cap;
    }
    r->dups[r->ndups++] = line;
}

/* dup_seen: the second reading: line repeats an id, as the first found (lines
 * come in order, so the list is walked once). */
static bool dup_seen(struct cli_docs *r, long line)
{
    while (r->ndup_next < r->ndups && r->dups[r->ndup_next] < line)
        r->ndup_next++;
    return r->ndup_next < r->ndups && r->dups[r->ndup_next] == line;
}

int cli_docs_next(struct cli_docs *r, json_t **textp, json_t **idp, long *linep)
{
    char msg[200];
    ssize_t n;
    while ((n = getline(&r->line, &r->cap, r->f)) >= 0) {
        char *line = r->line;
        r->lineno++;
        if (r->copy && fwrite(line, 1, (size_t)n, r->copy) != (size_t)n) {
            r->rc = cli_fail(r->cli, CLI_FAILED, "--input: %s: its copy in %s (TMPDIR): %s", r->name,
                             r->copy_dir, strerror(errno));
            return -1;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (r->lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
            memmove(line, line + 3, (size_t)n - 2); /* a UTF-8 byte order mark is no text */
            n -= 3;
        }
        size_t lead = strspn(line, " \t\r\v\f");
        if ((size_t)n == lead) { /* empty or blank */
            r->blank++;
            continue;
        }
        if (r->jsonl < 0)
            r->jsonl = line[lead] == '{';
        const char *why = NULL;
        json_t *text = NULL, *id = NULL;
        if (memchr(line, '\0', (size_t)n) != NULL) {
            why = "a NUL byte";
        } else if (!r->jsonl && (size_t)n > JOBSPEC_DOC_MAX_BYTES) {
            snprintf(msg, sizeof msg, "%zd bytes; a document is at most %u", n, JOBSPEC_DOC_MAX_BYTES);
            why = msg;
        } else if (r->jsonl) {
            json_error_t je;
            /* {"text": "a", "text": "b"} is ambiguous: refused, not the last taken */
            json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &je);
            if (o == NULL)
                why = je.text[0] ? je.text : "invalid JSON";
            else if (!json_is_string(json_object_get(o, "text")))
                why = "no string field \"text\"";
            else {
                text = json_incref(json_object_get(o, "text"));
                id = json_object_get(o, "id");
                if (id && !json_is_string(id) && !json_is_integer(id)) {
                    why = "\"id\" must be a string or an integer";
                    json_decref(text);
                    text = NULL;
                    id = NULL;
                } else if (id) {
                    json_incref(id);
                }
                if (text && json_string_length(text) > JOBSPEC_DOC_MAX_BYTES) {
                    snprintf(msg, sizeof msg, "\"text\" of %zu bytes; a document is at most %u",
                             json_string_length(text), JOBSPEC_DOC_MAX_BYTES);
                    why = msg;
                    json_decref(text);
                    json_decref(id);
                    text = id = NULL;
                }
            }
            if (why && why != msg) {
                snprintf(msg, sizeof msg, "%s", why); /* je.text lives in o */
                why = msg;
            }
            json_decref(o);
            int rep = why == NULL && id != NULL
                          ? r->checking ? id_repeats(&r->seen, id, r->lineno, msg, sizeof msg)
                                        : dup_seen(r, r->lineno)
                          : 0;
            if (rep < 0) {
                json_decref(text);
                json_decref(id);
                r->rc = cli_fail(r->cli, CLI_FAILED, "--input: %s:%ld: out of memory for the ids to check",
                                 r->name, r->lineno);
                return -1;
            }
            if (rep) {
                if (r->checking)
                    dup_note(r, r->lineno);
                else
                    snprintf(msg, sizeof msg, "\"id\" repeats an earlier line's");
                why = msg; /* results are found by id: two documents may not share one */
                json_decref(text);
                json_decref(id);
                text = id = NULL;
            }
        } else {
            text = json_stringn(line, (size_t)n); /* NULL: not valid UTF-8 */
            if (text == NULL)
                why = "invalid UTF-8";
        }
        if (why) {
            r->bad++;
            if (!r->skip_bad) {
                /* one line: where, why, and how to go on without it (and the
                 * reason of --json's error document) */
                r->rc = cli_fail(r->cli, CLI_USAGE, "%s:%ld: %s (stopped; --on-bad-line skip leaves "
                                 "such lines out)", r->name, r->lineno, why);
                return -1;
            }
            if (!r->quiet)
                fprintf(stderr, "moat %s: %s:%ld: %s; skipped\n", r->cli->cmd, r->name, r->lineno, why);
            continue;
        }
        r->any_id |= id != NULL;
        *textp = text;
        *idp = id;
        *linep = r->lineno;
        return 1;
    }
    if (ferror(r->f)) {
        r->rc = cli_fail(r->cli, CLI_USAGE, "--input: %s: %s", r->name, strerror(errno));
        return -1;
    }
    return 0;
}
