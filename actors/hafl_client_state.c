/*  hafl_client_state: client state files in a run folder. See hafl_client_state.h. */
#include "hafl_client_state.h"
#include "hafl_file.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hafl writes float32 state as little-endian and expects a little-endian host"
#endif

static const char s_magic[8] = {'H', 'A', 'F', 'L', 'C', 'L', 'S', 'T'};
#define S_HEADER   32u
#define S_CHECKSUM 32u
//  Largest file read back: 1 GiB (a quarter billion floats, far beyond any adapter hafl runs).
#define S_MAX_FILE (1ull << 30)

void hafl_client_state_path(const char *dir, uint32_t client, uint32_t round, char *path,
                            size_t pathlen)
{
    snprintf(path, pathlen, "%s/clients/client-%u-round-%u.state", dir, client, round);
}

//  The round of a file name "client-C-round-R.state" of this client, written exactly as
//  hafl_client_state_path writes it (no sign, no leading zero); false for any other name.
static bool s_parse_name(const char *name, uint32_t client, uint32_t *round)
{
    unsigned c = 0, r = 0;
    int used = 0;
    if (sscanf(name, "client-%u-round-%u.state%n", &c, &r, &used) != 2 || name[used] != 0 ||
        c != client)
        return false;
    char canonical[96];
    snprintf(canonical, sizeof canonical, "client-%u-round-%u.state", c, r);
    if (strcmp(canonical, name) != 0)
        return false;
    *round = r;
    return true;
}

int hafl_client_state_save(const char *dir, uint32_t client, uint32_t round, const float *values,
                           size_t n, char *err, size_t errlen)
{
    char folder[4200], path[4300];
    snprintf(folder, sizeof folder, "%s/clients", dir);
    if (mkdir(folder, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%.200s: cannot create: %s", folder, strerror(errno));
        return -1;
    }
    hafl_client_state_path(dir, client, round, path, sizeof path);
    size_t size = S_HEADER + n * sizeof(float) + S_CHECKSUM;
    uint8_t *data = malloc(size);
    if (!data) {
        snprintf(err, errlen, "%.200s: out of memory for %zu bytes", path, size);
        return -1;
    }
    uint32_t version = HAFL_CLIENT_STATE_VERSION, reserved = 0;
    uint64_t count = n;
    memcpy(data, s_magic, 8);
    memcpy(data + 8, &version, 4);
    memcpy(data + 12, &client, 4);
    memcpy(data + 16, &round, 4);
    memcpy(data + 20, &reserved, 4);
    memcpy(data + 24, &count, 8);
    if (n)
        memcpy(data + S_HEADER, values, n * sizeof(float));
    crypto_hash_sha256(data + size - S_CHECKSUM, data, size - S_CHECKSUM);
    int rc = hafl_file_write_atomic(path, data, size, err, errlen);
    free(data);
    return rc;
}

//  Call visit(round, path, arg) for each file of the client in dir/clients.
static void s_scan(const char *dir, uint32_t client,
                   void (*visit)(uint32_t round, const char *path, void *arg), void *arg)
{
    char folder[4200], path[4500];
    snprintf(folder, sizeof folder, "%s/clients", dir);
    DIR *d = opendir(folder);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        uint32_t round;
        if (!s_parse_name(entry->d_name, client, &round))
            continue;
        snprintf(path, sizeof path, "%s/%s", folder, entry->d_name);
        visit(round, path, arg);
    }
    closedir(d);
}

typedef struct {
    uint32_t limit; //  newest at or before this
    bool found;
    uint32_t round;
} s_newest_t;

static void s_visit_newest(uint32_t round, const char *path, void *arg)
{
    s_newest_t *newest = arg;
    if (round <= newest->limit && (!newest->found || round > newest->round)) {
        newest->found = true;
        newest->round = round;
    }
}

typedef struct {
    uint32_t keep;     //  this round is kept
    s_newest_t newest; //  and, when found, the newest at or before its limit
    bool all;          //  forget: delete every file
} s_prune_t;

static void s_visit_delete(uint32_t round, const char *path, void *arg)
{
    const s_prune_t *prune = arg;
    //  Only files older than the newest one at or before the limit go: each checkpoint
    //  generation the server keeps (the last and the one before) finds its state among the
    //  rest. Never more: a directory read while other clients of the process rename their
    //  files in it may miss an entry (seen under load), and a missed file must cost a file
    //  kept too long, not a file lost.
    bool kept = !prune->all && (round >= prune->keep ||
                                !(prune->newest.found && round < prune->newest.round));
    if (!kept)
        unlink(path);
}

void hafl_client_state_prune(const char *dir, uint32_t client, uint32_t keep, uint32_t keep_upto)
{
    s_prune_t prune = {keep, {keep_upto, false, 0}, false};
    s_scan(dir, client, s_visit_newest, &prune.newest);
    s_scan(dir, client, s_visit_delete, &prune);
}

void hafl_client_state_forget(const char *dir, uint32_t client)
{
    s_prune_t prune = {0, {0, false, 0}, true};
    s_scan(dir, client, s_visit_delete, &prune);
}

hafl_client_state_t *hafl_client_state_read(const char *path, char *err, size_t errlen)
{
    size_t size = 0;
    uint8_t *data = hafl_file_read(path, S_MAX_FILE, &size, err, errlen);
    if (!data)
        return NULL;
    hafl_client_state_t *self = NULL;
    uint32_t version, client, round, reserved;
    uint64_t count;
    uint8_t digest[32];
    if (size < S_HEADER + S_CHECKSUM) {
        snprintf(err, errlen, "%.200s: %zu bytes, too short for a client state file", path, size);
        goto done;
    }
    memcpy(&version, data + 8, 4);
    memcpy(&client, data + 12, 4);
    memcpy(&round, data + 16, 4);
    memcpy(&reserved, data + 20, 4);
    memcpy(&count, data + 24, 8);
    if (memcmp(data, s_magic, 8) != 0) {
        snprintf(err, errlen, "%.200s: bad magic (not a hafl client state file)", path);
        goto done;
    }
    if (version != HAFL_CLIENT_STATE_VERSION) {
        snprintf(err, errlen, "%.200s: version %u, this hafl reads version %u", path, version,
                 HAFL_CLIENT_STATE_VERSION);
        goto done;
    }
    if (reserved != 0 || count > (size - S_HEADER - S_CHECKSUM) / sizeof(float) ||
        S_HEADER + count * sizeof(float) + S_CHECKSUM != size) {
        snprintf(err, errlen, "%.200s: header declares %llu floats, the file has %zu bytes", path,
                 (unsigned long long)count, size);
        goto done;
    }
    crypto_hash_sha256(digest, data, size - S_CHECKSUM);
    if (memcmp(digest, data + size - S_CHECKSUM, 32) != 0) {
        snprintf(err, errlen, "%.200s: checksum mismatch (the file is corrupt)", path);
        goto done;
    }
    self = calloc(1, sizeof *self);
    if (self && count) {
        self->values = malloc(count * sizeof(float));
        if (self->values)
            memcpy(self->values, data + S_HEADER, count * sizeof(float));
        else
            hafl_client_state_destroy(&self);
    }
    if (!self) {
        snprintf(err, errlen, "%.200s: out of memory", path);
        goto done;
    }
    self->client = client;
    self->round = round;
    self->n = count;
done:
    free(data);
    return self;
}

hafl_client_state_t *hafl_client_state_load(const char *dir, uint32_t client, uint32_t max_round,
                                            char *err, size_t errlen)
{
    s_newest_t newest = {max_round, false, 0};
    s_scan(dir, client, s_visit_newest, &newest);
    if (!newest.found) {
        snprintf(err, errlen,
                 "%.200s/clients: no state file of client %u at or before round %u "
                 "(client-%u-round-R.state)",
                 dir, client, max_round, client);
        return NULL;
    }
    char path[4300];
    hafl_client_state_path(dir, client, newest.round, path, sizeof path);
    hafl_client_state_t *self = hafl_client_state_read(path, err, errlen);
    if (self && (self->client != client || self->round != newest.round)) {
        snprintf(err, errlen, "%.200s: holds client %u after round %u, not what its name says",
                 path, self->client, self->round);
        hafl_client_state_destroy(&self);
    }
    return self;
}

void hafl_client_state_destroy(hafl_client_state_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->values);
    free(*self_p);
    *self_p = NULL;
}
