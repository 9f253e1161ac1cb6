/* safetensors.h: strict reader and writer of the safetensors tensor file format.
 *
 * Format (huggingface/safetensors, docs "Format"; validation as in its Rust
 * `SafeTensors::deserialize` / `Metadata::validate`):
 *   bytes [0, 8)        N, u64 little-endian: the header's length
 *   bytes [8, 8+N)      header: UTF-8 JSON object; may end in spaces (padding)
 *                       { "NAME": {"dtype": "F32", "shape": [d0, ...],
 *                                  "data_offsets": [begin, end]}, ...,
 *                         "__metadata__": {"key": "string value", ...} (optional) }
 *   bytes [8+N, EOF)    the byte buffer; offsets are relative to its start,
 *                       elements little-endian, row-major (C order).
 * What the reader refuses (EINVAL unless said otherwise), naming the tensor:
 *   - a file shorter than 8 bytes, N == 0, N > ST_HEADER_MAX (100,000,000, the
 *     reference's limit) or N beyond the end of the file (EFBIG for the limit);
 *   - a header that is not a JSON object, duplicate keys, an entry that is not
 *     an object with exactly the keys dtype, shape, data_offsets, a dtype
 *     outside enum st_dtype, a shape that is not a list of at most ST_DIMS_MAX
 *     non-negative integers, or whose byte size overflows 2^63;
 *   - data_offsets that are not [begin, end] with 0 <= begin <= end, that lie
 *     outside the buffer, whose length is not shape x dtype size, that overlap
 *     another tensor's, or that leave a gap: tensors, sorted by offset, must
 *     tile the buffer exactly from 0 to its end (no trailing bytes either), as
 *     the reference implementation requires;
 *   - __metadata__ that is not an object of string values.
 * Pickle (.bin/.pt) files are never read: there is no code path for them.
 * Zero-size tensors (a 0 in the shape, begin == end) are allowed.
 *
 * Thread-safety: an st_file_t is immutable once opened; its accessors may be
 * called concurrently. Memory: st_file_open() maps the file read-only
 * (MAP_PRIVATE); st_file_parse() borrows the caller's buffer.
 */
#ifndef MOAT_SAFETENSORS_H
#define MOAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define ST_HEADER_MAX 100000000u /* bytes; the reference implementation's MAX_HEADER_SIZE */
#define ST_DIMS_MAX 8

/* Element types, by their safetensors names (the enum's name table holds
 * those exact strings: "BOOL", "U8", ..., "F8_E5M2"). */
enum st_dtype {
    ST_DTYPE_BOOL,
    ST_DTYPE_U8,
    ST_DTYPE_I8,
    ST_DTYPE_F8_E4M3,
    ST_DTYPE_F8_E5M2,
    ST_DTYPE_I16,
    ST_DTYPE_U16,
    ST_DTYPE_F16,
    ST_DTYPE_BF16,
    ST_DTYPE_I32,
    ST_DTYPE_U32,
    ST_DTYPE_F32,
    ST_DTYPE_F64,
    ST_DTYPE_I64,
    ST_DTYPE_U64,
    ST_DTYPE_COUNT
};
extern const char *const st_dtype_names[ST_DTYPE_COUNT];

/* st_dtype_size: bytes per element (1, 2, 4 or 8); 0 for an out-of-range value. */
size_t st_dtype_size(enum st_dtype dtype);

/* One tensor of a file. Borrowed: valid until the st_file_t is destroyed.
 * data points into the mapped (or borrowed) buffer and need not be aligned
 * beyond 1 byte: copy out with memcpy before reading multi-byte elements. */
struct st_tensor {
    const char *name;          /* NUL-terminated UTF-8 */
    enum st_dtype dtype;
    int ndim;                  /* 0 (scalar) .. ST_DIMS_MAX */
    int64_t shape[ST_DIMS_MAX];
    int64_t numel;             /* product of shape; 1 for a scalar */
    size_t begin, end;         /* data_offsets, relative to the byte buffer */
    const void *data;          /* end - begin bytes */
};

typedef struct st_file st_file_t;

/* st_file_open: map and validate the safetensors file at path.
 * Returns a handle (caller frees with st_file_destroy()) or NULL with err:
 * ENOENT/EACCES/... (open or mmap errno, path named), EINVAL (format; the
 * message names the path and the tensor or key at fault), EFBIG (header
 * length over ST_HEADER_MAX), ENOMEM. */
st_file_t *st_file_open(const char *path, struct err *err);

/* st_file_parse: validate the len bytes at buf as a safetensors file.
 * Borrowed: buf must stay valid and unchanged until st_file_destroy().
 * Errors as st_file_open() (without the path). */
st_file_t *st_file_parse(const void *buf, size_t len, struct err *err);

/* st_file_destroy: unmap (when opened from a path) and free. NULL is a no-op. */
void st_file_destroy(st_file_t *f);

/* st_file_count: number of tensors (__metadata__ not counted). */
size_t st_file_count(const st_file_t *f);

/* st_file_tensor: the i-th tensor, in increasing order of data offset, or
 * NULL when i >= st_file_count(). Borrowed: valid until st_file_destroy(). */
const struct st_tensor *st_file_tensor(const st_file_t *f, size_t i);

/* st_file_find: the tensor called name, or NULL when there is none.
 * Borrowed: valid until st_file_destroy(). */
const struct st_tensor *st_file_find(const st_file_t *f, const char *name);

/* st_file_metadata: the __metadata__ value for key, or NULL when absent.
 * Borrowed: valid until st_file_destroy(). */
const char *st_file_metadata(const st_file_t *f, const char *key);

/* st_file_bytes: the whole file (header included) and its size, e.g. to hash
 * it. Borrowed: valid until st_file_destroy(). */
const void *st_file_bytes(const st_file_t *f, size_t *len);

/* ---- writer ---- */

/* A tensor to write: data holds numel(shape) x st_dtype_size(dtype) bytes,
 * little-endian, row-major. Borrowed by st_buf_encode() for the call only. */
struct st_tensor_in {
    const char *name;
    enum st_dtype dtype;
    int ndim;
    int64_t shape[ST_DIMS_MAX];
    const void *data;
};

/* st_buf_encode: serialise n tensors (in the given order, tightly packed) and
 * optional metadata (meta_kv: 2*n_meta strings, key then value; NULL when
 * n_meta is 0) into a new safetensors image. The header is padded with spaces
 * so that the byte buffer starts at a multiple of 8 (as the reference writer
 * does). *out receives the image and *out_len its size; caller frees *out with
 * free(). EINVAL (bad dtype, ndim, negative dim, empty or duplicate name,
 * "__metadata__" as a tensor name), ENOMEM. Nothing is written on failure. */
int st_buf_encode(const struct st_tensor_in *tensors, size_t n, const char *const *meta_kv,
                  size_t n_meta, void **out, size_t *out_len, struct err *err);

#endif
