/*  hafl_evaluator: the evaluator actor. It joins the server like a client (HELLO with client
    index HAFL_EVALUATOR_INDEX and the task's base digest, so an evaluator built on another base
    is refused too), then answers each EVAL_REQUEST with an EVAL_RESULT: it rebuilds the adapter
    the request describes (components present, merged base terms, head) and scores it with
    hafl_task_evaluate on the held-out set.

    Runs until $TERM. When the server ends the federation (REJECT "full") or refuses it (REJECT,
    or a refused handshake as for a client: hafl_client.h), the actor sends "DONE" s(reason) on
    its pipe and waits for $TERM.
*/
#ifndef HAFL_EVALUATOR_H
#define HAFL_EVALUATOR_H

#include "hafl_security.h"
#include "hafl_task.h"

#include <czmq.h>
#include <stdint.h>

//  The client index an evaluator announces in HELLO (the largest the codec admits).
#define HAFL_EVALUATOR_INDEX (UINT32_MAX - 1)

typedef struct {
    const hafl_task_t *task;  //  shared, must outlive the actor
    const char *server;       //  server endpoint to connect to
    const char *log_endpoint; //  logger PULL endpoint (NULL: no events)
    const struct hafl_log_auth_t *log_auth; //  the emitter's credentials (hafl_log_auth.h)
    const char *run_id;       //  run id of events sent before WELCOME (NULL: "")
    uint32_t max_examples;    //  0: the whole held-out set
    int64_t max_msg_bytes;    //  inbound frame cap (ZMQ_MAXMSGSIZE)
    const hafl_security_t *security; //  CURVE client role on tcp; NULL or off: none
    //  Out: 0 once started, -1 with err.
    int status;
    char err[256];
} hafl_evaluator_args_t;

zactor_t *hafl_evaluator_new(hafl_evaluator_args_t *args);
void hafl_evaluator_actor(zsock_t *pipe, void *args);

#endif
