/* safetensors.c: the safetensors reader (strict validation) and writer.
 *
 * Invariants of an st_file_t once built: tensors[] is sorted by (begin, end)
 * and tiles [0, data_len) exactly; every tensor's byte length equals
 * numel x dtype size; names are unique and owned by the handle.
 */
#include "shared/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

const char *const st_dtype_names[ST_DTYPE_COUNT] = {
    [ST_DTYPE_BOOL] = "BOOL",       [ST_DTYPE_U8] = "U8",   [ST_DTYPE_I8] = "I8",
    [ST_DTYPE_F8_E4M3] = "F8_E4M3", [ST_DTYPE_F8_E5M2] = "F8_E5M2",
    [ST_DTYPE_I16] = "I16",         [ST_DTYPE_U16] = "U16", [ST_DTYPE_F16] = "F16",
    [ST_DTYPE_BF16] = "BF16",       [ST_DTYPE_I32] = "I32", [ST_DTYPE_U32] = "U32",
    [ST_DTYPE_F32] = "F32",         [ST_DTYPE_F64] = "F64", [ST_DTYPE_I64] = "I64",
    [ST_DTYPE_U64] = "U64",
};

static const unsigned char st_dtype_sizes[ST_DTYPE_COUNT] = {
    [ST_DTYPE_BOOL] = 1, [ST_DTYPE_U8] = 1,  [ST_DTYPE_I8] = 1,  [ST_DTYPE_F8_E4M3] = 1,
    [ST_DTYPE_F8_E5M2] = 1, [ST_DTYPE_I16] = 2, [ST_DTYPE_U16] = 2, [ST_DTYPE_F16] = 2,
    [ST_DTYPE_BF16] = 2, [ST_DTYPE_I32] = 4, [ST_DTYPE_U32] = 4, [ST_DTYPE_F32] = 4,
    [ST_DTYPE_F64] = 8, [ST_DTYPE_I64] = 8, [ST_DTYPE_U64] = 8,
};

struct st_file {
    const unsigned char *bytes; /* the whole file */
    size_t len;
    bool mapped;                /* munmap(bytes, len) on destroy */
    size_t n;
    struct st_tensor *tensors;  /* [n], sorted by offset */
    size_t n_meta;
    char **meta;                /* [2 * n_meta]: key, value, ... */
};

size_t st_dtype_size(enum st_dtype dtype)
{
    if ((unsigned)dtype >= ST_DTYPE_COUNT)
        return 0;
    return st_dtype_sizes[dtype];
}

static int st_dtype_lookup(const char *s, enum st_dtype *out)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, st_dtype_names[i]) == 0) {
            *out = (enum st_dtype)i;
            return 0;
        }
    return -1;
}

void st_file_destroy(st_file_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    free(f->meta);
    if (f->mapped && f->len > 0)
        munmap((void *)f->bytes, f->len);
    free(f);
}

/* A JSON integer in [0, INT64_MAX] into *out. */
static bool st_json_uint(const json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* One header entry (not __metadata__) into *t; data pointers are set later. */
static int st_entry_parse(const char *name, json_t *obj, size_t data_len, struct st_tensor *t,
                          struct err *err)
{
    if (!json_is_object(obj))
        return err_set(err, EINVAL, "tensor '%s': entry is not an object", name);
    json_t *jd = json_object_get(obj, "dtype");
    json_t *js = json_object_get(obj, "shape");
    json_t *jo = json_object_get(obj, "data_offsets");
    if (jd == NULL || js == NULL || jo == NULL)
        return err_set(err, EINVAL, "tensor '%s': missing %s", name,
                       jd == NULL ? "dtype" : js == NULL ? "shape" : "data_offsets");
    if (json_object_size(obj) != 3) {
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v)
            if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
                return err_set(err, EINVAL, "tensor '%s': unknown key '%s'", name, key);
    }
    if (!json_is_string(jd) || st_dtype_lookup(json_string_value(jd), &t->dtype) != 0)
        return err_set(err, EINVAL, "tensor '%s': unknown dtype %s", name,
                       json_is_string(jd) ? json_string_value(jd) : "(not a string)");
    if (!json_is_array(js) || json_array_size(js) > ST_DIMS_MAX)
        return err_set(err, EINVAL, "tensor '%s': shape is not a list of at most %d dims",
                       name, ST_DIMS_MAX);
    t->ndim = (int)json_array_size(js);
    /* byte size, checked against overflow as it is accumulated */
    uint64_t bytes = st_dtype_size(t->dtype), numel = 1;
    bool zero = false;
    for (int d = 0; d < t->ndim; d++) {
        if (!st_json_uint(json_array_get(js, (size_t)d), &t->shape[d]))
            return err_set(err, EINVAL, "tensor '%s': shape[%d] is not a non-negative integer",
                           name, d);
        uint64_t dim = (uint64_t)t->shape[d];
        if (dim == 0)
            zero = true;
        else if (!zero && (numel > (uint64_t)INT64_MAX / dim || bytes > (uint64_t)INT64_MAX / dim))
            return err_set(err, EINVAL, "tensor '%s': shape overflows", name);
        if (!zero) {
            numel *= dim;
            bytes *= dim;
        }
    }
    if (zero)
        numel = bytes = 0;
    t->numel = (int64_t)numel;
    int64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !st_json_uint(json_array_get(jo, 0), &b)
        || !st_json_uint(json_array_get(jo, 1), &e) || b > e)
        return err_set(err, EINVAL, "tensor '%s': data_offsets is not [begin, end] with "
                       "0 <= begin <= end", name);
    if ((uint64_t)e > data_len)
        return err_set(err, EINVAL, "tensor '%s': data_offsets [%lld, %lld] outside the "
                       "%zu-byte buffer", name, (long long)b, (long long)e, data_len);
    if ((uint64_t)(e - b) != bytes)
        return err_set(err, EINVAL, "tensor '%s': %lld bytes at data_offsets, but %lld elements "
                       "of %s need %llu", name, (long long)(e - b), (long long)numel,
                       st_dtype_names[t->dtype], (unsigned long long)bytes);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return 0;
}

static int st_tensor_cmp(const void *pa, const void *pb)
{
    const struct st_tensor *a = pa, *b = pb;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int st_meta_parse(st_file_t *f, json_t *meta, struct err *err)
{
    if (!json_is_object(meta))
        return err_set(err, EINVAL, "__metadata__ is not an object");
    f->meta = calloc(2 * json_object_size(meta) + 1, sizeof *f->meta);
    if (f->meta == NULL)
        return err_set(err, ENOMEM, "__metadata__: out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return err_set(err, EINVAL, "__metadata__: '%s' is not a string", key);
        f->meta[2 * f->n_meta] = strdup(key);
        f->meta[2 * f->n_meta + 1] = strdup(json_string_value(v));
        f->n_meta++;
        if (f->meta[2 * f->n_meta - 2] == NULL || f->meta[2 * f->n_meta - 1] == NULL)
            return err_set(err, ENOMEM, "__metadata__: out of memory");
    }
    return 0;
}

/* Parse and validate f->bytes[0, f->len): fills tensors and metadata. */
static int st_file_load(st_file_t *f, struct err *err)
{
    if (f->len < 8)
        return err_set(err, EINVAL, "%zu bytes: shorter than the 8-byte header length", f->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f->bytes[i];
    if (hlen > ST_HEADER_MAX)
        return err_set(err, EFBIG, "header length %llu over the %u-byte limit",
                       (unsigned long long)hlen, ST_HEADER_MAX);
    if (hlen == 0 || hlen > f->len - 8)
        return err_set(err, EINVAL, "header length %llu, file has %zu bytes after it",
                       (unsigned long long)hlen, f->len - 8);
    const char *hdr = (const char *)f->bytes + 8;
    if (hdr[0] != '{')
        return err_set(err, EINVAL, "header does not start with '{'");
    size_t data_len = f->len - 8 - (size_t)hlen;
    const unsigned char *data = f->bytes + 8 + hlen;

    json_error_t jerr;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return err_set(err, EINVAL, "header json: %s (at byte %d)", jerr.text, jerr.position);
    int rc = -1;
    if (!json_is_object(root)) {
        err_set(err, EINVAL, "header is not a json object");
        goto out;
    }
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap + 1, sizeof *f->tensors);
    if (f->tensors == NULL) {
        err_set(err, ENOMEM, "header: out of memory for %zu tensors", cap);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (st_meta_parse(f, v, err) != 0)
                goto out;
            continue;
        }
        struct st_tensor *t = &f->tensors[f->n];
        if (st_entry_parse(key, v, data_len, t, err) != 0)
            goto out;
        t->name = strdup(key);
        if (t->name == NULL) {
            err_set(err, ENOMEM, "tensor '%s': out of memory", key);
            goto out;
        }
        t->data = data + t->begin;
        f->n++;
    }
    qsort(f->tensors, f->n, sizeof *f->tensors, st_tensor_cmp);
    size_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct st_tensor *t = &f->tensors[i];
        if (t->begin < at) {
            err_set(err, EINVAL, "tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s'",
                    t->name, t->begin, t->end, f->tensors[i - 1].name);
            goto out;
        }
        if (t->begin > at) {
            err_set(err, EINVAL, "tensor '%s': gap of %zu bytes before data_offsets [%zu, %zu]",
                    t->name, t->begin - at, t->begin, t->end);
            goto out;
        }
        at = t->end;
    }
    if (at != data_len) {
        err_set(err, EINVAL, "%zu trailing bytes after the last tensor", data_len - at);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

st_file_t *st_file_parse(const void *buf, size_t len, struct err *err)
{
    if (buf == NULL && len > 0) {
        err_set(err, EINVAL, "st_file_parse: NULL buffer");
        return NULL;
    }
    st_file_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        err_set(err, ENOMEM, "safetensors: out of memory");
        return NULL;
    }
    f->bytes = buf;
    f->len = len;
    if (st_file_load(f, err) != 0) {
        st_file_destroy(f);
        return NULL;
    }
    return f;
}

st_file_t *st_file_open(const char *path, struct err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, errno, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        err_set(err, errno, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        err_set(err, EINVAL, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    st_file_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        err_set(err, ENOMEM, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    f->len = (size_t)sb.st_size;
    if (f->len > 0) {
        void *p = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            err_set(err, errno, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            free(f);
            return NULL;
        }
        f->bytes = p;
        f->mapped = true;
    }
    close(fd);
    if (st_file_load(f, err) != 0) {
        err_prefix(err, "%s", path);
        st_file_destroy(f);
        return NULL;
    }
    return f;
}

size_t st_file_count(const st_file_t *f)
{
    return f->n;
}

const struct st_tensor *st_file_tensor(const st_file_t *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_file_find(const st_file_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *st_file_metadata(const st_file_t *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}

const void *st_file_bytes(const st_file_t *f, size_t *len)
{
    *len = f->len;
    return f->bytes;
}

/* ---- writer ---- */

static json_t *st_entry_build(const struct st_tensor_in *t, size_t begin, size_t *end,
                              struct err *err)
{
    size_t es = st_dtype_size(t->dtype);
    if (es == 0)
        return err_set(err, EINVAL, "tensor '%s': bad dtype %d", t->name, (int)t->dtype), NULL;
    if (t->ndim < 0 || t->ndim > ST_DIMS_MAX)
        return err_set(err, EINVAL, "tensor '%s': ndim %d", t->name, t->ndim), NULL;
    json_t *shape = json_array();
    uint64_t bytes = es;
    for (int d = 0; d < t->ndim && shape != NULL; d++) {
        if (t->shape[d] < 0) {
            json_decref(shape);
            return err_set(err, EINVAL, "tensor '%s': shape[%d] = %lld", t->name, d,
                           (long long)t->shape[d]), NULL;
        }
        if (t->shape[d] > 0 && bytes > (uint64_t)INT64_MAX / (uint64_t)t->shape[d]) {
            json_decref(shape);
            return err_set(err, EINVAL, "tensor '%s': shape overflows", t->name), NULL;
        }
        bytes *= (uint64_t)t->shape[d];
        json_array_append_new(shape, json_integer(t->shape[d]));
    }
    *end = begin + (size_t)bytes;
    json_t *offs = json_pack("[II]", (json_int_t)begin, (json_int_t)*end);
    json_t *e = json_pack("{s:s, s:o, s:o}", "dtype", st_dtype_names[t->dtype], "shape", shape,
                          "data_offsets", offs);
    if (e == NULL)
        err_set(err, ENOMEM, "tensor '%s': out of memory", t->name);
    return e;
}

int st_buf_encode(const struct st_tensor_in *tensors, size_t n, const char *const *meta_kv,
                  size_t n_meta, void **out, size_t *out_len, struct err *err)
{
    json_t *root = json_object();
    char *hdr = NULL;
    int rc = -1;
    if (root == NULL)
        return err_set(err, ENOMEM, "safetensors: out of memory");
    if (n_meta > 0) {
        json_t *meta = json_object();
        if (meta == NULL || json_object_set_new(root, "__metadata__", meta) != 0) {
            err_set(err, ENOMEM, "safetensors: out of memory");
            goto out;
        }
        for (size_t i = 0; i < n_meta; i++)
            if (json_object_set_new(meta, meta_kv[2 * i], json_string(meta_kv[2 * i + 1])) != 0) {
                err_set(err, EINVAL, "__metadata__: bad key or value at %zu", i);
                goto out;
            }
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = tensors[i].name;
        if (name == NULL || name[0] == '\0' || strcmp(name, "__metadata__") == 0
            || json_object_get(root, name) != NULL) {
            err_set(err, EINVAL, "tensor %zu: empty, reserved or duplicate name '%s'", i,
                    name ? name : "");
            goto out;
        }
        size_t end;
        json_t *e = st_entry_build(&tensors[i], at, &end, err);
        if (e == NULL)
            goto out;
        if (json_object_set_new(root, name, e) != 0) {
            err_set(err, EINVAL, "tensor '%s': bad name", name);
            goto out;
        }
        at = end;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (hdr == NULL) {
        err_set(err, ENOMEM, "safetensors: header: out of memory");
        goto out;
    }
    size_t hlen = strlen(hdr), pad = (8 - (8 + hlen) % 8) % 8;
    size_t total = 8 + hlen + pad + at;
    unsigned char *buf = malloc(total);
    if (buf == NULL) {
        err_set(err, ENOMEM, "safetensors: out of memory for %zu bytes", total);
        goto out;
    }
    uint64_t h = hlen + pad;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(h >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', pad);
    unsigned char *data = buf + 8 + hlen + pad;
    for (size_t i = 0; i < n; i++) {
        json_t *offs = json_object_get(json_object_get(root, tensors[i].name), "data_offsets");
        size_t b = (size_t)json_integer_value(json_array_get(offs, 0));
        size_t e = (size_t)json_integer_value(json_array_get(offs, 1));
        if (e > b)
            memcpy(data + b, tensors[i].data, e - b);
    }
    *out = buf;
    *out_len = total;
    rc = 0;
out:
    free(hdr);
    json_decref(root);
    return rc;
}
