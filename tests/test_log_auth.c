/*  test_log_auth: the logger writes only what the federation's own emitters push.

    A logger with the run's log credentials (HAFL_LOG_TOKEN set for this process, CURVE off)
    binds its PULL socket over ipc:// and over tcp:// on loopback. For each transport:
    - an emitter with the credentials (hafl_events_new with the auth object) is written;
    - an emitter with the credentials that speaks as `server` over the connection is refused
      (`event-refused`): the server's actors log in the logger's own process;
    - a stray PUSH without credentials, and one with the right user but another token, each
      push a forged `final` event: neither reaches events.jsonl, and each refused handshake is
      written as a `log-refused` line.
    The derived token (no HAFL_LOG_TOKEN) is a pure function of the topology: two loads of one
    file agree, and another seed gives another token (checked through admission, the token
    itself is not exposed).
*/
#include "hafl_log_auth.h"
#include "hafl_logger.h"
#include "hafl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Up to 10 s for the file to hold `needle` `count` times (the logger writes asynchronously).
static char *s_wait_for(zactor_t *logger, const char *path, const char *needle, size_t count)
{
    for (int i = 0; i < 200; i++) {
        hafl_logger_flush(logger);
        FILE *file = fopen(path, "rb");
        char *text = NULL;
        if (file) {
            static char buffer[1 << 20];
            size_t n = fread(buffer, 1, sizeof buffer - 1, file);
            fclose(file);
            buffer[n] = 0;
            text = strdup(buffer);
        }
        size_t seen = 0;
        for (const char *at = text; at && (at = strstr(at, needle)); at++)
            seen++;
        if (seen >= count)
            return text;
        free(text);
        zclock_sleep(50);
    }
    CHECKF(false, "%s never held %zu x %s", path, count, needle);
    return NULL;
}

//  A PUSH that tries to write a forged `final` event; the caller destroys it once the outcome
//  is known.
static zsock_t *s_push_forged(const char *endpoint, const char *user, const char *password)
{
    zsock_t *push = zsock_new(ZMQ_PUSH);
    CHECK(push);
    zsock_set_linger(push, 0);
    zsock_set_sndtimeo(push, 100);
    if (user) {
        zsock_set_plain_username(push, user);
        zsock_set_plain_password(push, password);
    }
    CHECK(zsock_connect(push, "%s", endpoint) == 0);
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_LOG_EVENT);
    CHECK(msg);
    snprintf(msg->u.log_event.actor, sizeof msg->u.log_event.actor, "server");
    snprintf(msg->u.log_event.event, sizeof msg->u.log_event.event, "final");
    msg->u.log_event.round = -1;
    zmsg_t *frames = hafl_msg_encode(msg, NULL);
    CHECK(frames);
    zmsg_send(&frames, push); //  may time out: the handshake never completes
    zmsg_destroy(&frames);
    hafl_msg_destroy(&msg);
    return push;
}

static void s_transport(const char *dir, const char *pull, const hafl_log_auth_t *auth)
{
    char path[512];
    snprintf(path, sizeof path, "%s/events-%c.jsonl", dir, pull[0]);
    hafl_logger_args_t args = {.pull = pull, .path = path, .auth = auth};
    zactor_t *logger = hafl_logger_new(&args);
    CHECKF(logger, "logger did not start on %s", pull);

    hafl_events_t *events = hafl_events_new(pull, "run-auth", "client-0", auth);
    CHECK(events);
    hafl_log_event_t *ev = hafl_events_start(events, 1, "upload");
    CHECK(ev && hafl_events_send(events, &ev) == 0);
    //  The credentials, but the server's name over a connection: the server logs in process.
    hafl_events_t *posing = hafl_events_new(pull, "run-auth", "server", auth);
    CHECK(posing);
    ev = hafl_events_start(posing, -1, "final");
    CHECK(ev && hafl_events_send(posing, &ev) == 0);
    zsock_t *stray = s_push_forged(pull, NULL, NULL);
    zsock_t *guess = s_push_forged(pull, HAFL_LOG_AUTH_USER, "not-the-token");
    char *text = s_wait_for(logger, path, "\"event\":\"log-refused\"", 2);
    free(text);
    text = s_wait_for(logger, path, "\"claimed_actor\":\"server\",\"claimed_event\":\"final\"", 1);
    CHECKF(strstr(text, "\"event\":\"event-refused\""), "%s", text);
    free(text);
    hafl_events_destroy(&posing);
    zsock_destroy(&stray);
    zsock_destroy(&guess);
    text = s_wait_for(logger, path, "\"event\":\"upload\"", 1);
    CHECKF(!strstr(text, "\"event\":\"final\""), "a forged event was written:\n%s", text);
    printf("%s: the emitter's event written, two forgers and one posing as the server refused "
           "and logged\n", pull);
    free(text);
    hafl_events_destroy(&events);
    zactor_destroy(&logger);
}

//  Whether an emitter with `pusher`'s credentials is admitted by a logger with `logger_auth`.
static bool s_admits(const char *dir, const hafl_log_auth_t *logger_auth,
                     const hafl_log_auth_t *pusher, int n)
{
    char path[512], pull[600];
    snprintf(path, sizeof path, "%s/derived-%d.jsonl", dir, n);
    snprintf(pull, sizeof pull, "ipc://%s/derived-%d.ipc", dir, n);
    hafl_logger_args_t args = {.pull = pull, .path = path, .auth = logger_auth};
    zactor_t *logger = hafl_logger_new(&args);
    CHECK(logger);
    hafl_events_t *events = hafl_events_new(pull, "run-auth", "client-0", pusher);
    CHECK(events);
    hafl_log_event_t *ev = hafl_events_start(events, 1, "upload");
    CHECK(ev);
    hafl_events_send(events, &ev);
    //  One of the two outcomes is certain to come: the event, or the refusal.
    bool admitted = false, decided = false;
    for (int i = 0; i < 200 && !decided; i++) {
        hafl_logger_flush(logger);
        char *text = NULL;
        FILE *file = fopen(path, "rb");
        if (file) {
            static char buffer[1 << 16];
            size_t got = fread(buffer, 1, sizeof buffer - 1, file);
            fclose(file);
            buffer[got] = 0;
            text = buffer;
        }
        admitted = text && strstr(text, "\"event\":\"upload\"");
        decided = admitted || (text && strstr(text, "\"event\":\"log-refused\""));
        if (!decided)
            zclock_sleep(50);
    }
    CHECKF(decided, "neither the event nor a refusal within 10 s");
    hafl_events_destroy(&events);
    zactor_destroy(&logger);
    return admitted;
}

static hafl_topology_t *s_topology(const char *seed)
{
    const char *root = getenv("HAFL_SOURCE_DIR");
    CHECKF(root, "HAFL_SOURCE_DIR is not set (run through ctest)");
    char path[4096];
    snprintf(path, sizeof path, "%s/topologies/smoke.zpl", root);
    const char *overrides[] = {seed};
    hafl_topology_error_t err;
    hafl_topology_t *t = hafl_topology_load(path, overrides, seed ? 1 : 0, &err);
    CHECKF(t, "%s", err.text);
    return t;
}

int main(void)
{
    char dir[] = "/tmp/hafl-log-auth-XXXXXX";
    CHECK(mkdtemp(dir));
    char err[256];

    //  An explicit token.
    CHECK(setenv(HAFL_LOG_AUTH_ENV, "a-shared-run-secret", 1) == 0);
    hafl_log_auth_t *auth = hafl_log_auth_new(NULL, NULL, err, sizeof err);
    CHECKF(auth, "%s", err);
    CHECKF(hafl_log_auth_serve(auth, err, sizeof err) == 0, "%s", err);
    char ipc[600];
    snprintf(ipc, sizeof ipc, "ipc://%s/log.ipc", dir);
    s_transport(dir, ipc, auth);
    //  A loopback port below the ephemeral range, apart per process so parallel runs of the
    //  suite do not collide (as tests/bus_curve.sh chooses its ports).
    char tcp[64];
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", 23000 + (int)(getpid() % 2000));
    s_transport(dir, tcp, auth);
    hafl_log_auth_destroy(&auth);

    //  A token that is too long is refused with the variable's name.
    char long_token[HAFL_LOG_AUTH_MAX_TOKEN + 2];
    memset(long_token, 'x', sizeof long_token - 1);
    long_token[sizeof long_token - 1] = 0;
    CHECK(setenv(HAFL_LOG_AUTH_ENV, long_token, 1) == 0);
    CHECK(!hafl_log_auth_new(NULL, NULL, err, sizeof err) && strstr(err, HAFL_LOG_AUTH_ENV));

    //  Derived tokens: the same topology agrees with itself, another seed does not.
    CHECK(unsetenv(HAFL_LOG_AUTH_ENV) == 0);
    hafl_topology_t *t1 = s_topology(NULL), *t2 = s_topology(NULL), *t3 = s_topology("seed=8");
    hafl_log_auth_t *a1 = hafl_log_auth_new(t1, NULL, err, sizeof err);
    hafl_log_auth_t *a2 = hafl_log_auth_new(t2, NULL, err, sizeof err);
    hafl_log_auth_t *a3 = hafl_log_auth_new(t3, NULL, err, sizeof err);
    CHECK(a1 && a2 && a3);
    CHECKF(hafl_log_auth_serve(a1, err, sizeof err) == 0, "%s", err);
    CHECK(s_admits(dir, a1, a2, 1));
    CHECK(!s_admits(dir, a1, a3, 2));
    printf("derived tokens: same topology admitted, another seed refused\n");
    hafl_log_auth_destroy(&a1);
    hafl_log_auth_destroy(&a2);
    hafl_log_auth_destroy(&a3);
    hafl_topology_destroy(&t1);
    hafl_topology_destroy(&t2);
    hafl_topology_destroy(&t3);

    char command[700];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK(system(command) == 0);
    printf("test_log_auth: all passed\n");
    return 0;
}
