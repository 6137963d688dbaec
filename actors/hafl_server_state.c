/*  hafl_server_state: the server's checkpoint state file, written and read strictly. See hafl_server_state.h. */
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
#define S_MAX_SETTINGS 256u //  setting lines (a topology prints about 70)
//  All setting text: clients/ranks alone is up to 100000 numbers of up to 3 digits.
#define S_MAX_SETTINGS_BYTES (1u << 21)
#define S_CHECKSUM_LINE 72u //  "sha256 " + 64 hex digits + newline
#define S_MAX_FILE                                                                             \
    (4096u + S_MAX_CLIENTS * S_CLIENT_LINE + S_MAX_SETTINGS * 9u + S_MAX_SETTINGS_BYTES +      \
     S_CHECKSUM_LINE)

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
    free((*self_p)->settings);
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

//  A settings block as the file holds it: at most S_MAX_SETTINGS non-empty lines of printable
//  text, S_MAX_SETTINGS_BYTES in all.
static size_t s_settings_lines(const char *settings, bool *valid)
{
    size_t lines = 0, len = 0, total = 0;
    *valid = true;
    for (const char *p = settings ? settings : ""; *p; p++, total++) {
        if (*p == '\n') {
            *valid = *valid && len > 0;
            lines++, len = 0;
        } else {
            *valid = *valid && (unsigned char)*p >= 0x20 && *p != 0x7f;
            len++;
        }
    }
    *valid = *valid && len == 0 && lines <= S_MAX_SETTINGS && total <= S_MAX_SETTINGS_BYTES;
    return lines;
}

int hafl_server_state_save(const hafl_server_state_t *self, const char *path, char *err,
                           size_t errlen)
{
    bool valid;
    size_t n_settings = s_settings_lines(self->settings, &valid);
    if (!valid) {
        snprintf(err, errlen, "%.200s: settings are not lines of printable text", path);
        return -1;
    }
    size_t cap = 4096 + (size_t)self->n_clients * S_CLIENT_LINE +
                 (self->settings ? strlen(self->settings) : 0) + n_settings * 9 + S_CHECKSUM_LINE;
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
    used += (size_t)snprintf(text + used, cap - used, "settings %zu\n", n_settings);
    for (const char *p = self->settings ? self->settings : ""; *p;) {
        const char *end = strchr(p, '\n');
        used += (size_t)snprintf(text + used, cap - used, "setting %.*s\n", (int)(end - p), p);
        p = end + 1;
    }
    uint8_t sum[32];
    crypto_hash_sha256(sum, (const unsigned char *)text, used);
    sodium_bin2hex(hex, sizeof hex, sum, 32);
    used += (size_t)snprintf(text + used, cap - used, "sha256 %s\n", hex);
    int rc = hafl_file_write_atomic(path, text, used, err, errlen);
    free(text);
    return rc;
}

//  ---------------------------------------------------------------------------------------
//  Reading

typedef struct {
    const char *path;
    char *next; //  start of the next line
    char *end;  //  the checksum line: where parsing stops
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
        return s_fail(r, "not a checkpoint state of this hafl (written by an older version, or "
                         "another file): resuming it would not be exact");
    uint64_t v[4];
    if (s_numbers(r, line + strlen(S_MAGIC) + 1, 1, UINT32_MAX, v))
        return -1;
    if (v[0] != HAFL_SERVER_STATE_VERSION)
        return s_fail(r, "another version of the checkpoint state (written by another hafl): "
                         "resuming it would not be exact");
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
    if (s_keyed(r, "settings", &rest) || s_numbers(r, rest, 1, S_MAX_SETTINGS, v)) {
        hafl_server_state_destroy(&self);
        return -1;
    }
    //  The setting lines are copied as they are ("key = value"): the reader that compares them
    //  with a topology (hafl_server_checkpoint) gives them their meaning.
    size_t n_settings = (size_t)v[0], settings_len = 0;
    self->settings = malloc((size_t)(r->end - r->next) + 1);
    if (!self->settings) {
        hafl_server_state_destroy(&self);
        return s_fail(r, "out of memory");
    }
    self->settings[0] = 0;
    for (size_t i = 0; i < n_settings; i++) {
        if (s_keyed(r, "setting", &rest)) {
            hafl_server_state_destroy(&self);
            return -1;
        }
        size_t len = strlen(rest);
        memcpy(self->settings + settings_len, rest, len);
        settings_len += len;
        self->settings[settings_len++] = '\n';
        self->settings[settings_len] = 0;
    }
    if (r->next != r->end) {
        r->line++;
        hafl_server_state_destroy(&self);
        return s_fail(r, "unexpected text after the settings");
    }
    *out = self;
    return 0;
}

//  A first line "hafl-checkpoint-state N" of another version is refused as such, before the
//  checksum (which older versions did not write) is looked for. 0 otherwise.
static int s_other_version(const char *text, s_reader_t *r)
{
    size_t len = strlen(S_MAGIC);
    if (strncmp(text, S_MAGIC " ", len + 1) != 0)
        return 0;
    char *end = NULL;
    unsigned long version = strtoul(text + len + 1, &end, 10);
    if (!end || *end != '\n' || version == HAFL_SERVER_STATE_VERSION)
        return 0;
    r->line = 1;
    char what[160];
    snprintf(what, sizeof what,
             "another version of the checkpoint state (%lu; this hafl reads %d): resuming it "
             "would not be exact",
             version, HAFL_SERVER_STATE_VERSION);
    return s_fail(r, what);
}

//  The last line must be "sha256 HEX" over every byte before it. Checked before anything is
//  parsed, so no edited or damaged byte is ever read as state.
static int s_checksum(char *text, size_t size, s_reader_t *r)
{
    unsigned lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    r->line = lines;
    if (size < S_CHECKSUM_LINE || text[size - 1] != '\n')
        return s_fail(r, "no checksum line at the end (truncated, or not a checkpoint state)");
    char *line = text + size - S_CHECKSUM_LINE;
    uint8_t want[32], sum[32];
    size_t bin_len = 0;
    bool lower_hex = true; //  as written: any other spelling is an edit
    for (size_t i = 7; i < 71; i++)
        lower_hex = lower_hex && ((line[i] >= '0' && line[i] <= '9') ||
                                  (line[i] >= 'a' && line[i] <= 'f'));
    if ((line > text && line[-1] != '\n') || strncmp(line, "sha256 ", 7) != 0 || !lower_hex ||
        sodium_hex2bin(want, 32, line + 7, 64, NULL, &bin_len, NULL) != 0 || bin_len != 32)
        return s_fail(r, "expected 'sha256' and 64 hex digits as the last line (truncated, or "
                         "not a checkpoint state)");
    crypto_hash_sha256(sum, (const unsigned char *)text, (size_t)(line - text));
    if (sodium_memcmp(sum, want, 32) != 0)
        return s_fail(r, "the checksum does not match the file: it was edited or damaged");
    r->end = line;
    *line = 0;
    r->line = 0;
    return 0;
}

hafl_server_state_t *hafl_server_state_load(const char *path, char *err, size_t errlen)
{
    size_t size = 0;
    char *text = hafl_file_read(path, S_MAX_FILE, &size, err, errlen);
    if (!text)
        return NULL;
    hafl_server_state_t *self = NULL;
    s_reader_t reader = {path, text, NULL, 0, err, errlen};
    if (strlen(text) != size)
        snprintf(err, errlen, "%.200s: holds a zero byte (not a checkpoint state file)", path);
    else if (s_other_version(text, &reader) == 0 && s_checksum(text, size, &reader) == 0)
        s_parse(&reader, &self);
    free(text);
    return self;
}
