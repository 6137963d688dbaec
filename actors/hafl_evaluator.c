/*  hafl_evaluator: scores global (and client starting) models. See hafl_evaluator.h.

    Identical models are scored once. A request's model is fully described by its adapter
    (factors, merged terms, head) and which components are present; scoring is deterministic,
    so the same model on the same documents gives the same result bit for bit. The last few
    results are kept under the SHA-256 of (present mask, adapter digest) and a repeated model is
    answered from there (logged as eval-reused). This matters for the starting-accuracy
    measurement (evaluator/client_start): under freeze every client starts from the global model
    just scored, and under truncate all clients of one rank budget receive the same components,
    so ten requests per round are two or three distinct models.
*/
#include "hafl_evaluator.h"
#include "hafl_logger.h"
#include "hafl_wire.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define S_CACHE_SLOTS 8

typedef struct {
    bool used;
    uint8_t key[32];
    hafl_eval_stats_t stats;
} s_cached_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *dealer;
    zsock_t *watch; //  dealer's handshakes (hafl_security_connect); NULL on inproc
    uint32_t lost;  //  handshakes lost in a row
    const char *server;
    const hafl_security_t *security;
    zloop_t *loop;
    const hafl_task_t *task;
    const char *log_endpoint;
    const struct hafl_log_auth_t *log_auth;
    uint32_t max_examples;
    hafl_adapter_t *adapter; //  rebuilt for each request
    uint8_t *present;        //  [n_matrices * R]
    hafl_events_t *events;   //  after WELCOME
    char run_id[HAFL_MSG_MAX_NAME];
    int heartbeat_timer;
    uint64_t heartbeat_seq;
    uint64_t malformed;
    bool done;
    s_cached_t cache[S_CACHE_SLOTS]; //  recent results, replaced round-robin
    uint32_t cache_next;
} s_self_t;

//  The cache key of the model in self->adapter with self->present.
static void s_model_key(const s_self_t *self, uint8_t key[32])
{
    const hafl_layout_t *L = &self->adapter->layout;
    uint8_t digest[32];
    hafl_adapter_digest(self->adapter, digest);
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, self->present, (size_t)L->n_matrices * L->rank);
    crypto_hash_sha256_update(&h, digest, sizeof digest);
    crypto_hash_sha256_final(&h, key);
}

static void s_done(s_self_t *self, const char *reason)
{
    if (self->done)
        return;
    self->done = true;
    if (self->heartbeat_timer >= 0)
        zloop_timer_end(self->loop, self->heartbeat_timer);
    self->heartbeat_timer = -1;
    zsock_send(self->pipe, "ss", "DONE", reason);
}

static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    hafl_wire_send_heartbeat(self->dealer, NULL, HAFL_EVALUATOR_INDEX, ++self->heartbeat_seq, NULL);
    return 0;
}

static void s_log(s_self_t *self, int32_t round, const char *event, const char *key,
                  const char *value)
{
    if (!self->events) {
        fprintf(stderr, "evaluator: %s: %s\n", event, value ? value : "");
        return;
    }
    hafl_log_event_t *ev = hafl_events_start(self->events, round, event);
    if (!ev)
        return;
    if (key)
        hafl_log_event_add_string(ev, key, value);
    hafl_events_send(self->events, &ev);
}

static void s_on_welcome(s_self_t *self, const hafl_welcome_t *w)
{
    char err[256];
    if (!hafl_wire_layout_matches(w, hafl_task_layout(self->task), err, sizeof err)) {
        s_log(self, -1, "layout-mismatch", "reason", err);
        s_done(self, err);
        return;
    }
    snprintf(self->run_id, sizeof self->run_id, "%s", w->run_id);
    if (!self->events && self->log_endpoint)
        self->events = hafl_events_new(self->log_endpoint, self->run_id, "evaluator", self->log_auth);
    if (self->heartbeat_timer < 0 && w->heartbeat_ms > 0)
        self->heartbeat_timer = zloop_timer(self->loop, w->heartbeat_ms, 0, s_on_heartbeat, self);
    s_log(self, -1, "joined", "run", self->run_id);
}

static void s_on_request(s_self_t *self, const hafl_eval_request_t *req)
{
    char err[256] = "";
    const hafl_layout_t *L = &self->adapter->layout;
    size_t slots = (size_t)L->n_matrices * L->rank;
    memset(self->present, 0, slots);
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        memset(self->adapter->bt[m], 0, (size_t)L->rank * L->matrices[m].d_out * sizeof(float));
        memset(self->adapter->a[m], 0, (size_t)L->rank * L->matrices[m].d_in * sizeof(float));
    }
    int64_t start = zclock_mono();
    hafl_eval_stats_t stats = {0};
    int rc = hafl_wire_take_components(self->adapter, req->components, req->n_components,
                                       self->present);
    if (rc == 0)
        rc = hafl_wire_take_merged(self->adapter, req->merged, req->n_merged, true,
                                   "eval_request.merged", err, sizeof err);
    if (rc == 0)
        rc = hafl_wire_take_head(self->adapter, &req->head, "eval_request", err, sizeof err);
    uint8_t key[32];
    const s_cached_t *hit = NULL;
    if (rc == 0) {
        //  Scores ride along with the components but play no part in the forward pass: zero
        //  them so they cannot make two equal models look different.
        memset(self->adapter->score, 0, slots * sizeof(float));
        s_model_key(self, key);
        for (int i = 0; i < S_CACHE_SLOTS && !hit; i++)
            if (self->cache[i].used && memcmp(self->cache[i].key, key, 32) == 0)
                hit = &self->cache[i];
    }
    if (rc == 0 && hit) {
        stats = hit->stats;
        s_log(self, (int32_t)req->round, "eval-reused", "model",
              req->tag == 0 ? "global" : "client start");
    }
    else if (rc == 0) {
        rc = hafl_task_evaluate(self->task, self->adapter, self->present, self->max_examples,
                                &stats, err, sizeof err);
        if (rc == 0) {
            s_cached_t *slot = &self->cache[self->cache_next++ % S_CACHE_SLOTS];
            slot->used = true;
            memcpy(slot->key, key, 32);
            slot->stats = stats;
        }
    }
    if (rc) {
        //  A bad request gets no result: the server's eval deadline covers it.
        s_log(self, (int32_t)req->round, "eval-failed", "reason", err);
        return;
    }
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_EVAL_RESULT);
    if (!msg)
        return;
    hafl_eval_result_t *res = &msg->u.eval_result;
    res->round = req->round;
    res->tag = req->tag;
    res->accuracy = stats.accuracy;
    res->loss = stats.loss;
    res->n_examples = stats.examples;
    res->wall_ms = (uint32_t)(zclock_mono() - start);
    hafl_msg_error_t merr;
    if (hafl_wire_send(self->dealer, NULL, msg, NULL, &merr))
        s_log(self, (int32_t)req->round, "send-failed", "reason", merr.text);
    hafl_msg_destroy(&msg);
}

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    char reason[300];
    hafl_msg_t *msg = hafl_wire_recv_dealer(sock, &self->adapter->layout, reason, sizeof reason);
    if (!msg) {
        if (reason[0]) {
            self->malformed++;
            s_log(self, -1, "malformed", "reason", reason);
        }
        return 0;
    }
    switch (msg->type) {
    case HAFL_MSG_WELCOME:
        s_on_welcome(self, &msg->u.welcome);
        break;
    case HAFL_MSG_REJECT:
        s_log(self, -1, msg->u.reject.reason == HAFL_REJECT_FULL ? "ended" : "rejected", "reason",
              msg->u.reject.text);
        s_done(self, msg->u.reject.text);
        break;
    case HAFL_MSG_EVAL_REQUEST:
        if (!self->done)
            s_on_request(self, &msg->u.eval_request);
        break;
    case HAFL_MSG_HEARTBEAT:
        break;
    default:
        self->malformed++;
        s_log(self, -1, "unexpected", "type", hafl_msg_type_name(msg->type));
        break;
    }
    hafl_msg_destroy(&msg);
    return 0;
}

//  The server refused the handshake: end with the reason instead of waiting forever (see
//  hafl_client.c, which does the same).
static int s_on_watch(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    char why[400], reason[440];
    if (hafl_security_refused(self->security, sock, &self->lost, why, sizeof why) != 1 ||
        self->done)
        return 0;
    if (!self->events && self->log_endpoint)
        self->events = hafl_events_new(self->log_endpoint, self->run_id, "evaluator", self->log_auth);
    s_log(self, -1, "handshake-refused", "reason", why);
    zloop_reader_end(loop, sock);
    zloop_reader_end(loop, self->dealer);
    zsock_disconnect(self->dealer, "%s", self->server);
    snprintf(reason, sizeof reason, "evaluator: %s", why);
    s_done(self, reason);
    return 0;
}

static int s_hello(s_self_t *self, char *err, size_t errlen)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_HELLO);
    if (!msg)
        return -1;
    hafl_hello_t *h = &msg->u.hello;
    h->client_index = HAFL_EVALUATOR_INDEX;
    snprintf(h->name, sizeof h->name, "evaluator");
    h->rank_budget = 1;
    h->n_samples = 1;
    hafl_task_base_digest(self->task, h->base_digest);
    hafl_msg_error_t merr;
    int rc = hafl_wire_send(self->dealer, NULL, msg, NULL, &merr);
    if (rc)
        snprintf(err, errlen, "evaluator: cannot send HELLO: %s", merr.text);
    hafl_msg_destroy(&msg);
    return rc;
}

void hafl_evaluator_actor(zsock_t *pipe, void *args_)
{
    hafl_evaluator_args_t *args = (hafl_evaluator_args_t *)args_;
    s_self_t self_ = {0}, *self = &self_;
    self->pipe = pipe;
    self->task = args->task;
    self->log_endpoint = args->log_endpoint;
    self->log_auth = args->log_auth;
    self->max_examples = args->max_examples;
    self->heartbeat_timer = -1;
    self->server = args->server;
    self->security = args->security;
    snprintf(self->run_id, sizeof self->run_id, "%s", args->run_id ? args->run_id : "");
    const hafl_layout_t *L = hafl_task_layout(args->task);
    self->adapter = hafl_adapter_new(L);
    self->present = calloc((size_t)L->n_matrices * L->rank + 1, 1);
    self->dealer = zsock_new(ZMQ_DEALER);
    self->loop = zloop_new();
    bool ok = self->adapter && self->present && self->dealer && self->loop;
    if (ok) {
        hafl_wire_limit(self->dealer, args->max_msg_bytes);
        char why[256];
        if (hafl_security_connect(args->security, self->dealer, args->server, &self->watch, why,
                                  sizeof why)) {
            ok = false;
            snprintf(args->err, sizeof args->err, "evaluator: %.240s", why);
        }
    } else
        snprintf(args->err, sizeof args->err, "evaluator: out of memory");
    ok = ok && s_hello(self, args->err, sizeof args->err) == 0;
    args->status = ok ? 0 : -1;
    zsock_signal(pipe, ok ? 0 : 1);
    if (ok) {
        zloop_set_nonstop(self->loop, true);
        zloop_reader(self->loop, pipe, hafl_wire_pipe_term, self);
        zloop_reader(self->loop, self->dealer, s_on_dealer, self);
        if (self->watch)
            zloop_reader(self->loop, self->watch, s_on_watch, self);
        zloop_start(self->loop);
    }
    zloop_destroy(&self->loop);
    hafl_events_destroy(&self->events);
    hafl_security_unwatch(self->dealer, &self->watch);
    zsock_destroy(&self->dealer);
    hafl_adapter_destroy(&self->adapter);
    free(self->present);
}

zactor_t *hafl_evaluator_new(hafl_evaluator_args_t *args)
{
    args->status = -1;
    args->err[0] = 0;
    zactor_t *actor = zactor_new(hafl_evaluator_actor, args);
    if (actor && args->status != 0)
        zactor_destroy(&actor);
    return actor;
}
