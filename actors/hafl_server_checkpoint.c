/*  hafl_server_checkpoint: checkpoint generations and the resume settings check. See
    hafl_server_checkpoint.h.
*/
#include "hafl_server_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_GENERATIONS 4096u //  files looked at in the folder; more is not a run folder of ours

void hafl_server_checkpoint_paths(const char *run_dir, uint32_t round, char *adapter_path,
                                  char *state_path, size_t pathlen)
{
    snprintf(adapter_path, pathlen, "%s/%s/round-%u.bin", run_dir, HAFL_CHECKPOINT_DIR, round);
    snprintf(state_path, pathlen, "%s/%s/round-%u.state", run_dir, HAFL_CHECKPOINT_DIR, round);
}

//  "round-R.bin" or "round-R.state" (R decimal, no sign or leading zero): the round and which.
static bool s_parse_name(const char *name, uint32_t *round, bool *is_state)
{
    if (strncmp(name, "round-", 6) != 0)
        return false;
    const char *p = name + 6;
    if (*p < '1' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return false;
    }
    if (strcmp(p, ".state") == 0)
        *is_state = true;
    else if (strcmp(p, ".bin") == 0)
        *is_state = false;
    else
        return false;
    *round = (uint32_t)v;
    return true;
}

static int s_descending(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

//  Rounds whose state file exists (complete generations), newest first; count in *n.
static uint32_t *s_generations(const char *run_dir, size_t *n)
{
    char folder[4200];
    snprintf(folder, sizeof folder, "%s/%s", run_dir, HAFL_CHECKPOINT_DIR);
    *n = 0;
    uint32_t *rounds = malloc(S_MAX_GENERATIONS * sizeof *rounds);
    DIR *d = rounds ? opendir(folder) : NULL;
    if (!d)
        return rounds;
    struct dirent *entry;
    while ((entry = readdir(d)) && *n < S_MAX_GENERATIONS) {
        uint32_t round;
        bool is_state;
        if (s_parse_name(entry->d_name, &round, &is_state) && is_state)
            rounds[(*n)++] = round;
    }
    closedir(d);
    qsort(rounds, *n, sizeof *rounds, s_descending);
    return rounds;
}

//  Delete everything in the folder but the generations of rounds keep[0..n_keep).
static void s_prune(const char *run_dir, const uint32_t *keep, size_t n_keep)
{
    char folder[4200], path[4500];
    snprintf(folder, sizeof folder, "%s/%s", run_dir, HAFL_CHECKPOINT_DIR);
    DIR *d = opendir(folder);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        uint32_t round;
        bool is_state, kept = false;
        if (s_parse_name(entry->d_name, &round, &is_state))
            for (size_t i = 0; i < n_keep; i++)
                kept = kept || round == keep[i];
        if (!kept) {
            snprintf(path, sizeof path, "%s/%s", folder, entry->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

int hafl_server_checkpoint_save(const char *run_dir, const hafl_adapter_t *adapter,
                                const hafl_server_state_t *state, char *err, size_t errlen)
{
    char folder[4200], adapter_path[4300], state_path[4300];
    snprintf(folder, sizeof folder, "%s/%s", run_dir, HAFL_CHECKPOINT_DIR);
    if (mkdir(folder, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%.200s: cannot create: %s", folder, strerror(errno));
        return -1;
    }
    size_t n = 0;
    uint32_t *before = s_generations(run_dir, &n);
    if (!before) {
        snprintf(err, errlen, "%.200s: out of memory", folder);
        return -1;
    }
    hafl_server_checkpoint_paths(run_dir, state->round, adapter_path, state_path,
                                 sizeof adapter_path);
    if (hafl_adapter_save(adapter, adapter_path, err, errlen) ||
        hafl_server_state_save(state, state_path, err, errlen)) {
        unlink(state_path);
        unlink(adapter_path);
        free(before);
        return -1;
    }
    //  Keep this generation and the newest complete one before it.
    uint32_t keep[2] = {state->round, state->round};
    for (size_t i = 0; i < n; i++)
        if (before[i] < state->round) {
            keep[1] = before[i];
            break;
        }
    free(before);
    s_prune(run_dir, keep, 2);
    return 0;
}

//  Load and check round's generation: the state's checksum and round, the adapter against the
//  state's digest. The state (and *adapter_out), or NULL with a reason in err.
static hafl_server_state_t *s_load_generation(const char *run_dir, uint32_t round,
                                              hafl_adapter_t **adapter_out, char *err,
                                              size_t errlen)
{
    char adapter_path[4300], state_path[4300];
    hafl_server_checkpoint_paths(run_dir, round, adapter_path, state_path, sizeof adapter_path);
    hafl_server_state_t *state = hafl_server_state_load(state_path, err, errlen);
    if (!state)
        return NULL;
    if (state->round != round) {
        snprintf(err, errlen, "%.200s: holds round %u, not the round of its name", state_path,
                 state->round);
        hafl_server_state_destroy(&state);
        return NULL;
    }
    hafl_adapter_t *adapter = hafl_adapter_load(adapter_path, err, errlen);
    if (!adapter) {
        hafl_server_state_destroy(&state);
        return NULL;
    }
    uint8_t digest[32];
    hafl_adapter_digest(adapter, digest);
    if (memcmp(digest, state->adapter, 32) != 0) {
        snprintf(err, errlen,
                 "%.200s: not the adapter its state describes (round %u): edited, damaged or "
                 "of another round",
                 adapter_path, round);
        hafl_adapter_destroy(&adapter);
        hafl_server_state_destroy(&state);
        return NULL;
    }
    if (adapter_out)
        *adapter_out = adapter;
    else
        hafl_adapter_destroy(&adapter);
    return state;
}

hafl_server_state_t *hafl_server_checkpoint_load(const char *run_dir, hafl_adapter_t **adapter_out,
                                                 char *note, size_t notelen, char *err,
                                                 size_t errlen)
{
    note[0] = 0;
    if (adapter_out)
        *adapter_out = NULL;
    size_t n = 0;
    uint32_t *rounds = s_generations(run_dir, &n);
    if (!rounds) {
        snprintf(err, errlen, "%.200s: out of memory", run_dir);
        return NULL;
    }
    if (n == 0) {
        char legacy[4300];
        snprintf(legacy, sizeof legacy, "%s/checkpoint.state", run_dir);
        struct stat st;
        if (stat(run_dir, &st) != 0 || !S_ISDIR(st.st_mode))
            snprintf(err, errlen, "%.200s: not a run folder (%s)", run_dir,
                     stat(run_dir, &st) != 0 ? strerror(errno) : "not a directory");
        else if (access(legacy, F_OK) == 0)
            snprintf(err, errlen,
                     "%.200s: its checkpoint was written by an older hafl (checkpoint.state): "
                     "resuming it would not be exact",
                     run_dir);
        else
            snprintf(err, errlen,
                     "%.200s: no checkpoint in %s/ (the run ended before its first checkpoint "
                     "round, or server/checkpoint_every is 0)",
                     run_dir, HAFL_CHECKPOINT_DIR);
        free(rounds);
        return NULL;
    }
    hafl_server_state_t *state = NULL;
    char first_err[600] = "";
    for (size_t i = 0; i < n && !state; i++) {
        char why[600];
        state = s_load_generation(run_dir, rounds[i], adapter_out, why, sizeof why);
        if (!state && i == 0)
            snprintf(first_err, sizeof first_err, "%s", why);
        if (state && i > 0)
            snprintf(note, notelen, "checkpoint of round %u refused (%.300s); resuming from round %u",
                     rounds[0], first_err, rounds[i]);
    }
    if (!state)
        snprintf(err, errlen, "%s%s", first_err,
                 n > 1 ? " (and every older checkpoint generation was refused too)" : "");
    free(rounds);
    return state;
}

//  ---------------------------------------------------------------------------------------
//  Settings

//  Keys that may differ across a resume (see the header). A trailing '/' matches a section.
static const char *const s_free_keys[] = {
    "server/rounds",         "server/deadline_ms",   "server/join_timeout_ms",
    "server/heartbeat_ms",   "server/heartbeat_misses", "server/checkpoint_every",
    "server/endpoint",       "server/control",       "evaluator/",
    "logger/",               "placement/",           "security/",
    "data/test_limit",       "model/checkpoint",     "model/tokenizer",
    "data/path",
};

static bool s_free_key(const char *line, size_t keylen)
{
    for (size_t i = 0; i < sizeof s_free_keys / sizeof s_free_keys[0]; i++) {
        const char *k = s_free_keys[i];
        size_t len = strlen(k);
        if (k[len - 1] == '/' ? keylen > len && strncmp(line, k, len) == 0
                              : keylen == len && strncmp(line, k, len) == 0)
            return true;
    }
    return false;
}

char *hafl_server_checkpoint_settings(const hafl_topology_t *t, const uint8_t *base_digest)
{
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *out = open_memstream(&printed, &printed_len);
    if (!out)
        return NULL;
    hafl_topology_print(t, out);
    if (fclose(out) != 0 || !printed)
        return NULL;
    char *settings = malloc(printed_len + 100);
    if (!settings) {
        free(printed);
        return NULL;
    }
    size_t used = 0;
    for (char *line = printed; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eq = strstr(line, " = ");
        size_t keylen = eq && (size_t)(eq - line) < len ? (size_t)(eq - line) : len;
        if (len > 0 && !s_free_key(line, keylen)) {
            memcpy(settings + used, line, len);
            used += len;
            settings[used++] = '\n';
        }
        line += len + (end ? 1 : 0);
    }
    //  Last, so that a differing key is named before the digest it also changes.
    if (base_digest) {
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, base_digest, 32);
        used += (size_t)sprintf(settings + used, "base_digest = %s\n", hex);
    }
    settings[used] = 0;
    free(printed);
    return settings;
}

//  The value of key in "key = value\n" lines, its length in *len; NULL when absent.
static const char *s_value(const char *settings, const char *key, size_t keylen, size_t *len)
{
    for (const char *line = settings; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t linelen = end ? (size_t)(end - line) : strlen(line);
        if (linelen >= keylen + 3 && strncmp(line, key, keylen) == 0 &&
            strncmp(line + keylen, " = ", 3) == 0) {
            *len = linelen - keylen - 3;
            return line + keylen + 3;
        }
        line += linelen + (end ? 1 : 0);
    }
    return NULL;
}

//  A value for a message: quoted text, or "not set" when absent.
static void s_describe(char *out, size_t outlen, const char *value, size_t len)
{
    if (value)
        snprintf(out, outlen, "'%.*s'", (int)(len < 200 ? len : 200), value);
    else
        snprintf(out, outlen, "not set");
}

//  The first key of `a` whose value in `b` differs or is missing: 0 when none, else -1 with it
//  described in err (then = a is the checkpoint's, now = b the topology's, or the reverse).
static int s_first_difference(const char *a, const char *b, bool a_is_checkpoint,
                              bool skip_digest, char *err, size_t errlen)
{
    for (const char *line = a; *line;) {
        const char *end = strchr(line, '\n');
        size_t linelen = end ? (size_t)(end - line) : strlen(line);
        const char *eq = strstr(line, " = ");
        if (eq && (size_t)(eq - line) < linelen) {
            size_t keylen = (size_t)(eq - line), vlen = linelen - keylen - 3, other_len = 0;
            const char *value = eq + 3;
            const char *other = s_value(b, line, keylen, &other_len);
            bool digest = keylen == 11 && strncmp(line, "base_digest", 11) == 0;
            if (!(digest && skip_digest) &&
                (!other || other_len != vlen || memcmp(value, other, vlen) != 0)) {
                if (digest) {
                    snprintf(err, errlen,
                             "base_digest: the model, tokenizer or data differ from the ones "
                             "the checkpoint was made with: resuming would not be exact");
                    return -1;
                }
                char then[300], now[300];
                s_describe(then, sizeof then, a_is_checkpoint ? value : other,
                           a_is_checkpoint ? vlen : other_len);
                s_describe(now, sizeof now, a_is_checkpoint ? other : value,
                           a_is_checkpoint ? other_len : vlen);
                snprintf(err, errlen,
                         "%.*s is %s here but %s in the checkpoint: resuming with it would not "
                         "continue the run exactly (only server/rounds may grow)",
                         (int)keylen, line, now, then);
                return -1;
            }
        }
        line += linelen + (end ? 1 : 0);
    }
    return 0;
}

int hafl_server_checkpoint_compare(const hafl_server_state_t *state, const hafl_topology_t *t,
                                   const uint8_t *base_digest, char *err, size_t errlen)
{
    if (t->server.rounds < state->round) {
        snprintf(err, errlen,
                 "server/rounds is %u but the checkpoint is of round %u already: set it to "
                 "%u or more to continue the run",
                 t->server.rounds, state->round, state->round);
        return -1;
    }
    char *now = hafl_server_checkpoint_settings(t, base_digest);
    if (!now) {
        snprintf(err, errlen, "out of memory comparing settings");
        return -1;
    }
    const char *then = state->settings ? state->settings : "";
    //  Both ways, so a key only one side has is named too.
    int rc = s_first_difference(then, now, true, !base_digest, err, errlen);
    if (rc == 0)
        rc = s_first_difference(now, then, false, !base_digest, err, errlen);
    free(now);
    return rc;
}
