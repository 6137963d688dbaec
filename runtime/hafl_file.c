/*  hafl_file: atomic whole-file writes and bounded reads. See hafl_file.h. */
#include "hafl_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  fsync the folder holding path, so the rename itself survives a power loss.
static void s_sync_folder(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int hafl_file_write_atomic(const char *path, const void *data, size_t size, char *err,
                           size_t errlen)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        snprintf(err, errlen, "%.200s: path too long", path);
        return -1;
    }
    int fd = mkstemp(tmp); //  a name no other writer of the same file uses
    if (fd >= 0 && fchmod(fd, 0644) != 0) {
        close(fd);
        unlink(tmp);
        fd = -1;
    }
    if (fd < 0) {
        snprintf(err, errlen, "%.200s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    const char *bytes = data;
    size_t done = 0;
    while (done < size) {
        ssize_t wrote = write(fd, bytes + done, size - done);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote <= 0)
            break;
        done += (size_t)wrote;
    }
    int saved = 0;
    bool ok = done == size;
    if (!ok)
        saved = errno;
    if (ok && fsync(fd) != 0) {
        ok = false;
        saved = errno;
    }
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        snprintf(err, errlen, "%.200s: write failed: %s", path,
                 saved ? strerror(saved) : "short write");
        unlink(tmp);
        return -1;
    }
    s_sync_folder(path);
    return 0;
}

void *hafl_file_read(const char *path, size_t cap, size_t *size, char *err, size_t errlen)
{
    *size = 0;
    FILE *file = fopen(path, "rb");
    if (!file) {
        snprintf(err, errlen, "%.200s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *data = NULL;
    if (fstat(fileno(file), &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(err, errlen, "%.200s: not a regular file", path);
    else if ((unsigned long long)st.st_size > cap)
        snprintf(err, errlen, "%.200s: %lld bytes, more than the %zu expected at most", path,
                 (long long)st.st_size, cap);
    else if (!(data = malloc((size_t)st.st_size + 1)))
        snprintf(err, errlen, "%.200s: out of memory for %lld bytes", path, (long long)st.st_size);
    else if (fread(data, 1, (size_t)st.st_size, file) != (size_t)st.st_size) {
        snprintf(err, errlen, "%.200s: read failed", path);
        free(data);
        data = NULL;
    } else {
        data[st.st_size] = 0;
        *size = (size_t)st.st_size;
    }
    fclose(file);
    return data;
}
