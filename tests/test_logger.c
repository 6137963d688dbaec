/*  test_logger: the logger actor, the event emitter, `hafl tail` and `hafl ctl`'s local checks.

    - Several emitters in several threads: every event reaches the file exactly once, and each
      line is valid JSON (checked by the small validator below, which accepts exactly RFC 8259
      documents of the shapes the logger writes: objects, strings, numbers, literals).
    - Escaping: quotes, backslashes, control characters and invalid UTF-8 in strings, NaN and
      infinity as null, round -1 as null, a field named like an envelope key as "_key".
    - Malformed frames (garbage, a non-LOG_EVENT message) are counted, written as
      "malformed-event" lines, and the logger goes on.
    - $TERM drains: events sent just before the logger is destroyed are in the file.
    - An in-process SUB receives the republished events, topic first, and their JSON equals the
      file's line; `hafl tail` (HAFL_BINARY) with --filter and --count prints the matching events.
    - `hafl ctl` refuses bad arity with status 2 and reports a server that never answers with 1.
    No sleeps: waits are polls with deadlines.
*/
#include "hafl_logger.h"
#include "hafl_test.h"

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_THREADS     4
#define S_PER_THREAD  500
#define S_DEADLINE_MS 30000

//  --------------------------------------------------------------------------------------------
//  A minimal JSON validator: returns the position after one value, or NULL if invalid.

static const char *s_json_value(const char *p, int depth);

static const char *s_json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *s_json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 5;
                continue;
            }
            if (!*p || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
        p++;
    }
    return p + 1;
}

static const char *s_json_number(const char *p)
{
    const char *start = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > start ? p : NULL;
}

static const char *s_json_value(const char *p, int depth)
{
    if (depth > 16)
        return NULL;
    p = s_json_ws(p);
    if (*p == '"')
        return s_json_string(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = s_json_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = s_json_string(s_json_ws(p));
                if (!p)
                    return NULL;
                p = s_json_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            p = s_json_value(p, depth + 1);
            if (!p)
                return NULL;
            p = s_json_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (strncmp(p, "true", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    if (strncmp(p, "null", 4) == 0)
        return p + 4;
    return s_json_number(p);
}

static bool s_json_valid(const char *line)
{
    const char *end = s_json_value(line, 0);
    return end && *s_json_ws(end) == 0 && line[0] == '{';
}

//  --------------------------------------------------------------------------------------------
//  Helpers

//  Reads the file into lines; returns the count. *lines_p is an array of owned strings.
static size_t s_read_lines(const char *path, char ***lines_p)
{
    FILE *file = fopen(path, "r");
    CHECKF(file, "cannot open %s", path);
    size_t n = 0, cap = 0;
    char **lines = NULL, *line = NULL;
    size_t size = 0;
    ssize_t len;
    while ((len = getline(&line, &size, file)) >= 0) {
        CHECKF(len > 0 && line[len - 1] == '\n', "line %zu not newline-terminated", n + 1);
        line[len - 1] = 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            lines = realloc(lines, cap * sizeof(char *));
            CHECK(lines);
        }
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(file);
    *lines_p = lines;
    return n;
}

static void s_free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void s_count(zactor_t *logger, uint64_t *written, uint64_t *malformed)
{
    CHECK(zstr_send(logger, "COUNT") == 0);
    char *w = NULL, *m = NULL;
    CHECK(zsock_recv(logger, "ss", &w, &m) == 0 && w && m);
    *written = strtoull(w, NULL, 10);
    *malformed = strtoull(m, NULL, 10);
    zstr_free(&w);
    zstr_free(&m);
}

//  Flush until the logger has written `expected` events or the deadline passes.
static void s_await_written(zactor_t *logger, uint64_t expected)
{
    int64_t deadline = zclock_mono() + S_DEADLINE_MS;
    uint64_t written = 0, malformed = 0;
    while (zclock_mono() < deadline) {
        hafl_logger_flush(logger);
        s_count(logger, &written, &malformed);
        if (written >= expected)
            break;
    }
    CHECKF(written == expected, "logger wrote %llu events, expected %llu",
           (unsigned long long)written, (unsigned long long)expected);
}

static zactor_t *s_logger_start(const char *dir, const char *pull, const char *pub, char *path,
                                size_t pathlen)
{
    snprintf(path, pathlen, "%s/events.jsonl", dir);
    hafl_logger_args_t args = {.pull = pull, .pub = pub, .path = path, .echo = false};
    zactor_t *logger = hafl_logger_new(&args);
    CHECKF(logger, "logger did not start on %s", pull);
    return logger;
}

static void s_emit(hafl_events_t *events, int32_t round, const char *name, const char *key,
                   int64_t value)
{
    hafl_log_event_t *ev = hafl_events_start(events, round, name);
    CHECK(ev);
    if (key)
        CHECK(hafl_log_event_add_int(ev, key, value) == 0);
    CHECK(hafl_events_send(events, &ev) == 0 && ev == NULL);
}

//  --------------------------------------------------------------------------------------------
//  Many emitters, exactly once

typedef struct {
    const char *endpoint;
    int thread;
} s_emitter_args_t;

static void *s_emitter_thread(void *arg)
{
    s_emitter_args_t *args = arg;
    char actor[32];
    snprintf(actor, sizeof actor, "emitter-%d", args->thread);
    hafl_events_t *events = hafl_events_new(args->endpoint, "run-test", actor, NULL);
    CHECK(events);
    for (int seq = 0; seq < S_PER_THREAD; seq++) {
        hafl_log_event_t *ev = hafl_events_start(events, seq % 7, "tick");
        CHECK(ev);
        CHECK(hafl_log_event_add_int(ev, "thread", args->thread) == 0);
        CHECK(hafl_log_event_add_int(ev, "seq", seq) == 0);
        CHECK(hafl_log_event_add_float(ev, "loss", 1.0 / (seq + 1)) == 0);
        CHECK(hafl_log_event_add_bool(ev, "even", seq % 2 == 0) == 0);
        CHECK(hafl_events_send(events, &ev) == 0);
    }
    hafl_events_destroy(&events);
    CHECK(events == NULL);
    return NULL;
}

static void s_test_many_emitters(const char *dir)
{
    char path[512];
    zactor_t *logger = s_logger_start(dir, "inproc://logger-many", NULL, path, sizeof path);
    pthread_t threads[S_THREADS];
    s_emitter_args_t args[S_THREADS];
    for (int t = 0; t < S_THREADS; t++) {
        args[t] = (s_emitter_args_t){"inproc://logger-many", t};
        CHECK(pthread_create(&threads[t], NULL, s_emitter_thread, &args[t]) == 0);
    }
    for (int t = 0; t < S_THREADS; t++)
        pthread_join(threads[t], NULL);
    s_await_written(logger, S_THREADS * S_PER_THREAD);
    zactor_destroy(&logger);

    char **lines;
    size_t n = s_read_lines(path, &lines);
    CHECKF(n == S_THREADS * S_PER_THREAD, "%zu lines in the file", n);
    static uint8_t seen[S_THREADS][S_PER_THREAD];
    for (size_t i = 0; i < n; i++) {
        CHECKF(s_json_valid(lines[i]), "line %zu is not valid JSON: %s", i + 1, lines[i]);
        int thread = -1, seq = -1;
        const char *at = strstr(lines[i], "\"thread\":");
        CHECK(at && sscanf(at, "\"thread\":%d,\"seq\":%d", &thread, &seq) == 2);
        CHECK(thread >= 0 && thread < S_THREADS && seq >= 0 && seq < S_PER_THREAD);
        CHECKF(!seen[thread][seq], "event %d/%d written twice", thread, seq);
        seen[thread][seq] = 1;
        CHECK(strncmp(lines[i], "{\"time\":\"", 9) == 0);
        CHECK(strstr(lines[i], "\"run\":\"run-test\",\"round\":"));
        CHECK(strstr(lines[i], ",\"event\":\"tick\""));
    }
    s_free_lines(lines, n);
    printf("many emitters: %d events from %d threads, each exactly once, all valid JSON\n",
           S_THREADS * S_PER_THREAD, S_THREADS);
}

//  --------------------------------------------------------------------------------------------
//  Escaping, malformed frames, drain on $TERM

static void s_test_escaping_and_malformed(const char *dir)
{
    char path[512];
    zactor_t *logger = s_logger_start(dir, "inproc://logger-odd", NULL, path, sizeof path);
    hafl_events_t *events =
        hafl_events_new("inproc://logger-odd", "run \"odd\"", "odd-actor", NULL);
    CHECK(events);
    hafl_log_event_t *ev = hafl_events_start(events, -1, "odd");
    CHECK(ev);
    CHECK(hafl_log_event_add_string(ev, "text", "q\" b\\ nl\n tab\t c\x01 bad\xff ok\xc3\xa9") ==
          0);
    CHECK(hafl_log_event_add_float(ev, "nan", NAN) == 0);
    CHECK(hafl_log_event_add_float(ev, "inf", -INFINITY) == 0);
    CHECK(hafl_log_event_add_float(ev, "half", 0.5) == 0);
    CHECK(hafl_log_event_add_int(ev, "round", 99) == 0);
    CHECK(hafl_log_event_add_int(ev, "seq", 1) == 0);
    CHECK(hafl_log_event_add_int(ev, "seq", 2) == 0);
    CHECK(hafl_events_send(events, &ev) == 0);

    //  A rogue peer: garbage, an empty frame, and a valid message of the wrong type.
    zsock_t *rogue = zsock_new_push(">inproc://logger-odd");
    CHECK(rogue);
    CHECK(zstr_send(rogue, "this is not msgpack") == 0);
    zframe_t *empty = zframe_new(NULL, 0);
    CHECK(zframe_send(&empty, rogue, 0) == 0);
    hafl_msg_t *beat = hafl_msg_new(HAFL_MSG_HEARTBEAT);
    beat->u.heartbeat.client_index = 3;
    zmsg_t *zbeat = hafl_msg_encode(beat, NULL);
    CHECK(zbeat && zmsg_send(&zbeat, rogue) == 0);
    hafl_msg_destroy(&beat);
    zsock_destroy(&rogue);
    //  The logger goes on: a good event after the bad ones is written.
    s_emit(events, 4, "after-bad", "n", 1);
    s_await_written(logger, 2);
    uint64_t written, malformed;
    s_count(logger, &written, &malformed);
    CHECK(written == 2 && malformed == 3);

    //  Drain on $TERM: events sent right before destroy are in the file.
    for (int i = 0; i < 100; i++)
        s_emit(events, i, "last-words", "i", i);
    hafl_events_destroy(&events);
    zactor_destroy(&logger);

    char **lines;
    size_t n = s_read_lines(path, &lines);
    CHECKF(n == 2 + 3 + 100, "%zu lines", n);
    size_t bad = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        CHECKF(s_json_valid(lines[i]), "invalid JSON: %s", lines[i]);
        if (strstr(lines[i], "\"event\":\"malformed-event\"")) {
            CHECK(strstr(lines[i], "\"actor\":\"logger\""));
            CHECK(strstr(lines[i], "\"reason\":\""));
            bad++;
        }
        if (strstr(lines[i], "\"event\":\"last-words\""))
            last++;
    }
    CHECK(bad == 3 && last == 100);
    const char *odd = lines[0];
    printf("escaped: %s\n", odd);
    CHECK(strstr(odd, "\"run\":\"run \\\"odd\\\"\""));
    CHECK(strstr(odd, "\"round\":null"));
    CHECK(strstr(odd, "\"text\":\"q\\\" b\\\\ nl\\n tab\\t c\\u0001 bad? ok\xc3\xa9\""));
    CHECK(strstr(odd, "\"seq\":1,\"seq#6\":2"));
    CHECK(strstr(odd, "\"nan\":null,\"inf\":null,\"half\":0.5"));
    CHECK(strstr(odd, "\"_round\":99"));
    CHECK(strstr(odd, "Z\",\"time_us\":"));

    //  The JSON writer itself repairs invalid UTF-8 (a stray byte, a cut sequence, an overlong
    //  form, a surrogate) into U+FFFD and keeps valid multi-byte sequences.
    hafl_msg_t *raw = hafl_msg_new(HAFL_MSG_LOG_EVENT);
    CHECK(raw);
    raw->u.log_event.time_us = 1700000000123456ull;
    raw->u.log_event.round = 3;
    strcpy(raw->u.log_event.actor, "a\xff");
    strcpy(raw->u.log_event.event, "e\xe2\x82");
    CHECK(hafl_log_event_add_string(&raw->u.log_event, "s",
                                    "\xc0\xaf|\xed\xa0\x80|\xf0\x9f\x98\x80") == 0);
    char *json = hafl_log_event_json(&raw->u.log_event);
    CHECK(json && s_json_valid(json));
    printf("repaired: %s\n", json);
    CHECK(streq(json,
                "{\"time\":\"2023-11-14T22:13:20.123456Z\",\"time_us\":1700000000123456,"
                "\"run\":\"\",\"round\":3,\"actor\":\"a\\ufffd\",\"event\":\"e\\ufffd\\ufffd\","
                "\"s\":\"\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\xf0\x9f\x98\x80\"}"));
    free(json);
    hafl_msg_destroy(&raw);
    s_free_lines(lines, n);
}

//  --------------------------------------------------------------------------------------------
//  Tail: an in-process SUB, then `hafl tail`

static void s_test_subscriber(const char *dir)
{
    char path[512];
    zactor_t *logger =
        s_logger_start(dir, "inproc://logger-sub", "inproc://logger-sub-pub", path, sizeof path);
    zsock_t *sub = zsock_new_sub(">inproc://logger-sub-pub", "wanted tester ");
    CHECK(sub);
    hafl_events_t *events = hafl_events_new("inproc://logger-sub", "run-sub", "tester", NULL);
    CHECK(events);
    //  PUB drops what is sent before the subscription arrives, so keep sending until the SUB
    //  has seen five events; each wait is a poll with a short timeout, bounded by a deadline.
    zpoller_t *poller = zpoller_new(sub, NULL);
    int64_t deadline = zclock_mono() + S_DEADLINE_MS;
    int received = 0, sent = 0;
    char *first_json = NULL;
    int first_seq = -1;
    while (received < 5 && zclock_mono() < deadline) {
        s_emit(events, 1, "unwanted", "seq", sent);
        s_emit(events, 1, "wanted", "seq", sent++);
        if (zpoller_wait(poller, 20) != sub)
            continue;
        zmsg_t *zmsg = zmsg_recv(sub);
        CHECK(zmsg);
        char *topic = zmsg_popstr(zmsg);
        CHECKF(topic && streq(topic, "wanted tester "), "topic '%s'", topic ? topic : "");
        zstr_free(&topic);
        hafl_msg_error_t err;
        hafl_msg_t *msg = hafl_msg_decode(zmsg, &err);
        CHECKF(msg && msg->type == HAFL_MSG_LOG_EVENT, "%s", msg ? "wrong type" : err.text);
        CHECK(streq(msg->u.log_event.event, "wanted"));
        if (!first_json) {
            first_json = hafl_log_event_json(&msg->u.log_event);
            first_seq = (int)msg->u.log_event.fields[0].i;
        }
        hafl_msg_destroy(&msg);
        zmsg_destroy(&zmsg);
        received++;
    }
    CHECKF(received == 5, "subscriber got %d events", received);
    hafl_events_destroy(&events);
    hafl_logger_flush(logger);
    //  The republished event prints as the very line in the file.
    char **lines;
    size_t n = s_read_lines(path, &lines);
    char needle[64];
    snprintf(needle, sizeof needle, "\"event\":\"wanted\",\"seq\":%d}", first_seq);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strstr(lines[i], needle)) {
            CHECKF(streq(lines[i], first_json), "file: %s\ntail: %s", lines[i], first_json);
            found = true;
        }
    CHECK(found);
    s_free_lines(lines, n);
    free(first_json);
    zpoller_destroy(&poller);
    zsock_destroy(&sub);
    zactor_destroy(&logger);
    printf("subscriber: %d events after %d sent, same JSON as the file\n", received, sent);
}

//  Runs the command line and returns its exit status (or -1 when it did not exit normally).
static int s_run(const char *format, ...)
{
    char command[2048];
    va_list ap;
    va_start(ap, format);
    vsnprintf(command, sizeof command, format, ap);
    va_end(ap);
    int status = system(command);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void s_test_tail_binary(const char *dir, const char *binary)
{
    char path[512], pull[600], pub[600];
    snprintf(pull, sizeof pull, "ipc://%s/pull", dir);
    snprintf(pub, sizeof pub, "ipc://%s/pub", dir);
    zactor_t *logger = s_logger_start(dir, pull, pub, path, sizeof path);
    hafl_events_t *events = hafl_events_new(pull, "run-tail", "tester", NULL);
    CHECK(events);
    char command[2048];
    snprintf(command, sizeof command,
             "'%s' tail '%s' --filter event=tail-bin,actor=tester,even=true --count 3 "
             "--timeout-ms %d",
             binary, pub, S_DEADLINE_MS);
    FILE *tail = popen(command, "r");
    CHECK(tail);
    int fd = fileno(tail);
    char output[8192];
    size_t have = 0;
    int newlines = 0, sent = 0;
    int64_t deadline = zclock_mono() + S_DEADLINE_MS;
    bool eof = false;
    while (!eof && zclock_mono() < deadline) {
        s_emit(events, 2, "noise", "seq", sent);
        hafl_log_event_t *ev = hafl_events_start(events, 2, "tail-bin");
        CHECK(ev && hafl_log_event_add_int(ev, "seq", sent) == 0);
        CHECK(hafl_log_event_add_bool(ev, "even", sent % 2 == 0) == 0);
        CHECK(hafl_events_send(events, &ev) == 0);
        sent++;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        ssize_t got = read(fd, output + have, sizeof output - 1 - have);
        if (got <= 0)
            eof = true;
        else
            have += (size_t)got;
    }
    output[have] = 0;
    int status = pclose(tail);
    CHECKF(eof, "hafl tail did not finish (%zu bytes so far)", have);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hafl tail exit status %d", status);
    for (char *line = output, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        CHECK(end);
        *end = 0;
        CHECKF(s_json_valid(line), "tail printed invalid JSON: %s", line);
        CHECKF(strstr(line, "\"event\":\"tail-bin\"") && strstr(line, "\"even\":true"),
               "tail printed a non-matching event: %s", line);
        newlines++;
    }
    CHECK(newlines == 3);
    hafl_events_destroy(&events);
    zactor_destroy(&logger);
    printf("hafl tail: 3 filtered events after %d sent\n", sent);

    //  Usage errors exit 2; a server that never answers is a runtime failure (1).
    CHECK(s_run("'%s' tail '%s' --filter nokey --count 1 2>/dev/null", binary, pub) == 2);
    CHECK(s_run("'%s' tail 2>/dev/null", binary) == 2);
    CHECK(s_run("'%s' tail --help >/dev/null", binary) == 0);
    CHECK(s_run("'%s' ctl --help >/dev/null", binary) == 0);
    CHECK(s_run("'%s' ctl ipc://%s/none fault drop 2>/dev/null", binary, dir) == 2);
    CHECK(s_run("'%s' ctl ipc://%s/none fault straggle 1 x 2>/dev/null", binary, dir) == 2);
    CHECK(s_run("'%s' ctl ipc://%s/none status extra 2>/dev/null", binary, dir) == 2);
    CHECK(s_run("'%s' ctl ipc://%s/none fault straggle 1 0 2>/dev/null", binary, dir) == 2);
    CHECK(s_run("'%s' ctl ipc://%s/none swap-aggregator 2>/dev/null", binary, dir) == 2);
    CHECK(s_run("'%s' ctl ipc://%s/none launch 2>/dev/null", binary, dir) == 2);
    CHECK(s_run("'%s' ctl ipc://%s/none status --timeout-ms 100 2>/dev/null", binary, dir) == 1);
    printf("hafl ctl: arity errors exit 2, no reply exits 1\n");
}

//  --------------------------------------------------------------------------------------------
//  The end of a run: once the server's final event is in, events of other processes still on
//  their way (a slow link) are waited for until they fall silent, and a stream that never falls
//  silent is cut at end_grace_ms and reported (events-incomplete).

typedef struct {
    const char *endpoint;
    int events;   //  how many "tick" events to send, one every gap_ms, then "ended"
    int delay_ms; //  before the first
    int gap_ms;
} s_late_args_t;

//  A client of another process whose events come late (the pacing stands in for a slow link).
static void *s_late_client(void *arg)
{
    s_late_args_t *a = arg;
    hafl_events_t *client = hafl_events_new(a->endpoint, "run-end", "client-0", NULL);
    CHECK(client);
    zclock_sleep(a->delay_ms);
    for (int i = 0; i < a->events; i++) {
        s_emit(client, 1, "tick", "i", i);
        zclock_sleep(a->gap_ms);
    }
    s_emit(client, -1, "ended", NULL, 0);
    hafl_events_destroy(&client);
    return NULL;
}

static void s_test_end_of_run(const char *dir, const s_late_args_t *late, int grace_ms,
                              int quiet_ms, bool want_ended, bool want_incomplete)
{
    char path[600], pull[700];
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    snprintf(pull, sizeof pull, "ipc://%s/pull", dir);
    hafl_logger_args_t args = {
        .pull = pull, .path = path, .end_grace_ms = grace_ms, .end_quiet_ms = quiet_ms};
    zactor_t *logger = hafl_logger_new(&args);
    CHECKF(logger, "logger did not start on %s", pull);
    hafl_events_t *server = hafl_events_new(pull, "run-end", "server", NULL);
    CHECK(server);
    s_emit(server, 1, "final", "rounds", 1);
    hafl_events_destroy(&server);
    s_await_written(logger, 1); //  the run is over before $TERM, as the server node makes it
    s_late_args_t a = *late;
    a.endpoint = pull;
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, s_late_client, &a) == 0);
    zactor_destroy(&logger); //  $TERM now: the late client's events are still to come
    CHECK(pthread_join(thread, NULL) == 0);
    char **lines;
    size_t n = s_read_lines(path, &lines);
    bool ended = false, incomplete = false;
    for (size_t i = 0; i < n; i++) {
        ended |= strstr(lines[i], "\"event\":\"ended\"") != NULL;
        incomplete |= strstr(lines[i], "\"event\":\"events-incomplete\"") != NULL;
    }
    CHECKF(ended == want_ended && incomplete == want_incomplete,
           "late client (%d events, %d ms late): ended %d, events-incomplete %d", late->events,
           late->delay_ms, ended, incomplete);
    s_free_lines(lines, n);
}

int main(void)
{
    zsys_init();
    char dir[] = "logger-test-XXXXXX"; //  relative: ipc paths must stay short
    CHECK(mkdtemp(dir));
    //  A logger that cannot open its file or bind its endpoint does not start.
    hafl_logger_args_t bad = {.pull = "inproc://logger-bad", .path = "no-such-dir/x/events.jsonl"};
    CHECK(hafl_logger_new(&bad) == NULL);
    bad = (hafl_logger_args_t){.pull = "bogus://nowhere", .path = "logger-bad.jsonl"};
    CHECK(hafl_logger_new(&bad) == NULL);
    unlink("logger-bad.jsonl");
    s_test_many_emitters(dir);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/odd", dir);
    CHECK(mkdir(sub, 0700) == 0);
    s_test_escaping_and_malformed(sub);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    CHECK(mkdir(sub, 0700) == 0);
    s_test_subscriber(sub);
    //  Late by 300 ms, quiet window 1 s: kept. A stream that never stops for 300 ms: cut at
    //  400 ms and reported.
    snprintf(sub, sizeof sub, "%s/end", dir);
    CHECK(mkdir(sub, 0700) == 0);
    s_test_end_of_run(sub, &(s_late_args_t){.events = 1, .delay_ms = 300, .gap_ms = 0}, 10000, 1000,
                      true, false);
    snprintf(sub, sizeof sub, "%s/end2", dir);
    CHECK(mkdir(sub, 0700) == 0);
    s_test_end_of_run(sub, &(s_late_args_t){.events = 20, .delay_ms = 0, .gap_ms = 100}, 400, 300,
                      false, true);
    const char *binary = getenv("HAFL_BINARY");
    if (binary && *binary) {
        CHECKF(access(binary, X_OK) == 0, "HAFL_BINARY %s is not executable", binary);
        snprintf(sub, sizeof sub, "%s/tail", dir);
        CHECK(mkdir(sub, 0700) == 0);
        s_test_tail_binary(sub, binary);
    } else
        printf("hafl tail: skipped (HAFL_BINARY not set; ctest sets it)\n");
    CHECK(s_run("rm -rf '%s'", dir) == 0);
    printf("logger: all checks passed\n");
    return 0;
}
