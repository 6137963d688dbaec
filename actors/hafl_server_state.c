/*  hafl_server_state: checkpoint.state, written and read strictly. See hafl_server_state.h. */
#include "hafl_server_state.h"
#include "hafl_file.h"
#include "hafl_strategy.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAGIC       "hafl-checkpoint-state"
#define S_MAX_CLIENTS 100000u //  clients/count's range (topologies/README.md)
#define S_CLIENT_LINE 72u     //  longest "client ..." line, with its newline
#define S_MAX_FILE    (4096u + S_MAX_CLIENTS * S_CLIENT_LINE)

hafl_server_state_t *hafl_server_state_new(uint32_t n_clients)
{
    hafl_server_state_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n_clients = n_clients;
    self->clients = calloc(n_clients + 1, sizeof *self->clients);
    if (!self->clients)
        hafl_server_state_destroy(&self);
    return self;
}

void hafl_server_state_destroy(hafl_server_state_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->clients);
    free(*self_p);
    *self_p = NULL;
}

static size_t s_put_traffic(char *out, size_t outlen, const char *key, const hafl_traffic_t *t)
{
    return (size_t)snprintf(out, outlen, "%s %llu %llu %llu %llu %llu %llu\n", key,
                            (unsigned long long)t->components, (unsigned long long)t->head,
                            (unsigned long long)t->scores, (unsigned long long)t->control,
                            (unsigned long long)t->floats, (unsigned long long)t->messages);
}

int hafl_server_state_save(const hafl_server_state_t *self, const char *path, char *err,
                           size_t errlen)
{
    size_t cap = 4096 + (size_t)self->n_clients * S_CLIENT_LINE;
    char *text = malloc(cap);
    if (!text) {
        snprintf(err, errlen, "%.200s: out of memory", path);
        return -1;
    }
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, self->adapter, 32);
    size_t used =
        (size_t)snprintf(text, cap, "%s %d\nround %u\nstrategy %s\npending_swap %s\nadapter %s\n",
                         S_MAGIC, HAFL_SERVER_STATE_VERSION, self->round, self->strategy,
                         self->pending_swap[0] ? self->pending_swap : "-", hex);
    used += s_put_traffic(text + used, cap - used, "up", &self->up);
    used += s_put_traffic(text + used, cap - used, "down", &self->down);
    used +=
        (size_t)snprintf(text + used, cap - used, "counters %llu %llu %llu\nclients %u\n",
                         (unsigned long long)self->malformed, (unsigned long long)self->unexpected,
                         (unsigned long long)self->late, self->n_clients);
    for (uint32_t i = 0; i < self->n_clients; i++) {
        const hafl_server_state_client_t *c = &self->clients[i];
        used += (size_t)snprintf(text + used, cap - used, "client %u %u %u %u\n", i, c->down_until,
                                 c->ctl_drop ? 1u : 0u, c->ctl_straggle_ms);
    }
    int rc = hafl_file_write_atomic(path, text, used, err, errlen);
    free(text);
    return rc;
}

//  ---------------------------------------------------------------------------------------
//  Reading

typedef struct {
    const char *path;
    char *next; //  start of the next line
    unsigned line;
    char *err;
    size_t errlen;
} s_reader_t;

static int s_fail(s_reader_t *r, const char *what)
{
    snprintf(r->err, r->errlen, "%.200s: line %u: %s", r->path, r->line, what);
    return -1;
}

//  The next line (without its newline), or NULL at the end or when it lacks its newline.
static char *s_line(s_reader_t *r)
{
    char *line = r->next;
    char *end = line ? strchr(line, '\n') : NULL;
    r->line++;
    if (!end)
        return NULL;
    *end = 0;
    r->next = end + 1;
    return line;
}

//  The next line, which must start with "key ": its rest in *rest.
static int s_keyed(s_reader_t *r, const char *key, char **rest)
{
    char *line = s_line(r);
    size_t len = strlen(key);
    if (!line || strncmp(line, key, len) != 0 || line[len] != ' ') {
        char what[128];
        snprintf(what, sizeof what, "expected '%s ...'", key);
        return s_fail(r, what);
    }
    *rest = line + len + 1;
    return 0;
}

//  Exactly count decimal numbers separated by single spaces, each <= max, filling values.
static int s_numbers(s_reader_t *r, const char *text, size_t count, uint64_t max, uint64_t *values)
{
    const char *p = text;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && *p++ != ' ')
            return s_fail(r, "expected one space between numbers");
        if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
            return s_fail(r, "expected a decimal number without sign or leading zero");
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (max - (uint64_t)(*p - '0')) / 10)
                return s_fail(r, "number out of range");
            v = v * 10 + (uint64_t)(*p - '0');
        }
        values[i] = v;
    }
    if (*p)
        return s_fail(r, "unexpected text after the numbers");
    return 0;
}

static int s_traffic(s_reader_t *r, const char *key, hafl_traffic_t *t)
{
    char *rest;
    uint64_t v[6];
    if (s_keyed(r, key, &rest) || s_numbers(r, rest, 6, UINT64_MAX, v))
        return -1;
    t->components = v[0];
    t->head = v[1];
    t->scores = v[2];
    t->control = v[3];
    t->floats = v[4];
    t->messages = v[5];
    return 0;
}

static int s_strategy(s_reader_t *r, const char *key, bool none_ok, char out[64])
{
    char *rest;
    if (s_keyed(r, key, &rest))
        return -1;
    if (none_ok && strcmp(rest, "-") == 0) {
        out[0] = 0;
        return 0;
    }
    if (strlen(rest) >= 64 || !hafl_strategy_known(rest))
        return s_fail(r, "not a known strategy");
    snprintf(out, 64, "%s", rest);
    return 0;
}

static int s_parse(s_reader_t *r, hafl_server_state_t **out)
{
    char *rest;
    char *line = s_line(r);
    if (!line || strncmp(line, S_MAGIC " ", strlen(S_MAGIC) + 1) != 0)
        return s_fail(r, "not a checkpoint.state of this hafl (written before client state was "
                         "saved, or another file): resuming it would not be exact");
    uint64_t v[4];
    if (s_numbers(r, line + strlen(S_MAGIC) + 1, 1, UINT32_MAX, v))
        return -1;
    if (v[0] != HAFL_SERVER_STATE_VERSION)
        return s_fail(r, "another version of checkpoint.state");
    if (s_keyed(r, "round", &rest) || s_numbers(r, rest, 1, UINT32_MAX, v))
        return -1;
    if (v[0] == 0)
        return s_fail(r, "round 0 is not a checkpoint");
    uint32_t round = (uint32_t)v[0];
    char strategy[64], pending[64];
    if (s_strategy(r, "strategy", false, strategy) || s_strategy(r, "pending_swap", true, pending))
        return -1;
    uint8_t adapter[32];
    size_t bin_len = 0;
    if (s_keyed(r, "adapter", &rest))
        return -1;
    if (strlen(rest) != 64 || sodium_hex2bin(adapter, 32, rest, 64, NULL, &bin_len, NULL) != 0 ||
        bin_len != 32)
        return s_fail(r, "expected 64 hex digits");
    hafl_traffic_t up = {0}, down = {0};
    if (s_traffic(r, "up", &up) || s_traffic(r, "down", &down))
        return -1;
    uint64_t counters[3];
    if (s_keyed(r, "counters", &rest) || s_numbers(r, rest, 3, UINT64_MAX, counters))
        return -1;
    if (s_keyed(r, "clients", &rest) || s_numbers(r, rest, 1, S_MAX_CLIENTS, v))
        return -1;
    hafl_server_state_t *self = hafl_server_state_new((uint32_t)v[0]);
    if (!self)
        return s_fail(r, "out of memory");
    self->round = round;
    memcpy(self->strategy, strategy, 64);
    memcpy(self->pending_swap, pending, 64);
    memcpy(self->adapter, adapter, 32);
    self->up = up;
    self->down = down;
    self->malformed = counters[0];
    self->unexpected = counters[1];
    self->late = counters[2];
    for (uint32_t i = 0; i < self->n_clients; i++) {
        if (s_keyed(r, "client", &rest) || s_numbers(r, rest, 4, UINT32_MAX, v)) {
            hafl_server_state_destroy(&self);
            return -1;
        }
        if (v[0] != i || v[2] > 1) {
            hafl_server_state_destroy(&self);
            return s_fail(r, v[0] != i ? "clients out of order" : "CTL_DROP must be 0 or 1");
        }
        self->clients[i].down_until = (uint32_t)v[1];
        self->clients[i].ctl_drop = v[2] == 1;
        self->clients[i].ctl_straggle_ms = (uint32_t)v[3];
    }
    if (*r->next) {
        r->line++;
        hafl_server_state_destroy(&self);
        return s_fail(r, "unexpected text after the last client");
    }
    *out = self;
    return 0;
}

hafl_server_state_t *hafl_server_state_load(const char *path, char *err, size_t errlen)
{
    size_t size = 0;
    char *text = hafl_file_read(path, S_MAX_FILE, &size, err, errlen);
    if (!text)
        return NULL;
    hafl_server_state_t *self = NULL;
    s_reader_t reader = {path, text, 0, err, errlen};
    if (strlen(text) != size)
        snprintf(err, errlen, "%.200s: holds a zero byte (not a text checkpoint.state)", path);
    else
        s_parse(&reader, &self);
    free(text);
    return self;
}
