/*  hafl_aggregator: the strategy actor. See hafl_aggregator.h.

    A failed aggregation leaves the job's rc at -1; the strategies update the global adapter in
    place, so on failure the server restores its copy from before the round (it keeps one).
*/
#include "hafl_aggregator.h"
#include "hafl_logger.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    zsock_t *pipe;
    hafl_layout_t layout;
    uint64_t seed;
    hafl_strategy_options_t options;
    hafl_strategy_t *strategy;
    hafl_events_t *events; //  NULL when not logging
} s_self_t;

static void s_log_swap(s_self_t *self, int32_t round, const char *from, const char *to,
                       const char *error)
{
    if (!self->events)
        return;
    hafl_log_event_t *ev = hafl_events_start(self->events, round, error ? "swap-failed" : "swap");
    if (!ev)
        return;
    hafl_log_event_add_string(ev, "from", from);
    hafl_log_event_add_string(ev, "to", to);
    if (error)
        hafl_log_event_add_string(ev, "reason", error);
    hafl_events_send(self->events, &ev);
}

static void s_aggregate(s_self_t *self, hafl_aggregate_job_t *job)
{
    int64_t start = zclock_mono();
    job->err[0] = 0;
    job->rc = hafl_strategy_aggregate(self->strategy, job->global, job->round, job->uploads, job->n,
                                      job->err, sizeof job->err);
    job->wall_ms = (uint32_t)(zclock_mono() - start);
    if (self->events) {
        hafl_log_event_t *ev = hafl_events_start(self->events, (int32_t)job->round,
                                                 job->rc ? "aggregate-failed" : "aggregate");
        if (ev) {
            hafl_log_event_add_string(ev, "strategy", hafl_strategy_name(self->strategy));
            hafl_log_event_add_int(ev, "uploads", (int64_t)job->n);
            hafl_log_event_add_int(ev, "wall_ms", job->wall_ms);
            if (job->rc)
                hafl_log_event_add_string(ev, "reason", job->err);
            hafl_events_send(self->events, &ev);
        }
    }
}

static void s_views(s_self_t *self, hafl_views_job_t *job)
{
    job->rc = 0;
    job->err[0] = 0;
    for (size_t i = 0; i < job->n && job->rc == 0; i++) {
        job->views[i] = hafl_adapter_new(&self->layout);
        if (!job->views[i]) {
            snprintf(job->err, sizeof job->err, "aggregator: out of memory for client views");
            job->rc = -1;
            break;
        }
        job->rc =
            hafl_strategy_client_view(self->strategy, job->global, job->clients[i], job->ranks[i],
                                      job->views[i], job->err, sizeof job->err);
    }
    if (job->rc)
        for (size_t i = 0; i < job->n; i++)
            hafl_adapter_destroy(&job->views[i]);
}

static void s_swap(s_self_t *self, const char *name, int32_t round)
{
    char err[256] = "";
    char from[64];
    snprintf(from, sizeof from, "%s", hafl_strategy_name(self->strategy));
    hafl_strategy_t *next = hafl_strategy_new(name, &self->layout, self->seed, err, sizeof err);
    if (next && hafl_strategy_set_options(next, &self->options, err, sizeof err))
        hafl_strategy_destroy(&next);
    if (!next) {
        s_log_swap(self, round, from, name, err);
        zsock_send(self->pipe, "sis", "SWAPPED", -1, err);
        return;
    }
    hafl_strategy_destroy(&self->strategy);
    self->strategy = next;
    s_log_swap(self, round, from, name, NULL);
    zsock_send(self->pipe, "sis", "SWAPPED", 0, hafl_strategy_name(next));
}

void hafl_aggregator_actor(zsock_t *pipe, void *args_)
{
    hafl_aggregator_args_t *args = (hafl_aggregator_args_t *)args_;
    s_self_t self_ = {0}, *self = &self_;
    self->pipe = pipe;
    self->seed = args->seed;
    args->status = -1;
    if (hafl_layout_copy(&self->layout, args->layout)) {
        snprintf(args->err, sizeof args->err, "aggregator: out of memory");
        zsock_signal(pipe, 1);
        return;
    }
    self->options = args->options;
    self->strategy =
        hafl_strategy_new(args->strategy, &self->layout, self->seed, args->err, sizeof args->err);
    if (self->strategy &&
        hafl_strategy_set_options(self->strategy, &self->options, args->err, sizeof args->err))
        hafl_strategy_destroy(&self->strategy);
    if (self->strategy && args->log_endpoint) {
        self->events = hafl_events_new(args->log_endpoint, args->run_id, "aggregator",
                                       args->log_auth);
        if (!self->events)
            snprintf(args->err, sizeof args->err, "aggregator: cannot connect to logger at %s",
                     args->log_endpoint);
    }
    bool ok = self->strategy && (self->events || !args->log_endpoint);
    args->status = ok ? 0 : -1;
    zsock_signal(pipe, ok ? 0 : 1);
    while (ok) {
        zmsg_t *msg = zmsg_recv(pipe);
        if (!msg && zmq_errno() == EINTR)
            continue; //  a signal: the server decides when the run ends, and sends $TERM
        if (!msg)
            break;
        char *command = zmsg_popstr(msg);
        if (!command || streq(command, "$TERM")) {
            zstr_free(&command);
            zmsg_destroy(&msg);
            break;
        }
        if (streq(command, "AGGREGATE") || streq(command, "VIEWS")) {
            zframe_t *frame = zmsg_pop(msg);
            void *pointer = NULL;
            if (frame && zframe_size(frame) == sizeof(void *))
                memcpy(&pointer, zframe_data(frame), sizeof(void *));
            zframe_destroy(&frame);
            if (pointer && streq(command, "AGGREGATE")) {
                s_aggregate(self, (hafl_aggregate_job_t *)pointer);
                zsock_send(pipe, "sp", "AGGREGATED", pointer);
            } else if (pointer) {
                s_views(self, (hafl_views_job_t *)pointer);
                zsock_send(pipe, "sp", "VIEWED", pointer);
            }
        } else if (streq(command, "SWAP")) {
            char *name = zmsg_popstr(msg);
            char *round = zmsg_popstr(msg);
            s_swap(self, name ? name : "", round ? atoi(round) : -1);
            zstr_free(&name);
            zstr_free(&round);
        }
        zstr_free(&command);
        zmsg_destroy(&msg);
    }
    hafl_events_destroy(&self->events);
    hafl_strategy_destroy(&self->strategy);
    hafl_layout_clear(&self->layout);
}

zactor_t *hafl_aggregator_new(hafl_aggregator_args_t *args)
{
    args->status = -1;
    args->err[0] = 0;
    zactor_t *actor = zactor_new(hafl_aggregator_actor, args);
    if (actor && args->status != 0)
        zactor_destroy(&actor);
    return actor;
}
