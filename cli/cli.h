/* cli.h: what the moat command groups share: the invocation context, exit codes,
 * option parsing, requests to the controller, and output (tables, JSON).
 *
 * Exit codes (PRODUCT.md): 0 success, 1 the job or command failed, 2 usage or bad
 * input (one line naming the argument), 3 cannot reach the controller.
 * Every command prints "moat CMD: what went wrong" on stderr before a non-zero
 * exit, and with --json prints exactly one JSON document on stdout on success.
 * Single-threaded; only cli/ prints.
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdio.h>

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "shared/client.h"
#include "shared/err.h"
#include "shared/proto.h"

enum cli_exit { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2, CLI_UNREACHABLE = 3 };

struct cli {
    const char *cmd;          /* "submit", "local up", ...: prefixes messages */
    const char *controller;   /* --controller, or NULL */
    bool json;                /* --json */
    double timeout;           /* seconds per request (MOAT_TIMEOUT) */
    client_t *client;         /* connected lazily by cli_connect() */
    json_t *json_extra;       /* fields for wait's --json document (submit --wait's
                               * counts), owned; NULL for none */
};

/* One command: name, handler (argc/argv start at the command's own name), one-line
 * summary for `moat --help`. */
struct cli_cmd {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *summary;
};

int cli_submit_run(struct cli *cli, int argc, char **argv);
int cli_queue_run(struct cli *cli, int argc, char **argv);
int cli_show_run(struct cli *cli, int argc, char **argv);
int cli_nodes_run(struct cli *cli, int argc, char **argv);
int cli_result_run(struct cli *cli, int argc, char **argv);
int cli_cancel_run(struct cli *cli, int argc, char **argv);
int cli_hold_run(struct cli *cli, int argc, char **argv);
int cli_release_run(struct cli *cli, int argc, char **argv);
int cli_requeue_run(struct cli *cli, int argc, char **argv);
int cli_wait_run(struct cli *cli, int argc, char **argv);
int cli_local_run(struct cli *cli, int argc, char **argv);
int cli_ping_run(struct cli *cli, int argc, char **argv);
int cli_keygen_run(struct cli *cli, int argc, char **argv);
int cli_admin_run(struct cli *cli, int argc, char **argv);
/* cli_admin_node_run: `admin node ...` (cli_admin_run hands it over). */
int cli_admin_node_run(struct cli *cli, int argc, char **argv);
int cli_audit_run(struct cli *cli, int argc, char **argv);

/* ---- messages ---- */

/* cli_fail: print "moat CMD: msg" on stderr; returns code (for `return cli_fail(...)`).
 * The first such line of a run is kept for cli_json_error. */
int cli_fail(const struct cli *cli, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cli_out: where `--out FILE` (or another option's file, named opt in errors:
 * "--ids") output goes. cli_out_open: stdout when path is
 * NULL; else a temporary file beside path (PATH.XXXXXX, mode 0666 less the
 * umask, or the existing file's) that cli_out_close renames over path (over
 * the file a symbolic link names) when rc is CLI_OK and removes otherwise, so
 * a failed command leaves an existing FILE as it was and no partial one
 * behind; a path that exists and is not a regular file (a FIFO, /dev/stdout),
 * or one in a directory where no temporary can be made, is written directly
 * (as before: no such protection). CLI_USAGE (naming opt) when it cannot be
 * created. cli_out_close returns rc, or CLI_FAILED when a write, the close or
 * the rename failed (named). cli_out_finish: the writing and closing part of
 * cli_out_close, without the rename (rc, or CLI_FAILED named); cli_out_close
 * after it renames: so that two files are both complete before either
 * replaces its FILE. */
struct cli_out {
    FILE *f;
    const char *opt;  /* the option that named it, for errors: "--out" */
    const char *path; /* the file replaced: FILE, or what a link FILE names */
    char real[4096];  /* that file's real path, when FILE existed */
    char tmp[4096];   /* "" when writing path itself */
};
int cli_out_open(const struct cli *cli, struct cli_out *o, const char *opt, const char *path);
int cli_out_close(const struct cli *cli, struct cli_out *o, int rc);
int cli_out_finish(const struct cli *cli, struct cli_out *o, int rc);

/* cli_usage_error: cli_fail with CLI_USAGE and a hint to see `moat CMD --help`. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- options ---- */

/* Options every command accepts after its name as well as before it. Append
 * CLI_COMMON_OPTS to a command's getopt table (values >= 0x1000 are reserved). */
#define CLI_OPT_JSON 0x1001
#define CLI_OPT_CONTROLLER 0x1002
#define CLI_OPT_HELP 'h'
#define CLI_COMMON_OPTS                                              \
    {"json", no_argument, NULL, CLI_OPT_JSON},                       \
    {"controller", required_argument, NULL, CLI_OPT_CONTROLLER},     \
    {"help", no_argument, NULL, CLI_OPT_HELP},                       \
    {NULL, 0, NULL, 0}

/* cli_getopt: getopt_long without getopt's own messages. Returns the option, -1 at
 * the end, CLI_OPT_HELP after printing help (caller returns CLI_OK), and for an
 * unknown option or a missing argument prints a usage line and returns '?' (caller
 * returns CLI_USAGE). Handles the common options itself (loops past them).
 * Call with *first = true on the command's first call (resets getopt). */
int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
               const struct option *longopts, const char *help, bool *first);

/* cli_jobtask_parse: "JOB" or "JOB_I" (an array element, as sacct -j 17_3
 * writes it) -> *id and *index (-1 for a whole job). Prints a usage error and
 * returns CLI_USAGE for anything else, else CLI_OK. */
int cli_jobtask_parse(const struct cli *cli, const char *text, uint64_t *id, long long *index);

/* cli_parse_int: optarg of --opt -> integer in [min, max]; prints and returns -1. */
int cli_parse_int(const struct cli *cli, const char *opt, const char *text, long long min,
                  long long max, long long *out);

/* ---- talking to the controller ---- */

/* cli_endpoint: the endpoint to use: --controller, $MOAT_CONTROLLER, or the file
 * endpoint in $MOAT_DIR (default ./.moat). Writes it to buf. Returns 0, or prints
 * and returns CLI_UNREACHABLE when none is known. */
int cli_endpoint(const struct cli *cli, char *buf, size_t cap);

/* cli_connect: make cli->client (once). Returns 0 or an exit code (printed). */
int cli_connect(struct cli *cli);

/* cli_request: one request/reply. Takes ownership of body. On 0, *reply is a REPLY
 * body the caller owns (json_decref), and blobs (if not NULL) receives the reply's
 * message for raw frames (caller frees with proto_msg_clear); otherwise prints
 * and returns an exit code: CLI_UNREACHABLE on timeout, CLI_USAGE when the
 * controller refused a user argument (EINVAL, ENOENT) and user_arg is true, else
 * CLI_FAILED. *code receives the controller's errno (0 when not an ERROR). */
int cli_request(struct cli *cli, enum proto_type type, json_t *body, bool user_arg,
                json_t **reply, struct proto_msg *blobs, int *code);

/* cli_request_blobs: cli_request with nsend raw frames sent beside the body
 * (copied). A MODEL_PUT repeated after a lost reply rewrites the same bytes. */
int cli_request_blobs(struct cli *cli, enum proto_type type, json_t *body,
                      const struct proto_blob *send, int nsend, bool user_arg, json_t **reply,
                      struct proto_msg *blobs, int *code);
int cli_model_run(struct cli *cli, int argc, char **argv);
int cli_search_run(struct cli *cli, int argc, char **argv);

/* cli_idset.c: the ids of a JSONL input, to find a repeat (a set of 96-bit
 * BLAKE2b digests of the typed ids with their first line; see cli_idset.c).
 * cli_idset_add: 0 when id (a JSON string or integer, borrowed) is new (kept
 * with line), 1 when it was seen before (*first: that line, -1 past 2^32),
 * -1 out of memory. cli_idset_free: frees; a zeroed set is empty. */
struct cli_idslot;
struct cli_idset {
    struct cli_idslot *slots; /* owned; cap of them, a power of two */
    size_t cap, n;
};
int cli_idset_add(struct cli_idset *set, const json_t *id, long line, long *first);
void cli_idset_free(struct cli_idset *set);

/* cli_input.c: the documents of an infer job's input file, one at a time (the
 * formats: see cli_input.c). cli_docs_open: path ("-": stdin, copied to $TMPDIR),
 * format 1 JSONL, 0 text, -1 by the extension or the first line; an exit code
 * (printed). cli_docs_next: 1 with the next document's text, its id (or NULL;
 * both new references) and its 1-based line number; 0 at the end; -1 when a
 * bad line stopped it (without skip_bad) or a read error (printed; r->rc the
 * exit code). Bad lines skipped are said on stderr as they come, and counted
 * in bad; empty and blank lines in blank. cli_docs_rewind: from the start
 * again, counters anew, skipped lines not said again; an exit code (printed):
 * a file changed since it was opened. cli_docs_close: frees. */
struct cli_docs {
    struct cli *cli;
    FILE *f;                /* stdin (not ours while std_in) or ours */
    bool std_in;
    struct stat st;         /* the file's at open: a change before the second reading */
    FILE *copy;             /* unrewindable input: what the first reading read, in an
                             * unlinked file of copy_dir (owned) */
    char copy_dir[4096];    /* $TMPDIR, or /tmp */
    long *dups;             /* lines the first reading found repeating an id */
    size_t ndups, dups_cap, ndup_next;
    const char *name;       /* "stdin" or the path, in FILE:LINE messages */
    int jsonl0, jsonl;      /* the format as opened, and as decided so far */
    bool skip_bad, quiet, any_id;
    bool checking;          /* the first reading: ids go into seen */
    struct cli_idset seen;  /* its ids so far, with their line numbers */
    char *line;
    size_t cap;
    long lineno, blank, bad;
    int rc;
};
int cli_docs_open(struct cli *cli, const char *path, int format, bool skip_bad, struct cli_docs *r);
int cli_docs_next(struct cli_docs *r, json_t **text, json_t **id, long *lineno);
int cli_docs_rewind(struct cli_docs *r);
void cli_docs_close(struct cli_docs *r);

/* cli_infer.c: infer jobs.
 * cli_infer_submit: read input (cli_docs; once to check and count it, once to
 * send it), set spec's "ndocs", send SUBMIT with the documents, ids and line
 * numbers (in parts of whole batches when they do not fit one message of
 * $MOAT_MAX_MESSAGE bytes, default 8 MiB: the SUBMIT with the first, DOCS with
 * the rest; a part refused cancels the job); takes
 * ownership of spec; prints the id (with --json {id, documents,
 * skipped_empty, skipped_bad}).
 * cli_infer_result: export a finished infer job's embeddings,
 * or with task >= 0 those of one finished batch (fmt "npy", "raw" or "jsonl";
 * NULL: print the metadata meta, RESULT's reply for the job or the batch, to
 * out); with partial, those of an unfinished or failed job too: the rows of
 * batches not COMPLETED are NaN in npy and raw and left out of jsonl, and
 * stderr says which. ids (NULL: none; npy and raw only) receives one JSON
 * line per row, in row order: {index, line, id} (line: the document's input
 * line number; id: absent when it had none; {index, missing: true} for a
 * row of a batch not COMPLETED). With --json and outpath, *summary (else
 * NULL) receives {path, format, count, dim, dtype, missing} (and ids: idspath)
 * for the caller to print once out is in place (caller json_decrefs). */
int cli_infer_submit(struct cli *cli, json_t *spec, const char *input, int format, bool skip_bad,
                     bool wait);

/* cli_submitted: say the id of job id, just submitted ("N" on a line; with
 * --json {"id": N}); with wait (submit --wait, as sbatch --wait) then wait
 * for it as 'moat wait' does, whose exit status (and --json document, which
 * holds the id, instead of {"id"}) it returns. cli_submitted_with: the same,
 * with extra's fields (or NULL; taken) after "id" in the --json document. */
int cli_submitted(struct cli *cli, uint64_t id, bool wait);
int cli_submitted_with(struct cli *cli, uint64_t id, bool wait, json_t *extra);
int cli_infer_result(struct cli *cli, uint64_t id, const json_t *meta, const char *fmt,
                     long long task, bool partial, FILE *out, const char *outpath, FILE *ids,
                     const char *idspath, json_t **summary);

/* ---- output ---- */

/* cli_print_word: print s to f as one shell word (POSIX sh quoting): bare
 * when only safe characters, else '...' ('\'' for a quote), and with control
 * characters (shared/text.h) as bash's $'\xNN' so that none reaches the
 * terminal raw, and a shell takes the word back as given. */
void cli_print_word(FILE *f, const char *s);

/* cli_stdout_claim: the command writes its output on stdout (cli_json_print,
 * cli_paged_json, and result once its first reply came, call it): a failure
 * after that adds no error document, so that a run prints one JSON document
 * at most. */
void cli_stdout_claim(void);

/* cli_json_error: with --json, a failed command (exit code != 0) that wrote
 * nothing on stdout prints {"error": "moat CMD: why", "exit": code} there
 * (the same line as on stderr), so that a script reading stdout always gets
 * one document. Called once, by main. */
void cli_json_error(int code);

/* cli_json_print: one JSON document on stdout (indented on a terminal, compact
 * otherwise), then a newline. Does not take ownership. */
void cli_json_print(const json_t *doc);

/* A table: header row then rows; columns padded to their widest cell, the last
 * column not padded; right-aligned columns named by align ('l' or 'r' each). */
/* cli_paged_json: write reply, the first page of a paged listing (SHOW,
 * RESULT: "tasks" and "tasks_next"; QUEUE: "jobs" and "next";
 * docs/protocol.md), to out as one JSON document holding every page's
 * list_key items, fetched with page(cli, ctx, from, &reply) while next_key
 * says more remain. Pages are streamed, so memory stays one page; a single
 * page is printed as cli_json_print does (compact to a file). extra_key (or
 * NULL): another array each page carries (a bench job's "rows"),
 * concatenated. next_key is left out. Takes reply. Returns CLI_OK or the
 * failed page's exit code (the document is then closed early). */
typedef int (*cli_page_fn)(struct cli *cli, void *ctx, long long from, json_t **reply);
/* cli_next_check: a page asked from `asked` says the next starts at next (-1:
 * none): CLI_OK, or CLI_FAILED (printed) when next does not move on, so that
 * a confused controller cannot make a listing loop for ever. */
int cli_next_check(const struct cli *cli, long long asked, long long next);
struct cli_pages {
    const char *list_key, *next_key, *extra_key;
    cli_page_fn page;
    void *ctx;
};
int cli_paged_json(struct cli *cli, json_t *reply, const struct cli_pages *pg, FILE *out);

struct cli_table;
struct cli_table *cli_table_create(int ncols, const char *const *header, const char *align);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(struct cli_table *t); /* prints and frees */
void cli_table_free(struct cli_table *t);  /* frees, printing nothing more */
/* cli_table_flush: print the rows added so far (the header the first time) and
 * drop them, so that a long listing goes out page by page; widths only grow. */
void cli_table_flush(struct cli_table *t);
/* cli_table_min_width: column col is at least width characters wide (a page
 * printed early keeps the width a later, wider one needs). */
void cli_table_min_width(struct cli_table *t, int col, int width);

/* Field readers that tolerate absent or mistyped fields (the controller's shapes
 * are checked by tests, not trusted blindly by the CLI). */
long long cli_json_int(const json_t *obj, const char *key, long long def);
double cli_json_num(const json_t *obj, const char *key, double def);
const char *cli_json_str(const json_t *obj, const char *key, const char *def);

/* cli_time_format: Unix seconds -> "HH:MM:SS" today, else "YYYY-MM-DD HH:MM"; "-" for 0. */
char *cli_time_format(double t, char *buf, int cap);

#endif
