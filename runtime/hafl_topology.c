/*  hafl_topology: the loader of hafl_topology.h.

    Loading runs in stages, each stopping at the first error:
      1. read the file (capped at 1 MiB) and scan it line by line: the scanner checks the ZPL
         syntax (4-space indentation, key names, quoting) and records the line of every key
         path, because zconfig keeps no line numbers and every error must name one;
      2. parse it with zconfig and apply the overrides with zconfig_put, so file and command
         line go through the same checks; an overridden key reports line 0;
      3. walk the tree against the key table below: unknown keys, sections given values, values
         given nested keys;
      4. parse every scalar (its default where the file is silent) with its type and range;
      5. cross-field checks: rank budgets (list or tiers) against R and the client count,
         participants, straggler delays, endpoints, placement hosts, security;
      6. resolve assets last, since that may touch the disk or the network.
    The key table drives parsing, defaults, printing and freeing, so a key is declared once.
*/
#include "hafl_topology.h"

#include "hafl_asset.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_FILE_BYTES (1u << 20)
#define S_MAX_DEPTH      8
#define S_MAX_NAME       64
#define S_MAX_PATH       (S_MAX_DEPTH * (S_MAX_NAME + 1))
#define S_NO_FIELD       ((size_t)-1)
#define S_F(member)      offsetof(hafl_topology_t, member)

typedef enum {
    S_SECTION, //  holds keys, no value
    S_U32,     //  decimal, range [min, max]
    S_U64,     //  decimal, full range
    S_F32,     //  finite decimal, range [min, max] (min exclusive when `above`)
    S_BOOL,    //  true|false|yes|no|on|off|1|0
    S_STR,     //  any text, at least `min` bytes
    S_CHOICE,  //  one of `choices`, kept as a string
    S_ENUM,    //  one of `choices`, kept as its index in an enum field
    S_RANKS    //  clients/ranks: comma list resolved with the tiers
} s_kind_t;

typedef struct {
    const char *path; //  "model/rank"; a "*" segment matches any one name
    s_kind_t kind;
    size_t field;        //  offset in hafl_topology_t, or S_NO_FIELD
    const char *def;     //  default, as text; NULL for sections and derived keys
    double min, max;     //  numeric range, or minimum string length
    bool above;          //  min is exclusive
    const char *choices; //  "a|b|c"
} s_key_t;

//  Every key a topology may hold. Order is the order of `hafl check` output.
static const s_key_t s_keys[] = {
    {"seed", S_U64, S_F(seed), "1", 0, 0, false, NULL},
    {"model", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"model/kind", S_CHOICE, S_F(model.kind), "llama", 0, 0, false, "llama|synthetic"},
    {"model/checkpoint", S_STR, S_F(model.checkpoint), "stories260K.bin", 1, 0, false, NULL},
    {"model/tokenizer", S_STR, S_F(model.tokenizer), "tok512.bin", 0, 0, false, NULL},
    {"model/targets", S_STR, S_F(model.targets), "wq,wk,wv,wo", 1, 0, false, NULL},
    {"model/rank", S_U32, S_F(model.rank), "8", 1, 256, false, NULL},
    {"model/alpha", S_F32, S_F(model.alpha), "16", 0, 1e6, true, NULL},
    {"model/dim", S_U32, S_F(model.dim), "32", 1, 4096, false, NULL},
    {"model/classes", S_U32, S_F(model.classes), "4", 2, 1024, false, NULL},
    {"model/collapse_spaces", S_BOOL, S_F(model.collapse_spaces), "false", 0, 0, false, NULL},
    {"model/score", S_CHOICE, S_F(model.score), "sensitivity", 0, 0, false, "sensitivity|ibar"},
    {"data", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"data/dataset", S_CHOICE, S_F(data.dataset), "20news", 0, 0, false, "20news|synthetic"},
    {"data/path", S_STR, S_F(data.path), "20news-bydate.tar.gz", 1, 0, false, NULL},
    {"data/split", S_CHOICE, S_F(data.split), "iid", 0, 0, false, "iid|dirichlet"},
    {"data/dirichlet_alpha", S_F32, S_F(data.dirichlet_alpha), "0.5", 0, 1e6, true, NULL},
    {"data/max_tokens", S_U32, S_F(data.max_tokens), "128", 1, 4096, false, NULL},
    {"data/train_limit", S_U32, S_F(data.train_limit), "0", 0, 100000000, false, NULL},
    {"data/test_limit", S_U32, S_F(data.test_limit), "0", 0, 100000000, false, NULL},
    {"data/validation", S_U32, S_F(data.validation), "0", 0, 100000000, false, NULL},
    {"data/keep_empty", S_BOOL, S_F(data.keep_empty), "true", 0, 0, false, NULL},
    {"data/train_size", S_U32, S_F(data.train_size), "4096", 1, 10000000, false, NULL},
    {"data/test_size", S_U32, S_F(data.test_size), "1024", 1, 10000000, false, NULL},
    {"server", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"server/rounds", S_U32, S_F(server.rounds), "50", 1, 100000, false, NULL},
    {"server/participants", S_U32, S_F(server.participants), "0", 0, 100000, false, NULL},
    {"server/deadline_ms", S_U32, S_F(server.deadline_ms), "600000", 1, 86400000, false, NULL},
    {"server/min_reports", S_U32, S_F(server.min_reports), "0", 0, 100000, false, NULL},
    {"server/join_timeout_ms", S_U32, S_F(server.join_timeout_ms), "3600000", 0, 86400000, false,
     NULL},
    {"server/scheme", S_CHOICE, S_F(server.scheme), "freeze", 0, 0, false,
     "truncate|truncate-prefix|freeze|freeze-random"},
    {"server/aggregator", S_CHOICE, S_F(server.aggregator), "adaptive", 0, 0, false,
     "adaptive|zeropad|zeropad-norm|fedavg|flexlora|flora|median|trimmed-mean"},
    {"server/heartbeat_ms", S_U32, S_F(server.heartbeat_ms), "1000", 50, 60000, false, NULL},
    {"server/heartbeat_misses", S_U32, S_F(server.heartbeat_misses), "5", 1, 1000, false, NULL},
    {"server/endpoint", S_STR, S_F(server.endpoint), "", 0, 0, false, NULL},
    {"server/control", S_STR, S_F(server.control), "", 0, 0, false, NULL},
    {"server/checkpoint_every", S_U32, S_F(server.checkpoint_every), "1", 0, 100000, false, NULL},
    {"server/max_samples", S_U32, S_F(server.max_samples), "0", 0, 4000000000u, false, NULL},
    {"server/trim", S_F32, S_F(server.trim), "0.2", 0, 0.5, false, NULL},
    {"server/clip_norm", S_F32, S_F(server.clip_norm), "0", 0, 1e6, false, NULL},
    {"clients", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"clients/count", S_U32, S_F(clients.count), "10", 1, HAFL_TOPOLOGY_MAX_CLIENTS, false, NULL},
    {"clients/ranks", S_RANKS, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"clients/tiers", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"clients/tiers/*", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"clients/tiers/*/rank", S_U32, S_NO_FIELD, NULL, 1, 256, false, NULL},
    {"clients/tiers/*/share", S_F32, S_NO_FIELD, NULL, 0, 1, true, NULL},
    {"clients/local_epochs", S_U32, S_F(clients.local_epochs), "1", 1, 1000, false, NULL},
    {"clients/local_steps", S_U32, S_F(clients.local_steps), "0", 0, 10000000, false, NULL},
    {"clients/batch", S_U32, S_F(clients.batch), "8", 1, 4096, false, NULL},
    {"clients/lr", S_F32, S_F(clients.lr), "0.001", 0, 10, true, NULL},
    {"clients/weight_decay", S_F32, S_F(clients.weight_decay), "0.01", 0, 10, false, NULL},
    {"clients/threads", S_U32, S_F(clients.threads), "1", 1, 256, false, NULL},
    {"faults", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"faults/stragglers", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"faults/stragglers/share", S_F32, S_F(faults.straggler_share), "0", 0, 1, false, NULL},
    {"faults/stragglers/delay", S_ENUM, S_F(faults.delay_dist), "uniform", 0, 0, false,
     "fixed|uniform|exponential"},
    {"faults/stragglers/min_ms", S_U32, S_F(faults.delay_min_ms), "0", 0, 86400000, false, NULL},
    {"faults/stragglers/max_ms", S_U32, S_F(faults.delay_max_ms), "1000", 0, 86400000, false, NULL},
    {"faults/dropout", S_F32, S_F(faults.dropout), "0", 0, 1, false, NULL},
    {"faults/crash", S_F32, S_F(faults.crash), "0", 0, 1, false, NULL},
    {"faults/rejoin_rounds", S_U32, S_F(faults.rejoin_rounds), "1", 1, 100000, false, NULL},
    {"faults/byzantine", S_F32, S_F(faults.byzantine), "0", 0, 1, false, NULL},
    {"faults/byzantine_attack", S_ENUM, S_F(faults.byzantine_attack), "scale", 0, 0, false,
     "scale|sign-flip|noise"},
    {"faults/byzantine_scale", S_F32, S_F(faults.byzantine_scale), "10", 0, 1e6, true, NULL},
    {"evaluator", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"evaluator/enabled", S_BOOL, S_F(evaluator.enabled), "true", 0, 0, false, NULL},
    {"evaluator/max_examples", S_U32, S_F(evaluator.max_examples), "0", 0, 100000000, false, NULL},
    {"evaluator/client_start", S_BOOL, S_F(evaluator.client_start), "false", 0, 0, false, NULL},
    {"logger", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"logger/run_dir", S_STR, S_F(logger.run_dir), "runs", 1, 0, false, NULL},
    {"logger/pull", S_STR, S_F(logger.pull), "", 0, 0, false, NULL},
    {"logger/pub", S_STR, S_F(logger.pub), "", 0, 0, false, NULL},
    {"logger/echo", S_BOOL, S_F(logger.echo), "false", 0, 0, false, NULL},
    {"placement", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"placement/mode", S_ENUM, S_F(placement.mode), "inproc", 0, 0, false,
     "inproc|processes|hosts"},
    {"placement/transport", S_CHOICE, S_F(placement.transport), "ipc", 0, 0, false, "ipc|tcp"},
    {"placement/base_port", S_U32, S_F(placement.base_port), "5670", 1024, 65000, false, NULL},
    {"placement/hosts", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"placement/hosts/*", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"placement/hosts/*/address", S_STR, S_NO_FIELD, NULL, 1, 0, false, NULL},
    {"placement/hosts/*/server", S_BOOL, S_NO_FIELD, "false", 0, 0, false, NULL},
    {"placement/hosts/*/evaluator", S_BOOL, S_NO_FIELD, "false", 0, 0, false, NULL},
    {"placement/hosts/*/clients", S_STR, S_NO_FIELD, "", 0, 0, false, NULL},
    {"security", S_SECTION, S_NO_FIELD, NULL, 0, 0, false, NULL},
    {"security/curve", S_BOOL, S_F(security.curve), "false", 0, 0, false, NULL},
    {"security/server_cert", S_STR, S_F(security.server_cert), "", 0, 0, false, NULL},
    {"security/client_certs", S_STR, S_F(security.client_certs), "", 0, 0, false, NULL},
    {"security/client_cert", S_STR, S_F(security.client_cert), "", 0, 0, false, NULL},
    {"security/evaluator_cert", S_STR, S_F(security.evaluator_cert), "", 0, 0, false, NULL},
    {"security/insecure", S_BOOL, S_F(security.insecure), "false", 0, 0, false, NULL},
};
#define S_KEY_COUNT (sizeof s_keys / sizeof s_keys[0])

//  Enum fields are written as int; the compiler must agree.
_Static_assert(sizeof(hafl_delay_dist_t) == sizeof(int), "enum size");
_Static_assert(sizeof(hafl_placement_mode_t) == sizeof(int), "enum size");
_Static_assert(sizeof(hafl_byzantine_attack_t) == sizeof(int), "enum size");

//  A key path of the file and the line it sits on.
typedef struct {
    char *path;
    int line;
} s_line_t;

typedef struct {
    const char *file; //  as given, for messages
    hafl_topology_error_t *err;
    s_line_t *lines; //  [n_lines] every key path of the file
    size_t n_lines;
    size_t cap_lines;
    const char *const *overrides; //  [n_overrides] "key/path=value"
    size_t n_overrides;
    zconfig_t *root;
    bool tiers_dropped; //  an override of clients/ranks replaces the file's tiers
} s_loader_t;

//  ---------------------------------------------------------------------------------------------
//  Errors

static bool s_is_overridden(s_loader_t *L, const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; i < L->n_overrides; i++) {
        const char *o = L->overrides[i];
        if (strncmp(o, path, len) == 0 && o[len] == '=')
            return true;
    }
    return false;
}

//  Line of a key path: 0 for overrides and for keys the file lacks.
static int s_line_of(s_loader_t *L, const char *path)
{
    if (s_is_overridden(L, path))
        return 0;
    for (size_t i = 0; i < L->n_lines; i++)
        if (strcmp(L->lines[i].path, path) == 0)
            return L->lines[i].line;
    return 0;
}

static int s_fail_at(s_loader_t *L, int line, const char *key, const char *format, ...)
{
    char reason[400];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(L->err->text, sizeof L->err->text, "%s:%d: %s: %s", L->file, line, key, reason);
    //  Values from the command line may hold control characters; the error stays one line.
    for (char *c = L->err->text; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return -1;
}

#define s_fail(L, key, ...) s_fail_at((L), s_line_of((L), (key)), (key), __VA_ARGS__)

//  A required key the file lacks is reported on the line of the section that should hold it.
static int s_fail_missing(s_loader_t *L, const char *path, const char *why)
{
    char parent[S_MAX_PATH];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    return s_fail_at(L, slash ? s_line_of(L, parent) : 0, path, "missing (%s)", why);
}

//  ---------------------------------------------------------------------------------------------
//  Stage 1: the line scanner

static bool s_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static int s_record_line(s_loader_t *L, const char *path, int line)
{
    for (size_t i = 0; i < L->n_lines; i++)
        if (strcmp(L->lines[i].path, path) == 0)
            return s_fail_at(L, line, path, "duplicate key (first given on line %d)",
                             L->lines[i].line);
    if (L->n_lines == L->cap_lines) {
        size_t cap = L->cap_lines ? 2 * L->cap_lines : 64;
        s_line_t *grown = realloc(L->lines, cap * sizeof *grown);
        if (!grown)
            return s_fail_at(L, line, path, "out of memory");
        L->lines = grown;
        L->cap_lines = cap;
    }
    L->lines[L->n_lines].path = strdup(path);
    if (!L->lines[L->n_lines].path)
        return s_fail_at(L, line, path, "out of memory");
    L->lines[L->n_lines].line = line;
    L->n_lines++;
    return 0;
}

//  Checks one non-blank line [p, eol) and records its key path. names[d] holds the key at
//  depth d of the lines above; *depth_p is the depth of the previous key line (-1 at start).
static int s_scan_line(s_loader_t *L, const char *p, const char *eol, int line,
                       char names[S_MAX_DEPTH][S_MAX_NAME + 1], int *depth_p)
{
    size_t indent = 0;
    while (p + indent < eol && p[indent] == ' ')
        indent++;
    const char *s = p + indent;
    if (s < eol && *s == '\t')
        return s_fail_at(L, line, "(syntax)", "tab in indentation (indent with 4 spaces a level)");
    if (s == eol)
        return 0;
    //  zconfig checks the indentation of comment lines too (of blank lines, not).
    if (indent % 4 != 0)
        return s_fail_at(L, line, "(syntax)", "indentation of %zu spaces is not a multiple of 4",
                         indent);
    if (*s == '#')
        return 0;
    int depth = (int)(indent / 4);
    if (depth > *depth_p + 1)
        return s_fail_at(L, line, "(syntax)",
                         "indented more than one level below the key above it");
    if (depth >= S_MAX_DEPTH)
        return s_fail_at(L, line, "(syntax)", "keys nested more than %d deep", S_MAX_DEPTH);

    const char *name = s;
    while (s < eol && s_is_name_char(*s))
        s++;
    size_t name_len = (size_t)(s - name);
    if (name_len == 0)
        return s_fail_at(L, line, "(syntax)", "expected a key name, found '%c'", *s);
    if (name_len > S_MAX_NAME)
        return s_fail_at(L, line, "(syntax)", "key name longer than %d characters", S_MAX_NAME);
    memcpy(names[depth], name, name_len);
    names[depth][name_len] = '\0';
    char path[S_MAX_PATH] = "";
    for (int d = 0; d <= depth; d++) {
        if (d)
            strcat(path, "/");
        strcat(path, names[d]);
    }
    if (s < eol && *s != ' ' && *s != '=' && *s != '#')
        return s_fail_at(L, line, path, "invalid character '%c' in a key name", *s);
    while (s < eol && *s == ' ')
        s++;
    if (s < eol && *s == '=') {
        s++;
        while (s < eol && *s == ' ')
            s++;
        if (s < eol && (*s == '"' || *s == '\'')) {
            const char *close = memchr(s + 1, *s, (size_t)(eol - s - 1));
            if (!close)
                return s_fail_at(L, line, path, "missing closing %c", *s);
            s = close + 1;
            while (s < eol && *s == ' ')
                s++;
            if (s < eol && *s != '#')
                return s_fail_at(L, line, path, "unexpected text after the quoted value");
        }
    } else if (s < eol && *s != '#')
        return s_fail_at(L, line, path, "expected '=' after the key name");
    *depth_p = depth;
    return s_record_line(L, path, line);
}

static int s_scan(s_loader_t *L, const char *buf, size_t len)
{
    char names[S_MAX_DEPTH][S_MAX_NAME + 1];
    int depth = -1;
    int line = 0;
    const char *p = buf;
    const char *end = buf + len;
    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        for (const char *c = p; c < eol; c++) {
            if (*c == '\0')
                return s_fail_at(L, line, "(syntax)", "NUL byte in the file");
            if (*c == '\r')
                return s_fail_at(L, line, "(syntax)",
                                 "carriage return (save the file with Unix line endings)");
        }
        if (s_scan_line(L, p, eol, line, names, &depth))
            return -1;
        p = eol + 1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Stage 2-3: the tree and the key table

//  True when `path` matches the table pattern (same segment count, "*" matches one segment).
static bool s_path_matches(const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (*pattern == '*') {
            pattern++;
            while (*path && *path != '/')
                path++;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

static const s_key_t *s_key_find(const char *path)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++)
        if (s_path_matches(s_keys[i].path, path))
            return &s_keys[i];
    return NULL;
}

//  The keys allowed under `parent` (a path, "" for the top), as "a, b, c", into buf.
static void s_allowed_under(const char *parent_path, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    size_t plen = strlen(parent_path);
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const char *k = s_keys[i].path;
        //  Compare the pattern's parent with the concrete parent path.
        const char *slash = strrchr(k, '/');
        size_t klen = slash ? (size_t)(slash - k) : 0;
        char kparent[S_MAX_PATH];
        memcpy(kparent, k, klen);
        kparent[klen] = '\0';
        bool match = plen == 0 ? klen == 0 : (klen > 0 && s_path_matches(kparent, parent_path));
        if (!match || strcmp(slash ? slash + 1 : k, "*") == 0)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", slash ? slash + 1 : k);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
}

static int s_check_tree(s_loader_t *L, zconfig_t *node, const char *path)
{
    for (zconfig_t *child = zconfig_child(node); child; child = zconfig_next(child)) {
        char child_path[S_MAX_PATH];
        const char *name = zconfig_name(child);
        if (snprintf(child_path, sizeof child_path, "%s%s%s", path, *path ? "/" : "", name) >=
            (int)sizeof child_path)
            return s_fail(L, path, "key path too long");
        if (L->tiers_dropped && strcmp(child_path, "clients/tiers") == 0)
            continue;
        const s_key_t *key = s_key_find(child_path);
        if (!key) {
            char allowed[300];
            s_allowed_under(path, allowed, sizeof allowed);
            if (*allowed)
                return s_fail(L, child_path, "unknown key (%s takes: %s)",
                              *path ? path : "the top level", allowed);
            return s_fail(L, child_path, "unknown key");
        }
        const char *value = zconfig_value(child);
        if (key->kind == S_SECTION) {
            if (value && *value)
                return s_fail(L, child_path, "is a section of keys; it takes no value");
            if (s_check_tree(L, child, child_path))
                return -1;
        } else if (zconfig_child(child))
            return s_fail(L, child_path, "takes a value, not nested keys");
    }
    return 0;
}

//  Applies "key/path=value" overrides to the tree (checked like file values afterwards).
static int s_apply_overrides(s_loader_t *L)
{
    for (size_t i = 0; i < L->n_overrides; i++) {
        const char *o = L->overrides[i];
        const char *eq = o ? strchr(o, '=') : NULL;
        if (!eq || eq == o)
            return s_fail_at(L, 0, o ? o : "(null)",
                             "an override is KEY=VALUE, e.g. server/rounds=5");
        char path[S_MAX_PATH];
        size_t len = (size_t)(eq - o);
        if (len >= sizeof path)
            return s_fail_at(L, 0, "(override)", "key path too long");
        memcpy(path, o, len);
        path[len] = '\0';
        bool valid = path[0] != '/' && path[len - 1] != '/' && !strstr(path, "//");
        for (size_t c = 0; c < len && valid; c++)
            valid = path[c] == '/' || s_is_name_char(path[c]);
        if (!valid)
            return s_fail_at(L, 0, path,
                             "not a key path (names of letters, digits, _ - . joined by /)");
        zconfig_put(L->root, path, eq + 1);
        if (strcmp(path, "clients/ranks") == 0)
            L->tiers_dropped = true;
    }
    return 0;
}

//  The text of a key: the tree's value, else NULL (absent).
static const char *s_value(s_loader_t *L, const char *path)
{
    zconfig_t *node = zconfig_locate(L->root, path);
    if (!node)
        return NULL;
    const char *value = zconfig_value(node);
    return value ? value : "";
}

//  ---------------------------------------------------------------------------------------------
//  Stage 4: scalars

static int s_parse_u64(const char *text, uint64_t *out)
{
    if (!*text)
        return -1;
    uint64_t v = 0;
    for (const char *c = text; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        unsigned digit = (unsigned)(*c - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

//  Parses `text` as `key`'s type into *out (uint32_t, uint64_t, float, bool, char *, int as
//  the kind says). `path` names the key in errors (concrete for "*" patterns).
static int s_parse(s_loader_t *L, const s_key_t *key, const char *path, const char *text, void *out)
{
    switch (key->kind) {
    case S_U64:
    case S_U32: {
        uint64_t v;
        if (s_parse_u64(text, &v))
            return s_fail(L, path, "'%s' is not a whole number", text);
        if (key->kind == S_U64) {
            *(uint64_t *)out = v;
            return 0;
        }
        if ((double)v < key->min || (double)v > key->max)
            return s_fail(L, path, "%s is out of range %.0f..%.0f", text, key->min, key->max);
        *(uint32_t *)out = (uint32_t)v;
        return 0;
    }
    case S_F32: {
        char *end = NULL;
        errno = 0;
        double v = *text ? strtod(text, &end) : NAN;
        if (!*text || *end || errno == ERANGE || !isfinite(v))
            return s_fail(L, path, "'%s' is not a finite number", text);
        if (key->above ? v <= key->min : v < key->min)
            return s_fail(L, path, "%s is out of range (must be %s %g)", text,
                          key->above ? ">" : ">=", key->min);
        if (v > key->max)
            return s_fail(L, path, "%s is out of range (must be <= %g)", text, key->max);
        *(float *)out = (float)v;
        return 0;
    }
    case S_BOOL: {
        static const char *yes[] = {"true", "yes", "on", "1"};
        static const char *no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
                *(bool *)out = strcmp(text, yes[i]) == 0;
                return 0;
            }
        }
        return s_fail(L, path, "'%s' is not a boolean (true or false)", text);
    }
    case S_STR:
        if (strlen(text) < (size_t)key->min)
            return s_fail(L, path, "must not be empty");
        *(char **)out = strdup(text);
        return *(char **)out ? 0 : s_fail(L, path, "out of memory");
    case S_CHOICE:
    case S_ENUM: {
        int index = 0;
        size_t len = strlen(text);
        for (const char *c = key->choices; *c; index++) {
            const char *bar = strchr(c, '|');
            size_t clen = bar ? (size_t)(bar - c) : strlen(c);
            if (clen == len && strncmp(c, text, len) == 0) {
                if (key->kind == S_ENUM)
                    *(int *)out = index;
                else if (!(*(char **)out = strdup(text)))
                    return s_fail(L, path, "out of memory");
                return 0;
            }
            c += clen + (bar ? 1 : 0);
        }
        return s_fail(L, path, "unknown value '%s' (one of: %s)", text, key->choices);
    }
    case S_SECTION:
    case S_RANKS:
        break;
    }
    return s_fail(L, path, "internal: key has no scalar type");
}

static int s_parse_scalars(s_loader_t *L, hafl_topology_t *self)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const s_key_t *key = &s_keys[i];
        if (key->field == S_NO_FIELD)
            continue;
        const char *text = s_value(L, key->path);
        if (s_parse(L, key, key->path, text ? text : key->def, (char *)self + key->field))
            return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Stage 5: cross-field checks

//  Normalises model/targets to "a,b" in the given order, each from the known set, no repeats.
static int s_check_targets(s_loader_t *L, hafl_topology_t *self)
{
    static const char *known[] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
    bool seen[7] = {false};
    char out[64] = "";
    const char *c = self->model.targets;
    while (true) {
        while (*c == ' ')
            c++;
        const char *start = c;
        while (*c && *c != ',' && *c != ' ')
            c++;
        size_t len = (size_t)(c - start);
        while (*c == ' ')
            c++;
        int found = -1;
        for (int k = 0; k < 7 && found < 0; k++)
            if (strlen(known[k]) == len && strncmp(known[k], start, len) == 0)
                found = k;
        if (found < 0)
            return s_fail(L, "model/targets",
                          "'%.*s' is not a target (any of wq,wk,wv,wo,w1,w2,w3)", (int)len, start);
        if (seen[found])
            return s_fail(L, "model/targets", "%s listed twice", known[found]);
        seen[found] = true;
        if (*out)
            strcat(out, ",");
        strcat(out, known[found]);
        if (*c == '\0')
            break;
        if (*c != ',')
            return s_fail(L, "model/targets", "targets are separated by commas");
        c++;
    }
    char *normal = strdup(out);
    if (!normal)
        return s_fail(L, "model/targets", "out of memory");
    free(self->model.targets);
    self->model.targets = normal;
    return 0;
}

static int s_check_rank(s_loader_t *L, const char *path, uint32_t rank, uint32_t R, const char *who)
{
    if (rank == 0)
        return s_fail(L, path, "rank budget 0%s: every client trains at least one component", who);
    if (rank > R)
        return s_fail(L, path, "rank budget %u%s is above model/rank %u", rank, who, R);
    return 0;
}

//  clients/ranks: "r" (every client) or "r0,r1,...", one per client.
static int s_parse_rank_list(s_loader_t *L, hafl_topology_t *self, const char *text)
{
    const char *path = "clients/ranks";
    uint32_t n = self->clients.count;
    uint32_t given = 0;
    const char *c = text;
    while (true) {
        while (*c == ' ')
            c++;
        const char *start = c;
        while (*c >= '0' && *c <= '9')
            c++;
        size_t len = (size_t)(c - start);
        while (*c == ' ')
            c++;
        if (len == 0 || len > 9 || (*c && *c != ','))
            return s_fail(L, path, "'%s' is not a comma-separated list of whole numbers", text);
        uint32_t rank = (uint32_t)strtoul(start, NULL, 10);
        if (given < n)
            self->clients.ranks[given] = rank;
        given++;
        char who[48];
        snprintf(who, sizeof who, " (entry %u)", given);
        if (s_check_rank(L, path, rank, self->model.rank, who))
            return -1;
        if (*c == '\0')
            break;
        c++;
    }
    if (given == 1)
        for (uint32_t i = 1; i < n; i++)
            self->clients.ranks[i] = self->clients.ranks[0];
    else if (given != n)
        return s_fail(L, path, "lists %u rank budgets for clients/count = %u clients", given, n);
    return 0;
}

//  One tier while resolving: its rank, share and the clients it gets.
typedef struct {
    const char *name;
    uint32_t rank;
    double share;
    uint32_t clients;
    double remainder;
    size_t order; //  position in the file, the tie-breaker
} s_tier_t;

//  clients/tiers: each tier gets floor(share * count) clients; the clients left over go one
//  each to the tiers with the largest fractional remainders (ties: file order). Client ids are
//  then given out tier by tier, largest rank budget first (ties: file order).
static int s_resolve_tiers(s_loader_t *L, hafl_topology_t *self, zconfig_t *tiers)
{
    size_t n_tiers = 0;
    for (zconfig_t *t = zconfig_child(tiers); t; t = zconfig_next(t))
        n_tiers++;
    if (n_tiers == 0)
        return s_fail(L, "clients/tiers", "no tiers given (each tier holds rank and share)");
    s_tier_t *tier = calloc(n_tiers, sizeof *tier);
    if (!tier)
        return s_fail(L, "clients/tiers", "out of memory");
    const s_key_t *rank_key = s_key_find("clients/tiers/*/rank");
    const s_key_t *share_key = s_key_find("clients/tiers/*/share");
    double total = 0;
    size_t i = 0;
    int rc = 0;
    for (zconfig_t *t = zconfig_child(tiers); t && rc == 0; t = zconfig_next(t), i++) {
        char rank_path[S_MAX_PATH];
        char share_path[S_MAX_PATH];
        snprintf(rank_path, sizeof rank_path, "clients/tiers/%s/rank", zconfig_name(t));
        snprintf(share_path, sizeof share_path, "clients/tiers/%s/share", zconfig_name(t));
        const char *rank_text = s_value(L, rank_path);
        const char *share_text = s_value(L, share_path);
        float share = 0;
        tier[i].name = zconfig_name(t);
        tier[i].order = i;
        if (!rank_text)
            rc = s_fail_missing(L, rank_path, "each tier needs rank and share");
        else if (!share_text)
            rc = s_fail_missing(L, share_path, "each tier needs rank and share");
        else if (s_parse(L, rank_key, rank_path, rank_text, &tier[i].rank) ||
                 s_parse(L, share_key, share_path, share_text, &share))
            rc = -1;
        else
            rc = s_check_rank(L, rank_path, tier[i].rank, self->model.rank, "");
        tier[i].share = (double)share;
        total += tier[i].share;
    }
    if (rc == 0 && fabs(total - 1.0) > 1e-4)
        rc = s_fail(L, "clients/tiers", "shares sum to %g, not 1", total);
    if (rc == 0) {
        uint32_t n = self->clients.count;
        uint32_t assigned = 0;
        for (i = 0; i < n_tiers; i++) {
            double exact = tier[i].share * (double)n;
            tier[i].clients = (uint32_t)floor(exact);
            tier[i].remainder = exact - floor(exact);
            assigned += tier[i].clients;
        }
        //  Hand out the leftover clients by largest remainder; at most n_tiers of them.
        while (assigned < n) {
            size_t best = 0;
            for (i = 1; i < n_tiers; i++)
                if (tier[i].remainder > tier[best].remainder)
                    best = i;
            tier[best].clients++;
            tier[best].remainder = -1;
            assigned++;
        }
        //  Stable order: rank descending, then file order (insertion sort; tiers are few).
        for (i = 1; i < n_tiers; i++) {
            s_tier_t moving = tier[i];
            size_t j = i;
            while (j > 0 && tier[j - 1].rank < moving.rank) {
                tier[j] = tier[j - 1];
                j--;
            }
            tier[j] = moving;
        }
        uint32_t next = 0;
        for (i = 0; i < n_tiers; i++)
            for (uint32_t k = 0; k < tier[i].clients && next < n; k++)
                self->clients.ranks[next++] = tier[i].rank;
    }
    free(tier);
    return rc;
}

static int s_resolve_ranks(s_loader_t *L, hafl_topology_t *self)
{
    uint32_t n = self->clients.count;
    self->clients.ranks = calloc(n, sizeof *self->clients.ranks);
    if (!self->clients.ranks)
        return s_fail(L, "clients/count", "out of memory for %u clients", n);
    const char *list = s_value(L, "clients/ranks");
    zconfig_t *tiers = L->tiers_dropped ? NULL : zconfig_locate(L->root, "clients/tiers");
    if (list && tiers)
        return s_fail(L, "clients/tiers", "give clients/ranks or clients/tiers, not both");
    if (list)
        return s_parse_rank_list(L, self, list);
    if (tiers)
        return s_resolve_tiers(L, self, tiers);
    for (uint32_t i = 0; i < n; i++)
        self->clients.ranks[i] = self->model.rank;
    return 0;
}

static int s_check_federation(s_loader_t *L, hafl_topology_t *self)
{
    uint32_t n = self->clients.count;
    if (strcmp(self->model.kind, "synthetic") == 0 && strcmp(self->data.dataset, "synthetic") != 0)
        return s_fail(L, "data/dataset",
                      "is %s, but model/kind synthetic trains on data/dataset = synthetic only",
                      self->data.dataset);
    if (strcmp(self->model.kind, "llama") == 0 && strcmp(self->data.dataset, "synthetic") == 0)
        return s_fail(
            L, "data/dataset",
            "the synthetic dataset is for model/kind synthetic only (model/kind is llama)");
    char why[256];
    if (hafl_topology_strategy_fits(self, self->server.aggregator, why, sizeof why))
        return s_fail(L, "server/aggregator", "%s", why);
    if (self->server.participants > n)
        return s_fail(L, "server/participants", "%u participants per round but only %u clients",
                      self->server.participants, n);
    uint32_t per_round = self->server.participants ? self->server.participants : n;
    if (self->server.min_reports > per_round)
        return s_fail(L, "server/min_reports",
                      "%u reports needed but only %u clients take part "
                      "in a round",
                      self->server.min_reports, per_round);
    if (self->faults.delay_dist == HAFL_DELAY_UNIFORM &&
        self->faults.delay_min_ms > self->faults.delay_max_ms)
        return s_fail(L, "faults/stragglers/min_ms", "%u is above faults/stragglers/max_ms %u",
                      self->faults.delay_min_ms, self->faults.delay_max_ms);
    //  The key table's ranges are closed; trimming half from each end would leave nothing.
    if (self->server.trim >= 0.5f)
        return s_fail(L, "server/trim", "%g is out of range (must be < 0.5)",
                      (double)self->server.trim);
    return 0;
}

//  A ZeroMQ endpoint this project can bind or connect: inproc://x, ipc://x, tcp://host:port.
static bool s_is_endpoint(const char *text)
{
    const char *rest = NULL;
    if (strncmp(text, "inproc://", 9) == 0)
        rest = text + 9;
    else if (strncmp(text, "ipc://", 6) == 0)
        rest = text + 6;
    else if (strncmp(text, "tcp://", 6) == 0) {
        rest = text + 6;
        const char *colon = strrchr(rest, ':');
        if (!colon || colon == rest || colon[1] == '\0')
            return false;
        for (const char *c = colon + 1; *c; c++)
            if ((*c < '0' || *c > '9') && *c != '*')
                return false;
    }
    return rest && *rest;
}

static int s_check_endpoints(s_loader_t *L, hafl_topology_t *self)
{
    const char *paths[] = {"server/endpoint", "server/control", "logger/pull", "logger/pub"};
    const char *values[] = {self->server.endpoint, self->server.control, self->logger.pull,
                            self->logger.pub};
    for (int i = 0; i < 4; i++) {
        if (!*values[i])
            continue;
        if (!s_is_endpoint(values[i]))
            return s_fail(L, paths[i],
                          "'%s' is not an endpoint (inproc://NAME, ipc://PATH or "
                          "tcp://HOST:PORT)",
                          values[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(values[i], values[j]) == 0)
                return s_fail(L, paths[i], "same endpoint as %s (%s)", paths[j], values[i]);
    }
    return 0;
}

//  "A-B", "A", "" or "none" into [first, last]; none gives first > last.
static int s_parse_client_range(const char *text, uint32_t n, uint32_t *first, uint32_t *last)
{
    *first = 1;
    *last = 0;
    if (!*text || strcmp(text, "none") == 0)
        return 0;
    char buf[32];
    if (strlen(text) >= sizeof buf)
        return -1;
    strcpy(buf, text);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = '\0';
    uint64_t a, b;
    if (s_parse_u64(buf, &a) || s_parse_u64(dash ? dash + 1 : buf, &b))
        return -1;
    if (a > b || b >= n)
        return -1;
    *first = (uint32_t)a;
    *last = (uint32_t)b;
    return 0;
}

static bool s_is_address(const char *text)
{
    for (const char *c = text; *c; c++)
        if (!s_is_name_char(*c) && *c != ':' && *c != '[' && *c != ']')
            return false;
    return *text != '\0';
}

static int s_parse_hosts(s_loader_t *L, hafl_topology_t *self)
{
    zconfig_t *hosts = zconfig_locate(L->root, "placement/hosts");
    if (self->placement.mode != HAFL_PLACEMENT_HOSTS) {
        if (hosts)
            return s_fail(L, "placement/hosts", "hosts are used only with placement/mode = hosts");
        return 0;
    }
    if (strcmp(self->placement.transport, "tcp") != 0)
        return s_fail(L, "placement/transport",
                      "placement/mode hosts needs tcp (ipc reaches only "
                      "this machine)");
    size_t n_hosts = 0;
    for (zconfig_t *h = hosts ? zconfig_child(hosts) : NULL; h; h = zconfig_next(h))
        n_hosts++;
    if (n_hosts == 0)
        return s_fail(L, "placement/hosts", "placement/mode hosts needs at least one host");
    if (n_hosts > HAFL_TOPOLOGY_MAX_HOSTS)
        return s_fail(L, "placement/hosts", "%zu hosts, at most %u", n_hosts,
                      HAFL_TOPOLOGY_MAX_HOSTS);
    self->placement.hosts = calloc(n_hosts, sizeof *self->placement.hosts);
    if (!self->placement.hosts)
        return s_fail(L, "placement/hosts", "out of memory");
    uint32_t n = self->clients.count;
    int32_t *owner = malloc(n * sizeof *owner);
    if (!owner)
        return s_fail(L, "placement/hosts", "out of memory");
    for (uint32_t c = 0; c < n; c++)
        owner[c] = -1;

    int rc = 0;
    int server = -1;
    int evaluator = -1;
    for (zconfig_t *h = zconfig_child(hosts); h && rc == 0; h = zconfig_next(h)) {
        hafl_host_t *host = &self->placement.hosts[self->placement.n_hosts];
        int index = (int)self->placement.n_hosts++;
        const char *name = zconfig_name(h);
        char path[4][S_MAX_PATH];
        const char *leaf[4] = {"address", "server", "evaluator", "clients"};
        for (int k = 0; k < 4; k++)
            snprintf(path[k], sizeof path[k], "placement/hosts/%s/%s", name, leaf[k]);
        host->name = strdup(name);
        const char *address = s_value(L, path[0]);
        const char *serves = s_value(L, path[1]);
        const char *evaluates = s_value(L, path[2]);
        const char *clients = s_value(L, path[3]);
        if (!host->name)
            rc = s_fail(L, path[0], "out of memory");
        else if (!address)
            rc = s_fail_missing(L, path[0], "the address other hosts reach this one at");
        else if (!s_is_address(address))
            rc = s_fail(L, path[0], "'%s' is not a host name or IP address", address);
        else if (s_parse(L, s_key_find(path[1]), path[1], serves ? serves : "false",
                         &host->server) ||
                 s_parse(L, s_key_find(path[2]), path[2], evaluates ? evaluates : "false",
                         &host->evaluator))
            rc = -1;
        else if (!(host->address = strdup(address)))
            rc = s_fail(L, path[0], "out of memory");
        else if (s_parse_client_range(clients ? clients : "", n, &host->client_first,
                                      &host->client_last))
            rc = s_fail(L, path[3],
                        "'%s' is not FIRST-LAST, one client number or none "
                        "(clients are numbered 0..%u)",
                        clients, n - 1);
        else if (host->server && server >= 0)
            rc = s_fail(L, path[1], "host %s runs the server already",
                        self->placement.hosts[server].name);
        else if (host->evaluator && evaluator >= 0)
            rc = s_fail(L, path[2], "host %s runs the evaluator already",
                        self->placement.hosts[evaluator].name);
        if (rc)
            break;
        if (host->server)
            server = index;
        if (host->evaluator)
            evaluator = index;
        for (uint32_t c = host->client_first;
             c <= host->client_last && host->client_first <= host->client_last; c++) {
            if (owner[c] >= 0) {
                rc = s_fail(L, path[3], "client %u is also placed on host %s", c,
                            self->placement.hosts[owner[c]].name);
                break;
            }
            owner[c] = index;
        }
    }
    if (rc == 0 && server < 0)
        rc = s_fail(L, "placement/hosts", "no host runs the server (set server = true on one)");
    for (uint32_t c = 0; c < n && rc == 0; c++)
        if (owner[c] < 0)
            rc = s_fail(L, "placement/hosts", "client %u is placed on no host", c);
    //  Without a host named for it, the evaluator runs beside the server.
    if (rc == 0 && evaluator < 0 && self->evaluator.enabled)
        self->placement.hosts[server].evaluator = true;
    free(owner);
    return rc;
}

static int s_check_file(s_loader_t *L, const char *key, const char *path, bool want_dir)
{
    struct stat st;
    if (!*path)
        return s_fail(L, key, "missing (needed when security/curve is on)");
    if (stat(path, &st) != 0)
        return s_fail(L, key, "%s: %s", path, strerror(errno));
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return s_fail(L, key, "%s is not a %s", path, want_dir ? "directory" : "regular file");
    return 0;
}

static int s_check_security(s_loader_t *L, hafl_topology_t *self)
{
    //  Secure by default across hosts: actors on more than one host over tcp talk in the clear
    //  only when the topology says so.
    if (!self->security.curve && !self->security.insecure &&
        self->placement.mode == HAFL_PLACEMENT_HOSTS && self->placement.n_hosts > 1 &&
        strcmp(self->placement.transport, "tcp") == 0)
        return s_fail(L, "security/curve",
                      "actors on %u hosts over tcp without CURVE: anyone on the network could "
                      "read and write the federation's traffic; set security/curve = true (`hafl "
                      "keygen` makes the certificates) or, knowingly, security/insecure = true",
                      self->placement.n_hosts);
    if (!self->security.curve)
        return 0;
    if (self->placement.mode == HAFL_PLACEMENT_INPROC ||
        strcmp(self->placement.transport, "tcp") != 0)
        return s_fail(L, "security/curve",
                      "CURVE needs tcp (placement/mode processes or hosts with "
                      "placement/transport tcp)");
    if (s_check_file(L, "security/server_cert", self->security.server_cert, false) ||
        s_check_file(L, "security/client_certs", self->security.client_certs, true))
        return -1;
    //  One certificate per client: each client's host holds only its own, so the files are
    //  checked where each client starts (hafl_security_new_peer), not here.
    bool per_client = strstr(self->security.client_cert, "{index}") != NULL;
    if (!per_client && s_check_file(L, "security/client_cert", self->security.client_cert, false))
        return -1;
    if (per_client && strstr(self->security.client_cert, "{index}") !=
                          strrchr(self->security.client_cert, '{'))
        return s_fail(L, "security/client_cert", "'%s' holds {index} more than once or another "
                      "brace", self->security.client_cert);
    if (per_client && !self->security.evaluator_cert[0] && self->evaluator.enabled)
        return s_fail(L, "security/evaluator_cert",
                      "missing: security/client_cert names one certificate per client ({index}), "
                      "so the evaluator needs its own (hafl keygen --clients N --evaluator)");
    if (strstr(self->security.evaluator_cert, "{index}"))
        return s_fail(L, "security/evaluator_cert", "'%s': the evaluator has no index",
                      self->security.evaluator_cert);
    return 0;
}

//  ---------------------------------------------------------------------------------------------
//  Stage 6: assets

static int s_resolve_asset(s_loader_t *L, const char *key, char **value)
{
    char why[400];
    char *found = hafl_asset_find(*value, why, sizeof why);
    if (!found)
        return s_fail(L, key, "%s", why);
    free(*value);
    *value = found;
    return 0;
}

//  Whether the file at path starts with GGUF's magic (a model file that carries its tokenizer).
static bool s_is_gguf(const char *path)
{
    FILE *file = fopen(path, "rb");
    char magic[4];
    bool gguf = file && fread(magic, 1, 4, file) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (file)
        fclose(file);
    return gguf;
}

static int s_resolve_assets(s_loader_t *L, hafl_topology_t *self)
{
    if (strcmp(self->model.kind, "llama") == 0) {
        if (s_resolve_asset(L, "model/checkpoint", &self->model.checkpoint))
            return -1;
        //  A GGUF checkpoint's tokenizer is in its own metadata unless one is named; an empty
        //  model/tokenizer asks for that explicitly (so an override can undo a file's line).
        bool gguf = s_is_gguf(self->model.checkpoint);
        bool empty = self->model.tokenizer[0] == '\0';
        if (empty && !gguf)
            return s_fail(L, "model/tokenizer",
                          "empty means the checkpoint's own tokenizer, but %s is not a GGUF "
                          "file (a llama2.c checkpoint needs a tokenizer file)",
                          self->model.checkpoint);
        if ((empty || !s_value(L, "model/tokenizer")) && gguf) {
            char *own = strdup(self->model.checkpoint);
            if (!own)
                return s_fail(L, "model/tokenizer", "out of memory");
            free(self->model.tokenizer);
            self->model.tokenizer = own;
        } else if (s_resolve_asset(L, "model/tokenizer", &self->model.tokenizer))
            return -1;
    }
    if (strcmp(self->data.dataset, "20news") == 0 &&
        s_resolve_asset(L, "data/path", &self->data.path))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------------------------------

static char *s_read_file(s_loader_t *L, const char *path, size_t *len_p)
{
    FILE *file = fopen(path, "rb");
    if (!file) {
        s_fail_at(L, 0, "(file)", "cannot open: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(S_MAX_FILE_BYTES + 1);
    size_t len = buf ? fread(buf, 1, S_MAX_FILE_BYTES + 1, file) : 0;
    bool failed = !buf || ferror(file);
    fclose(file);
    if (failed || len > S_MAX_FILE_BYTES) {
        s_fail_at(L, 0, "(file)", failed ? "cannot read it" : "larger than %u bytes",
                  S_MAX_FILE_BYTES);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    *len_p = len;
    return buf;
}

static char *s_run_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".zpl") == 0)
        len -= 4;
    return strndup(base, len);
}

hafl_topology_t *hafl_topology_load(const char *path, const char *const *overrides,
                                    size_t n_overrides, hafl_topology_error_t *err)
{
    hafl_topology_error_t scratch;
    s_loader_t loader = {.file = path ? path : "(none)",
                         .err = err ? err : &scratch,
                         .overrides = overrides,
                         .n_overrides = n_overrides};
    s_loader_t *L = &loader;
    L->err->text[0] = '\0';
    hafl_topology_t *self = calloc(1, sizeof *self);
    size_t len = 0;
    char *buf = path && self ? s_read_file(L, path, &len) : NULL;
    int rc = buf ? 0 : -1;
    if (!self)
        s_fail_at(L, 0, "(file)", "out of memory");
    else if (!path)
        s_fail_at(L, 0, "(file)", "no topology file given");
    if (rc == 0)
        rc = s_scan(L, buf, len);
    if (rc == 0) {
        L->root = zconfig_str_load(buf);
        if (!L->root)
            rc = s_fail_at(L, 0, "(syntax)", "zconfig could not parse the file");
    }
    if (rc == 0) {
        self->path = strdup(path);
        self->name = s_run_name(path);
        if (!self->path || !self->name)
            rc = s_fail_at(L, 0, "(file)", "out of memory");
    }
    if (rc == 0)
        rc = s_apply_overrides(L);
    if (rc == 0)
        rc = s_check_tree(L, L->root, "");
    if (rc == 0)
        rc = s_parse_scalars(L, self);
    if (rc == 0)
        rc = s_check_targets(L, self);
    if (rc == 0)
        rc = s_resolve_ranks(L, self);
    if (rc == 0)
        rc = s_check_federation(L, self);
    if (rc == 0)
        rc = s_check_endpoints(L, self);
    if (rc == 0)
        rc = s_parse_hosts(L, self);
    if (rc == 0)
        rc = s_check_security(L, self);
    if (rc == 0)
        rc = s_resolve_assets(L, self);

    zconfig_destroy(&L->root);
    for (size_t i = 0; i < L->n_lines; i++)
        free(L->lines[i].path);
    free(L->lines);
    free(buf);
    if (rc != 0)
        hafl_topology_destroy(&self);
    return self;
}

void hafl_topology_destroy(hafl_topology_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_topology_t *self = *self_p;
    for (size_t i = 0; i < S_KEY_COUNT; i++)
        if (s_keys[i].field != S_NO_FIELD &&
            (s_keys[i].kind == S_STR || s_keys[i].kind == S_CHOICE))
            free(*(char **)((char *)self + s_keys[i].field));
    for (uint32_t h = 0; h < self->placement.n_hosts; h++) {
        free(self->placement.hosts[h].name);
        free(self->placement.hosts[h].address);
    }
    free(self->placement.hosts);
    free(self->clients.ranks);
    free(self->path);
    free(self->name);
    free(self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------------------------

void hafl_topology_print(const hafl_topology_t *self, FILE *out)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const s_key_t *key = &s_keys[i];
        const void *field = (const char *)self + key->field;
        if (key->kind == S_RANKS) {
            fprintf(out, "clients/ranks = ");
            for (uint32_t c = 0; c < self->clients.count; c++)
                fprintf(out, "%s%u", c ? "," : "", self->clients.ranks[c]);
            fprintf(out, "\n");
            continue;
        }
        if (strcmp(key->path, "placement/hosts") == 0) {
            for (uint32_t h = 0; h < self->placement.n_hosts; h++) {
                const hafl_host_t *host = &self->placement.hosts[h];
                fprintf(out, "placement/hosts/%s/address = %s\n", host->name, host->address);
                fprintf(out, "placement/hosts/%s/server = %s\n", host->name,
                        host->server ? "true" : "false");
                fprintf(out, "placement/hosts/%s/evaluator = %s\n", host->name,
                        host->evaluator ? "true" : "false");
                if (host->client_first > host->client_last)
                    fprintf(out, "placement/hosts/%s/clients = none\n", host->name);
                else
                    fprintf(out, "placement/hosts/%s/clients = %u-%u\n", host->name,
                            host->client_first, host->client_last);
            }
            continue;
        }
        if (key->field == S_NO_FIELD)
            continue;
        fprintf(out, "%s = ", key->path);
        switch (key->kind) {
        case S_U32:
            fprintf(out, "%u\n", *(const uint32_t *)field);
            break;
        case S_U64:
            fprintf(out, "%llu\n", (unsigned long long)*(const uint64_t *)field);
            break;
        case S_F32:
            fprintf(out, "%g\n", (double)*(const float *)field);
            break;
        case S_BOOL:
            fprintf(out, "%s\n", *(const bool *)field ? "true" : "false");
            break;
        case S_STR:
        case S_CHOICE: {
            const char *text = *(char *const *)field;
            fprintf(out, "%s\n", *text ? text : "\"\"");
            break;
        }
        case S_ENUM: {
            int index = *(const int *)field;
            const char *c = key->choices;
            for (int k = 0; k < index; k++)
                c = strchr(c, '|') + 1;
            const char *bar = strchr(c, '|');
            fprintf(out, "%.*s\n", (int)(bar ? (size_t)(bar - c) : strlen(c)), c);
            break;
        }
        case S_SECTION:
        case S_RANKS:
            break;
        }
    }
}

int hafl_topology_take_overrides(int *argc_p, char **argv, const char ***overrides_p, size_t *n_p,
                                 hafl_topology_error_t *err)
{
    int argc = *argc_p;
    const char **list = calloc((size_t)argc + 1, sizeof *list);
    if (!list) {
        snprintf(err->text, sizeof err->text, "--set: out of memory");
        return -1;
    }
    size_t n = 0;
    int kept = 0;
    for (int i = 0; i < argc; i++) {
        const char *value = NULL;
        if (strcmp(argv[i], "--set") == 0) {
            if (i + 1 >= argc) {
                snprintf(err->text, sizeof err->text,
                         "--set needs KEY=VALUE, e.g. --set server/rounds=5");
                free(list);
                return -1;
            }
            value = argv[++i];
        } else if (strncmp(argv[i], "--set=", 6) == 0)
            value = argv[i] + 6;
        if (value) {
            const char *eq = strchr(value, '=');
            if (!eq || eq == value) {
                snprintf(err->text, sizeof err->text,
                         "--set %s: expected KEY=VALUE, e.g. --set "
                         "server/rounds=5",
                         value);
                free(list);
                return -1;
            }
            list[n++] = value;
        } else
            argv[kept++] = argv[i];
    }
    argv[kept] = NULL;
    *argc_p = kept;
    *overrides_p = list;
    *n_p = n;
    return 0;
}

//  fedavg averages whole matrices, which only means something when every client holds the
//  same components; heterogeneous budgets need a rank-aware aggregator.
int hafl_topology_strategy_fits(const hafl_topology_t *self, const char *strategy, char *why,
                                size_t whylen)
{
    if (strcmp(strategy, "fedavg") != 0)
        return 0;
    for (uint32_t i = 1; i < self->clients.count; i++)
        if (self->clients.ranks[i] != self->clients.ranks[0]) {
            snprintf(why, whylen,
                     "fedavg needs equal rank budgets, but client 0 has %u and client %u has %u "
                     "(use adaptive, zeropad or flexlora)",
                     self->clients.ranks[0], i, self->clients.ranks[i]);
            return -1;
        }
    return 0;
}
