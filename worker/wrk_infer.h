/* wrk_infer.h: one rank of an infer task, run as its own process (`moat-worker --run-infer SPEC.json`).
 *
 * The worker writes SPEC.json into the task's directory and starts one such
 * process per TP rank it hosts; the ranks of one TP group (possibly on
 * several nodes) find each other through worker/wrk_comm.h at the "comm"
 * endpoint, which rank 0 binds. Each rank tokenises the same documents, runs
 * the BERT forward (worker/wrk_bert.h) on its shard, and all-reduces with the
 * others; rank 0 writes the embeddings.
 *
 * SPEC.json: one JSON object; unknown keys, duplicate keys and wrong types are
 * refused (exit 2), naming the key.
 *   "job", "task", "attempt"  int >= 0, required: the TP group is
 *                             "<job>.<task>.<attempt>", so no rank of another
 *                             attempt can join this one
 *   "rank", "tp"              int, required: 0 <= rank < tp; tp divides the
 *                             model's heads and FFN width
 *   "shard"                   path, required: this rank's shard (safetensors
 *                             image of model_shard_extract()); decoded with
 *                             model_shard_decode() and its SHA-256 checked again
 *                             here, and its tp and rank must equal the spec's
 *   "shard_sha256"            64 hex digits, required
 *   "vocab"                   path, required: the model's vocab.txt
 *   "vocab_sha256"            hex, optional: vocab's SHA-256, checked before it is read
 *   "input"                   path, required: a JSON array of strings, one per
 *                             document (UTF-8; "\u0000" allowed, dropped by the
 *                             tokeniser); [] is valid and gives an empty output
 *   "output"                  path, required on rank 0 (ignored elsewhere): raw
 *                             little-endian f32 [n_docs, dim] in input order
 *                             (dim = hidden size, 384 for MiniLM), written to
 *                             "<output>.tmp", fsync'ed, then renamed, so it is
 *                             either absent or whole
 *   "comm"                    ZeroMQ endpoint of rank 0, required when tp > 1
 *                             (e.g. "tcp://10.0.0.5:29517")
 *   "comm_timeout"            seconds > 0, default 60: bounds the rendezvous
 *                             and every all-reduce wait
 *   "max_len"                 int in [2, 512], default 256 (and at most the
 *                             model's max_position): truncation, [CLS]/[SEP]
 *                             included; batches are padded to their longest
 *   "batch"                   int in [1, 1024], default 32: sub-batch size of
 *                             the forward. Documents are sorted by token count
 *                             (stable) before being cut into sub-batches, to
 *                             pad little; the output stays in input order
 *   "backend"                 "cpu" (default), "cuda", or "ref" (tests)
 *   "threads"                 int >= 0, default 0 (all cores): "cpu" threads
 *   "device"                  int >= 0, default 0: "cuda" device index
 *   "allreduce"               "auto" (default), "nccl" or "zeromq": the TP
 *                             group's all-reduce path (below); must be the same
 *                             on every rank; "nccl" needs backend "cuda" (exit 2)
 * Before the forward, rank 0 broadcasts a SHA-256 of the token ids, max_len
 * and batch; a rank whose own differs fails (the ranks must embed the same
 * documents the same way).
 *
 * All-reduce path (tp > 1, at least one document): once its backend is open,
 * every rank sends a 20-byte description of itself (GPU or not, NCCL in its
 * build, the device's UUID, its "allreduce") to all others
 * (wrk_comm_allgather()), and all apply the same rule (worker/wrk_arpath.h):
 * NCCL (worker/wrk_nccl.h) when every rank is on a GPU of its own (distinct
 * device UUIDs) and has NCCL, else ZeroMQ (worker/wrk_comm.h), with GPU ranks
 * staging device memory through host memory (worker/wrk_stage.h); "zeromq"
 * forces ZeroMQ, "nccl" makes the group fail (exit 1) where NCCL cannot run
 * (e.g. two ranks on one GPU) instead of falling back. A "cpu" group therefore
 * always uses ZeroMQ, and a group mixing "cpu" and "cuda" ranks works, on
 * ZeroMQ. The choice is logged on stderr as one line
 *   moat-infer: all-reduce: <nccl|zeromq|zeromq-staged> (<reason>)
 * e.g. "zeromq-staged (ranks 0 and 1 share GPU-6c3e0fa1-...)".
 *
 * Outcome: exit 0 after printing one JSON line on stdout:
 *   {"rank","tp","docs","tokens" (real tokens, no padding),"batches",
 *    "seconds" (tokenise + forward + write),"docs_per_s","tokens_per_s",
 *    "setup_seconds" (rendezvous, shard check, model upload),
 *    "allreduce" ("none" when tp == 1 or there are no documents, else as logged)}
 * Exit 2 for a bad spec (unreadable, invalid or inconsistent with the shard),
 * exit 1 for any other failure, after one line on stderr (the last one, after
 * the all-reduce line when the failure came later):
 *   moat-infer: <what>: <msg>
 * with <what> one of spec, comm, shard, vocab, input, backend, model, forward,
 * output. A failing rank tells its group (wrk_comm_abort()), so the other ranks
 * fail within moments instead of at their timeout.
 *
 * Thread-safety: the function prints and may set the OpenBLAS thread count:
 * one call per process at a time.
 */
#ifndef MOAT_WRK_INFER_H
#define MOAT_WRK_INFER_H

/* wrk_infer_main: run the rank described by argv[1] (the SPEC.json path);
 * argv[0] is ignored (the program name or "--run-infer"): call it as
 * wrk_infer_main(argc - i, argv + i) where argv[i] is "--run-infer".
 * Returns the process exit status (0, 1 or 2, see above); never calls exit(). */
int wrk_infer_main(int argc, char **argv);

#endif
