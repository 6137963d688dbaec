/*  hafl_aggregator: the aggregator actor, one hafl_strategy_t behind the server's pipe.

    The server starts it and talks to it over the actor's pipe, an inproc PAIR. Jobs travel as
    pointers (hand-off): from the command until its reply, the job and everything it points to
    belong to the aggregator and the server must not touch them. Commands and replies:
        "AGGREGATE" p(hafl_aggregate_job_t *)  ->  "AGGREGATED" p(same job)
        "VIEWS"     p(hafl_views_job_t *)      ->  "VIEWED" p(same job)
        "SWAP" s(name) i(round)                ->  "SWAPPED" i(0 ok / -1) s(strategy or reason)
    A swap replaces the strategy with hafl_strategy_new(name) under the same options (trim,
    clip_norm: settings of the run, not of one strategy); the global adapter is the whole
    carried state, so nothing else moves. The server only sends SWAP between rounds (after the
    round's AGGREGATE reply, before the next VIEWS), which is what makes a swap lose or double
    count no upload. Every aggregation and swap is logged with its round.
*/
#ifndef HAFL_AGGREGATOR_H
#define HAFL_AGGREGATOR_H

#include "hafl_adapter.h"
#include "hafl_strategy.h"

#include <czmq.h>
#include <stdint.h>

typedef struct {
    const hafl_layout_t *layout; //  copied by the actor
    const char *strategy;        //  initial strategy name
    uint64_t seed;
    //  trim and clip_norm: settings of the run, applied to every strategy it swaps in
    hafl_strategy_options_t options;
    const char *log_endpoint; //  logger PULL endpoint, NULL for no events
    const struct hafl_log_auth_t *log_auth; //  the emitter's credentials (hafl_log_auth.h)
    const char *run_id;
    //  Out, valid once hafl_aggregator_new returns: 0, or -1 with the reason.
    int status;
    char err[256];
} hafl_aggregator_args_t;

typedef struct {
    uint32_t round;
    hafl_adapter_t *global;       //  folded in place
    const hafl_upload_t *uploads; //  [n], sorted by client_index
    size_t n;
    int rc; //  out: 0, or -1 with err (global then unchanged? see .c)
    char err[256];
    uint32_t wall_ms;
} hafl_aggregate_job_t;

typedef struct {
    const hafl_adapter_t *global;
    size_t n;
    const uint32_t *clients; //  [n] client indices
    const uint32_t *ranks;   //  [n] their rank budgets
    hafl_adapter_t **views;  //  [n] out: allocated by the aggregator, owned by the caller
    int rc;
    char err[256];
} hafl_views_job_t;

//  Start the actor; args are read before it returns. NULL with args->err on failure.
zactor_t *hafl_aggregator_new(hafl_aggregator_args_t *args);
void hafl_aggregator_actor(zsock_t *pipe, void *args);

#endif
