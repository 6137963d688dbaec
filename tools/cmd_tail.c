/*  hafl tail: follow a running federation's events from the logger's PUB endpoint.

    Subscribes to the logger's PUB socket and prints every event that passes the filter as the
    same JSON line the logger writes to its file (hafl_log_event_json), one per line, flushed.
    The filter is a comma-separated list of key=value terms that must all hold; when it names
    the event (and the actor) the subscription prefix narrows to them, so the logger's PUB
    socket does the first cut. Exit status: 0 when --count events were printed, on --timeout-ms
    without --count, or on interrupt; 1 when --count was not reached in time or the socket
    failed; 2 on a usage error.
*/
#include "hafl_cmd.h"
#include "hafl_logger.h"
#include "hafl_signals.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_UNREACHABLE_MS 2000 //  not connected after this long: say so (once)

#define S_MAX_TERMS 32

typedef struct {
    char *key; //  points into the copied expression
    char *value;
} s_term_t;

typedef struct {
    char *text; //  owned copy of the expression, cut into terms
    size_t n;
    s_term_t terms[S_MAX_TERMS];
} s_filter_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl tail ENDPOINT [--filter EXPR] [--count N] [--timeout-ms MS]\n"
            "\n"
            "Follow a running federation: subscribe to the logger's PUB endpoint (topology\n"
            "key logger/pub, e.g. ipc://runs/quickstart/events.pub or tcp://host:5679) and\n"
            "print each event as the JSON line the logger writes to its events.jsonl.\n"
            "\n"
            "options:\n"
            "  --filter EXPR     only events matching every term of EXPR, a comma-separated\n"
            "                    list of KEY=VALUE terms (AND). KEY is event, actor, run, round\n"
            "                    or the name of any event field. Strings compare exactly; an\n"
            "                    int or bool field compares as its JSON text (42, true); a\n"
            "                    float field compares numerically; round=null matches events\n"
            "                    without a round. Values cannot contain commas.\n"
            "                    example: --filter event=upload,actor=client-3,round=2\n"
            "  --count N         exit after printing N matching events\n"
            "  --timeout-ms MS   give up after MS milliseconds in total\n"
            "  --help            this text\n"
            "\n"
            "exit codes: 0 ok (count reached, timeout without --count, or interrupted);\n"
            "            1 --count not reached before the timeout, or a socket error;\n"
            "            2 usage error\n");
}

//  Parse a decimal unsigned integer in [min, max] that uses the whole string.
static int s_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
    if (!text || !*text || *text == '-' || *text == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *value = v;
    return 0;
}

//  0, or -1 with the reason on stderr.
static int s_filter_parse(s_filter_t *self, const char *expr)
{
    self->text = strdup(expr);
    if (!self->text)
        return -1;
    char *cursor = self->text;
    for (;;) {
        char *comma = strchr(cursor, ',');
        if (comma)
            *comma = 0;
        char *equals = strchr(cursor, '=');
        if (!equals || equals == cursor) {
            fprintf(stderr, "hafl tail: --filter: term '%s' is not KEY=VALUE\n", cursor);
            return -1;
        }
        if (self->n == S_MAX_TERMS) {
            fprintf(stderr, "hafl tail: --filter: more than %d terms\n", S_MAX_TERMS);
            return -1;
        }
        *equals = 0;
        self->terms[self->n++] = (s_term_t){cursor, equals + 1};
        if (!comma)
            break;
        cursor = comma + 1;
    }
    return 0;
}

static const char *s_filter_get(const s_filter_t *self, const char *key)
{
    for (size_t i = 0; i < self->n; i++)
        if (streq(self->terms[i].key, key))
            return self->terms[i].value;
    return NULL;
}

static bool s_term_matches(const s_term_t *term, const hafl_log_event_t *ev)
{
    if (streq(term->key, "event"))
        return streq(ev->event, term->value);
    if (streq(term->key, "actor"))
        return streq(ev->actor, term->value);
    if (streq(term->key, "run"))
        return streq(ev->run_id, term->value);
    if (streq(term->key, "round")) {
        if (streq(term->value, "null"))
            return ev->round < 0;
        char text[16];
        snprintf(text, sizeof text, "%" PRId32, ev->round);
        return ev->round >= 0 && streq(text, term->value);
    }
    for (uint32_t i = 0; i < ev->n_fields; i++) {
        const hafl_field_t *field = &ev->fields[i];
        if (!streq(field->key, term->key))
            continue;
        char text[32];
        switch (field->kind) {
        case HAFL_VALUE_STRING:
            return field->s && streq(field->s, term->value);
        case HAFL_VALUE_INT:
            snprintf(text, sizeof text, "%" PRId64, field->i);
            return streq(text, term->value);
        case HAFL_VALUE_BOOL:
            return streq(field->i ? "true" : "false", term->value);
        case HAFL_VALUE_FLOAT: {
            char *end;
            double wanted = strtod(term->value, &end);
            return *term->value && !*end && wanted == field->f;
        }
        default:
            return false;
        }
    }
    return false;
}

static bool s_filter_matches(const s_filter_t *self, const hafl_log_event_t *ev)
{
    for (size_t i = 0; i < self->n; i++)
        if (!s_term_matches(&self->terms[i], ev))
            return false;
    return true;
}

int hafl_cmd_tail(int argc, char **argv)
{
    hafl_signals_catch();
    const char *endpoint = NULL, *expr = NULL;
    uint64_t count = 0, timeout_ms = 0;
    bool have_count = false, have_timeout = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (streq(arg, "--help") || streq(arg, "-h")) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
        if (streq(arg, "--filter") || streq(arg, "--count") || streq(arg, "--timeout-ms")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hafl tail: %s needs a value\n", arg);
                return HAFL_EXIT_USAGE;
            }
            const char *value = argv[++i];
            if (streq(arg, "--filter"))
                expr = value;
            else if (streq(arg, "--count")) {
                if (s_parse_u64(value, 1, UINT32_MAX, &count)) {
                    fprintf(stderr, "hafl tail: --count: '%s' is not an integer >= 1\n", value);
                    return HAFL_EXIT_USAGE;
                }
                have_count = true;
            } else {
                if (s_parse_u64(value, 1, 7 * 24 * 3600 * 1000ull, &timeout_ms)) {
                    fprintf(stderr, "hafl tail: --timeout-ms: '%s' is not an integer in 1..%llu\n",
                            value, 7 * 24 * 3600 * 1000ull);
                    return HAFL_EXIT_USAGE;
                }
                have_timeout = true;
            }
        } else if (arg[0] == '-' && arg[1] == '-') {
            fprintf(stderr, "hafl tail: unknown option %s (try --help)\n", arg);
            return HAFL_EXIT_USAGE;
        } else if (!endpoint)
            endpoint = arg;
        else {
            fprintf(stderr, "hafl tail: unexpected argument '%s' (try --help)\n", arg);
            return HAFL_EXIT_USAGE;
        }
    }
    if (!endpoint) {
        s_usage(stderr);
        return HAFL_EXIT_USAGE;
    }
    s_filter_t filter = {0};
    if (expr && s_filter_parse(&filter, expr)) {
        free(filter.text);
        return HAFL_EXIT_USAGE;
    }
    //  Narrow the subscription with the topic "EVENT ACTOR " when the filter allows it.
    char prefix[2 * HAFL_MSG_MAX_NAME + 4] = "";
    const char *event = s_filter_get(&filter, "event"), *actor = s_filter_get(&filter, "actor");
    if (event && actor)
        snprintf(prefix, sizeof prefix, "%s %s ", event, actor);
    else if (event)
        snprintf(prefix, sizeof prefix, "%s ", event);

    zsys_init();
    zsock_t *sub = zsock_new(ZMQ_SUB);
    //  A SUB connects in the background and stays silent when nobody listens: a monitor,
    //  started before the connect so it sees it, tells whether the connection is up, so an
    //  unreachable endpoint is said, not just waited on.
    zactor_t *monitor = sub ? zactor_new(zmonitor, sub) : NULL;
    if (monitor) {
        zstr_sendx(monitor, "LISTEN", "CONNECTED", "DISCONNECTED", NULL);
        zstr_sendx(monitor, "START", NULL);
        zsock_wait(monitor);
    }
    if (!sub || zsock_connect(sub, "%s", endpoint) != 0) {
        zactor_destroy(&monitor);
        fprintf(stderr, "hafl tail: cannot connect to %s\n", endpoint);
        zsock_destroy(&sub);
        free(filter.text);
        return HAFL_EXIT_USAGE;
    }
    zsock_set_rcvhwm(sub, 1000000);
    zsock_set_maxmsgsize(sub, 4 << 20);
    zsock_set_subscribe(sub, prefix);
    bool connected = false, warned = false;
    int64_t started = zclock_mono();
    zpoller_t *poller = zpoller_new(sub, monitor, NULL);
    int64_t deadline = have_timeout ? zclock_mono() + (int64_t)timeout_ms : -1;
    uint64_t printed = 0, malformed = 0;
    int status = HAFL_EXIT_OK;
    while (!have_count || printed < count) {
        int wait = -1;
        if (have_timeout) {
            int64_t left = deadline - zclock_mono();
            if (left <= 0) {
                if (have_count) {
                    fprintf(stderr,
                            "hafl tail: %" PRIu64 " of %" PRIu64 " events within %" PRIu64
                            " ms%s%s\n",
                            printed, count, timeout_ms,
                            monitor && !connected ? ": never connected to " : "",
                            monitor && !connected ? endpoint : "");
                    status = HAFL_EXIT_FAILURE;
                }
                break;
            }
            wait = left > 1000 ? 1000 : (int)left;
        }
        if (monitor && !connected && !warned && zclock_mono() - started > S_UNREACHABLE_MS) {
            fprintf(stderr,
                    "hafl tail: nothing answers at %s yet (no run there, or not reachable); "
                    "still trying\n",
                    endpoint);
            warned = true;
        }
        void *which = zpoller_wait(poller, wait < 0 || wait > 500 ? 500 : wait);
        if (zpoller_terminated(poller) || hafl_signals_count() > 0)
            break;
        if (monitor && which == monitor) {
            zmsg_t *report = zmsg_recv(monitor);
            char *name = report ? zmsg_popstr(report) : NULL;
            if (name && streq(name, "CONNECTED")) {
                if (warned)
                    fprintf(stderr, "hafl tail: connected to %s\n", endpoint);
                connected = true;
                warned = false;
            } else if (name && streq(name, "DISCONNECTED")) {
                connected = false;
                started = zclock_mono();
            }
            zstr_free(&name);
            zmsg_destroy(&report);
            continue;
        }
        if (which != sub)
            continue;
        connected = true; //  whatever the monitor said: events arrive
        zmsg_t *zmsg = zmsg_recv(sub);
        if (!zmsg)
            break;
        zframe_t *topic = zmsg_pop(zmsg);
        zframe_destroy(&topic);
        hafl_msg_error_t err;
        hafl_msg_t *msg = hafl_msg_decode(zmsg, &err);
        zmsg_destroy(&zmsg);
        if (!msg || msg->type != HAFL_MSG_LOG_EVENT) {
            if (malformed++ == 0)
                fprintf(stderr, "hafl tail: ignoring a malformed event (%s)\n",
                        msg ? "not a LOG_EVENT" : err.text);
            hafl_msg_destroy(&msg);
            continue;
        }
        if (s_filter_matches(&filter, &msg->u.log_event)) {
            char *line = hafl_log_event_json(&msg->u.log_event);
            if (line) {
                printf("%s\n", line);
                fflush(stdout);
                printed++;
            }
            free(line);
        }
        hafl_msg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zactor_destroy(&monitor);
    zsock_destroy(&sub);
    free(filter.text);
    return status;
}
