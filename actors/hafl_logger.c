/*  hafl_logger: the logger actor, the JSON-lines form of an event, and the event emitter. See
    hafl_logger.h for the contract.

    The actor reads LOG_EVENTs from its PULL socket in batches; after each batch (once nothing
    more is queued) it flushes the file, so a reader sees every line within one poll cycle.
    Both sides of the PUSH/PULL pair have a high water mark of S_EVENT_HWM messages, and the
    PUSH side waits rather than drops (ZeroMQ blocks a PUSH sender at its HWM, or with no logger
    connected), for at most S_EMITTER_SEND_MS: an event is lost only if its emitter's process
    dies before delivering it, or the logger is gone for that long (it is never left waiting
    forever on a logger another process took down). Signals end neither side. On $TERM, once
    the server's final event is in and emitters of other processes may push (the PULL endpoint
    is not inproc://; a client host's last events, its "ended", may still be on a slow link),
    the actor keeps
    reading until no event has arrived for end_quiet_ms (1.5 s unless given), at most
    end_grace_ms (10 s); events still arriving then are said on stderr and as an
    "events-incomplete" line. Otherwise it reads until the socket has been quiet for
    S_DRAIN_QUIET_MS. Then it flushes, syncs and closes the file.
*/
#include "hafl_logger.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_EVENT_HWM       1000000   //  messages queued per side before an emitter blocks
#define S_MAX_EVENT_BYTES (4 << 20) //  inbound frame cap: 64 fields of 1 KiB fit many times
#define S_BATCH           1024      //  events handled before the pipe is looked at again
#define S_DRAIN_QUIET_MS  50        //  on $TERM, stop once the socket was quiet this long
#define S_EMITTER_SEND_MS 10000     //  an emitter gives an event up after this long blocked
#define S_EMITTER_LINGER  10000     //  ms an emitter's queued events may take to reach the logger
#define S_END_GRACE_MS    10000     //  on $TERM after the run ended, the longest the drain waits
#define S_END_QUIET_MS    1500      //  ... for emitters of other processes to fall silent

//  --------------------------------------------------------------------------------------------
//  JSON

//  Length of the well-formed UTF-8 sequence of a non-ASCII lead byte at p (2..4: shortest form,
//  no surrogates, at most U+10FFFF, the codec's rule), or 0 when it is not one.
static size_t s_utf8_sequence(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t len = c >= 0xF0 && c <= 0xF4   ? 4
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xC2 && c <= 0xDF ? 2
                                          : 0;
    uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0Fu : c & 0x1Fu;
    size_t i = 1;
    for (; i < len && (p[i] & 0xC0) == 0x80; i++)
        cp = (cp << 6) | (p[i] & 0x3Fu);
    bool valid = len > 0 && i == len &&
                 (len != 3 || (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF))) &&
                 (len != 4 || (cp >= 0x10000 && cp <= 0x10FFFF));
    return valid ? len : 0;
}

//  Replaces each byte of s that is not part of well-formed UTF-8 with '?', in place, so the
//  codec (which refuses such strings) accepts it.
static void s_utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t len = *p < 0x80 ? 1 : s_utf8_sequence(p);
        if (len == 0)
            *p++ = '?';
        else
            p += len;
    }
}

//  Writes s as a JSON string: quotes, backslashes and control characters escaped; bytes that
//  are not valid UTF-8 become U+FFFD so the line stays valid JSON whatever a peer sent.
static void s_json_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                fputs("\\n", out);
                break;
            case '\r':
                fputs("\\r", out);
                break;
            case '\t':
                fputs("\\t", out);
                break;
            case '\b':
                fputs("\\b", out);
                break;
            case '\f':
                fputs("\\f", out);
                break;
            default:
                fprintf(out, "\\u%04x", c);
            }
            p++;
        } else if (c < 0x80) {
            fputc(c, out);
            p++;
        } else {
            size_t len = s_utf8_sequence(p);
            if (len) {
                fwrite(p, 1, len, out);
                p += len;
            } else {
                fputs("\\ufffd", out);
                p++;
            }
        }
    }
    fputc('"', out);
}

static bool s_reserved_key(const char *key)
{
    return streq(key, "time") || streq(key, "time_us") || streq(key, "run") ||
           streq(key, "round") || streq(key, "actor") || streq(key, "event");
}

char *hafl_log_event_json(const hafl_log_event_t *event)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return NULL;
    time_t seconds = (time_t)(event->time_us / 1000000);
    struct tm tm;
    char stamp[32] = "1970-01-01T00:00:00";
    if (gmtime_r(&seconds, &tm))
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(out, "{\"time\":\"%s.%06" PRIu64 "Z\",\"time_us\":%" PRIu64 ",\"run\":", stamp,
            event->time_us % 1000000, event->time_us);
    s_json_string(out, event->run_id);
    if (event->round >= 0)
        fprintf(out, ",\"round\":%" PRId32, event->round);
    else
        fputs(",\"round\":null", out);
    fputs(",\"actor\":", out);
    s_json_string(out, event->actor);
    fputs(",\"event\":", out);
    s_json_string(out, event->event);
    for (uint32_t i = 0; i < event->n_fields; i++) {
        const hafl_field_t *field = &event->fields[i];
        fputc(',', out);
        if (s_reserved_key(field->key)) {
            //  A field may not shadow the envelope: it is written as "_key".
            char key[HAFL_MSG_MAX_NAME + 2];
            snprintf(key, sizeof key, "_%s", field->key);
            s_json_string(out, key);
        } else
            s_json_string(out, field->key);
        fputc(':', out);
        switch (field->kind) {
        case HAFL_VALUE_INT:
            fprintf(out, "%" PRId64, field->i);
            break;
        case HAFL_VALUE_BOOL:
            fputs(field->i ? "true" : "false", out);
            break;
        case HAFL_VALUE_FLOAT:
            if (isfinite(field->f))
                fprintf(out, "%.17g", field->f);
            else
                fputs("null", out);
            break;
        case HAFL_VALUE_STRING:
            s_json_string(out, field->s ? field->s : "");
            break;
        default:
            fputs("null", out);
        }
    }
    fputc('}', out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void hafl_log_event_topic(const hafl_log_event_t *event, char *topic, size_t topiclen)
{
    snprintf(topic, topiclen, "%s %s ", event->event, event->actor);
}

//  --------------------------------------------------------------------------------------------
//  Events: a hafl_log_event_t handed out by hafl_events_start lives inside a hafl_msg_t, so
//  the codec's destroy frees its fields and send can encode it without copying.

static hafl_msg_t *s_event_message(hafl_log_event_t *event)
{
    return (hafl_msg_t *)((char *)event - offsetof(hafl_msg_t, u.log_event));
}

static uint64_t s_now_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

static hafl_msg_t *s_event_new(const char *run_id, const char *actor, int32_t round,
                               const char *event)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_LOG_EVENT);
    if (!msg)
        return NULL;
    hafl_log_event_t *ev = &msg->u.log_event;
    ev->time_us = s_now_us();
    ev->round = round < 0 ? -1 : round;
    snprintf(ev->run_id, sizeof ev->run_id, "%s", run_id ? run_id : "");
    snprintf(ev->actor, sizeof ev->actor, "%s", actor ? actor : "");
    snprintf(ev->event, sizeof ev->event, "%s", event ? event : "");
    return msg;
}

void hafl_log_event_destroy(hafl_log_event_t **event_p)
{
    if (!event_p || !*event_p)
        return;
    hafl_msg_t *msg = s_event_message(*event_p);
    hafl_msg_destroy(&msg);
    *event_p = NULL;
}

//  --------------------------------------------------------------------------------------------
//  The emitter

struct hafl_events_t {
    zsock_t *push;  //  connected to the logger's PULL
    zsock_t *watch; //  push's handshakes, when its endpoint is armed (hafl_log_auth.h)
    bool refused;   //  the logger refused this emitter: events go nowhere, said once
    char endpoint[256];
    char run_id[HAFL_MSG_MAX_NAME];
    char actor[HAFL_MSG_MAX_NAME];
};

hafl_events_t *hafl_events_new(const char *endpoint, const char *run_id, const char *actor,
                               const hafl_log_auth_t *auth)
{
    if (!endpoint || !*endpoint)
        return NULL;
    hafl_events_t *self = calloc(1, sizeof(hafl_events_t));
    if (!self)
        return NULL;
    snprintf(self->run_id, sizeof self->run_id, "%s", run_id ? run_id : "");
    snprintf(self->actor, sizeof self->actor, "%s", actor ? actor : "");
    self->push = zsock_new(ZMQ_PUSH);
    if (!self->push) {
        free(self);
        return NULL;
    }
    zsock_set_sndhwm(self->push, S_EVENT_HWM);
    zsock_set_linger(self->push, S_EMITTER_LINGER);
    //  A logger that is gone (another process killed) must not hold an actor forever.
    zsock_set_sndtimeo(self->push, S_EMITTER_SEND_MS);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    char err[256];
    if (hafl_log_auth_apply_client(auth, self->push, endpoint, err, sizeof err) != 0 ||
        (auth && strncmp(endpoint, "inproc://", 9) != 0 &&
         !(self->watch = hafl_security_watch(self->push, err, sizeof err)))) {
        fprintf(stderr, "%s: events: %s\n", self->actor, err);
        hafl_events_destroy(&self);
        return NULL;
    }
    if (zsock_connect(self->push, "%s", endpoint) != 0) {
        hafl_events_destroy(&self);
        return NULL;
    }
    return self;
}

void hafl_events_destroy(hafl_events_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_security_unwatch((*self_p)->push, &(*self_p)->watch);
    zsock_destroy(&(*self_p)->push);
    free(*self_p);
    *self_p = NULL;
}

hafl_log_event_t *hafl_events_start(hafl_events_t *self, int32_t round, const char *event)
{
    if (!self)
        return NULL;
    hafl_msg_t *msg = s_event_new(self->run_id, self->actor, round, event);
    return msg ? &msg->u.log_event : NULL;
}

//  Make an event acceptable to the encoder, so that no event is lost to a detail: strings
//  repaired to valid UTF-8, empty names replaced by "-", a repeated field key renamed
//  "key#index", bools normalised.
static void s_event_sanitise(hafl_log_event_t *ev)
{
    s_utf8_repair(ev->run_id);
    s_utf8_repair(ev->actor);
    s_utf8_repair(ev->event);
    if (!ev->actor[0])
        strcpy(ev->actor, "-");
    if (!ev->event[0])
        strcpy(ev->event, "-");
    for (uint32_t i = 0; i < ev->n_fields; i++) {
        hafl_field_t *field = &ev->fields[i];
        s_utf8_repair(field->key);
        for (uint32_t j = 0; j < i; j++)
            if (streq(ev->fields[j].key, field->key)) {
                char suffix[16];
                int n = snprintf(suffix, sizeof suffix, "#%u", i);
                size_t keep = strlen(field->key);
                if (keep + (size_t)n >= sizeof field->key)
                    keep = sizeof field->key - 1 - (size_t)n;
                memcpy(field->key + keep, suffix, (size_t)n + 1);
                s_utf8_repair(field->key); //  the cut may split a sequence
                break;
            }
        if (field->kind == HAFL_VALUE_STRING && field->s)
            s_utf8_repair(field->s);
        if (field->kind == HAFL_VALUE_BOOL)
            field->i = field->i != 0;
    }
}

//  Whether an event may be handed to the PUSH socket. An armed emitter waits (up to
//  S_EMITTER_SEND_MS) for the socket to take a message while reading its handshakes: once the
//  logger refuses it (wrong credentials), no send could ever complete, so it says why on stderr,
//  once, and drops its events from then on instead of blocking its actor on every one.
static bool s_events_writable(hafl_events_t *self)
{
    if (self->refused)
        return false;
    if (!self->watch)
        return true;
    int64_t deadline = zclock_mono() + S_EMITTER_SEND_MS;
    for (;;) {
        zmq_pollitem_t items[2] = {{zsock_resolve(self->push), 0, ZMQ_POLLOUT, 0},
                                   {zsock_resolve(self->watch), 0, ZMQ_POLLIN, 0}};
        int64_t left = deadline - zclock_mono();
        if (left <= 0)
            return true; //  the send itself times out as for an unreachable logger
        int n = zmq_poll(items, 2, left);
        if (n < 0 && zmq_errno() != EINTR)
            return true;
        if (n > 0 && (items[1].revents & ZMQ_POLLIN)) {
            char why[400];
            if (hafl_security_handshake(self->watch, true, why, sizeof why) ==
                HAFL_HANDSHAKE_REFUSED) {
                fprintf(stderr, "%s: events: the logger at %s refused them: %s\n", self->actor,
                        self->endpoint, why);
                self->refused = true;
                return false;
            }
            continue;
        }
        if (n > 0 && (items[0].revents & ZMQ_POLLOUT))
            return true;
    }
}

int hafl_events_send(hafl_events_t *self, hafl_log_event_t **event_p)
{
    if (!event_p || !*event_p)
        return -1;
    hafl_msg_t *msg = s_event_message(*event_p);
    *event_p = NULL;
    if (!self) {
        hafl_msg_destroy(&msg);
        return -1;
    }
    s_event_sanitise(&msg->u.log_event);
    hafl_msg_error_t err;
    zmsg_t *zmsg = hafl_msg_encode(msg, &err);
    if (!zmsg) {
        //  Still unencodable (a field the codec refuses): send what is certain, with the reason.
        hafl_msg_t *plain = s_event_new(msg->u.log_event.run_id, msg->u.log_event.actor,
                                        msg->u.log_event.round, msg->u.log_event.event);
        if (plain) {
            hafl_log_event_add_string(&plain->u.log_event, "encode_error", err.text);
            zmsg = hafl_msg_encode(plain, NULL);
            hafl_msg_destroy(&plain);
        }
    }
    hafl_msg_destroy(&msg);
    int rc = -1;
    if (zmsg && s_events_writable(self)) {
        //  Blocks at the high water mark rather than dropping the event, for at most
        //  S_EMITTER_SEND_MS (a logger that is gone); a signal does not drop it either.
        while ((rc = zmsg_send(&zmsg, self->push)) == -1 && zmq_errno() == EINTR)
            ;
    }
    zmsg_destroy(&zmsg);
    return rc;
}

//  --------------------------------------------------------------------------------------------
//  The actor

typedef struct {
    zsock_t *pipe;
    zsock_t *pull;
    zsock_t *refusals;           //  pull's handshakes (hafl_security_watch), when emitters of
                                 //  other processes may push
    const hafl_log_auth_t *auth; //  the admission (NULL: anyone may push)
    zsock_t *pub;                //  NULL when no PUB endpoint was given
    FILE *file;
    char *path;
    bool echo;
    bool write_failed;              //  a write error was reported once on stderr
    uint64_t written;               //  emitters' events written to the file
    uint64_t malformed;             //  frames dropped as malformed
    uint64_t refused;               //  emitters refused at the handshake
    char run_id[HAFL_MSG_MAX_NAME]; //  last run id seen, for the logger's own lines
    bool remote;                    //  emitters of other processes may push (pull is not
                                    //  inproc://)
    bool final_seen;                //  the server's final (or final-failed) event arrived
    int end_grace_ms;               //  args->end_grace_ms, or S_END_GRACE_MS
    int end_quiet_ms;               //  args->end_quiet_ms, or S_END_QUIET_MS
} s_logger_t;

static void s_logger_destroy(s_logger_t *self)
{
    if (self->file) {
        fflush(self->file);
        fsync(fileno(self->file));
        fclose(self->file);
    }
    hafl_security_unwatch(self->pull, &self->refusals);
    zsock_destroy(&self->pull);
    zsock_destroy(&self->pub);
    free(self->path);
}

//  Bind and open; 0, or -1 with a reason on stderr.
static int s_logger_init(s_logger_t *self, zsock_t *pipe, const hafl_logger_args_t *args)
{
    memset(self, 0, sizeof *self);
    self->pipe = pipe;
    self->echo = args->echo;
    self->end_grace_ms = args->end_grace_ms > 0 ? args->end_grace_ms : S_END_GRACE_MS;
    self->end_quiet_ms = args->end_quiet_ms > 0 ? args->end_quiet_ms : S_END_QUIET_MS;
    self->remote = strncmp(args->pull, "inproc://", 9) != 0;
    self->auth = args->auth;
    if (!args->pull || !args->path) {
        fprintf(stderr, "logger: a PULL endpoint and a file path are required\n");
        return -1;
    }
    self->path = strdup(args->path);
    self->pull = zsock_new(ZMQ_PULL);
    if (!self->path || !self->pull)
        return -1;
    zsock_set_rcvhwm(self->pull, S_EVENT_HWM);
    zsock_set_maxmsgsize(self->pull, S_MAX_EVENT_BYTES);
    //  Only the federation's emitters may push (hafl_log_auth.h); refusals are written down.
    char err[256];
    if (hafl_log_auth_apply_server(args->auth, self->pull, args->pull, err, sizeof err) != 0) {
        fprintf(stderr, "logger: %s\n", err);
        return -1;
    }
    //  Watched whenever emitters may connect from other processes, for refusals.
    if (strncmp(args->pull, "inproc://", 9) != 0 &&
        !(self->refusals = hafl_security_watch(self->pull, err, sizeof err))) {
        fprintf(stderr, "logger: %s\n", err);
        return -1;
    }
    if (zsock_bind(self->pull, "%s", args->pull) < 0) {
        fprintf(stderr, "logger: cannot bind PULL to %s: %s\n", args->pull, zmq_strerror(errno));
        return -1;
    }
    if (args->local && zsock_bind(self->pull, "%s", args->local) < 0) {
        fprintf(stderr, "logger: cannot bind PULL to %s: %s\n", args->local, zmq_strerror(errno));
        return -1;
    }
    if (args->pub && *args->pub) {
        self->pub = zsock_new(ZMQ_PUB);
        if (!self->pub)
            return -1;
        zsock_set_sndhwm(self->pub, S_EVENT_HWM);
        if (zsock_bind(self->pub, "%s", args->pub) < 0) {
            fprintf(stderr, "logger: cannot bind PUB to %s: %s\n", args->pub, zmq_strerror(errno));
            return -1;
        }
    }
    self->file = fopen(args->path, "a");
    if (!self->file) {
        fprintf(stderr, "logger: cannot open %s: %s\n", args->path, strerror(errno));
        return -1;
    }
    return 0;
}

//  Write one event line (and echo it); publish topic + frames (frames: NULL to encode it).
static void s_logger_emit(s_logger_t *self, const hafl_log_event_t *event, zmsg_t *frames)
{
    char *line = hafl_log_event_json(event);
    if (!line || fputs(line, self->file) < 0 || fputc('\n', self->file) == EOF) {
        if (!self->write_failed)
            fprintf(stderr, "logger: cannot write to %s: %s\n", self->path,
                    line ? strerror(errno) : "out of memory");
        self->write_failed = true;
    }
    if (line && self->echo)
        fprintf(stderr, "%s\n", line);
    free(line);
    if (!self->pub)
        return;
    zmsg_t *out = frames ? zmsg_dup(frames) : NULL;
    if (!frames) {
        hafl_msg_t msg = {.type = HAFL_MSG_LOG_EVENT, .minor = HAFL_PROTO_MINOR};
        msg.u.log_event = *event; //  shallow: encode only reads it
        out = hafl_msg_encode(&msg, NULL);
    }
    char topic[2 * HAFL_MSG_MAX_NAME + 4];
    hafl_log_event_topic(event, topic, sizeof topic);
    if (out && zmsg_pushstr(out, topic) == 0)
        zmsg_send(&out, self->pub); //  PUB never blocks: a slow subscriber loses, not us
    zmsg_destroy(&out);
}

static void s_logger_malformed(s_logger_t *self, const hafl_msg_error_t *err, size_t bytes)
{
    self->malformed++;
    hafl_msg_t *msg = s_event_new(self->run_id, "logger", -1, "malformed-event");
    if (!msg)
        return;
    hafl_log_event_t *ev = &msg->u.log_event;
    hafl_log_event_add_string(ev, "reason", err->text);
    hafl_log_event_add_string(ev, "code", hafl_msg_code_name(err->code));
    hafl_log_event_add_string(ev, "field", err->field);
    hafl_log_event_add_int(ev, "bytes", (int64_t)bytes);
    hafl_log_event_add_int(ev, "malformed_total", (int64_t)self->malformed);
    s_event_sanitise(ev);
    s_logger_emit(self, ev, NULL);
    hafl_msg_destroy(&msg);
}

//  A refused or failed handshake on PULL: a peer without the run's log credentials.
//  One event of the PULL socket's watch: a refused handshake is written down as a
//  "log-refused" line; other events are not the logger's business.
static void s_logger_watch(s_logger_t *self)
{
    hafl_watch_event_t e;
    if (hafl_security_watch_event(self->refusals, &e) != 0)
        return;
    char why[400];
    int verdict = hafl_security_describe(&e, false, why, sizeof why);
    if (verdict != HAFL_HANDSHAKE_REFUSED && verdict != HAFL_HANDSHAKE_LOST)
        return;
    //  The watch words its reasons for CURVE; without CURVE the mechanism is PLAIN.
    if (!hafl_log_auth_curve(self->auth))
        snprintf(why, sizeof why,
                 "a connection without the run's log credentials (ZeroMQ "
                 "PLAIN, user " HAFL_LOG_AUTH_USER " and the log token): none, or wrong ones");
    self->refused++;
    hafl_msg_t *msg = s_event_new(self->run_id, "logger", -1, "log-refused");
    if (!msg)
        return;
    hafl_log_event_t *ev = &msg->u.log_event;
    hafl_log_event_add_string(ev, "reason", why);
    hafl_log_event_add_int(ev, "refused_total", (int64_t)self->refused);
    s_event_sanitise(ev);
    s_logger_emit(self, ev, NULL);
    fflush(self->file);
    hafl_msg_destroy(&msg);
}

//  An event that spoke as an actor it may not be: written as an "event-refused" line naming
//  the claimed actor and event, never as the event itself.
static void s_logger_impostor(s_logger_t *self, const hafl_log_event_t *claimed, const char *why)
{
    self->refused++;
    hafl_msg_t *msg = s_event_new(self->run_id, "logger", -1, "event-refused");
    if (!msg)
        return;
    hafl_log_event_t *ev = &msg->u.log_event;
    hafl_log_event_add_string(ev, "claimed_actor", claimed->actor);
    hafl_log_event_add_string(ev, "claimed_event", claimed->event);
    hafl_log_event_add_string(ev, "reason", why);
    hafl_log_event_add_int(ev, "refused_total", (int64_t)self->refused);
    s_event_sanitise(ev);
    s_logger_emit(self, ev, NULL);
    hafl_msg_destroy(&msg);
}

//  The run is over once the server's final (or final-failed) event is in: from then on the
//  drain on $TERM waits for the emitters of other processes to fall silent (s_logger_run).
static void s_note_final(s_logger_t *self, const hafl_log_event_t *ev)
{
    if (streq(ev->actor, "server") &&
        (streq(ev->event, "final") || streq(ev->event, "final-failed")))
        self->final_seen = true;
}

//  Receive and handle one message from PULL (the caller knows one is ready).
static void s_handle_pull(s_logger_t *self)
{
    zmsg_t *zmsg = zmsg_recv(self->pull);
    if (!zmsg)
        return;
    hafl_msg_error_t err;
    memset(&err, 0, sizeof err);
    hafl_msg_t *msg = hafl_msg_decode(zmsg, &err);
    if (msg && msg->type != HAFL_MSG_LOG_EVENT) {
        snprintf(err.text, sizeof err.text, "expected LOG_EVENT, got %s",
                 hafl_msg_type_name(msg->type));
        snprintf(err.field, sizeof err.field, "type");
        err.code = HAFL_MSG_EUNKNOWN;
        hafl_msg_destroy(&msg);
    }
    //  Who may speak as whom (hafl_log_auth_actor_ok): decided for events that came over a
    //  connection, which carry the connection's metadata; in-process ones carry none.
    char why[200];
    zframe_t *first = zmsg_first(zmsg);
    if (msg && self->auth && first && zframe_meta(first, "Socket-Type") &&
        !hafl_log_auth_actor_ok(self->auth, msg->u.log_event.actor, zframe_meta(first, "User-Id"),
                                why, sizeof why)) {
        s_logger_impostor(self, &msg->u.log_event, why);
        hafl_msg_destroy(&msg);
        zmsg_destroy(&zmsg);
        return;
    }
    if (msg) {
        snprintf(self->run_id, sizeof self->run_id, "%s", msg->u.log_event.run_id);
        s_note_final(self, &msg->u.log_event);
        s_logger_emit(self, &msg->u.log_event, zmsg);
        self->written++;
        hafl_msg_destroy(&msg);
    } else
        s_logger_malformed(self, &err, zmsg_content_size(zmsg));
    zmsg_destroy(&zmsg);
}

static bool s_pull_ready(s_logger_t *self)
{
    return (zsock_events(self->pull) & ZMQ_POLLIN) != 0;
}

//  Handle what is queued now, at most `limit` messages; then flush.
static void s_drain(s_logger_t *self, size_t limit)
{
    for (size_t n = 0; n < limit && s_pull_ready(self); n++)
        s_handle_pull(self);
    fflush(self->file);
}

static void s_handle_pipe(s_logger_t *self, bool *terminated)
{
    zmsg_t *msg = zmsg_recv(self->pipe);
    if (!msg) {
        *terminated = true;
        return;
    }
    char *command = zmsg_popstr(msg);
    if (!command || streq(command, "$TERM"))
        *terminated = true;
    else if (streq(command, "COUNT")) {
        char written[24], malformed[24];
        snprintf(written, sizeof written, "%" PRIu64, self->written);
        snprintf(malformed, sizeof malformed, "%" PRIu64, self->malformed);
        zsock_send(self->pipe, "ss", written, malformed);
    } else if (streq(command, "FLUSH")) {
        s_drain(self, S_EVENT_HWM);
        fdatasync(fileno(self->file));
        zstr_send(self->pipe, "OK");
    } else
        fprintf(stderr, "logger: unknown pipe command '%s'\n", command);
    zstr_free(&command);
    zmsg_destroy(&msg);
}

static void s_logger_run(zsock_t *pipe, const hafl_logger_args_t *args, int *status)
{
    s_logger_t self_, *self = &self_;
    if (s_logger_init(self, pipe, args) != 0) {
        if (status)
            *status = -1;
        s_logger_destroy(self);
        zsock_signal(pipe, 1);
        return;
    }
    if (status)
        *status = 0;
    zsock_signal(pipe, 0);
    //  Signals do not end the logger: the node destroys it last, after every emitter, so
    //  nobody is left pushing to a socket that no longer reads (which would block them).
    zpoller_t *poller = zpoller_new(pipe, self->pull, NULL);
    bool terminated = !poller;
    if (poller)
        zpoller_set_nonstop(poller, true);
    if (poller && self->refusals)
        zpoller_add(poller, self->refusals);
    while (!terminated) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe)
            s_handle_pipe(self, &terminated);
        else if (which == self->pull)
            s_drain(self, S_BATCH);
        else if (which && which == self->refusals)
            s_logger_watch(self);
        else if (zpoller_terminated(poller))
            break;
    }
    //  Drain. Once the run is over and emitters of other processes may push, read until no
    //  event has come for end_quiet_ms: a client host's last events may still be on a slow link.
    //  Otherwise until the socket has been quiet for S_DRAIN_QUIET_MS.
    zpoller_destroy(&poller);
    int64_t grace_end = zclock_mono() + self->end_grace_ms;
    poller = zpoller_new(self->pull, NULL);
    bool settled = !poller;
    while (!settled && zclock_mono() < grace_end) {
        //  Decided each time: a final event that arrives during the drain extends it.
        bool slow = self->final_seen && self->remote;
        if (zpoller_wait(poller, slow ? self->end_quiet_ms : S_DRAIN_QUIET_MS) == self->pull)
            s_drain(self, S_BATCH);
        else
            settled = true; //  quiet for the whole window (or the poller ended)
    }
    zpoller_destroy(&poller);
    if (self->final_seen && self->remote && !settled) {
        //  Said in the file and on stderr: what still comes after this is not in the log.
        fprintf(stderr,
                "logger: events from other processes were still arriving %d ms after the run "
                "ended (a host still busy or a slow link): later ones are not in the log\n",
                self->end_grace_ms);
        hafl_msg_t *msg = s_event_new(self->run_id, "logger", -1, "events-incomplete");
        if (msg) {
            hafl_log_event_t *ev = &msg->u.log_event;
            hafl_log_event_add_int(ev, "waited_ms", self->end_grace_ms);
            s_event_sanitise(ev);
            s_logger_emit(self, ev, NULL);
            hafl_msg_destroy(&msg);
        }
    }
    s_logger_destroy(self);
}

void hafl_logger_actor(zsock_t *pipe, void *args)
{
    s_logger_run(pipe, (const hafl_logger_args_t *)args, NULL);
}

typedef struct {
    const hafl_logger_args_t *args;
    int status;
} s_front_t;

static void s_front_actor(zsock_t *pipe, void *args)
{
    s_front_t *front = args;
    s_logger_run(pipe, front->args, &front->status);
}

zactor_t *hafl_logger_new(const hafl_logger_args_t *args)
{
    s_front_t front = {args, -1};
    zactor_t *actor = zactor_new(s_front_actor, &front);
    if (actor && front.status != 0)
        zactor_destroy(&actor);
    return actor;
}

void hafl_logger_flush(zactor_t *logger)
{
    if (zstr_send(logger, "FLUSH") == 0) {
        char *reply = zstr_recv(logger);
        zstr_free(&reply);
    }
}
