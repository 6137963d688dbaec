/*  hafl_client: one federated client as an actor. See hafl_client.h.

    State machine: JOINING -> IDLE <-> TRAINING (job at the pool) -> HOLDING (upload delayed by
    a straggle) -> IDLE; any -> CRASHED (socket dropped, rejoin timer) -> JOINING; any -> DONE.
*/
#include "hafl_client.h"
#include "hafl_client_state.h"
#include "hafl_faults.h"
#include "hafl_logger.h"
#include "hafl_pool.h"
#include "hafl_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SEND_TIMEOUT_MS 10000 //  a send to the server is given up after this long blocked
#define S_SEND_HWM        32    //  messages queued toward a server that does not read

typedef enum { S_JOINING, S_IDLE, S_TRAINING, S_HOLDING, S_CRASHED, S_DONE } s_phase_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *dealer;      //  to the server; replaced on a crash
    zsock_t *dead_dealer; //  the crashed one, destroyed outside its own reader callback
    zsock_t *watch;       //  dealer's handshakes (hafl_security_connect); NULL on inproc
    zsock_t *dead_watch;  //  dead_dealer's
    uint32_t lost;        //  handshakes lost in a row (hafl_security_refused)
    zsock_t *pool;        //  to the compute pool
    zloop_t *loop;
    hafl_client_args_t *args;
    hafl_task_t *task;
    const hafl_topology_t *topology;
    uint32_t index;
    uint32_t rank_budget;
    uint64_t n_samples;
    uint8_t digest[32];
    char name[HAFL_MSG_MAX_NAME];
    s_phase_t phase;
    bool rejoining;           //  next HELLO says rejoin = true
    hafl_session_t session;   //  from the last WELCOME; a crash keeps it, so the rejoin that
                              //  follows proves it is the same participant (PROTOCOL.md)
    hafl_trainer_t *trainer;  //  NULL until welcomed (and after a crash)
    hafl_adapter_t *received; //  what the server sent; merged terms accumulate across rounds
    uint8_t *roles;           //  [n_matrices * R] of the round being trained
    hafl_pool_job_t job;
    bool job_out; //  the job is at the pool: it owns trainer, received, roles
    uint32_t job_round;
    uint32_t job_straggle_ms;
    uint32_t last_round;       //  highest round started
    hafl_msg_t *pending_round; //  a newer ROUND that arrived while training
    hafl_msg_t *held;          //  an UPDATE waiting for its straggle timer
    int held_timer;
    int heartbeat_timer;
    uint32_t heartbeat_ms;
    uint64_t heartbeat_seq;
    hafl_events_t *events;
    uint64_t malformed;
    char run_id[HAFL_MSG_MAX_NAME];
    const char *state_dir; //  where its state files go; NULL: none (hafl_client_state.h)
    bool resume_pending;   //  restore from args->resume_dir at the first ROUND
    bool send_stalled;     //  the last heartbeat could not be queued toward the server
} s_self_t;

static void s_log(s_self_t *self, int32_t round, const char *event, const char *key,
                  const char *value)
{
    if (!self->events)
        return;
    hafl_log_event_t *ev = hafl_events_start(self->events, round, event);
    if (!ev)
        return;
    if (key)
        hafl_log_event_add_string(ev, key, value);
    hafl_events_send(self->events, &ev);
}

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg);
static int s_on_watch(zloop_t *loop, zsock_t *sock, void *arg);

//  Save the state as it stands after `round` (the trainer's EMAs, or fresh without a trainer)
//  and drop the files no checkpoint can need any more (hafl_client_state_prune). On failure,
//  forget every file (see header).
static int s_save_state(s_self_t *self, uint32_t round, char *err, size_t errlen)
{
    if (!self->state_dir)
        return 0;
    size_t n = self->trainer ? hafl_trainer_state_size(self->trainer) : 0;
    float *values = n ? malloc(n * sizeof(float)) : NULL;
    int rc = -1;
    if (n && !values)
        snprintf(err, errlen, "client %u: out of memory for its state", self->index);
    else {
        if (n)
            hafl_trainer_state_get(self->trainer, values);
        rc = hafl_client_state_save(self->state_dir, self->index, round, values, n, err, errlen);
    }
    free(values);
    if (rc) {
        hafl_client_state_forget(self->state_dir, self->index);
        return -1;
    }
    //  The server keeps two checkpoint generations and may resume from the older one.
    uint32_t every = self->topology->server.checkpoint_every;
    uint32_t last_checkpoint = round > 0 ? (round - 1) / every * every : 0;
    uint32_t older = last_checkpoint > every ? last_checkpoint - every : 0;
    hafl_client_state_prune(self->state_dir, self->index, round, older);
    return 0;
}

//  During the run a failed save is logged and the run goes on (see header).
static void s_save_state_or_log(s_self_t *self, uint32_t round)
{
    char err[256];
    if (s_save_state(self, round, err, sizeof err))
        s_log(self, (int32_t)round, "state-save-failed", "reason", err);
}

//  Take the newest state at or before `round` from the resume folder, and keep a copy of it in
//  our own folder so this run can be resumed in turn.
static int s_restore_state(s_self_t *self, uint32_t round, char *err, size_t errlen)
{
    const char *dir = self->args->resume_dir;
    hafl_client_state_t *state = hafl_client_state_load(dir, self->index, round, err, errlen);
    if (!state)
        return -1;
    int rc = 0;
    if (state->n > 0 && !self->trainer &&
        !(self->trainer = hafl_trainer_new(self->task, self->index, err, errlen)))
        rc = -1;
    if (rc == 0 && state->n > 0) {
        char why[200];
        if (hafl_trainer_state_set(self->trainer, state->values, state->n, why, sizeof why)) {
            char path[4300];
            hafl_client_state_path(dir, self->index, state->round, path, sizeof path);
            snprintf(err, errlen, "%.200s: %s", path, why);
            rc = -1;
        }
    }
    if (rc == 0 && self->state_dir && strcmp(self->state_dir, dir) != 0)
        rc = s_save_state(self, state->round, err, errlen);
    hafl_client_state_destroy(&state);
    return rc;
}

static void s_stop_timer(s_self_t *self, int *timer)
{
    if (*timer >= 0)
        zloop_timer_end(self->loop, *timer);
    *timer = -1;
}

static void s_done(s_self_t *self, const char *reason)
{
    if (self->phase == S_DONE)
        return;
    self->phase = S_DONE;
    s_stop_timer(self, &self->heartbeat_timer);
    s_stop_timer(self, &self->held_timer);
    zsock_send(self->pipe, "ss", "DONE", reason);
}

static int s_send_hello(s_self_t *self)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_HELLO);
    if (!msg)
        return -1;
    hafl_hello_t *h = &msg->u.hello;
    h->client_index = self->index;
    snprintf(h->name, sizeof h->name, "%s", self->name);
    h->rank_budget = self->rank_budget;
    h->n_samples = self->n_samples;
    memcpy(h->base_digest, self->digest, 32);
    h->rejoin = self->rejoining;
    h->session = self->session;
    int rc = hafl_wire_send(self->dealer, NULL, msg, NULL, NULL);
    hafl_msg_destroy(&msg);
    return rc;
}

static int s_connect(s_self_t *self)
{
    self->dealer = zsock_new(ZMQ_DEALER);
    if (!self->dealer)
        return -1;
    hafl_wire_limit(self->dealer, self->args->max_msg_bytes);
    //  A server that is gone (its host killed, the link down) must not hold the client in a
    //  send forever: after S_SEND_TIMEOUT_MS the message is given up (the server counts the
    //  client as missing, as for any lost upload) and the actor stays responsive to $TERM.
    zsock_set_sndtimeo(self->dealer, S_SEND_TIMEOUT_MS);
    zsock_set_linger(self->dealer, 0);
    //  A client has at most one upload and a few heartbeats in flight; a longer queue toward a
    //  server that does not read (killed, partitioned) only holds memory (each upload may be
    //  megabytes) and delays the moment the client notices.
    zsock_set_sndhwm(self->dealer, S_SEND_HWM);
    char why[256];
    if (hafl_security_connect(self->args->security, self->dealer, self->args->server, &self->watch,
                              why, sizeof why)) {
        s_log(self, -1, "connect-failed", "reason", why);
        zsock_destroy(&self->dealer);
        return -1;
    }
    self->lost = 0;
    zloop_reader(self->loop, self->dealer, s_on_dealer, self);
    if (self->watch)
        zloop_reader(self->loop, self->watch, s_on_watch, self);
    self->phase = S_JOINING;
    return s_send_hello(self);
}

static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    if (!self->dealer || self->phase == S_JOINING)
        return 0;
    //  A heartbeat that cannot be queued at once is worth nothing later: it never waits, so a
    //  dead server costs the client no time (only uploads wait, up to S_SEND_TIMEOUT_MS).
    zsock_set_sndtimeo(self->dealer, 0);
    int rc = hafl_wire_send_heartbeat(self->dealer, NULL, self->index, ++self->heartbeat_seq, NULL);
    zsock_set_sndtimeo(self->dealer, S_SEND_TIMEOUT_MS);
    if (rc != 0) {
        //  The queue toward the server is full: said once per outage.
        if (!self->send_stalled) {
            fprintf(stderr,
                    "%s: the server is not reading (%d messages queued toward it): heartbeats "
                    "are dropped until it reads again\n",
                    self->name, S_SEND_HWM);
            s_log(self, -1, "send-failed", "reason", "server not reading");
        }
        self->send_stalled = true;
    } else
        self->send_stalled = false;
    return 0;
}

static void s_send_update(s_self_t *self, hafl_msg_t **msg_p)
{
    hafl_msg_error_t err;
    if (self->dealer && hafl_wire_send(self->dealer, NULL, *msg_p, NULL, &err)) {
        //  On stderr too: the logger may be on the server's host, out of reach as well.
        fprintf(stderr, "%s: the upload of round %u was not sent: %s\n", self->name,
                (*msg_p)->u.update.round, err.text);
        s_log(self, (int32_t)(*msg_p)->u.update.round, "send-failed", "reason", err.text);
    }
    hafl_msg_destroy(msg_p);
}

static int s_on_held(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    self->held_timer = -1;
    if (self->held)
        s_send_update(self, &self->held);
    if (self->phase == S_HOLDING)
        self->phase = S_IDLE;
    return 0;
}

static int s_on_rejoin(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    hafl_security_unwatch(self->dead_dealer, &self->dead_watch);
    zsock_destroy(&self->dead_dealer);
    if (self->phase == S_CRASHED && s_connect(self))
        s_done(self, "cannot reconnect after crash");
    return 0;
}

//  Drop every piece of local state, as a crashed process would, and rejoin shortly.
static void s_crash(s_self_t *self, uint32_t round)
{
    s_log(self, (int32_t)round, "crash", "state", "dropped");
    hafl_trainer_destroy(&self->trainer);
    hafl_adapter_destroy(&self->received);
    hafl_msg_destroy(&self->held);
    s_stop_timer(self, &self->held_timer);
    s_stop_timer(self, &self->heartbeat_timer);
    if (self->dealer) {
        zloop_reader_end(self->loop, self->dealer);
        hafl_security_unwatch(self->dead_dealer, &self->dead_watch);
        zsock_destroy(&self->dead_dealer);
        self->dead_dealer = self->dealer;
        self->dealer = NULL;
        if (self->watch)
            zloop_reader_end(self->loop, self->watch);
        self->dead_watch = self->watch;
        self->watch = NULL;
    }
    self->phase = S_CRASHED;
    self->rejoining = true;
    s_save_state_or_log(self, round);
    zloop_timer(self->loop, 1, 1, s_on_rejoin, self);
}

static int s_install(s_self_t *self, const hafl_round_t *r, char *err, size_t errlen)
{
    //  The roles' shape and values and the components' shapes were checked on receipt
    //  (hafl_wire_recv against the task's layout).
    const hafl_layout_t *L = hafl_task_layout(self->task);
    size_t slots = (size_t)L->n_matrices * L->rank;
    if (!self->received && !(self->received = hafl_adapter_new(L))) {
        snprintf(err, errlen, "client: out of memory");
        return -1;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        memset(self->received->bt[m], 0, (size_t)L->rank * L->matrices[m].d_out * sizeof(float));
        memset(self->received->a[m], 0, (size_t)L->rank * L->matrices[m].d_in * sizeof(float));
    }
    memset(self->received->score, 0, slots * sizeof(float));
    uint8_t *present = calloc(slots + 1, 1);
    if (!present) {
        snprintf(err, errlen, "client: out of memory");
        return -1;
    }
    int rc = hafl_wire_take_components(self->received, r->components, r->n_components, present);
    for (size_t s = 0; rc == 0 && s < slots; s++)
        if ((r->roles[s] != HAFL_ROLE_ABSENT) != (present[s] != 0)) {
            snprintf(err, errlen, "round.components: component %zu is %s but its role is %u", s,
                     present[s] ? "sent" : "missing", r->roles[s]);
            rc = -1;
        }
    free(present);
    if (rc == 0)
        rc = hafl_wire_take_merged(self->received, r->merged, r->n_merged, r->reset_merged,
                                   "round.merged", err, errlen);
    if (rc == 0)
        rc = hafl_wire_take_head(self->received, &r->head, "round", err, errlen);
    if (rc == 0)
        memcpy(self->roles, r->roles, slots);
    return rc;
}

//  Start training a round (takes the message).
static void s_start_round(s_self_t *self, hafl_msg_t **msg_p)
{
    hafl_msg_t *msg = *msg_p;
    *msg_p = NULL;
    const hafl_round_t *r = &msg->u.round;
    if (self->resume_pending) {
        //  No checkpoint round was known at start: the state to resume is the one after the
        //  round before the first ROUND (see header).
        char err[512];
        self->resume_pending = false;
        if (s_restore_state(self, r->round - 1, err, sizeof err)) {
            s_log(self, (int32_t)r->round, "resume-failed", "reason", err);
            fprintf(stderr, "%s: %s\n", self->name, err);
            hafl_msg_destroy(&msg);
            s_done(self, err);
            return;
        }
    }
    if (self->held) {
        //  An older round's upload is still held back: it is late now; let the server log it.
        s_stop_timer(self, &self->held_timer);
        s_send_update(self, &self->held);
    }
    self->last_round = r->round;
    if (hafl_faults_crash(self->topology, r->round, self->index)) {
        uint32_t round = r->round;
        hafl_msg_destroy(&msg);
        s_crash(self, round);
        return;
    }
    char err[256] = "";
    if (!self->trainer) {
        self->trainer = hafl_trainer_new(self->task, self->index, err, sizeof err);
        if (!self->trainer) {
            s_log(self, (int32_t)r->round, "trainer-failed", "reason", err);
            hafl_msg_destroy(&msg);
            self->phase = S_IDLE;
            return;
        }
    }
    if (s_install(self, r, err, sizeof err)) {
        s_log(self, (int32_t)r->round, "bad-round", "reason", err);
        hafl_msg_destroy(&msg);
        self->phase = S_IDLE;
        return;
    }
    memset(&self->job, 0, sizeof self->job);
    self->job.trainer = self->trainer;
    self->job.received = self->received;
    self->job.roles = self->roles;
    self->job.opts.local_epochs = r->local_epochs;
    self->job.opts.local_steps = r->local_steps;
    self->job.opts.batch = r->batch;
    self->job.opts.lr = r->lr;
    self->job.opts.weight_decay = self->topology->clients.weight_decay;
    self->job.opts.seed = r->seed;
    self->job.opts.fresh_optimizer = r->fresh_optimizer;
    self->job_round = r->round;
    self->job_straggle_ms = r->straggle_ms;
    hafl_msg_destroy(&msg);
    self->job_out = true;
    if (hafl_pool_submit(self->pool, &self->job)) {
        self->job_out = false;
        s_log(self, (int32_t)self->job_round, "pool-failed", "reason", "cannot submit");
        self->phase = S_IDLE;
        return;
    }
    self->phase = S_TRAINING;
}

static hafl_msg_t *s_build_update(s_self_t *self)
{
    const hafl_adapter_t *local = hafl_trainer_adapter(self->trainer);
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_UPDATE);
    if (!msg)
        return NULL;
    hafl_update_t *u = &msg->u.update;
    u->round = self->job_round;
    u->client_index = self->index;
    u->n_samples = self->n_samples;
    u->train_loss = self->job.stats.loss;
    u->steps = self->job.stats.steps;
    u->wall_ms = self->job.wall_ms;
    u->components =
        hafl_wire_export_components(local, self->roles, HAFL_ROLE_TRAINABLE, &u->n_components);
    bool ok = u->components || u->n_components == 0;
    if (!ok)
        u->n_components = 0;
    if (!ok || hafl_wire_export_head(local, &u->head))
        hafl_msg_destroy(&msg);
    //  faults/byzantine: a byzantine client corrupts what it trained, against what it was
    //  given, before it leaves (hafl_faults.h); honest clients pass through untouched.
    if (msg && hafl_faults_byzantine_apply(self->topology, self->job_round, self->index,
                                           self->received, u))
        hafl_msg_destroy(&msg);
    return msg;
}

static int s_on_pool(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    hafl_pool_job_t *job = hafl_pool_collect(sock);
    if (job != &self->job)
        return 0;
    self->job_out = false;
    //  The training changed the state whatever comes next (an upload, an abandoned or failed
    //  round, the end of the run): save it before anything leaves.
    s_save_state_or_log(self, self->job_round);
    if (self->phase != S_TRAINING)
        return 0; //  the run ended while it trained
    self->phase = S_IDLE;
    if (self->pending_round) {
        s_log(self, (int32_t)self->job_round, "abandoned", "reason", "a newer round arrived");
        s_start_round(self, &self->pending_round);
        return 0;
    }
    if (job->rc) {
        s_log(self, (int32_t)self->job_round, "train-failed", "reason", job->err);
        return 0;
    }
    hafl_msg_t *update = s_build_update(self);
    if (!update) {
        s_log(self, (int32_t)self->job_round, "upload-failed", "reason", "out of memory");
        return 0;
    }
    //  The server logs the outcome (client-round events); a straggler says it is holding.
    if (self->job_straggle_ms > 0 && self->events) {
        hafl_log_event_t *ev =
            hafl_events_start(self->events, (int32_t)self->job_round, "straggle");
        if (ev) {
            hafl_log_event_add_int(ev, "delay_ms", self->job_straggle_ms);
            hafl_events_send(self->events, &ev);
        }
    }
    if (self->job_straggle_ms > 0) {
        self->held = update;
        self->phase = S_HOLDING;
        self->held_timer = zloop_timer(loop, self->job_straggle_ms, 1, s_on_held, self);
    } else
        s_send_update(self, &update);
    return 0;
}

static void s_on_welcome(s_self_t *self, const hafl_welcome_t *w)
{
    char err[256];
    if (!hafl_wire_layout_matches(w, hafl_task_layout(self->task), err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", self->name, err);
        s_done(self, err);
        return;
    }
    snprintf(self->run_id, sizeof self->run_id, "%s", w->run_id);
    self->session = w->session;
    if (!self->events && self->args->log_endpoint)
        self->events = hafl_events_new(self->args->log_endpoint, self->run_id, self->name,
                                       self->args->log_auth);
    self->heartbeat_ms = w->heartbeat_ms;
    s_stop_timer(self, &self->heartbeat_timer);
    if (w->heartbeat_ms > 0)
        self->heartbeat_timer = zloop_timer(self->loop, w->heartbeat_ms, 0, s_on_heartbeat, self);
    self->phase = S_IDLE;
    s_log(self, -1, self->rejoining ? "rejoined" : "joined", "run", self->run_id);
    self->rejoining = false;
}

static int s_on_dealer(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    char reason[300];
    hafl_msg_t *msg = hafl_wire_recv_dealer(sock, hafl_task_layout(self->task), reason, sizeof reason);
    if (!msg) {
        if (reason[0]) {
            self->malformed++;
            s_log(self, -1, "malformed", "reason", reason);
        }
        return 0;
    }
    if (self->phase == S_DONE) {
        hafl_msg_destroy(&msg);
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
    case HAFL_MSG_ROUND:
        //  Not ours to train: before welcome, while crashed, an older round, or the round we
        //  are training now. The round we trained last comes again when nobody's upload
        //  reached the server (hafl_server.h: a failed round is attempted again); train it.
        if (self->phase == S_JOINING || self->phase == S_CRASHED ||
            msg->u.round.round < self->last_round ||
            (msg->u.round.round == self->last_round && (self->job_out || self->last_round == 0)))
            break;
        if (self->job_out) {
            hafl_msg_destroy(&self->pending_round);
            self->pending_round = msg;
            msg = NULL;
        } else
            s_start_round(self, &msg);
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

//  The server refused the handshake (hafl_security_refused): nothing this client sends will
//  ever reach it, so it says why and ends rather than wait forever. Events can leave before
//  WELCOME (the run id is the node's, when it has one); with CURVE the logger admits them only
//  from a key in the allow-list, so a refused client's events are refused too (and the logger
//  records that), and its stderr carries the reason.
static int s_on_watch(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    char why[400], reason[440];
    if (hafl_security_refused(self->args->security, sock, &self->lost, why, sizeof why) != 1 ||
        self->phase == S_DONE)
        return 0;
    if (!self->events && self->args->log_endpoint)
        self->events = hafl_events_new(self->args->log_endpoint, self->run_id, self->name,
                                       self->args->log_auth);
    s_log(self, -1, "handshake-refused", "reason", why);
    //  Stop retrying (an unreadable server is retried every reconnect interval).
    zloop_reader_end(loop, sock);
    if (self->dealer) {
        zloop_reader_end(loop, self->dealer);
        zsock_disconnect(self->dealer, "%s", self->args->server);
    }
    snprintf(reason, sizeof reason, "client %u: %s", self->index, why);
    s_done(self, reason);
    return 0;
}

void hafl_client_actor(zsock_t *pipe, void *args_)
{
    hafl_client_args_t *args = (hafl_client_args_t *)args_;
    s_self_t self_ = {0}, *self = &self_;
    self->pipe = pipe;
    self->args = args;
    self->task = args->task;
    self->topology = args->topology;
    self->index = args->index;
    self->held_timer = self->heartbeat_timer = -1;
    snprintf(self->name, sizeof self->name, "client-%u", args->index);
    snprintf(self->run_id, sizeof self->run_id, "%s", args->run_id ? args->run_id : "");
    const hafl_layout_t *L = hafl_task_layout(args->task);
    bool ok = args->index < args->topology->clients.count;
    if (ok) {
        self->rank_budget = args->topology->clients.ranks[args->index];
        self->n_samples = hafl_task_client_samples(args->task, args->index);
        if (args->digest)
            memcpy(self->digest, args->digest, 32);
        else
            hafl_task_base_digest(args->task, self->digest);
        self->roles = calloc((size_t)L->n_matrices * L->rank + 1, 1);
        self->loop = zloop_new();
        self->pool = zsock_new(ZMQ_DEALER);
        ok = self->roles && self->loop && self->pool &&
             zsock_connect(self->pool, "%s", args->pool) == 0;
        if (!ok)
            snprintf(args->err, sizeof args->err,
                     "client %u: cannot set up (memory or pool %.160s)", args->index, args->pool);
    } else
        snprintf(args->err, sizeof args->err, "client index %u is not below clients/count %u",
                 args->index, args->topology->clients.count);
    if (ok && args->state_dir && args->state_dir[0] && args->topology->server.checkpoint_every)
        self->state_dir = args->state_dir;
    if (ok && args->resume_dir && args->resume_round == 0)
        self->resume_pending = true;
    else if (ok && args->resume_dir)
        ok = s_restore_state(self, args->resume_round, args->err, sizeof args->err) == 0;
    else if (ok)
        ok = s_save_state(self, 0, args->err, sizeof args->err) == 0;
    if (ok) {
        zloop_set_nonstop(self->loop, true);
        zloop_reader(self->loop, pipe, hafl_wire_pipe_term, self);
        zloop_reader(self->loop, self->pool, s_on_pool, self);
        ok = s_connect(self) == 0;
        if (!ok)
            snprintf(args->err, sizeof args->err, "client %u: cannot connect to %.160s",
                     args->index, args->server);
    }
    args->status = ok ? 0 : -1;
    zsock_signal(pipe, ok ? 0 : 1);
    if (ok)
        zloop_start(self->loop);
    //  A job still at the pool owns the trainer: wait for it before freeing anything.
    bool leak = false;
    //  Signals do not cut this wait short (a second Ctrl-C arrives here): the job and the
    //  trainer are freed only once the pool has handed them back.
    if (self->job_out) {
        zpoller_t *poller = zpoller_new(self->pool, NULL);
        if (poller)
            zpoller_set_nonstop(poller, true);
        int64_t until = zclock_mono() + 600000;
        leak = true;
        while (poller && leak && zclock_mono() < until) {
            void *which = zpoller_wait(poller, 1000);
            if (which == self->pool)
                leak = hafl_pool_collect(self->pool) != &self->job;
            else if (zpoller_terminated(poller))
                break;
        }
        zpoller_destroy(&poller);
    }
    zloop_destroy(&self->loop);
    hafl_msg_destroy(&self->pending_round);
    hafl_msg_destroy(&self->held);
    hafl_events_destroy(&self->events);
    hafl_security_unwatch(self->dealer, &self->watch);
    hafl_security_unwatch(self->dead_dealer, &self->dead_watch);
    zsock_destroy(&self->dealer);
    zsock_destroy(&self->dead_dealer);
    zsock_destroy(&self->pool);
    if (!leak) {
        hafl_trainer_destroy(&self->trainer);
        hafl_adapter_destroy(&self->received);
        free(self->roles);
    }
}

zactor_t *hafl_client_new(hafl_client_args_t *args)
{
    args->status = -1;
    args->err[0] = 0;
    zactor_t *actor = zactor_new(hafl_client_actor, args);
    if (actor && args->status != 0)
        zactor_destroy(&actor);
    return actor;
}
