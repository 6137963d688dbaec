/*  test_bus_util: helpers shared by the actor-bus tests (tests/test_bus_*.c): load a topology
    with overrides, run a federation in this process, run the `hafl` binary and capture its
    output, read run-folder files. Every run goes to a fresh temporary run_dir.
*/
#ifndef TEST_BUS_UTIL_H
#define TEST_BUS_UTIL_H

#include "hafl_adapter.h"
#include "hafl_node.h"
#include "hafl_test.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  A fresh temporary folder for run folders (never removed on failure, for post-mortems).
static inline const char *bus_tmpdir(void)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/hafl-bus-test-XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    return dir;
}

//  Remove the temporary folder (called on success only; a failed test leaves it for a look).
static inline void bus_cleanup(void)
{
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", bus_tmpdir());
    CHECK(system(command) == 0);
}

//  Path of a file under the source tree.
static inline void bus_source_path(char *out, size_t outlen, const char *relative)
{
    const char *root = getenv("HAFL_SOURCE_DIR");
    CHECKF(root != NULL, "HAFL_SOURCE_DIR is not set (run through ctest)");
    snprintf(out, outlen, "%s/%s", root, relative);
}

//  Load a topology from the source tree with the run folder redirected, plus extra overrides
//  (NULL-terminated list).
static inline hafl_topology_t *bus_load(const char *relative, ...)
{
    char path[4096], run_dir[256];
    bus_source_path(path, sizeof path, relative);
    snprintf(run_dir, sizeof run_dir, "logger/run_dir=%s/runs", bus_tmpdir());
    const char *overrides[32] = {run_dir};
    size_t n = 1;
    va_list args;
    va_start(args, relative);
    for (const char *o = va_arg(args, const char *); o && n < 32; o = va_arg(args, const char *))
        overrides[n++] = o;
    va_end(args);
    hafl_topology_error_t err;
    hafl_topology_t *t = hafl_topology_load(path, overrides, n, &err);
    CHECKF(t != NULL, "%s", err.text);
    return t;
}

//  Read a whole file (caller frees); NULL if it cannot be read.
static inline char *bus_read_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        return NULL;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (text && fread(text, 1, (size_t)size, file) != (size_t)size) {
        free(text);
        text = NULL;
    }
    if (text)
        text[size] = 0;
    fclose(file);
    return text;
}

static inline size_t bus_count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

//  Run a shell command, capture stdout (caller frees) and its exit status.
static inline char *bus_capture(const char *command, int *status)
{
    FILE *pipe = popen(command, "r");
    CHECKF(pipe != NULL, "popen %s", command);
    size_t cap = 1 << 16, used = 0;
    char *out = malloc(cap);
    CHECK(out != NULL);
    size_t got;
    while ((got = fread(out + used, 1, cap - used - 1, pipe)) > 0) {
        used += got;
        if (used + 1 >= cap) {
            cap *= 2;
            out = realloc(out, cap);
            CHECK(out != NULL);
        }
    }
    out[used] = 0;
    int rc = pclose(pipe);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return out;
}

//  The hex digest of the "final adapter sha256 HEX" line of some output, into hex[65].
static inline bool bus_digest_of(const char *output, char hex[65])
{
    const char *p = strstr(output, "final adapter sha256 ");
    if (!p)
        return false;
    p += strlen("final adapter sha256 ");
    size_t n = strspn(p, "0123456789abcdef");
    if (n != 64)
        return false;
    memcpy(hex, p, 64);
    hex[64] = 0;
    return true;
}

//  The value after "run folder " in some output.
static inline bool bus_run_folder_of(const char *output, char *dir, size_t dirlen)
{
    const char *p = strstr(output, "run folder ");
    if (!p)
        return false;
    p += strlen("run folder ");
    size_t n = strcspn(p, "\n");
    snprintf(dir, dirlen, "%.*s", (int)n, p);
    return true;
}

//  Run a federation in this process; fills hex and run_dir. Returns hafl_node_wait's result.
static inline int bus_run_inproc(const hafl_topology_t *t, char hex[65], char *run_dir,
                                 size_t run_dir_len)
{
    char err[512], reason[256];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    CHECKF(node != NULL, "%s", err);
    int rc = hafl_node_wait(node, hex, reason, sizeof reason);
    snprintf(run_dir, run_dir_len, "%s", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
    return rc;
}

//  Start the node of placement group `group` (NULL: everything, in process). With server, it
//  joins that node's run as `hafl run --processes` does (one run folder and run id, so the
//  endpoints match).
static inline hafl_node_t *bus_node(const hafl_topology_t *t, const char *group,
                                    hafl_node_t *server)
{
    char err[512];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.group = group;
    if (server) {
        opts.run_dir = hafl_node_run_dir(server);
        opts.run_id = hafl_node_run_id(server);
    }
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    CHECKF(node != NULL, "node %s: %s", group ? group : "(all)", err);
    return node;
}

//  A run folder's events.jsonl (caller frees); fails the test when it cannot be read. Read it
//  once the nodes are destroyed, when the logger has written every event.
static inline char *bus_events(const char *run_dir)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    char *events = bus_read_file(path);
    CHECKF(events != NULL, "cannot read %s", path);
    return events;
}

//  Wait (polling, at most 20 s) until the node's events.jsonl holds `needle`; fails otherwise.
static inline void bus_wait_event(hafl_node_t *node, const char *needle)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/events.jsonl", hafl_node_run_dir(node));
    bool seen = false;
    for (int i = 0; i < 400 && !seen; i++) {
        char *events = bus_read_file(path);
        seen = events && strstr(events, needle);
        free(events);
        if (!seen)
            zclock_sleep(50);
    }
    CHECKF(seen, "no %s in %s within 20 s", needle, path);
}

//  The adapter file `name` in run_dir loads and has digest hex (fails the test otherwise).
static inline void bus_check_adapter_digest(const char *run_dir, const char *name,
                                            const char *hex)
{
    char path[4300], err[512], got[65];
    snprintf(path, sizeof path, "%s/%s", run_dir, name);
    hafl_adapter_t *adapter = hafl_adapter_load(path, err, sizeof err);
    CHECKF(adapter != NULL, "%s", err);
    hafl_adapter_digest_hex(adapter, got);
    hafl_adapter_destroy(&adapter);
    CHECKF(streq(got, hex), "%s has digest %s, expected %s", path, got, hex);
}

//  Column `name` of rounds.csv rows (as doubles), at most cap; returns the row count.
static inline size_t bus_csv_column(const char *run_dir, const char *name, double *values,
                                    size_t cap)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/rounds.csv", run_dir);
    char *text = bus_read_file(path);
    CHECKF(text != NULL, "cannot read %s", path);
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    int column = -1, index = 0;
    char *cs = NULL;
    for (char *tok = line ? strtok_r(line, ",", &cs) : NULL; tok;
         tok = strtok_r(NULL, ",", &cs), index++)
        if (strcmp(tok, name) == 0)
            column = index;
    CHECKF(column >= 0, "rounds.csv has no column %s", name);
    size_t n = 0;
    for (line = strtok_r(NULL, "\n", &save); line && n < cap; line = strtok_r(NULL, "\n", &save)) {
        index = 0;
        for (char *tok = strtok_r(line, ",", &cs); tok; tok = strtok_r(NULL, ",", &cs), index++)
            if (index == column)
                values[n++] = strtod(tok, NULL);
    }
    free(text);
    return n;
}

#endif
