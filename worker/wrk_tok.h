/* wrk_tok.h: BERT uncased WordPiece tokeniser (text -> token ids) for infer tasks.
 *
 * Behaviour equals HuggingFace `tokenizers` loading the tokenizer.json of
 * sentence-transformers/all-MiniLM-L6-v2 (BertNormalizer with clean_text,
 * handle_chinese_chars, lowercase and strip_accents following lowercase;
 * BertPreTokenizer; WordPiece with "##" continuations, max_input_chars_per_word
 * 100; TemplateProcessing "[CLS] $A [SEP]"; truncation LongestFirst), checked
 * id for id against it on tests/data/tok/corpus.txt (see tests/tools/README.md).
 *
 * Pipeline, per text:
 *   1. added tokens: exact, case-sensitive occurrences of "[PAD]", "[UNK]",
 *      "[CLS]", "[SEP]", "[MASK]" in the raw text become those tokens (HF
 *      matches its added_tokens before normalisation, normalized=false);
 *   2. clean-up: drop NUL, U+FFFD and Unicode category Cc/Cf/Co except
 *      \t \n \r; map White_Space characters to a space;
 *   3. CJK ideographs (BERT's code point ranges) become words of their own;
 *   4. NFD, drop combining marks (category Mn), then lower-case per code point;
 *   5. split on whitespace and on punctuation (ASCII 33-47, 58-64, 91-96,
 *      123-126 and Unicode category P*), each punctuation mark a word;
 *   6. WordPiece, greedy longest match first; a word of more than 100 code
 *      points, or one that cannot be covered by vocabulary pieces, is [UNK];
 *   7. [CLS] + pieces + [SEP], truncated to max_len ids in all.
 * Unicode data comes from libutf8proc (2.8.0: Unicode 15.0), with the 173 code
 * point ranges where HF's own tables differ fixed in wrk_tok.c. Link -lutf8proc.
 *
 * Thread-safety: a wrk_tok_t is immutable after wrk_tok_create(); every other
 * function may be called concurrently on one shared const handle. Encoding
 * allocates nothing: all scratch space is on the stack.
 */
#ifndef MOAT_WRK_TOK_H
#define MOAT_WRK_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* The model's training length, counting [CLS] and [SEP]. */
#define WRK_TOK_MAX_LEN_DEFAULT 256

/* Words longer than this many code points (after normalisation) become [UNK]. */
#define WRK_TOK_MAX_WORD_CHARS 100

typedef struct wrk_tok wrk_tok_t;

/* wrk_tok_create: load a WordPiece vocabulary.
 * vocab_path: BERT vocab.txt, UTF-8, one token per line, id = 0-based line
 * number; trailing whitespace (incl. "\r") on a line is ignored and, as in HF's
 * WordPiece::read_file, a later duplicate line takes the token.
 * [CLS], [SEP], [UNK] and [PAD] must be present; [MASK] is optional.
 * Returns a handle (caller frees with wrk_tok_destroy()) or NULL with err:
 * ENOENT/EACCES/... (errno of open or read, path named), EFBIG (file over
 * 64 MiB or over INT32_MAX lines), EINVAL (empty vocabulary or a missing
 * special token, named), ENOMEM. */
wrk_tok_t *wrk_tok_create(const char *vocab_path, struct err *err);

/* wrk_tok_destroy: free the handle; NULL is a no-op. */
void wrk_tok_destroy(wrk_tok_t *tok);

/* Accessors; never fail. wrk_tok_mask_id() is -1 when the vocabulary has no [MASK]. */
int32_t wrk_tok_vocab_size(const wrk_tok_t *tok);
int32_t wrk_tok_cls_id(const wrk_tok_t *tok);
int32_t wrk_tok_sep_id(const wrk_tok_t *tok);
int32_t wrk_tok_unk_id(const wrk_tok_t *tok);
int32_t wrk_tok_pad_id(const wrk_tok_t *tok);
int32_t wrk_tok_mask_id(const wrk_tok_t *tok);

/* wrk_tok_token_id: id of the vocabulary entry equal to the len bytes at token
 * (no normalisation), or -1 when there is none. */
int32_t wrk_tok_token_id(const wrk_tok_t *tok, const char *token, size_t len);

/* wrk_tok_encode: tokenise one text.
 * text: len bytes of UTF-8 (need not be NUL-terminated; NUL bytes are dropped
 * as in step 2). max_len: at most this many ids are written, [CLS] and [SEP]
 * included (>= 2; WRK_TOK_MAX_LEN_DEFAULT for the model); text beyond is cut.
 * ids: [max_len] int32, caller-owned; on success ids[0..*n_ids) holds
 * [CLS] ... [SEP] and 2 <= *n_ids <= max_len.
 * Returns 0, or -1 with err: EILSEQ (invalid UTF-8: overlong, surrogate,
 * > U+10FFFF, truncated or stray byte; the message names the byte offset),
 * EINVAL (bad arguments). The whole text is validated even when truncation
 * would drop the bad part. On failure *n_ids is 0. */
int wrk_tok_encode(const wrk_tok_t *tok, const char *text, size_t len, int max_len,
                   int32_t *ids, int32_t *n_ids, struct err *err);

/* wrk_tok_encode_batch: tokenise B texts into padded id and mask matrices.
 * texts[b], lens[b]: as text, len of wrk_tok_encode() (b in [0, B)).
 * max_len: per-text limit as in wrk_tok_encode().
 * ids, mask: int32 buffers of B * max_len entries, caller-owned. On success
 * they hold [B, T] row-major matrices (row stride T), where T = max_len when
 * pad_to_max, else T = the longest row's length (the HF / sentence-transformers
 * "pad to longest" batch). ids are padded with [PAD]; mask[b][t] is 1 for a
 * real token and 0 for padding. lens_out: [B] int32 row lengths, or NULL.
 * token_type_ids (all 0 for single texts) are not produced.
 * Returns 0, or -1 with err as wrk_tok_encode(), prefixed "text B:" naming the
 * first bad row; nothing useful is left in the outputs then. */
int wrk_tok_encode_batch(const wrk_tok_t *tok, const char *const *texts, const size_t *lens,
                         int B, int max_len, bool pad_to_max, int32_t *ids, int32_t *mask,
                         int32_t *lens_out, int *T, struct err *err);

/* wrk_tok_pretokenize: the words of steps 1-5 (before WordPiece), for tools and
 * tests that compare with HF's normaliser and pre-tokeniser. Writes the words,
 * UTF-8, each followed by one '\n', to out (cap bytes, caller-owned; no
 * terminating NUL) and their byte count to *out_len. Added tokens appear as
 * their text. Returns 0, or -1 with err: EILSEQ as wrk_tok_encode(), ENOSPC when
 * cap is too small, EINVAL. */
int wrk_tok_pretokenize(const wrk_tok_t *tok, const char *text, size_t len, char *out,
                        size_t cap, size_t *out_len, struct err *err);

#endif
