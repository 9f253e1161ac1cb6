/* keys.c: key files and allowlist lines (see keys.h for the formats). */
#include "shared/keys.h"
#include "shared/text.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const role_names[KEYS_ROLE_COUNT] = {"admin", "client", "worker"};

const char *keys_role_name(enum keys_role role)
{
    return (unsigned)role < KEYS_ROLE_COUNT ? role_names[role] : "?";
}

const char *keys_role_article(enum keys_role role)
{
    return role == KEYS_ROLE_ADMIN ? "an" : "a";
}

int keys_role_parse(const char *text)
{
    for (int i = 0; text && i < KEYS_ROLE_COUNT; i++)
        if (strcmp(text, role_names[i]) == 0)
            return i;
    return -1;
}

bool keys_z85_valid(const char *text)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    return text && strlen(text) == KEYS_LEN && strspn(text, alphabet) == KEYS_LEN;
}

/* next_word: the next run of non-blank characters of *p into out (cap bytes);
 * its length (0 at the end), or -1 if it does not fit. */
static int next_word(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, " \t\r\n");
    *p = s + n;
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return (int)n;
}

int keys_line_parse(const char *line, struct keys_entry *e, struct err *err)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#' || *p == '\n' || *p == '\r')
        return 0;
    char role[16], key[KEYS_LEN + 2];
    if (next_word(&p, role, sizeof role) <= 0 || keys_role_parse(role) < 0)
        return err_set(err, EINVAL, "allowlist: '%.20s': expected a role (admin, client or worker) first",
                       line);
    if (next_word(&p, key, sizeof key) <= 0 || !keys_z85_valid(key))
        return err_set(err, EINVAL, "allowlist: %s: expected a %d-character Z85 public key", role,
                       KEYS_LEN);
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, "\r\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n > KEYS_NAME_MAX)
        return err_set(err, EINVAL, "allowlist: %.12s...: name longer than %d bytes", key, KEYS_NAME_MAX);
    if (text_has_c0(p, n)) /* C1: blanked below (names added before it was refused) */
        return err_set(err, EINVAL, "allowlist: %.12s...: control character in the name", key);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '#')
            return err_set(err, EINVAL, "allowlist: %.12s...: '#' in the name (\"%.*s\"): comments "
                           "go on lines of their own", key, (int)n, p);
    }
    e->role = (enum keys_role)keys_role_parse(role);
    memcpy(e->key, key, KEYS_LEN + 1);
    memcpy(e->name, p, n);
    e->name[n] = '\0';
    text_blank_controls(e->name);
    return 1;
}

int keys_file_read(const char *path, bool secret, char key[KEYS_LEN + 1], struct err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        fclose(f);
        if (S_ISDIR(st.st_mode))
            return err_set(err, EISDIR, "%s: is a directory, not a key file", path);
        return err_set(err, EINVAL, "%s: not a regular file", path);
    }
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
        fclose(f);
        return err_set(err, EACCES, "%s: a secret key must not be readable by others (chmod 600)", path);
    }
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = line;
        char word[KEYS_LEN + 2];
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
            continue;
        if (next_word(&p, word, sizeof word) <= 0 || !keys_z85_valid(word))
            break;
        memcpy(key, word, KEYS_LEN + 1);
        found = 1;
    }
    fclose(f);
    if (!found)
        return err_set(err, EINVAL, "%s: not a Z85 key (%d characters)", path, KEYS_LEN);
    return 0;
}

int keys_file_write(const char *path, const char *key, bool secret, struct err *err)
{
    if (!keys_z85_valid(key))
        return err_set(err, EINVAL, "%s: not a Z85 key", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, secret ? 0600 : 0644);
    if (fd < 0)
        return err_set(err, errno, "%s: %s", path, strerror(errno));
    char line[KEYS_LEN + 2];
    memcpy(line, key, KEYS_LEN);
    line[KEYS_LEN] = '\n';
    bool ok = write(fd, line, KEYS_LEN + 1) == KEYS_LEN + 1 && fsync(fd) == 0;
    int e = errno;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        unlink(path);
        return err_set(err, e ? e : EIO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return 0;
}

int keys_process_guard(struct err *err)
{
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return err_set(err, errno, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
    return 0;
}
