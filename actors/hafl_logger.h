/*  hafl_logger: the logger actor and the event emitter every other actor uses.

    Admission: with args->auth, the PULL socket admits only emitters holding the run's log
    credentials (hafl_log_auth.h) on every endpoint but inproc://; each refused handshake is
    written as a "log-refused" line (the reason, a running count) so an attempt to push into
    the log is itself on record.

    The logger binds a PULL socket (events in) and a PUB socket (events out). Each LOG_EVENT it
    receives is written as one JSON line {"time": ISO-8601 UTC with microseconds, "time_us",
    "run", "round", "actor", "event", ...fields} to the run's events.jsonl and republished
    unchanged (the encoded message) on PUB for `hafl tail`; subscribers may filter by prefix.
    Nothing received is ever dropped before it reaches the file: emitters block rather than
    drop (PUSH with no send timeout), and on $TERM the logger drains what is queued before
    closing the file. Malformed frames are counted, reported as a "malformed-event" line with
    the codec's reason, and dropped.

    JSON line: {"time":"2025-01-02T03:04:05.678901Z","time_us":N,"run":"..","round":N|null,
    "actor":"..","event":"..", then each field as "key":value}: ints and bools as JSON numbers
    and booleans, floats with 17 significant digits and non-finite ones as null, strings
    escaped (invalid UTF-8 bytes become U+FFFD). Round -1 is written as null. A field whose key
    is one of the envelope names (time, time_us, run, round, actor, event) is written "_key".

    PUB stream: each event is one message whose first frame is the topic "EVENT ACTOR " (event
    name, one space, actor name, one trailing space) and whose other frames are the encoded
    LOG_EVENT. Subscribing to "" gets everything, to "round-end " every round-end, to
    "upload client-3 " exactly client-3's uploads (the trailing space keeps client-30 out).

    Emitters: hafl_events_t wraps a PUSH socket connected to the logger's PULL endpoint. It is
    owned by one thread. Build an event with hafl_events_start, add fields with the
    hafl_log_event_add_* functions of hafl_msg.h, and hand it over with hafl_events_send, which
    takes ownership and nulls the pointer.
*/
#ifndef HAFL_LOGGER_H
#define HAFL_LOGGER_H

#include "hafl_log_auth.h"
#include "hafl_msg.h"

#include <czmq.h>
#include <stdbool.h>

typedef struct {
    const char *pull; //  endpoint to bind for incoming events
    const char *pub;  //  endpoint to bind for tail subscribers (NULL: none)
    const char *path; //  JSON-lines file, appended (created with parents' existence assumed)
    bool echo;        //  also write each line to stderr
    const hafl_log_auth_t *auth; //  who may push (NULL: anyone; see hafl_log_auth.h)
    const char *local; //  an inproc:// endpoint also bound, for the logger's own process's
                       //  emitters, which need no credentials there (NULL: none)
    int end_grace_ms;  //  on $TERM after the run's final event, the longest the drain waits for
                       //  emitters of other processes (0: 10 s) ...
    int end_quiet_ms;  //  ... to fall silent this long (0: 1.5 s)
} hafl_logger_args_t;

//  The actor body; args points to a hafl_logger_args_t valid until the actor signals ready.
//  Commands on its pipe: "$TERM" (drain and stop); "COUNT" replies with two frames
//  "<events written>" "<malformed dropped>" as decimal strings (written counts emitters' events,
//  not the logger's own malformed-event lines); "FLUSH" replies "OK" once every event received
//  so far is on disk. A failed start (bind or open) signals ready with status 1 and ends.
void hafl_logger_actor(zsock_t *pipe, void *args);
//  Typed front: start the actor; NULL if it could not bind (reason on stderr).
zactor_t *hafl_logger_new(const hafl_logger_args_t *args);
//  Ask a running logger to flush; returns once everything received so far is on disk.
void hafl_logger_flush(zactor_t *logger);

typedef struct hafl_events_t hafl_events_t;

//  Connect an emitter for (run_id, actor) to the logger's PULL endpoint with auth's credentials
//  (NULL: none, for a logger that admits anyone); NULL on failure.
hafl_events_t *hafl_events_new(const char *endpoint, const char *run_id, const char *actor,
                               const hafl_log_auth_t *auth);
void hafl_events_destroy(hafl_events_t **self_p);
//  A new event stamped with the current time, run id and actor; round -1 if none.
hafl_log_event_t *hafl_events_start(hafl_events_t *self, int32_t round, const char *event);
//  Encode and send; takes ownership of *event_p and nulls it. 0, or -1 if it could not be sent.
int hafl_events_send(hafl_events_t *self, hafl_log_event_t **event_p);
//  Frees an event obtained from hafl_events_start without sending it.
void hafl_log_event_destroy(hafl_log_event_t **event_p);

//  The event as the one JSON line the logger writes (no newline); the caller frees it. NULL on
//  no memory.
char *hafl_log_event_json(const hafl_log_event_t *event);
//  The PUB topic frame of an event, "EVENT ACTOR ", truncated to topiclen.
void hafl_log_event_topic(const hafl_log_event_t *event, char *topic, size_t topiclen);

#endif
