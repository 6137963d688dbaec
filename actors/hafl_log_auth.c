/*  hafl_log_auth: the logger's admission of emitters (contract in the header).

    The PLAIN check runs in a ZAP handler (RFC 27) of our own rather than in zauth, whose PLAIN
    mode reads passwords from a file: the token stays in memory. The handler answers every
    request of the process: PLAIN with the right user and token 200, other PLAIN 400, NULL 200
    (sockets that use no mechanism are not its business), CURVE 400 (this handler only runs
    when CURVE is off, so a CURVE handshake here is a misconfigured peer).
*/
#include "hafl_log_auth.h"
#include "hafl_server_checkpoint.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_ZAP_DOMAIN   "hafl-log"

struct hafl_log_auth_t {
    const hafl_security_t *security;
    char token[HAFL_LOG_AUTH_MAX_TOKEN + 1];
    size_t token_len;
    zactor_t *zap;  //  the PLAIN handler, once served (CURVE off)
    bool zap_bound; //  set by the handler before it signals: it holds the ZAP endpoint
};

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

hafl_log_auth_t *hafl_log_auth_new(const hafl_topology_t *topology,
                                   const hafl_security_t *security, char *err, size_t errlen)
{
    hafl_log_auth_t *self = calloc(1, sizeof *self);
    if (!self || sodium_init() < 0) {
        free(self);
        s_fail(err, errlen, "log auth: out of memory");
        return NULL;
    }
    self->security = security;
    const char *given = getenv(HAFL_LOG_AUTH_ENV);
    if (given) {
        size_t len = strlen(given);
        if (len == 0 || len > HAFL_LOG_AUTH_MAX_TOKEN) {
            s_fail(err, errlen, "%s: %zu bytes; it must hold 1 to %d", HAFL_LOG_AUTH_ENV, len,
                   HAFL_LOG_AUTH_MAX_TOKEN);
            free(self);
            return NULL;
        }
        memcpy(self->token, given, len + 1);
        self->token_len = len;
        return self;
    }
    //  Derived: SHA-256 over a label and the settings every node of one run shares.
    char *settings = hafl_server_checkpoint_settings(topology, NULL);
    if (!settings) {
        s_fail(err, errlen, "log auth: out of memory");
        free(self);
        return NULL;
    }
    crypto_hash_sha256_state state;
    uint8_t digest[crypto_hash_sha256_BYTES];
    static const char label[] = "hafl log token 1\n";
    crypto_hash_sha256_init(&state);
    crypto_hash_sha256_update(&state, (const uint8_t *)label, sizeof label - 1);
    crypto_hash_sha256_update(&state, (const uint8_t *)settings, strlen(settings));
    crypto_hash_sha256_final(&state, digest);
    free(settings);
    sodium_bin2hex(self->token, sizeof self->token, digest, sizeof digest);
    self->token_len = strlen(self->token);
    return self;
}

hafl_log_auth_t *hafl_log_auth_with(const hafl_log_auth_t *base, const hafl_security_t *security)
{
    hafl_log_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    memcpy(self->token, base->token, sizeof self->token);
    self->token_len = base->token_len;
    self->security = security;
    return self;
}

void hafl_log_auth_destroy(hafl_log_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zactor_destroy(&(*self_p)->zap);
    sodium_memzero(*self_p, sizeof **self_p);
    free(*self_p);
    *self_p = NULL;
}

//  Whether a PLAIN request's credentials are ours.
static bool s_plain_ok(const hafl_log_auth_t *self, zframe_t *user, zframe_t *password)
{
    if (!user || !password || zframe_size(user) != strlen(HAFL_LOG_AUTH_USER) ||
        memcmp(zframe_data(user), HAFL_LOG_AUTH_USER, zframe_size(user)) != 0)
        return false;
    return zframe_size(password) == self->token_len &&
           sodium_memcmp(zframe_data(password), self->token, self->token_len) == 0;
}

//  One ZAP request in, one reply out. A request that is not RFC 27's shape gets no reply
//  content beyond a 500 (the REP socket must answer something to stay in step).
static void s_zap_answer(const hafl_log_auth_t *self, zsock_t *rep)
{
    zmsg_t *request = zmsg_recv(rep);
    if (!request)
        return;
    char *version = zmsg_popstr(request);
    zframe_t *request_id = zmsg_pop(request);
    char *domain = zmsg_popstr(request);
    char *address = zmsg_popstr(request);
    zframe_t *identity = zmsg_pop(request);
    char *mechanism = zmsg_popstr(request);
    const char *status = "500", *text = "malformed ZAP request";
    if (version && streq(version, "1.0") && mechanism) {
        if (streq(mechanism, "NULL"))
            status = "200", text = "OK";
        else if (streq(mechanism, "PLAIN")) {
            zframe_t *user = zmsg_pop(request);
            zframe_t *password = zmsg_pop(request);
            bool ok = s_plain_ok(self, user, password);
            status = ok ? "200" : "400";
            text = ok ? "OK" : "wrong log credentials";
            zframe_destroy(&user);
            if (password)
                sodium_memzero(zframe_data(password), zframe_size(password));
            zframe_destroy(&password);
        } else
            status = "400", text = "this process admits no CURVE peers";
    }
    zmsg_t *reply = zmsg_new();
    zmsg_addstr(reply, "1.0");
    if (request_id)
        zmsg_append(reply, &request_id);
    else
        zmsg_addstr(reply, "");
    zmsg_addstr(reply, status);
    zmsg_addstr(reply, text);
    zmsg_addstr(reply, "");
    zmsg_addmem(reply, NULL, 0);
    zmsg_send(&reply, rep);
    zstr_free(&version);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&mechanism);
    zframe_destroy(&identity);
    zframe_destroy(&request_id);
    zmsg_destroy(&request);
}

static void s_zap_actor(zsock_t *pipe, void *arg)
{
    hafl_log_auth_t *self = arg;
    zsock_t *rep = zsock_new(ZMQ_REP);
    self->zap_bound = rep && zmq_bind(zsock_resolve(rep), S_ZAP_ENDPOINT) == 0;
    zsock_signal(pipe, 0); //  zactor_new waits for this; zap_bound says how it went
    if (!self->zap_bound) {
        zsock_destroy(&rep);
        return;
    }
    zpoller_t *poller = zpoller_new(pipe, rep, NULL);
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == rep)
            s_zap_answer(self, rep);
        else {
            char *command = which == pipe ? zstr_recv(pipe) : NULL;
            bool term = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (term)
                break;
        }
    }
    zpoller_destroy(&poller);
    //  An inproc name is released at once by an unbind, but only later by a close (libzmq's
    //  reaper): unbind, so that the next node of this process can take the endpoint.
    zmq_unbind(zsock_resolve(rep), S_ZAP_ENDPOINT);
    zsock_destroy(&rep);
}

int hafl_log_auth_serve(hafl_log_auth_t *self, char *err, size_t errlen)
{
    if (!self || hafl_security_enabled(self->security) || self->zap)
        return 0;
    self->zap = zactor_new(s_zap_actor, self);
    if (!self->zap || !self->zap_bound) {
        zactor_destroy(&self->zap);
        return s_fail(err, errlen, "logger: cannot start its authenticator (%s is taken)",
                      S_ZAP_ENDPOINT);
    }
    return 0;
}

bool hafl_log_auth_curve(const hafl_log_auth_t *self)
{
    return self && hafl_security_enabled(self->security);
}

bool hafl_log_auth_actor_ok(const hafl_log_auth_t *self, const char *actor, const char *user_id,
                            char *why, size_t whylen)
{
    static const char *const local_only[] = {"server", "aggregator", "logger"};
    for (size_t i = 0; i < sizeof local_only / sizeof local_only[0]; i++)
        if (strcmp(actor, local_only[i]) == 0) {
            snprintf(why, whylen, "'%s' logs in the logger's own process, never over a "
                     "connection", actor);
            return false;
        }
    int64_t bound = HAFL_BOUND_NONE;
    if (!hafl_log_auth_curve(self) || !user_id ||
        hafl_security_binding(self->security, user_id, &bound) != 0 || bound == HAFL_BOUND_NONE)
        return true;
    char expected[32];
    if (bound == HAFL_BOUND_EVALUATOR)
        snprintf(expected, sizeof expected, "evaluator");
    else
        snprintf(expected, sizeof expected, "client-%lld", (long long)bound);
    if (strcmp(actor, expected) == 0)
        return true;
    snprintf(why, whylen, "the certificate %.8s... is bound to %s and may not speak as '%s'",
             user_id, expected, actor);
    return false;
}

static bool s_armed(const char *endpoint)
{
    return endpoint && strncmp(endpoint, "inproc://", 9) != 0;
}

int hafl_log_auth_apply_server(const hafl_log_auth_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen)
{
    if (!self || !s_armed(endpoint))
        return 0;
    if (hafl_security_enabled(self->security))
        return hafl_security_apply_server(self->security, sock, endpoint, err, errlen);
    if (!self->zap)
        return s_fail(err, errlen, "logger: %s would admit anyone: no authenticator runs",
                      endpoint);
    zsock_set_zap_domain(sock, S_ZAP_DOMAIN);
    zsock_set_plain_server(sock, 1);
    return 0;
}

int hafl_log_auth_apply_client(const hafl_log_auth_t *self, zsock_t *sock, const char *endpoint,
                               char *err, size_t errlen)
{
    if (!self || !s_armed(endpoint))
        return 0;
    if (hafl_security_enabled(self->security))
        return hafl_security_apply_client(self->security, sock, endpoint, err, errlen);
    zsock_set_plain_username(sock, HAFL_LOG_AUTH_USER);
    zsock_set_plain_password(sock, self->token);
    return 0;
}
