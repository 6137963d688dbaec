/*  hafl_server: rounds, joins, deadlines, accounting and control. See hafl_server.h.

    Phases: JOIN (waiting for clients and evaluator) -> VIEWS (aggregator computes client views)
    -> COLLECT (ROUNDs out, UPDATEs in) -> AGGREGATE -> SWAP (only when one is pending) -> EVAL
    -> next round's VIEWS, or DONE. While the aggregator holds the global adapter (VIEWS,
    AGGREGATE) nothing else touches it; a STOP arriving then takes effect on the reply.
*/
#include "hafl_server.h"
#include "hafl_aggregator.h"
#include "hafl_evaluator.h"
#include "hafl_faults.h"
#include "hafl_logger.h"
#include "hafl_rng.h"
#include "hafl_scheme.h"
#include "hafl_server_checkpoint.h"
#include "hafl_server_state.h"
#include "hafl_strategy.h"
#include "hafl_traffic.h"
#include "hafl_wire.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef enum { P_JOIN, P_VIEWS, P_COLLECT, P_AGGREGATE, P_SWAP, P_EVAL, P_DONE } s_phase_t;

//  A client's standing in the current round.
typedef enum {
    C_IDLE = 0, //  not a participant
    C_DROPPED,  //  participant dropped by the fault model (no ROUND sent)
    C_SENT,     //  ROUND sent, waiting for its UPDATE
    C_REPORTED, //  UPDATE received in time
    C_CRASHED,  //  rejoined while its round was open
    C_DEAD,     //  missed heartbeats while its round was open
    C_MISSED,   //  no UPDATE by the time the round closed
} s_cstate_t;

static const char *s_cstate_name[] = {"idle",    "dropped", "sent",  "reported",
                                      "crashed", "dead",    "missed"};

typedef struct {
    uint32_t index;
    bool joined; //  has an identity that has not died
    zframe_t *identity;
    char key[48]; //  identity hex, the peers table key
    uint8_t session[HAFL_SESSION_BYTES]; //  the secret its WELCOME carried (a rejoin shows it)
    uint32_t rank_budget;
    uint64_t n_samples;
    int64_t last_seen;   //  zclock_mono ms of its last message
    uint32_t down_until; //  not selected in rounds <= this (after a crash)
    bool merged_known;   //  whether merged_epoch/merged_counts describe its copy
    uint64_t merged_epoch;
    uint32_t *merged_counts; //  [n_matrices]
    hafl_traffic_t up, down; //  this round
    bool ctl_drop;           //  one-shot runtime faults from `hafl ctl`
    uint32_t ctl_straggle_ms;
    s_cstate_t state;
    uint32_t straggle_ms;
    uint8_t *roles;         //  [n_matrices * R] this round
    hafl_adapter_t *upload; //  its reported factors/scores/head this round
    uint8_t *trained;       //  [n_matrices * R]
    float train_loss;
    uint32_t steps;    //  optimiser steps it reported
    uint32_t train_ms; //  its training wall time
    uint32_t after_ms; //  when its upload arrived, from the round's start
} s_client_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *router;
    zsock_t *watch;    //  router's handshakes and connections (hafl_security_watch), or NULL
    zhash_t *conns;    //  "fd" -> peer address of router's open connections (for the log)
    zsock_t *control;
    zactor_t *aggregator;
    zloop_t *loop;
    hafl_events_t *events;
    hafl_server_args_t *args;
    const hafl_topology_t *topo;
    const hafl_task_t *task;
    hafl_layout_t layout;
    size_t slots; //  n_matrices * R
    uint8_t digest[32];
    hafl_scheme_t scheme;
    char strategy[64];     //  name of the aggregator's current strategy
    char pending_swap[64]; //  "" when none
    hafl_adapter_t *global;
    hafl_adapter_t *backup; //  global before the round's aggregation
    s_client_t *clients;    //  [count]
    uint32_t count;
    zhash_t *peers;      //  identity hex -> s_client_t *, or &evaluator marker
    zframe_t *evaluator; //  evaluator identity once joined
    uint8_t evaluator_session[HAFL_SESSION_BYTES];
    int64_t evaluator_seen;
    s_phase_t phase;
    uint32_t round;       //  current (or last) round, 1-based; 0 before the first
    uint32_t first_round; //  1, or the resumed round + 1
    uint32_t checkpointed; //  the round of the newest checkpoint generation, 0: none yet
    uint32_t failed_attempts; //  consecutive attempts at this round that nobody reported in
    bool quorum_lost;     //  waiting, between rounds, for the clients a round needs
    int64_t join_started; //  when the current join phase began (the start, or quorum-lost)
    uint64_t max_samples; //  the n_samples cap of a HELLO (server/max_samples or derived)
    char unreproducible[256]; //  why timing, not the topology and seed, chose who took part
    uint32_t participants;
    uint32_t reported;
    uint32_t late; //  late uploads this round
    bool extended; //  the deadline was extended once for the quorum
    int deadline_timer;
    int join_timer;       //  every deadline_ms while joining: join-wait, or start with enough
    int join_limit_timer; //  once, at server/join_timeout_ms: start with enough, or give up
    bool join_grace_over; //  deadline_ms (or the join timeout) has passed since the start
    int eval_timer;
    int64_t round_start;
    //  Evaluation of this round.
    uint32_t evals_expected;
    uint32_t evals_got;
    float accuracy, loss;
    double start_accuracy_sum;
    uint32_t start_accuracy_n;
    //  Jobs handed to the aggregator.
    hafl_aggregate_job_t agg_job;
    hafl_upload_t *uploads;
    hafl_views_job_t views_job;
    uint32_t *view_clients, *view_ranks;
    hafl_adapter_t **views;
    //  Totals.
    hafl_traffic_t total_up, total_down;
    uint64_t malformed, unexpected, late_total;
    bool stop_requested;
    const char *stop_reason; //  who asked: a control command, or the node (a signal)
    char stop_text[64];      //  "stopped by SIGINT": the reason when a signal asked
    char resume_note[700];   //  a newer checkpoint generation was refused (s_resume), or ""
    FILE *csv;
    int64_t started;
} s_self_t;

static int s_evaluator_marker; //  address used as the peers-table value of the evaluator

//  The first reason the run's result depends on timing rather than on its topology and seed
//  alone; the final event and `hafl run`'s digest line say so.
static void s_unreproducible(s_self_t *self, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void s_unreproducible(s_self_t *self, const char *format, ...)
{
    if (self->unreproducible[0])
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(self->unreproducible, sizeof self->unreproducible, format, args);
    va_end(args);
}

static int64_t s_ms_since(int64_t since)
{
    return zclock_mono() - since;
}

static hafl_log_event_t *s_event(s_self_t *self, int32_t round, const char *name)
{
    return self->events ? hafl_events_start(self->events, round, name) : NULL;
}

static void s_send_event(s_self_t *self, hafl_log_event_t **ev)
{
    if (*ev)
        hafl_events_send(self->events, ev);
}

static void s_log_text(s_self_t *self, int32_t round, const char *name, const char *key,
                       const char *value)
{
    hafl_log_event_t *ev = s_event(self, round, name);
    if (ev) {
        hafl_log_event_add_string(ev, key, value);
        s_send_event(self, &ev);
    }
}

static void s_stop_timer(s_self_t *self, int *timer)
{
    if (*timer >= 0)
        zloop_timer_end(self->loop, *timer);
    *timer = -1;
}

//  ---------------------------------------------------------------------------------------
//  Sending

static int s_send_to(s_self_t *self, zframe_t *identity, hafl_msg_t *msg, hafl_traffic_t *traffic)
{
    hafl_msg_error_t err;
    int rc = hafl_wire_send(self->router, identity, msg, traffic, &err);
    if (rc && err.code)
        s_log_text(self, (int32_t)self->round, "encode-failed", "reason", err.text);
    return rc;
}

static void s_send_reject(s_self_t *self, zframe_t *identity, uint32_t reason, const char *text)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_REJECT);
    if (msg) {
        msg->u.reject.reason = reason;
        snprintf(msg->u.reject.text, sizeof msg->u.reject.text, "%s", text);
        s_send_to(self, identity, msg, NULL);
        hafl_msg_destroy(&msg);
    }
}

//  Refuse a peer, and log it with its reason.
static void s_reject(s_self_t *self, zframe_t *identity, uint32_t reason, const char *text,
                     const char *peer_name)
{
    s_send_reject(self, identity, reason, text);
    char peer[48];
    hafl_wire_peer(identity, peer, sizeof peer);
    hafl_log_event_t *ev = s_event(self, -1, "reject");
    if (ev) {
        hafl_log_event_add_string(ev, "peer", peer);
        hafl_log_event_add_string(ev, "name", peer_name);
        hafl_log_event_add_int(ev, "reason_code", reason);
        hafl_log_event_add_string(ev, "reason", text);
        s_send_event(self, &ev);
    }
}

//  Admit a peer to `index` with a fresh session secret, kept in `session` (the client's or the
//  evaluator's): a later HELLO for the same index from another connection must present it
//  while this peer is alive (s_takeover).
static void s_welcome(s_self_t *self, zframe_t *identity, uint32_t index, uint8_t *session,
                      hafl_traffic_t *traffic)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_WELCOME);
    if (!msg)
        return;
    hafl_welcome_t *w = &msg->u.welcome;
    randombytes_buf(session, HAFL_SESSION_BYTES);
    w->session.present = true;
    memcpy(w->session.bytes, session, HAFL_SESSION_BYTES);
    w->client_index = index;
    snprintf(w->run_id, sizeof w->run_id, "%s", self->args->run_id);
    w->heartbeat_ms = self->topo->server.heartbeat_ms;
    w->rank = self->layout.rank;
    w->scale = self->layout.scale;
    w->head_rows = self->layout.head_rows;
    w->head_cols = self->layout.head_cols;
    w->n_matrices = self->layout.n_matrices;
    w->matrices = calloc(self->layout.n_matrices + 1, sizeof *w->matrices);
    if (w->matrices) {
        for (uint32_t m = 0; m < self->layout.n_matrices; m++) {
            snprintf(w->matrices[m].name, sizeof w->matrices[m].name, "%s",
                     self->layout.matrices[m].name);
            w->matrices[m].d_out = self->layout.matrices[m].d_out;
            w->matrices[m].d_in = self->layout.matrices[m].d_in;
        }
        s_send_to(self, identity, msg, traffic);
    }
    hafl_msg_destroy(&msg);
}

//  ---------------------------------------------------------------------------------------
//  Files

//  Checkpoint of this round: a new generation (hafl_server_checkpoint.h) of the global adapter
//  and the rest of the server's cross-round state (hafl_server_state.h). 0, or -1 when it could
//  not be written (reason in err): the run then stops, keeping the last good generation,
//  rather than run on with work it could not save.
static int s_checkpoint(s_self_t *self, char *err, size_t errlen)
{
    uint32_t every = self->topo->server.checkpoint_every;
    if (every == 0 || self->round % every != 0)
        return 0;
    hafl_server_state_t *state = hafl_server_state_new(self->count);
    if (!state || !(state->settings = hafl_server_checkpoint_settings(self->topo, self->digest))) {
        snprintf(err, errlen, "out of memory writing the checkpoint of round %u", self->round);
        hafl_server_state_destroy(&state);
        return -1;
    }
    state->round = self->round;
    snprintf(state->strategy, sizeof state->strategy, "%s", self->strategy);
    snprintf(state->pending_swap, sizeof state->pending_swap, "%s", self->pending_swap);
    hafl_adapter_digest(self->global, state->adapter);
    state->up = self->total_up;
    state->down = self->total_down;
    state->malformed = self->malformed;
    state->unexpected = self->unexpected;
    state->late = self->late_total;
    for (uint32_t i = 0; i < self->count; i++) {
        state->clients[i].down_until = self->clients[i].down_until;
        state->clients[i].ctl_drop = self->clients[i].ctl_drop;
        state->clients[i].ctl_straggle_ms = self->clients[i].ctl_straggle_ms;
    }
    int rc = hafl_server_checkpoint_save(self->args->run_dir, self->global, state, err, errlen);
    hafl_server_state_destroy(&state);
    if (rc == 0)
        self->checkpointed = self->round;
    return rc;
}

//  The checkpoint's adapter layout against ours; reason in mismatch when they differ.
static bool s_same_layout(const s_self_t *self, const hafl_adapter_t *loaded, char *mismatch,
                          size_t mismatchlen)
{
    hafl_welcome_t w = {0};
    w.rank = loaded->layout.rank;
    w.scale = loaded->layout.scale;
    w.head_rows = loaded->layout.head_rows;
    w.head_cols = loaded->layout.head_cols;
    w.n_matrices = loaded->layout.n_matrices;
    struct hafl_msg_matrix *mats = calloc(w.n_matrices + 1, sizeof *mats);
    for (uint32_t m = 0; mats && m < w.n_matrices; m++) {
        snprintf(mats[m].name, sizeof mats[m].name, "%s", loaded->layout.matrices[m].name);
        mats[m].d_out = loaded->layout.matrices[m].d_out;
        mats[m].d_in = loaded->layout.matrices[m].d_in;
    }
    w.matrices = mats;
    snprintf(mismatch, mismatchlen, "out of memory");
    bool same = mats && hafl_wire_layout_matches(&w, &self->layout, mismatch, mismatchlen);
    free(mats);
    return same;
}

//  Resume: the newest intact checkpoint generation of a previous run folder, checked against
//  this federation's settings (hafl_server_checkpoint.h), taken over as our state.
static int s_resume(s_self_t *self, const char *dir, char *err, size_t errlen)
{
    hafl_adapter_t *loaded = NULL;
    char note[700], why[600];
    hafl_server_state_t *state =
        hafl_server_checkpoint_load(dir, &loaded, note, sizeof note, err, errlen);
    if (!state)
        return -1;
    char mismatch[256];
    int rc = -1;
    if (state->n_clients != self->count)
        snprintf(err, errlen, "%.200s: the checkpoint has %u clients, the topology clients/count %u",
                 dir, state->n_clients, self->count);
    else if (hafl_server_checkpoint_compare(state, self->topo, self->digest, why, sizeof why))
        snprintf(err, errlen, "%.200s: %.600s", dir, why);
    else if (!s_same_layout(self, loaded, mismatch, sizeof mismatch) ||
             hafl_adapter_copy_from(self->global, loaded))
        snprintf(err, errlen, "%.100s: the checkpoint's layout differs: %.120s", dir, mismatch);
    else
        rc = 0;
    hafl_adapter_destroy(&loaded);
    if (rc == 0) {
        //  Logged once the events emitter exists (s_setup), which is after this.
        snprintf(self->resume_note, sizeof self->resume_note, "%s", note);
        self->first_round = state->round + 1;
        self->round = state->round;
        self->checkpointed = state->round;
        snprintf(self->strategy, sizeof self->strategy, "%s", state->strategy);
        snprintf(self->pending_swap, sizeof self->pending_swap, "%s", state->pending_swap);
        self->total_up = state->up;
        self->total_down = state->down;
        self->malformed = state->malformed;
        self->unexpected = state->unexpected;
        self->late_total = state->late;
        for (uint32_t i = 0; i < self->count; i++) {
            self->clients[i].down_until = state->clients[i].down_until;
            self->clients[i].ctl_drop = state->clients[i].ctl_drop;
            self->clients[i].ctl_straggle_ms = state->clients[i].ctl_straggle_ms;
        }
    }
    hafl_server_state_destroy(&state);
    return rc;
}

static void s_csv_header(s_self_t *self)
{
    fprintf(self->csv, "round,accuracy,loss,train_loss,start_accuracy,participants,reported,"
                       "stragglers,late,dropped,crashed,dead,up_components,up_head,up_scores,"
                       "up_control,down_components,down_head,down_scores,down_control,up_bytes,"
                       "down_bytes,up_floats,down_floats,cum_up_bytes,cum_down_bytes,wall_ms,"
                       "strategy\n");
    fflush(self->csv);
}

//  ---------------------------------------------------------------------------------------
//  End of the run

//  The run is over: save the final adapter, log the final event, tell every peer, report DONE
//  on the pipe. ok false: the run failed (e.g. the join timeout); the adapter is still saved,
//  so the run folder is complete either way.
static void s_finish(s_self_t *self, bool ok, const char *reason)
{
    if (self->phase == P_DONE)
        return;
    self->phase = P_DONE;
    s_stop_timer(self, &self->deadline_timer);
    s_stop_timer(self, &self->join_timer);
    s_stop_timer(self, &self->join_limit_timer);
    s_stop_timer(self, &self->eval_timer);
    char path[4096], err[256] = "", hex[65];
    snprintf(path, sizeof path, "%s/final_adapter.bin", self->args->run_dir);
    int rc = hafl_adapter_save(self->global, path, err, sizeof err);
    hafl_adapter_digest_hex(self->global, hex);
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, rc ? "final-failed" : "final");
    if (ev) {
        hafl_log_event_add_string(ev, "sha256", hex);
        hafl_log_event_add_string(ev, "reason", rc ? err : reason);
        hafl_log_event_add_bool(ev, "ok", rc == 0 && ok);
        hafl_log_event_add_bool(ev, "reproducible", !self->unreproducible[0]);
        if (self->unreproducible[0])
            hafl_log_event_add_string(ev, "unreproducible", self->unreproducible);
        hafl_log_event_add_string(ev, "path", path);
        hafl_log_event_add_int(ev, "rounds", self->round);
        hafl_log_event_add_int(ev, "bytes_up", (int64_t)hafl_traffic_total(&self->total_up));
        hafl_log_event_add_int(ev, "bytes_down", (int64_t)hafl_traffic_total(&self->total_down));
        hafl_log_event_add_int(ev, "malformed", (int64_t)self->malformed);
        hafl_log_event_add_int(ev, "late", (int64_t)self->late_total);
        hafl_log_event_add_int(ev, "wall_ms", s_ms_since(self->started));
        s_send_event(self, &ev);
    }
    //  Tell every peer the federation is over, so node processes can end.
    for (uint32_t i = 0; i < self->count; i++)
        if (self->clients[i].identity)
            s_send_reject(self, self->clients[i].identity, HAFL_REJECT_FULL, "federation ended");
    if (self->evaluator)
        s_send_reject(self, self->evaluator, HAFL_REJECT_FULL, "federation ended");
    zsock_send(self->pipe, "sssss", "DONE", rc || !ok ? "1" : "0", hex, rc ? err : reason,
               self->unreproducible);
}

//  ---------------------------------------------------------------------------------------
//  Rounds

static void s_begin_round(s_self_t *self);
static void s_next_round(s_self_t *self);

//  A stop (control command or signal) ends the run at once, as failed unless every round was
//  done: the reason says who stopped it and after which round, so a partial adapter is never
//  taken for a finished run's.
static void s_stop_now(s_self_t *self)
{
    uint32_t rounds = self->topo->server.rounds;
    char reason[256];
    snprintf(reason, sizeof reason, "%s after round %u of %u%s", self->stop_reason, self->round,
             rounds, self->round >= rounds ? " (every round done)" : "");
    s_finish(self, self->round >= rounds, reason);
}
static uint32_t s_joined(s_self_t *self);
static uint32_t s_needed(s_self_t *self);

static void s_progress(s_self_t *self, uint64_t up, uint64_t down, int64_t wall)
{
    char round[16], rounds[16], acc[32], loss[32], ups[32], downs[32], walls[32], rep[16], part[16];
    snprintf(round, sizeof round, "%u", self->round);
    snprintf(rounds, sizeof rounds, "%u", self->topo->server.rounds);
    snprintf(acc, sizeof acc, "%.6f", (double)self->accuracy);
    snprintf(loss, sizeof loss, "%.6f", (double)self->loss);
    snprintf(ups, sizeof ups, "%" PRIu64, up);
    snprintf(downs, sizeof downs, "%" PRIu64, down);
    snprintf(walls, sizeof walls, "%" PRId64, wall);
    snprintf(rep, sizeof rep, "%u", self->reported);
    snprintf(part, sizeof part, "%u", self->participants);
    //  Cumulative totals too: after a resume they include the rounds before the checkpoint.
    char cum_up[32], cum_down[32];
    snprintf(cum_up, sizeof cum_up, "%" PRIu64, hafl_traffic_total(&self->total_up));
    snprintf(cum_down, sizeof cum_down, "%" PRIu64, hafl_traffic_total(&self->total_down));
    zsock_send(self->pipe, "ssssssssssss", "PROGRESS", round, rounds, acc, loss, ups, downs, walls,
               rep, part, cum_up, cum_down);
}

static void s_append_list(char *text, size_t textlen, uint32_t value)
{
    size_t used = strlen(text);
    if (used + 12 < textlen)
        snprintf(text + used, textlen - used, used ? ",%u" : "%u", value);
}

//  The round is complete (aggregated and evaluated): account, log, checkpoint, go on.
static void s_end_round(s_self_t *self)
{
    s_stop_timer(self, &self->eval_timer);
    int64_t wall = s_ms_since(self->round_start);
    hafl_traffic_t up = {0}, down = {0};
    uint32_t stragglers = 0, dropped = 0, crashed = 0, dead = 0;
    double loss_sum = 0;
    char counted[4096] = "", straggled[4096] = "", droplist[4096] = "", missed[4096] = "";
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        hafl_traffic_add(&up, &c->up);
        hafl_traffic_add(&down, &c->down);
        if (c->state == C_IDLE && hafl_traffic_total(&c->up) + hafl_traffic_total(&c->down) == 0)
            continue;
        if (c->straggle_ms > 0 && c->state != C_DROPPED) {
            stragglers++;
            s_append_list(straggled, sizeof straggled, i);
        }
        if (c->state == C_DROPPED) {
            dropped++;
            s_append_list(droplist, sizeof droplist, i);
        }
        crashed += c->state == C_CRASHED;
        dead += c->state == C_DEAD;
        if (c->state == C_REPORTED) {
            loss_sum += c->train_loss;
            s_append_list(counted, sizeof counted, i);
        }
        if (c->state == C_SENT || c->state == C_MISSED || c->state == C_CRASHED ||
            c->state == C_DEAD)
            s_append_list(missed, sizeof missed, i);
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "client-round");
        if (ev) {
            hafl_log_event_add_int(ev, "client", i);
            hafl_log_event_add_string(ev, "state", s_cstate_name[c->state]);
            hafl_log_event_add_int(ev, "straggle_ms", c->straggle_ms);
            hafl_log_event_add_int(ev, "up_components", (int64_t)c->up.components);
            hafl_log_event_add_int(ev, "up_head", (int64_t)c->up.head);
            hafl_log_event_add_int(ev, "up_scores", (int64_t)c->up.scores);
            hafl_log_event_add_int(ev, "up_control", (int64_t)c->up.control);
            hafl_log_event_add_int(ev, "up_floats", (int64_t)c->up.floats);
            hafl_log_event_add_int(ev, "down_components", (int64_t)c->down.components);
            hafl_log_event_add_int(ev, "down_head", (int64_t)c->down.head);
            hafl_log_event_add_int(ev, "down_scores", (int64_t)c->down.scores);
            hafl_log_event_add_int(ev, "down_control", (int64_t)c->down.control);
            hafl_log_event_add_int(ev, "down_floats", (int64_t)c->down.floats);
            if (c->state == C_REPORTED) {
                hafl_log_event_add_float(ev, "train_loss", c->train_loss);
                hafl_log_event_add_int(ev, "steps", c->steps);
                hafl_log_event_add_int(ev, "train_ms", c->train_ms);
                hafl_log_event_add_int(ev, "upload_after_ms", c->after_ms);
            }
            s_send_event(self, &ev);
        }
    }
    hafl_traffic_add(&self->total_up, &up);
    hafl_traffic_add(&self->total_down, &down);
    double train_loss = self->reported ? loss_sum / self->reported : NAN;
    double start_acc =
        self->start_accuracy_n ? self->start_accuracy_sum / self->start_accuracy_n : NAN;
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "round-end");
    if (ev) {
        hafl_log_event_add_float(ev, "accuracy", self->accuracy);
        hafl_log_event_add_float(ev, "loss", self->loss);
        hafl_log_event_add_float(ev, "train_loss", train_loss);
        hafl_log_event_add_int(ev, "participants", self->participants);
        hafl_log_event_add_int(ev, "reported", self->reported);
        hafl_log_event_add_string(ev, "counted", counted);
        hafl_log_event_add_string(ev, "missed", missed);
        hafl_log_event_add_string(ev, "stragglers", straggled);
        hafl_log_event_add_string(ev, "dropped", droplist);
        hafl_log_event_add_int(ev, "late", self->late);
        hafl_log_event_add_int(ev, "bytes_up", (int64_t)hafl_traffic_total(&up));
        hafl_log_event_add_int(ev, "bytes_down", (int64_t)hafl_traffic_total(&down));
        hafl_log_event_add_int(ev, "cum_bytes_up", (int64_t)hafl_traffic_total(&self->total_up));
        hafl_log_event_add_int(ev, "wall_ms", wall);
        hafl_log_event_add_string(ev, "strategy", self->strategy);
        s_send_event(self, &ev);
    }
    if (self->csv) {
        fprintf(self->csv,
                "%u,%.6f,%.6f,%.6f,%.6f,%u,%u,%u,%u,%u,%u,%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64
                ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
                ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRId64 ",%s\n",
                self->round, (double)self->accuracy, (double)self->loss, train_loss, start_acc,
                self->participants, self->reported, stragglers, self->late, dropped, crashed, dead,
                up.components, up.head, up.scores, up.control, down.components, down.head,
                down.scores, down.control, hafl_traffic_total(&up), hafl_traffic_total(&down),
                up.floats, down.floats, hafl_traffic_total(&self->total_up),
                hafl_traffic_total(&self->total_down), wall, self->strategy);
        fflush(self->csv);
    }
    self->failed_attempts = 0;
    char why[600] = "";
    int saved = s_checkpoint(self, why, sizeof why);
    s_progress(self, hafl_traffic_total(&up), hafl_traffic_total(&down), wall);
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        memset(&c->up, 0, sizeof c->up);
        memset(&c->down, 0, sizeof c->down);
        c->state = C_IDLE;
        c->straggle_ms = 0;
    }
    if (saved != 0) {
        char reason[900];
        if (self->checkpointed)
            snprintf(reason, sizeof reason,
                     "the checkpoint of round %u could not be written (%s): stopped; the run "
                     "folder keeps the checkpoint of round %u, resume from it",
                     self->round, why, self->checkpointed);
        else
            snprintf(reason, sizeof reason,
                     "the checkpoint of round %u could not be written (%s): stopped before any "
                     "checkpoint was saved",
                     self->round, why);
        s_log_text(self, (int32_t)self->round, "checkpoint-failed", "reason", why);
        s_finish(self, false, reason);
    } else if (self->stop_requested)
        s_stop_now(self);
    else if (self->round >= self->topo->server.rounds)
        s_finish(self, true, "all rounds done");
    else
        s_next_round(self);
}

static int s_on_eval_timeout(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    self->eval_timer = -1;
    if (self->phase != P_EVAL)
        return 0;
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "eval-timeout");
    if (ev) {
        hafl_log_event_add_int(ev, "expected", self->evals_expected);
        hafl_log_event_add_int(ev, "got", self->evals_got);
        s_send_event(self, &ev);
    }
    s_end_round(self);
    return 0;
}

static int s_send_eval(s_self_t *self, const hafl_adapter_t *adapter, const uint8_t *roles,
                       uint32_t tag)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_EVAL_REQUEST);
    if (!msg)
        return -1;
    hafl_eval_request_t *r = &msg->u.eval_request;
    r->round = self->round;
    r->tag = tag;
    r->components = hafl_wire_export_components(adapter, roles, HAFL_ROLE_FROZEN, &r->n_components);
    r->merged = hafl_wire_export_merged(adapter, NULL, &r->n_merged);
    int rc = -1;
    if ((r->components || !r->n_components) && (r->merged || !r->n_merged) &&
        hafl_wire_export_head(adapter, &r->head) == 0)
        rc = s_send_to(self, self->evaluator, msg, NULL);
    else
        r->n_components = r->n_merged = 0;
    hafl_msg_destroy(&msg);
    return rc;
}

//  After aggregation (and any swap): evaluate the new global model, or end the round.
static void s_evaluate(s_self_t *self)
{
    self->phase = P_EVAL;
    self->accuracy = self->loss = NAN;
    if (!self->topo->evaluator.enabled || !self->evaluator) {
        s_end_round(self);
        return;
    }
    if (s_send_eval(self, self->global, NULL, 0)) {
        s_log_text(self, (int32_t)self->round, "eval-failed", "reason", "cannot send request");
        s_end_round(self);
        return;
    }
    self->evals_expected++;
    self->eval_timer =
        zloop_timer(self->loop, self->topo->server.deadline_ms, 1, s_on_eval_timeout, self);
}

//  A stop that arrives during a round lets its aggregation and evaluation finish (the round
//  is recorded whole), then s_end_round stops.
static void s_after_aggregate(s_self_t *self)
{
    s_evaluate(self);
}

//  After a round that no report came in: true when some participant was sent the round and
//  then missed the deadline or died (the federation failed), false when every participant was
//  taken out by an injected fault (dropout, crash: the simulation's own outcome, which counts).
static bool s_nobody_came(s_self_t *self)
{
    for (uint32_t i = 0; i < self->count; i++)
        if (self->clients[i].state == C_MISSED || self->clients[i].state == C_DEAD)
            return true;
    return false;
}

#define S_MAX_ATTEMPTS 3u //  attempts at one round before the run ends failed

//  A round nobody reported in does not count: nothing is aggregated, written or checkpointed,
//  and the round is attempted again (same round number, so the same seeds and faults) once the
//  clients it needs are there; after S_MAX_ATTEMPTS such attempts the run ends failed, with the
//  checkpoint of the last real round intact.
static void s_fail_round(s_self_t *self)
{
    char missed[4096] = "";
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        if (c->state == C_MISSED || c->state == C_DEAD)
            s_append_list(missed, sizeof missed, i);
        hafl_traffic_add(&self->total_up, &c->up);
        hafl_traffic_add(&self->total_down, &c->down);
        memset(&c->up, 0, sizeof c->up);
        memset(&c->down, 0, sizeof c->down);
        c->state = C_IDLE;
        c->straggle_ms = 0;
    }
    self->failed_attempts++;
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "round-failed");
    if (ev) {
        hafl_log_event_add_string(ev, "missed", missed);
        hafl_log_event_add_int(ev, "attempt", self->failed_attempts);
        hafl_log_event_add_int(ev, "max_attempts", S_MAX_ATTEMPTS);
        hafl_log_event_add_int(ev, "joined", s_joined(self));
        s_send_event(self, &ev);
    }
    uint32_t round = self->round--;
    if (self->failed_attempts >= S_MAX_ATTEMPTS) {
        char reason[512];
        snprintf(reason, sizeof reason,
                 "round %u failed %u times: no client reported within server/deadline_ms "
                 "(%u ms); %s%u",
                 round, self->failed_attempts, self->topo->server.deadline_ms,
                 self->checkpointed ? "the run folder keeps the checkpoint of round "
                                    : "no checkpoint was written; last round done: ",
                 self->checkpointed ? self->checkpointed : self->round);
        s_finish(self, false, reason);
        return;
    }
    s_next_round(self);
}

static void s_close_round(s_self_t *self)
{
    s_stop_timer(self, &self->deadline_timer);
    size_t n = 0;
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        if (c->state == C_SENT) {
            c->state = C_MISSED;
            //  Whether a report makes the deadline is a matter of speed, not of the seed.
            s_unreproducible(self,
                             "round %u closed at server/deadline_ms without client %u's report "
                             "(which reports make the deadline depends on timing)",
                             self->round, i);
        }
        if (c->state != C_REPORTED)
            continue;
        self->uploads[n].client_index = i;
        self->uploads[n].n_samples = c->n_samples;
        self->uploads[n].rank_budget = c->rank_budget;
        self->uploads[n].trained = c->trained;
        self->uploads[n].adapter = c->upload;
        n++;
    }
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "round-closed");
    if (ev) {
        hafl_log_event_add_int(ev, "reported", (int64_t)n);
        hafl_log_event_add_int(ev, "participants", self->participants);
        hafl_log_event_add_bool(ev, "extended", self->extended);
        s_send_event(self, &ev);
    }
    if (n == 0 && s_nobody_came(self)) {
        s_fail_round(self);
        return;
    }
    if (n == 0) {
        s_log_text(self, (int32_t)self->round, "no-reports", "global", "unchanged");
        s_after_aggregate(self);
        return;
    }
    if (hafl_adapter_copy_from(self->backup, self->global)) {
        s_log_text(self, (int32_t)self->round, "aggregate-skipped", "reason", "out of memory");
        s_after_aggregate(self);
        return;
    }
    memset(&self->agg_job, 0, sizeof self->agg_job);
    self->agg_job.round = self->round;
    self->agg_job.global = self->global;
    self->agg_job.uploads = self->uploads;
    self->agg_job.n = n;
    self->phase = P_AGGREGATE;
    zsock_send(self->aggregator, "sp", "AGGREGATE", &self->agg_job);
}

static void s_check_close(s_self_t *self)
{
    if (self->phase != P_COLLECT)
        return;
    for (uint32_t i = 0; i < self->count; i++)
        if (self->clients[i].state == C_SENT)
            return;
    s_close_round(self);
}

static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    self->deadline_timer = -1;
    if (self->phase != P_COLLECT)
        return 0;
    uint32_t need = self->topo->server.min_reports;
    if (need > self->participants)
        need = self->participants;
    if (need > 0 && self->reported < need && !self->extended) {
        self->extended = true;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "quorum-wait");
        if (ev) {
            hafl_log_event_add_int(ev, "reported", self->reported);
            hafl_log_event_add_int(ev, "min_reports", need);
            s_send_event(self, &ev);
        }
        self->deadline_timer =
            zloop_timer(loop, self->topo->server.deadline_ms, 1, s_on_deadline, self);
        return 0;
    }
    s_log_text(self, (int32_t)self->round, "deadline", "action", "closing round");
    s_close_round(self);
    return 0;
}

//  Participants of this round: eligible clients (joined, alive, not down after a crash), all of
//  them or server/participants drawn from the SAMPLE stream; in index order.
static uint32_t s_pick_participants(s_self_t *self, uint32_t *chosen)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        if (c->joined && c->down_until < self->round)
            chosen[n++] = i;
    }
    uint32_t want = self->topo->server.participants;
    if (want == 0 || want >= n)
        return n;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, self->topo->seed, HAFL_STREAM_SAMPLE, self->round);
    hafl_rng_shuffle_u32(&rng, chosen, n);
    //  Back to index order so everything downstream is order-independent.
    for (uint32_t i = 1; i < want; i++)
        for (uint32_t j = i; j > 0 && chosen[j - 1] > chosen[j]; j--) {
            uint32_t t = chosen[j];
            chosen[j] = chosen[j - 1];
            chosen[j - 1] = t;
        }
    return want;
}

static int s_on_join_tick(zloop_t *loop, int timer_id, void *arg);
static int s_on_join_limit(zloop_t *loop, int timer_id, void *arg);

//  Between rounds with fewer clients alive than a round needs (all dead after a partition,
//  say): back to the join phase, whose rules and limit (server/join_timeout_ms) apply again,
//  rather than run rounds nobody is in.
static void s_wait_quorum(s_self_t *self)
{
    self->phase = P_JOIN;
    self->quorum_lost = true;
    self->join_grace_over = true;
    self->join_started = zclock_mono();
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "quorum-lost");
    if (ev) {
        hafl_log_event_add_int(ev, "joined", s_joined(self));
        hafl_log_event_add_int(ev, "needed", s_needed(self));
        hafl_log_event_add_int(ev, "next_round", self->round + 1);
        hafl_log_event_add_int(ev, "join_timeout_ms", self->topo->server.join_timeout_ms);
        s_send_event(self, &ev);
    }
    self->join_timer = zloop_timer(self->loop, self->topo->server.deadline_ms, 0, s_on_join_tick,
                                   self);
    if (self->topo->server.join_timeout_ms > 0)
        self->join_limit_timer = zloop_timer(self->loop, self->topo->server.join_timeout_ms, 1,
                                             s_on_join_limit, self);
}

//  The round boundary: a pending swap replaces the strategy before the next round's views, so
//  the round that was running aggregates with the old strategy and the next with the new one.
static void s_next_round(s_self_t *self)
{
    if (s_joined(self) < s_needed(self)) {
        s_wait_quorum(self);
        return;
    }
    if (!self->pending_swap[0]) {
        s_begin_round(self);
        return;
    }
    self->phase = P_SWAP;
    char round[16];
    snprintf(round, sizeof round, "%u", self->round + 1);
    zsock_send(self->aggregator, "sss", "SWAP", self->pending_swap, round);
    self->pending_swap[0] = 0;
}

static void s_begin_round(s_self_t *self)
{
    self->round++;
    self->round_start = zclock_mono();
    self->reported = self->late = 0;
    self->extended = false;
    self->evals_expected = self->evals_got = 0;
    self->start_accuracy_sum = 0;
    self->start_accuracy_n = 0;
    uint32_t *chosen = self->view_clients; //  reused: participants first, then view clients
    uint32_t n = s_pick_participants(self, chosen);
    self->participants = n;
    uint32_t sent = 0;
    char droplist[4096] = "";
    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = chosen[j];
        s_client_t *c = &self->clients[i];
        hafl_fault_t fault = hafl_faults_round(self->topo, self->round, i);
        if (c->ctl_drop)
            fault.drop = true;
        if (c->ctl_straggle_ms)
            fault.straggle_ms = c->ctl_straggle_ms;
        c->ctl_drop = false;
        c->ctl_straggle_ms = 0;
        c->straggle_ms = fault.straggle_ms;
        if (fault.drop) {
            c->state = C_DROPPED;
            s_append_list(droplist, sizeof droplist, i);
            continue;
        }
        c->state = C_SENT; //  provisional until the ROUND is out
        self->view_clients[sent] = i;
        self->view_ranks[sent] = c->rank_budget;
        sent++;
    }
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "round-start");
    if (ev) {
        hafl_log_event_add_int(ev, "participants", n);
        hafl_log_event_add_int(ev, "sent", sent);
        hafl_log_event_add_string(ev, "dropped", droplist);
        hafl_log_event_add_string(ev, "strategy", self->strategy);
        s_send_event(self, &ev);
    }
    memset(&self->views_job, 0, sizeof self->views_job);
    self->views_job.global = self->global;
    self->views_job.n = sent;
    self->views_job.clients = self->view_clients;
    self->views_job.ranks = self->view_ranks;
    self->views_job.views = self->views;
    self->phase = P_VIEWS;
    zsock_send(self->aggregator, "sp", "VIEWS", &self->views_job);
}

//  Build and send one client's ROUND from its view.
static int s_send_round(s_self_t *self, s_client_t *c, const hafl_adapter_t *view)
{
    hafl_scheme_select(self->scheme, view, c->rank_budget, self->topo->seed, self->round, c->index,
                       c->roles);
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_ROUND);
    if (!msg)
        return -1;
    hafl_round_t *r = &msg->u.round;
    r->round = self->round;
    r->deadline_ms = self->topo->server.deadline_ms;
    r->local_epochs = self->topo->clients.local_epochs;
    r->local_steps = self->topo->clients.local_steps;
    r->batch = self->topo->clients.batch;
    r->lr = self->topo->clients.lr;
    hafl_rng_t rng;
    hafl_rng_seed(&rng, self->topo->seed, HAFL_STREAM_BATCH,
                  ((uint64_t)self->round << 32) | c->index);
    r->seed = hafl_rng_u64(&rng);
    r->straggle_ms = c->straggle_ms;
    r->fresh_optimizer = true;
    r->n_matrices = self->layout.n_matrices;
    r->rank = self->layout.rank;
    r->roles = malloc(self->slots + 1);
    if (r->roles)
        memcpy(r->roles, c->roles, self->slots);
    r->components = hafl_wire_export_components(view, c->roles, HAFL_ROLE_FROZEN, &r->n_components);
    //  Merged terms: only the tail the client lacks, unless its copy is not a prefix of ours.
    bool prefix = c->merged_known && c->merged_epoch == view->merged_epoch;
    for (uint32_t m = 0; prefix && m < self->layout.n_matrices; m++)
        prefix = c->merged_counts[m] <= view->n_merged[m];
    r->reset_merged = !prefix;
    r->merged = hafl_wire_export_merged(view, prefix ? c->merged_counts : NULL, &r->n_merged);
    int rc = -1;
    if (r->roles && (r->components || !r->n_components) && (r->merged || !r->n_merged) &&
        hafl_wire_export_head(view, &r->head) == 0)
        rc = s_send_to(self, c->identity, msg, &c->down);
    if (!r->components)
        r->n_components = 0;
    if (!r->merged)
        r->n_merged = 0;
    hafl_msg_destroy(&msg);
    if (rc == 0) {
        c->merged_known = true;
        c->merged_epoch = view->merged_epoch;
        memcpy(c->merged_counts, view->n_merged, self->layout.n_matrices * sizeof(uint32_t));
    }
    return rc;
}

static void s_on_views(s_self_t *self)
{
    hafl_views_job_t *job = &self->views_job;
    if (job->rc) {
        s_log_text(self, (int32_t)self->round, "views-failed", "reason", job->err);
        for (size_t j = 0; j < job->n; j++)
            self->clients[job->clients[j]].state = C_MISSED;
        s_close_round(self);
        return;
    }
    if (self->stop_requested) {
        for (size_t j = 0; j < job->n; j++)
            hafl_adapter_destroy(&job->views[j]);
        self->round--; //  it never went out
        s_stop_now(self);
        return;
    }
    self->phase = P_COLLECT;
    for (size_t j = 0; j < job->n; j++) {
        s_client_t *c = &self->clients[job->clients[j]];
        if (s_send_round(self, c, job->views[j])) {
            c->state = C_MISSED;
            s_log_text(self, (int32_t)self->round, "round-send-failed", "client", c->key);
        } else if (self->topo->evaluator.client_start && self->evaluator &&
                   s_send_eval(self, job->views[j], c->roles, 1 + c->index) == 0)
            self->evals_expected++;
        hafl_adapter_destroy(&job->views[j]);
    }
    self->deadline_timer =
        zloop_timer(self->loop, self->topo->server.deadline_ms, 1, s_on_deadline, self);
    s_check_close(self);
}

//  ---------------------------------------------------------------------------------------
//  Joins

static bool s_all_joined(s_self_t *self)
{
    for (uint32_t i = 0; i < self->count; i++)
        if (!self->clients[i].joined)
            return false;
    return !self->topo->evaluator.enabled || self->evaluator;
}

static uint32_t s_joined(s_self_t *self)
{
    uint32_t joined = 0;
    for (uint32_t i = 0; i < self->count; i++)
        joined += self->clients[i].joined;
    return joined;
}

//  Clients a round needs: the quorum server/min_reports, or one when any participants will do
//  (min_reports 0 means "all participants", whoever joined). The loader keeps it <= count.
static uint32_t s_needed(s_self_t *self)
{
    return self->topo->server.min_reports > 0 ? self->topo->server.min_reports : 1;
}

//  The clients that have not joined, as index ranges ("2-5,7"), cut short with "..." when the
//  text would not fit.
static void s_missing(s_self_t *self, char *text, size_t textlen)
{
    size_t used = 0;
    text[0] = 0;
    for (uint32_t i = 0; i < self->count; i++) {
        if (self->clients[i].joined)
            continue;
        uint32_t last = i;
        while (last + 1 < self->count && !self->clients[last + 1].joined)
            last++;
        char range[32];
        if (last == i)
            snprintf(range, sizeof range, "%s%u", used ? "," : "", i);
        else
            snprintf(range, sizeof range, "%s%u-%u", used ? "," : "", i, last);
        if (used + strlen(range) + 4 >= textlen) {
            snprintf(text + used, textlen - used, "%s", used ? ",..." : "...");
            return;
        }
        used += (size_t)snprintf(text + used, textlen - used, "%s", range);
        i = last;
    }
}

//  Rounds start once every client (and the evaluator) has joined, or, after the grace period
//  of server/deadline_ms, as soon as the clients a round needs have.
static bool s_may_start(s_self_t *self)
{
    //  In one process every client is ours and will join: waiting for all of them keeps the
    //  run's result a function of its topology and seed (1000 in-process clients used to start
    //  round 1 with whoever had joined by deadline_ms, a different digest each run). The join
    //  timeout still ends a run whose clients never come.
    if (self->args->all_local && !self->quorum_lost)
        return s_all_joined(self);
    return s_all_joined(self) || (self->join_grace_over && s_joined(self) >= s_needed(self));
}

static void s_start_rounds(s_self_t *self)
{
    s_stop_timer(self, &self->join_timer);
    s_stop_timer(self, &self->join_limit_timer);
    if (self->quorum_lost) {
        self->quorum_lost = false;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "quorum-regained");
        if (ev) {
            hafl_log_event_add_int(ev, "joined", s_joined(self));
            hafl_log_event_add_int(ev, "needed", s_needed(self));
            hafl_log_event_add_int(ev, "waited_ms", s_ms_since(self->join_started));
            s_send_event(self, &ev);
        }
        s_next_round(self);
        return;
    }
    if (s_joined(self) < self->count)
        s_unreproducible(self,
                         "round 1 started with %u of %u clients joined (server/deadline_ms passed "
                         "first): who joins in time depends on timing",
                         s_joined(self), self->count);
    hafl_log_event_t *ev = s_event(self, -1, "federation-start");
    if (ev) {
        hafl_log_event_add_int(ev, "clients", s_joined(self));
        hafl_log_event_add_int(ev, "expected", self->count);
        hafl_log_event_add_int(ev, "needed", s_needed(self));
        hafl_log_event_add_bool(ev, "evaluator", self->evaluator != NULL);
        hafl_log_event_add_int(ev, "join_ms", s_ms_since(self->started));
        s_send_event(self, &ev);
    }
    if (self->round >= self->topo->server.rounds)
        s_finish(self, true, "nothing left to run");
    else
        s_next_round(self);
}

//  A join-wait or join-timeout event: who has joined, who is missing.
static void s_log_joins(s_self_t *self, const char *name, const char *missing)
{
    hafl_log_event_t *ev = s_event(self, -1, name);
    if (ev) {
        hafl_log_event_add_int(ev, "joined", s_joined(self));
        hafl_log_event_add_int(ev, "needed", s_needed(self));
        hafl_log_event_add_int(ev, "expected", self->count);
        hafl_log_event_add_string(ev, "missing", missing);
        hafl_log_event_add_bool(ev, "evaluator", self->evaluator != NULL);
        hafl_log_event_add_int(ev, "waited_ms", s_ms_since(self->join_started));
        hafl_log_event_add_int(ev, "join_timeout_ms", self->topo->server.join_timeout_ms);
        s_send_event(self, &ev);
    }
}

//  Every deadline_ms while joining: the grace period is over; start if enough clients have
//  joined, otherwise say who is missing and keep waiting.
static int s_on_join_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    if (self->phase != P_JOIN)
        return 0;
    self->join_grace_over = true;
    if (s_may_start(self)) {
        s_start_rounds(self);
        return 0;
    }
    char missing[HAFL_MSG_MAX_TEXT];
    s_missing(self, missing, sizeof missing);
    s_log_joins(self, "join-wait", missing);
    return 0;
}

//  server/join_timeout_ms after the start: start with the clients a round needs, or end the run
//  as failed, naming who never came.
static int s_on_join_limit(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    self->join_limit_timer = -1;
    if (self->phase != P_JOIN)
        return 0;
    self->join_grace_over = true;
    if (s_may_start(self)) {
        s_start_rounds(self);
        return 0;
    }
    char missing[HAFL_MSG_MAX_TEXT], few[64], reason[400], kept[96] = "";
    s_missing(self, missing, sizeof missing);
    s_log_joins(self, "join-timeout", missing);
    s_missing(self, few, sizeof few); //  the reason is one short line; the event has them all
    if (self->quorum_lost && self->checkpointed)
        snprintf(kept, sizeof kept,
                 " after round %u; the run folder keeps the checkpoint of round %u",
                 self->round, self->checkpointed);
    else if (self->quorum_lost)
        snprintf(kept, sizeof kept, " after round %u", self->round);
    snprintf(reason, sizeof reason,
             "join timeout: %u of the %u clients needed joined within %u ms (%u expected; "
             "missing: %s)%s",
             s_joined(self), s_needed(self), self->topo->server.join_timeout_ms, self->count, few,
             kept);
    s_finish(self, false, reason);
    return 0;
}

static void s_forget_identity(s_self_t *self, s_client_t *c)
{
    if (c->identity) {
        zhash_delete(self->peers, c->key);
        zframe_destroy(&c->identity);
    }
    c->key[0] = 0;
}

//  A HELLO from another connection for a place (a client index, or the evaluator's) whose
//  holder is alive. Only the holder's session secret, which only its WELCOME carried, lets the
//  newcomer in: that is a legitimate rejoin (the holder restarted its connection after a
//  crash), and the old connection is told it was replaced, so a node still behind it ends with
//  that reason instead of waiting. Anything else is a takeover attempt: refused with REJECT
//  SESSION and logged, and the holder keeps its place. Returns true when the newcomer may
//  proceed. `place` names the place for messages ("client 3", "the evaluator").
static bool s_takeover(s_self_t *self, zframe_t *identity, const char *name, const char *place,
                       zframe_t *holder, const uint8_t *session, const hafl_hello_t *h)
{
    char text[HAFL_MSG_MAX_TEXT], held_by[48], peer[48];
    hafl_wire_peer(holder, held_by, sizeof held_by);
    hafl_wire_peer(identity, peer, sizeof peer);
    if (h->session.present && sodium_memcmp(h->session.bytes, session, HAFL_SESSION_BYTES) == 0) {
        snprintf(text, sizeof text, "%s was taken over by a rejoin from peer %s with its session",
                 place, peer);
        s_send_reject(self, holder, HAFL_REJECT_REPLACED, text);
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "peer-replaced");
        if (ev) {
            hafl_log_event_add_string(ev, "place", place);
            hafl_log_event_add_string(ev, "old_peer", held_by);
            hafl_log_event_add_string(ev, "new_peer", peer);
            s_send_event(self, &ev);
        }
        return true;
    }
    if (!h->session.present && !h->rejoin && h->client_index != HAFL_EVALUATOR_INDEX) {
        snprintf(text, sizeof text, "client index %u is already taken", h->client_index);
        s_reject(self, identity, HAFL_REJECT_INDEX, text, name);
        return false;
    }
    //  The holder's routing id stays in the log, not in the answer to the newcomer.
    snprintf(text, sizeof text, "%s is held by a live peer; a rejoin must present the "
             "session its WELCOME gave (%s)", place,
             h->session.present ? "the one presented is wrong" : "none presented");
    s_reject(self, identity, HAFL_REJECT_SESSION, text, name);
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "takeover-refused");
    if (ev) {
        hafl_log_event_add_string(ev, "place", place);
        hafl_log_event_add_string(ev, "holder", held_by);
        hafl_log_event_add_string(ev, "peer", peer);
        hafl_log_event_add_bool(ev, "session_presented", h->session.present);
        s_send_event(self, &ev);
    }
    return false;
}

//  A place as text: "client 3" or "the evaluator".
static void s_place_name(int64_t place, char *text, size_t textlen)
{
    if (place == HAFL_BOUND_EVALUATOR || place == HAFL_EVALUATOR_INDEX)
        snprintf(text, textlen, "the evaluator");
    else
        snprintf(text, textlen, "client %lld", (long long)place);
}

//  Whether the CURVE key the HELLO came with (the "User-Id" libzmq attaches to each frame
//  from the authenticator's answer) may not claim h's place; the reason in text. The key is
//  read from a frame of the message itself: the routing-id frame a ROUTER prepends carries
//  no metadata when the socket was polled before the read (libzmq 4.3's prefetch), as here.
static bool s_binding_refused(s_self_t *self, zframe_t *frame, const hafl_hello_t *h,
                              char *text, size_t textlen)
{
    const char *key = frame ? zframe_meta(frame, "User-Id") : NULL;
    int64_t claimed = h->client_index == HAFL_EVALUATOR_INDEX ? HAFL_BOUND_EVALUATOR
                                                              : (int64_t)h->client_index;
    int64_t bound = HAFL_BOUND_NONE;
    char claimed_name[32], bound_name[32];
    s_place_name(claimed, claimed_name, sizeof claimed_name);
    if (!key || hafl_security_binding(self->args->security, key, &bound) != 0)
        bound = HAFL_BOUND_NONE;
    if (bound != HAFL_BOUND_NONE && bound != claimed) {
        s_place_name(bound, bound_name, sizeof bound_name);
        snprintf(text, textlen, "the certificate %.8s... is bound to %s, not %s", key ? key : "?",
                 bound_name, claimed_name);
        return true;
    }
    if (bound == HAFL_BOUND_NONE && hafl_security_place_bound(self->args->security, claimed)) {
        snprintf(text, textlen, "%s is bound to its own certificate; %.8s... is not it",
                 claimed_name, key ? key : "?");
        return true;
    }
    return false;
}

static void s_on_hello(s_self_t *self, zframe_t *identity, const char *key, const hafl_hello_t *h,
                       zframe_t *body, hafl_traffic_t *traffic)
{
    char text[HAFL_MSG_MAX_TEXT];
    char name[HAFL_MSG_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s", h->name);
    if (self->phase == P_DONE) {
        s_reject(self, identity, HAFL_REJECT_FULL, "federation ended", name);
        return;
    }
    if (memcmp(h->base_digest, self->digest, 32) != 0) {
        char theirs[65], ours[65];
        for (int i = 0; i < 32; i++) {
            snprintf(theirs + 2 * i, 3, "%02x", h->base_digest[i]);
            snprintf(ours + 2 * i, 3, "%02x", self->digest[i]);
        }
        snprintf(text, sizeof text, "base digest %.16s... differs from the server's %.16s...",
                 theirs, ours);
        s_reject(self, identity, HAFL_REJECT_BASE_DIGEST, text, name);
        return;
    }
    //  With CURVE, the allow-list may bind a key to one place (hafl keygen --clients): the key
    //  this connection authenticated with (its User-Id) must be the one bound to the place it
    //  claims, and may claim no other.
    if (hafl_security_enabled(self->args->security) && s_binding_refused(self, body, h, text,
                                                                          sizeof text)) {
        s_reject(self, identity, HAFL_REJECT_AUTH, text, name);
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "binding-refused");
        if (ev) {
            hafl_log_event_add_int(ev, "claimed", h->client_index);
            hafl_log_event_add_string(ev, "reason", text);
            s_send_event(self, &ev);
        }
        return;
    }
    //  Bounded influence: n_samples weighs a client's uploads, so a claim above the cap (the
    //  topology's server/max_samples, or the largest shard the data gives any client) is
    //  refused rather than trusted.
    if (h->client_index != HAFL_EVALUATOR_INDEX && h->n_samples > self->max_samples) {
        snprintf(text, sizeof text,
                 "n_samples %llu above the cap of %llu (server/max_samples%s)",
                 (unsigned long long)h->n_samples, (unsigned long long)self->max_samples,
                 self->topo->server.max_samples ? "" : " 0: the largest shard the data gives");
        s_reject(self, identity, HAFL_REJECT_AUTH, text, name);
        return;
    }
    if (h->client_index == HAFL_EVALUATOR_INDEX) {
        //  Exactly one evaluator: while the one that joined is alive (heard from within the
        //  heartbeat death limit), a HELLO from another peer for its place needs its session
        //  (s_takeover); the same peer saying HELLO again (a reconnect) keeps it.
        int64_t limit =
            (int64_t)self->topo->server.heartbeat_ms * self->topo->server.heartbeat_misses;
        if (self->evaluator && !zframe_eq(self->evaluator, identity) &&
            zclock_mono() - self->evaluator_seen <= limit &&
            !s_takeover(self, identity, name, "the evaluator", self->evaluator,
                        self->evaluator_session, h))
            return;
        if (self->evaluator) {
            char old[48];
            hafl_wire_peer(self->evaluator, old, sizeof old);
            zhash_delete(self->peers, old);
            zframe_destroy(&self->evaluator);
        }
        self->evaluator = zframe_dup(identity);
        self->evaluator_seen = zclock_mono();
        zhash_insert(self->peers, key, &s_evaluator_marker);
        s_welcome(self, identity, HAFL_EVALUATOR_INDEX, self->evaluator_session, NULL);
        s_log_text(self, -1, "evaluator-joined", "peer", key);
    } else {
        if (h->client_index >= self->count) {
            snprintf(text, sizeof text, "client index %u is not below clients/count %u",
                     h->client_index, self->count);
            s_reject(self, identity, HAFL_REJECT_INDEX, text, name);
            return;
        }
        s_client_t *c = &self->clients[h->client_index];
        if (h->rank_budget != self->topo->clients.ranks[h->client_index]) {
            snprintf(text, sizeof text, "rank budget %u differs from the topology's %u",
                     h->rank_budget, self->topo->clients.ranks[h->client_index]);
            s_reject(self, identity, HAFL_REJECT_RANK, text, name);
            return;
        }
        if (h->n_samples == 0) {
            snprintf(text, sizeof text, "client %u announces no training samples", h->client_index);
            s_reject(self, identity, HAFL_REJECT_INDEX, text, name);
            return;
        }
        bool same_peer = c->identity && zframe_eq(c->identity, identity);
        char place[32];
        snprintf(place, sizeof place, "client %u", h->client_index);
        if (c->joined && !same_peer &&
            !s_takeover(self, identity, name, place, c->identity, c->session, h))
            return;
        bool rejoin = c->identity != NULL || h->rejoin;
        if (rejoin && self->round > 0) {
            //  It lost its state: it may not count in the round it crashed in, and sits out
            //  faults/rejoin_rounds rounds after it.
            if (c->state == C_SENT)
                c->state = C_CRASHED;
            c->down_until = self->round + self->topo->faults.rejoin_rounds;
        }
        s_forget_identity(self, c);
        c->identity = zframe_dup(identity);
        snprintf(c->key, sizeof c->key, "%s", key);
        zhash_insert(self->peers, c->key, c);
        c->joined = true;
        c->rank_budget = h->rank_budget;
        c->n_samples = h->n_samples;
        c->last_seen = zclock_mono();
        c->merged_known = false;
        hafl_traffic_add(&c->up, traffic);
        s_welcome(self, identity, h->client_index, c->session, &c->down);
        hafl_log_event_t *ev = s_event(self, -1, rejoin ? "client-rejoined" : "client-joined");
        if (ev) {
            hafl_log_event_add_int(ev, "client", h->client_index);
            hafl_log_event_add_string(ev, "peer", key);
            hafl_log_event_add_int(ev, "rank_budget", h->rank_budget);
            hafl_log_event_add_int(ev, "n_samples", (int64_t)h->n_samples);
            if (rejoin)
                hafl_log_event_add_int(ev, "down_until", c->down_until);
            s_send_event(self, &ev);
        }
        if (c->state == C_CRASHED)
            s_check_close(self);
    }
    if (self->phase == P_JOIN && s_may_start(self))
        s_start_rounds(self);
}

//  ---------------------------------------------------------------------------------------
//  Updates and evaluation results

static void s_late(s_self_t *self, s_client_t *c, uint32_t round, const char *why)
{
    self->late++;
    self->late_total++;
    hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "late-upload");
    if (ev) {
        hafl_log_event_add_int(ev, "client", c->index);
        hafl_log_event_add_int(ev, "upload_round", round);
        hafl_log_event_add_int(ev, "current_round", self->round);
        hafl_log_event_add_string(ev, "why", why);
        hafl_log_event_add_string(ev, "action", "dropped");
        s_send_event(self, &ev);
    }
}

static void s_on_update(s_self_t *self, s_client_t *c, const hafl_update_t *u)
{
    if (u->client_index != c->index) {
        char text[128];
        snprintf(text, sizeof text, "update.client_index %u from the peer of client %u",
                 u->client_index, c->index);
        self->unexpected++;
        s_log_text(self, (int32_t)self->round, "bad-update", "reason", text);
        return;
    }
    if (u->round != self->round || self->phase != P_COLLECT || c->state != C_SENT) {
        s_late(self, c, u->round,
               u->round != self->round ? "round number is not the current round"
                                       : "its round had closed or it was not expected");
        return;
    }
    char err[256] = "";
    if (!c->upload && !(c->upload = hafl_adapter_new(&self->layout))) {
        s_log_text(self, (int32_t)self->round, "bad-update", "reason", "out of memory");
        return;
    }
    memset(c->trained, 0, self->slots);
    int rc = hafl_wire_take_components(c->upload, u->components, u->n_components, c->trained);
    for (size_t s = 0; rc == 0 && s < self->slots; s++)
        if (c->trained[s] && c->roles[s] != HAFL_ROLE_TRAINABLE) {
            snprintf(err, sizeof err, "update.components: component %zu was not trainable", s);
            rc = -1;
        }
    if (rc == 0)
        rc = hafl_wire_take_head(c->upload, &u->head, "update", err, sizeof err);
    if (rc == 0 && u->n_samples != c->n_samples) {
        snprintf(err, sizeof err, "update.n_samples %" PRIu64 " differs from the joined %" PRIu64,
                 u->n_samples, c->n_samples);
        rc = -1;
    }
    if (rc == 0 && !isfinite(u->train_loss)) {
        snprintf(err, sizeof err, "update.train_loss is not finite");
        rc = -1;
    }
    if (rc) {
        self->unexpected++;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "bad-update");
        if (ev) {
            hafl_log_event_add_int(ev, "client", c->index);
            hafl_log_event_add_string(ev, "reason", err);
            s_send_event(self, &ev);
        }
        return;
    }
    c->state = C_REPORTED;
    c->train_loss = u->train_loss;
    self->reported++;
    c->steps = u->steps;
    c->train_ms = u->wall_ms;
    c->after_ms = (uint32_t)s_ms_since(self->round_start);
    s_check_close(self);
}

static void s_on_eval_result(s_self_t *self, const hafl_eval_result_t *r)
{
    if (self->phase != P_EVAL &&
        !(self->phase == P_COLLECT || self->phase == P_AGGREGATE || self->phase == P_SWAP)) {
        s_log_text(self, (int32_t)self->round, "late-eval", "action", "dropped");
        return;
    }
    if (r->round != self->round) {
        s_log_text(self, (int32_t)self->round, "late-eval", "action", "dropped");
        return;
    }
    self->evals_got++;
    if (r->tag == 0) {
        self->accuracy = r->accuracy;
        self->loss = r->loss;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "eval");
        if (ev) {
            hafl_log_event_add_float(ev, "accuracy", r->accuracy);
            hafl_log_event_add_float(ev, "loss", r->loss);
            hafl_log_event_add_int(ev, "examples", (int64_t)r->n_examples);
            hafl_log_event_add_int(ev, "wall_ms", r->wall_ms);
            s_send_event(self, &ev);
        }
    } else {
        self->start_accuracy_sum += r->accuracy;
        self->start_accuracy_n++;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "start-eval");
        if (ev) {
            hafl_log_event_add_int(ev, "client", r->tag - 1);
            hafl_log_event_add_float(ev, "accuracy", r->accuracy);
            hafl_log_event_add_float(ev, "loss", r->loss);
            s_send_event(self, &ev);
        }
    }
    if (self->phase == P_EVAL && self->evals_got >= self->evals_expected)
        s_end_round(self);
}

//  ---------------------------------------------------------------------------------------
//  Socket handlers

static int s_on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    zframe_t *identity = NULL;
    hafl_msg_t *msg = NULL;
    hafl_msg_error_t err;
    hafl_traffic_t traffic = {0};
    size_t bytes = 0;
    hafl_wire_status_t status = hafl_wire_recv(sock, true, &self->layout, &identity, &msg, &traffic, &bytes, &err);
    if (status == HAFL_WIRE_INTERRUPTED) {
        zframe_destroy(&identity);
        return 0;
    }
    char key[48];
    hafl_wire_peer(identity, key, sizeof key);
    void *peer = zhash_lookup(self->peers, key);
    s_client_t *c = peer && peer != &s_evaluator_marker ? (s_client_t *)peer : NULL;
    if (status == HAFL_WIRE_MALFORMED) {
        self->malformed++;
        if (c)
            hafl_traffic_add(&c->up, &traffic);
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "malformed");
        if (ev) {
            hafl_log_event_add_string(ev, "peer", key);
            hafl_log_event_add_string(ev, "socket", "server");
            hafl_log_event_add_string(ev, "code", hafl_msg_code_name(err.code));
            hafl_log_event_add_string(ev, "field", err.field);
            hafl_log_event_add_string(ev, "reason", err.text);
            hafl_log_event_add_int(ev, "bytes", (int64_t)bytes);
            hafl_log_event_add_int(ev, "count", (int64_t)self->malformed);
            s_send_event(self, &ev);
        }
        //  Only a HELLO of another major is answered (PROTOCOL.md, versioning); any other
        //  message of another major is counted, logged (above) and dropped.
        if (err.code == HAFL_MSG_EVERSION && err.type == HAFL_MSG_HELLO && identity) {
            char text[HAFL_MSG_MAX_TEXT];
            snprintf(text, sizeof text, "protocol version: %s (server speaks %u.%u)", err.text,
                     HAFL_PROTO_MAJOR, HAFL_PROTO_MINOR);
            s_reject(self, identity, HAFL_REJECT_VERSION, text, "-");
        }
        zframe_destroy(&identity);
        return 0;
    }
    if (c) {
        c->last_seen = zclock_mono();
        if (!c->joined && msg->type != HAFL_MSG_HELLO) {
            //  Declared dead, yet it speaks: it is back (it may be chosen again).
            c->joined = true;
            hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "client-revived");
            if (ev) {
                hafl_log_event_add_int(ev, "client", c->index);
                s_send_event(self, &ev);
            }
        }
        if (msg->type != HAFL_MSG_HELLO)
            hafl_traffic_add(&c->up, &traffic);
    } else if (peer == &s_evaluator_marker)
        self->evaluator_seen = zclock_mono();
    switch (msg->type) {
    case HAFL_MSG_HELLO:
        s_on_hello(self, identity, key, &msg->u.hello, msg->frames ? zmsg_first(msg->frames) : NULL,
                   &traffic);
        break;
    case HAFL_MSG_UPDATE:
        if (c)
            s_on_update(self, c, &msg->u.update);
        else {
            self->unexpected++;
            s_log_text(self, (int32_t)self->round, "unexpected", "peer", key);
        }
        break;
    case HAFL_MSG_EVAL_RESULT:
        if (peer == &s_evaluator_marker)
            s_on_eval_result(self, &msg->u.eval_result);
        else {
            self->unexpected++;
            s_log_text(self, (int32_t)self->round, "unexpected", "peer", key);
        }
        break;
    case HAFL_MSG_HEARTBEAT:
        if (!peer) {
            self->unexpected++;
            s_log_text(self, (int32_t)self->round, "unexpected", "peer", key);
        }
        break;
    default: {
        self->unexpected++;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "unexpected");
        if (ev) {
            hafl_log_event_add_string(ev, "peer", key);
            hafl_log_event_add_string(ev, "type", hafl_msg_type_name(msg->type));
            s_send_event(self, &ev);
        }
        break;
    }
    }
    hafl_msg_destroy(&msg);
    zframe_destroy(&identity);
    return 0;
}

static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    if (self->phase == P_DONE)
        return 0;
    int64_t now = zclock_mono();
    int64_t limit = (int64_t)self->topo->server.heartbeat_ms * self->topo->server.heartbeat_misses;
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_HEARTBEAT);
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        if (!c->joined)
            continue;
        if (now - c->last_seen > limit) {
            c->joined = false;
            s_unreproducible(self, "client %u was declared dead in round %u (heartbeats missed)",
                             i, self->round);
            hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "client-dead");
            if (ev) {
                hafl_log_event_add_int(ev, "client", i);
                hafl_log_event_add_int(ev, "silent_ms", now - c->last_seen);
                s_send_event(self, &ev);
            }
            if (c->state == C_SENT) {
                c->state = C_DEAD;
                s_check_close(self);
            }
            continue;
        }
        if (msg) {
            msg->u.heartbeat.client_index = UINT32_MAX;
            msg->u.heartbeat.seq++;
            msg->u.heartbeat.time_us = (uint64_t)zclock_time() * 1000u;
            s_send_to(self, c->identity, msg, &c->down);
        }
    }
    hafl_msg_destroy(&msg);
    return 0;
}

static int s_on_aggregator(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    zmsg_t *reply = zmsg_recv(sock);
    if (!reply)
        return 0;
    char *what = zmsg_popstr(reply);
    if (what && streq(what, "AGGREGATED") && self->phase == P_AGGREGATE) {
        if (self->agg_job.rc) {
            hafl_adapter_copy_from(self->global, self->backup);
            s_log_text(self, (int32_t)self->round, "aggregate-failed", "reason", self->agg_job.err);
        }
        s_after_aggregate(self);
    } else if (what && streq(what, "VIEWED") && self->phase == P_VIEWS)
        s_on_views(self);
    else if (what && streq(what, "SWAPPED") && self->phase == P_SWAP) {
        char *status = zmsg_popstr(reply);
        char *text = zmsg_popstr(reply);
        if (status && streq(status, "0") && text)
            snprintf(self->strategy, sizeof self->strategy, "%s", text);
        zstr_free(&status);
        zstr_free(&text);
        if (self->stop_requested)
            s_stop_now(self);
        else
            s_begin_round(self);
    }
    zstr_free(&what);
    zmsg_destroy(&reply);
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Control

static void s_json_string(char *out, size_t outlen, const char *text)
{
    size_t used = 0;
    for (const char *p = text; *p && used + 8 < outlen; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            used += (size_t)snprintf(out + used, outlen - used, "\\%c", ch);
        else if (ch < 0x20)
            used += (size_t)snprintf(out + used, outlen - used, "\\u%04x", ch);
        else
            out[used++] = (char)ch;
    }
    out[used] = 0;
}

static const char *s_phase_name[] = {"join", "views", "collect", "aggregate",
                                     "swap", "eval",  "done"};

static void s_status_json(s_self_t *self, char *json, size_t jsonlen)
{
    uint32_t alive = 0;
    char stragglers[2048] = "", pending[80] = "";
    for (uint32_t i = 0; i < self->count; i++) {
        alive += self->clients[i].joined;
        if (self->clients[i].straggle_ms > 0 && self->clients[i].state == C_SENT)
            s_append_list(stragglers, sizeof stragglers, i);
    }
    s_json_string(pending, sizeof pending, self->pending_swap);
    hafl_traffic_t up = self->total_up, down = self->total_down;
    for (uint32_t i = 0; i < self->count; i++) {
        hafl_traffic_add(&up, &self->clients[i].up);
        hafl_traffic_add(&down, &self->clients[i].down);
    }
    snprintf(json, jsonlen,
             "{\"run\":\"%s\",\"round\":%u,\"rounds\":%u,\"phase\":\"%s\",\"clients\":%u,"
             "\"alive\":%u,\"stragglers\":[%s],\"strategy\":\"%s\",\"pending_swap\":\"%s\","
             "\"scheme\":\"%s\",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64
             ",\"malformed\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"late\":%" PRIu64
             ",\"evaluator\":%s}",
             self->args->run_id, self->round, self->topo->server.rounds, s_phase_name[self->phase],
             self->count, alive, stragglers, self->strategy, pending,
             hafl_scheme_name(self->scheme), hafl_traffic_total(&up), hafl_traffic_total(&down),
             self->malformed, self->unexpected, self->late_total,
             self->evaluator ? "true" : "false");
}

//  Executes one control command; fills json and returns whether it succeeded.
static bool s_control(s_self_t *self, const hafl_control_t *c, char *json, size_t jsonlen)
{
    char arg0[256] = "";
    if (c->argc > 0)
        s_json_string(arg0, sizeof arg0, c->argv[0]);
    if (streq(c->command, "status")) {
        s_status_json(self, json, jsonlen);
        return true;
    }
    if (streq(c->command, "swap-aggregator")) {
        if (c->argc != 1 || !hafl_strategy_known(c->argv[0])) {
            snprintf(json, jsonlen, "{\"error\":\"unknown strategy '%s'\"}", arg0);
            return false;
        }
        if (self->phase == P_DONE) {
            snprintf(json, jsonlen, "{\"error\":\"the federation has ended\"}");
            return false;
        }
        char why[256], why_json[300];
        if (hafl_topology_strategy_fits(self->topo, c->argv[0], why, sizeof why)) {
            s_json_string(why_json, sizeof why_json, why);
            snprintf(json, jsonlen, "{\"error\":\"%s\"}", why_json);
            return false;
        }
        snprintf(self->pending_swap, sizeof self->pending_swap, "%s", c->argv[0]);
        //  Applied at the next round boundary (s_next_round): the round in progress, if any,
        //  still aggregates with the current strategy.
        uint32_t first = self->round + 1;
        snprintf(json, jsonlen,
                 "{\"swap\":\"%s\",\"from\":\"%s\",\"after_round\":%u,\"first_round\":%u}", arg0,
                 self->strategy, first - 1, first);
        s_log_text(self, (int32_t)self->round, "swap-requested", "to", c->argv[0]);
        return true;
    }
    if (streq(c->command, "fault")) {
        bool straggle = c->argc == 3 && streq(c->argv[0], "straggle");
        bool drop = c->argc == 2 && streq(c->argv[0], "drop");
        char *end = NULL;
        unsigned long client = (straggle || drop) ? strtoul(c->argv[1], &end, 10) : 0;
        if ((!straggle && !drop) || !end || *end || end == c->argv[1] || client >= self->count) {
            snprintf(json, jsonlen,
                     "{\"error\":\"usage: fault straggle CLIENT DELAY_MS | fault drop CLIENT "
                     "(CLIENT below %u)\"}",
                     self->count);
            return false;
        }
        unsigned long delay = 0;
        if (straggle) {
            delay = strtoul(c->argv[2], &end, 10);
            if (!end || *end || end == c->argv[2] || delay == 0 || delay > 86400000ul) {
                snprintf(json, jsonlen, "{\"error\":\"DELAY_MS must be 1..86400000\"}");
                return false;
            }
            self->clients[client].ctl_straggle_ms = (uint32_t)delay;
        } else
            self->clients[client].ctl_drop = true;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "fault-injected");
        if (ev) {
            hafl_log_event_add_string(ev, "fault", straggle ? "straggle" : "drop");
            hafl_log_event_add_int(ev, "client", (int64_t)client);
            hafl_log_event_add_int(ev, "delay_ms", (int64_t)delay);
            hafl_log_event_add_int(ev, "applies_to_round", self->round + 1);
            s_send_event(self, &ev);
        }
        snprintf(json, jsonlen, "{\"fault\":\"%s\",\"client\":%lu,\"delay_ms\":%lu,\"round\":%u}",
                 straggle ? "straggle" : "drop", client, delay, self->round + 1);
        return true;
    }
    if (streq(c->command, "stop")) {
        snprintf(json, jsonlen, "{\"stopping\":true,\"round\":%u}", self->round);
        if (!self->stop_requested)
            self->stop_reason = "stopped by control command";
        self->stop_requested = true;
        return true;
    }
    char command[128];
    s_json_string(command, sizeof command, c->command);
    snprintf(json, jsonlen,
             "{\"error\":\"unknown command '%s' (status, swap-aggregator, fault, stop)\"}",
             command);
    return false;
}

//  Apply a stop request now, unless the aggregator holds the global adapter (then its reply
//  applies it).
static void s_apply_stop(s_self_t *self)
{
    if (!self->stop_requested || self->phase == P_DONE)
        return;
    if (self->phase == P_VIEWS || self->phase == P_AGGREGATE || self->phase == P_SWAP)
        return;
    if (self->phase == P_EVAL) {
        s_end_round(self); //  aggregated already: record it; it then finishes
        return;
    }
    if (self->phase == P_COLLECT) {
        s_log_text(self, (int32_t)self->round, "round-aborted", "reason", "stop");
        self->round--; //  not done: the last round done is the one before
    }
    s_stop_now(self);
}

//  A peer failed the CURVE handshake (unknown key, no CURVE, wrong server key): log why.
//  The router's watch: refused handshakes are logged with their reason; connections are named
//  when accepted (the address behind the descriptor), and each one that closes is logged with
//  that address. libzmq closes a connection without a word when a frame exceeds the socket's
//  size cap, so this line is the only trace such a peer leaves; it also marks peers that left
//  or whose link broke. A descriptor already closed when its ACCEPTED event is read is named
//  "unknown".
static int s_on_watch(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    hafl_watch_event_t e;
    if (hafl_security_watch_event(sock, &e) != 0)
        return 0;
    char fd[16], peer[80] = "unknown";
    snprintf(fd, sizeof fd, "%u", e.value);
    if (e.event == ZMQ_EVENT_ACCEPTED) {
        hafl_wire_socket_peer((int)e.value, peer, sizeof peer);
        zhash_update(self->conns, fd, peer); //  autofree: the table keeps its own copy
        return 0;
    }
    if (e.event == ZMQ_EVENT_DISCONNECTED) {
        const char *known = zhash_lookup(self->conns, fd);
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "connection-closed");
        if (ev) {
            hafl_log_event_add_string(ev, "peer", known ? known : peer);
            hafl_log_event_add_string(ev, "endpoint", e.endpoint);
            hafl_log_event_add_int(ev, "frame_cap", self->args->max_msg_bytes);
            hafl_log_event_add_string(ev, "why", "the peer left, the link broke, or it sent a "
                                                 "frame above frame_cap bytes (libzmq drops "
                                                 "such a peer)");
            s_send_event(self, &ev);
        }
        zhash_delete(self->conns, fd);
        return 0;
    }
    char why[256];
    if (hafl_security_describe(&e, false, why, sizeof why) == HAFL_HANDSHAKE_REFUSED ||
        (why[0] && e.event != ZMQ_EVENT_HANDSHAKE_SUCCEEDED))
        s_log_text(self, -1, "peer-refused", "reason", why);
    return 0;
}

//  Whether a control message may be obeyed: with CURVE, when the allow-list binds a key to the
//  operator, only that key (the connection's User-Id, read from a frame of the message itself:
//  the routing-id frame carries none after a poll, see s_binding_refused).
static bool s_operator(s_self_t *self, zmsg_t *zmsg)
{
    if (!hafl_security_enabled(self->args->security) ||
        !hafl_security_place_bound(self->args->security, HAFL_BOUND_OPERATOR))
        return true;
    zframe_t *frame = zmsg_first(zmsg);
    const char *key = frame ? zframe_meta(frame, "User-Id") : NULL;
    int64_t bound = HAFL_BOUND_NONE;
    return key && hafl_security_binding(self->args->security, key, &bound) == 0 &&
           bound == HAFL_BOUND_OPERATOR;
}

static int s_on_control(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    zmsg_t *zmsg = zmsg_recv(sock);
    if (!zmsg)
        return 0;
    zframe_t *identity = zmsg_pop(zmsg);
    zframe_t *delimiter = NULL;
    zframe_t *next = zmsg_first(zmsg);
    if (next && zframe_size(next) == 0)
        delimiter = zmsg_pop(zmsg); //  a REQ peer: keep its envelope for the reply
    char key[48];
    hafl_wire_peer(identity, key, sizeof key);
    hafl_msg_error_t err;
    hafl_msg_t *msg = hafl_msg_decode(zmsg, &err);
    hafl_msg_t *reply = hafl_msg_new(HAFL_MSG_CONTROL_REPLY);
    char *json = malloc(65536);
    bool ok = false;
    if (!msg || msg->type != HAFL_MSG_CONTROL) {
        self->malformed++;
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "malformed");
        if (ev) {
            hafl_log_event_add_string(ev, "peer", key);
            hafl_log_event_add_string(ev, "socket", "control");
            hafl_log_event_add_string(ev, "reason", msg ? "not a control command" : err.text);
            hafl_log_event_add_int(ev, "count", (int64_t)self->malformed);
            s_send_event(self, &ev);
        }
        if (json)
            snprintf(json, 65536, "{\"error\":\"malformed control message\"}");
    } else if (json && !s_operator(self, zmsg)) {
        snprintf(json, 65536, "{\"error\":\"only the operator's certificate may control this "
                 "server (hafl keygen --clients writes operator.cert_secret)\"}");
        s_log_text(self, (int32_t)self->round, "control-refused", "peer", key);
    } else if (json) {
        ok = s_control(self, &msg->u.control, json, 65536);
        hafl_log_event_t *ev = s_event(self, (int32_t)self->round, "control");
        if (ev) {
            hafl_log_event_add_string(ev, "peer", key);
            hafl_log_event_add_string(ev, "command", msg->u.control.command);
            hafl_log_event_add_bool(ev, "ok", ok);
            s_send_event(self, &ev);
        }
    }
    if (reply && json && identity) {
        reply->u.control_reply.ok = ok;
        reply->u.control_reply.json = json;
        json = NULL;
        zmsg_t *out = hafl_msg_encode(reply, NULL);
        if (out) {
            if (delimiter)
                zmsg_pushmem(out, "", 0);
            zmsg_push(out, identity);
            identity = NULL;
            if (zmsg_send(&out, sock))
                zmsg_destroy(&out);
        }
    }
    free(json);
    hafl_msg_destroy(&reply);
    hafl_msg_destroy(&msg);
    zframe_destroy(&identity);
    zframe_destroy(&delimiter);
    zmsg_destroy(&zmsg);
    s_apply_stop(self);
    return 0;
}

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    s_self_t *self = (s_self_t *)arg;
    zmsg_t *msg = zmsg_recv(pipe);
    char *command = msg ? zmsg_popstr(msg) : NULL;
    if (!command || streq(command, "$TERM")) {
        zstr_free(&command);
        zmsg_destroy(&msg);
        return -1;
    }
    if (streq(command, "STOP")) {
        //  The node asks only when it got a signal (hafl_node_wait), and names it.
        char *signal_name = zmsg_popstr(msg);
        if (!self->stop_requested) {
            snprintf(self->stop_text, sizeof self->stop_text, "stopped by %s",
                     signal_name && signal_name[0] ? signal_name : "a signal");
            self->stop_reason = self->stop_text;
        }
        zstr_free(&signal_name);
        self->stop_requested = true;
        s_apply_stop(self);
    }
    zstr_free(&command);
    zmsg_destroy(&msg);
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Construction

static void s_destroy(s_self_t *self)
{
    zactor_destroy(&self->aggregator);
    zloop_destroy(&self->loop);
    for (uint32_t i = 0; self->clients && i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        zframe_destroy(&c->identity);
        free(c->merged_counts);
        free(c->roles);
        free(c->trained);
        hafl_adapter_destroy(&c->upload);
    }
    free(self->clients);
    zframe_destroy(&self->evaluator);
    zhash_destroy(&self->peers);
    zhash_destroy(&self->conns);
    free(self->uploads);
    free(self->view_clients);
    free(self->view_ranks);
    free(self->views);
    hafl_adapter_destroy(&self->global);
    hafl_adapter_destroy(&self->backup);
    if (self->csv)
        fclose(self->csv);
    hafl_events_destroy(&self->events);
    if (self->router)
        hafl_security_unwatch(self->router, &self->watch);
    zsock_destroy(&self->router);
    zsock_destroy(&self->control);
    hafl_layout_clear(&self->layout);
}

static int s_setup(s_self_t *self, hafl_server_args_t *args)
{
    const hafl_topology_t *topo = args->topology;
    char *err = args->err;
    size_t errlen = sizeof args->err;
    if (hafl_layout_copy(&self->layout, hafl_task_layout(args->task)))
        goto nomem;
    self->slots = (size_t)self->layout.n_matrices * self->layout.rank;
    hafl_task_base_digest(args->task, self->digest);
    if (hafl_scheme_parse(topo->server.scheme, &self->scheme)) {
        snprintf(err, errlen, "%s: server/scheme: unknown scheme '%s'", topo->path,
                 topo->server.scheme);
        return -1;
    }
    snprintf(self->strategy, sizeof self->strategy, "%s", topo->server.aggregator);
    self->count = topo->clients.count;
    self->clients = calloc(self->count, sizeof(s_client_t));
    self->uploads = calloc(self->count + 1, sizeof(hafl_upload_t));
    self->view_clients = calloc(self->count + 1, sizeof(uint32_t));
    self->view_ranks = calloc(self->count + 1, sizeof(uint32_t));
    self->views = calloc(self->count + 1, sizeof(hafl_adapter_t *));
    self->peers = zhash_new();
    self->global = hafl_adapter_new(&self->layout);
    self->backup = hafl_adapter_new(&self->layout);
    if (!self->clients || !self->uploads || !self->view_clients || !self->view_ranks ||
        !self->views || !self->peers || !self->global || !self->backup)
        goto nomem;
    for (uint32_t i = 0; i < self->count; i++) {
        s_client_t *c = &self->clients[i];
        c->index = i;
        c->merged_counts = calloc(self->layout.n_matrices + 1, sizeof(uint32_t));
        c->roles = calloc(self->slots + 1, 1);
        c->trained = calloc(self->slots + 1, 1);
        if (!c->merged_counts || !c->roles || !c->trained)
            goto nomem;
    }
    hafl_adapter_init(self->global, topo->seed);
    self->first_round = 1;
    if (args->resume && s_resume(self, args->resume, err, errlen))
        return -1;
    if (args->log_endpoint) {
        self->events = hafl_events_new(args->log_endpoint, args->run_id, "server", args->log_auth);
        if (!self->events) {
            snprintf(err, errlen, "server: cannot connect to the logger at %s", args->log_endpoint);
            return -1;
        }
    }
    if (self->resume_note[0])
        s_log_text(self, (int32_t)self->round, "resume-fallback", "reason", self->resume_note);
    char path[4096];
    snprintf(path, sizeof path, "%s/rounds.csv", args->run_dir);
    bool exists = access(path, F_OK) == 0;
    self->csv = fopen(path, "a");
    if (!self->csv) {
        snprintf(err, errlen, "%.200s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (!exists)
        s_csv_header(self);
    self->router = zsock_new(ZMQ_ROUTER);
    self->control = zsock_new(ZMQ_ROUTER);
    if (!self->router || !self->control)
        goto nomem;
    hafl_wire_limit(self->router, args->max_msg_bytes);
    hafl_wire_limit(self->control, HAFL_MSG_MAX_JSON + 65536);
    //  No ROUTER_HANDOVER: with it, a connection that sets a live peer's routing id (they are
    //  no secret: events name them) would take over that peer's place without a HELLO. A
    //  reconnecting client gets a new routing id and joins again (HELLO with its session).
    //  Networked endpoints: watch handshakes and connections first, so that a refused peer is
    //  logged with its reason and a connection libzmq drops (a frame above the cap) with its
    //  address, then arm the socket (both must precede the bind).
    if (strncmp(args->endpoint, "inproc://", 9) != 0 &&
        (!(self->conns = zhash_new()) ||
         !(self->watch = hafl_security_watch(self->router, err, errlen))))
        return -1;
    if (self->conns)
        zhash_autofree(self->conns);
    if (hafl_security_apply_server(args->security, self->router, args->endpoint, err, errlen))
        return -1;
    if (zsock_bind(self->router, "%s", args->endpoint) < 0) {
        snprintf(err, errlen, "server: cannot bind %s: %s", args->endpoint,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    //  With CURVE the control socket is armed like the clients' one: only allow-listed keys
    //  reach it, and s_on_control obeys only the operator's key when the allow-list binds one.
    if (hafl_security_apply_server(args->security, self->control, args->control, err, errlen))
        return -1;
    if (zsock_bind(self->control, "%s", args->control) < 0) {
        snprintf(err, errlen, "server: cannot bind control %s: %s", args->control,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    hafl_aggregator_args_t agg = {0};
    agg.layout = &self->layout;
    agg.strategy = self->strategy;
    agg.seed = topo->seed;
    agg.options = (hafl_strategy_options_t){topo->server.trim, topo->server.clip_norm};
    agg.log_endpoint = args->log_endpoint;
    agg.log_auth = args->log_auth;
    agg.run_id = args->run_id;
    self->aggregator = hafl_aggregator_new(&agg);
    if (!self->aggregator) {
        snprintf(err, errlen, "%s", agg.err[0] ? agg.err : "aggregator: cannot start");
        return -1;
    }
    self->loop = zloop_new();
    if (!self->loop)
        goto nomem;
    return 0;
nomem:
    snprintf(err, errlen, "server: out of memory");
    return -1;
}

void hafl_server_actor(zsock_t *pipe, void *args_)
{
    hafl_server_args_t *args = (hafl_server_args_t *)args_;
    s_self_t self_ = {0}, *self = &self_;
    self->pipe = pipe;
    self->args = args;
    self->topo = args->topology;
    self->task = args->task;
    //  The n_samples cap: the topology's, or the largest shard the task gives any client.
    self->max_samples = args->topology->server.max_samples;
    bool derived = self->max_samples == 0;
    for (uint32_t i = 0; derived && i < args->topology->clients.count; i++) {
        uint64_t n = hafl_task_client_samples(args->task, i);
        self->max_samples = n > self->max_samples ? n : self->max_samples;
    }
    self->deadline_timer = self->join_timer = self->join_limit_timer = self->eval_timer = -1;
    self->started = zclock_mono();
    self->join_started = self->started;
    args->err[0] = 0;
    //  Session secrets come from libsodium's generator (s_welcome), which needs it initialised.
    int rc = sodium_init() < 0 ? -1 : 0;
    if (rc)
        snprintf(args->err, sizeof args->err, "server: libsodium failed to initialise");
    else
        rc = s_setup(self, args);
    args->status = rc;
    zsock_signal(pipe, rc ? 1 : 0);
    if (rc) {
        s_destroy(self);
        return;
    }
    self->round = self->first_round - 1;
    hafl_log_event_t *ev = s_event(self, -1, "server-start");
    if (ev) {
        hafl_log_event_add_string(ev, "endpoint", args->endpoint);
        hafl_log_event_add_string(ev, "control", args->control);
        hafl_log_event_add_string(ev, "scheme", hafl_scheme_name(self->scheme));
        hafl_log_event_add_string(ev, "strategy", self->strategy);
        hafl_log_event_add_int(ev, "clients", self->count);
        hafl_log_event_add_int(ev, "rounds", self->topo->server.rounds);
        hafl_log_event_add_int(ev, "first_round", self->first_round);
        hafl_log_event_add_int(ev, "needed", s_needed(self));
        hafl_log_event_add_int(ev, "join_timeout_ms", self->topo->server.join_timeout_ms);
        hafl_log_event_add_string(ev, "run_dir", args->run_dir);
        s_send_event(self, &ev);
    }
    zloop_set_nonstop(self->loop, true);
    zloop_reader(self->loop, pipe, s_on_pipe, self);
    zloop_reader(self->loop, self->control, s_on_control, self);
    zloop_reader(self->loop, self->router, s_on_router, self);
    if (self->watch)
        zloop_reader(self->loop, self->watch, s_on_watch, self);
    zloop_reader(self->loop, zactor_sock(self->aggregator), s_on_aggregator, self);
    zloop_timer(self->loop, self->topo->server.heartbeat_ms, 0, s_on_heartbeat, self);
    self->join_timer =
        zloop_timer(self->loop, self->topo->server.deadline_ms, 0, s_on_join_tick, self);
    if (self->topo->server.join_timeout_ms > 0)
        self->join_limit_timer =
            zloop_timer(self->loop, self->topo->server.join_timeout_ms, 1, s_on_join_limit, self);
    self->phase = P_JOIN;
    zloop_start(self->loop);
    s_destroy(self);
}

zactor_t *hafl_server_new(hafl_server_args_t *args)
{
    args->status = -1;
    args->err[0] = 0;
    zactor_t *actor = zactor_new(hafl_server_actor, args);
    if (actor && args->status != 0)
        zactor_destroy(&actor);
    return actor;
}
