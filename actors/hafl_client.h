/*  hafl_client: the client actor. One actor is one federated client: a DEALER to the server, a
    trainer on its data shard, a rank budget.

    Life: HELLO (index, rank budget, sample count, base digest) -> WELCOME (layout checked
    against the task; run id for its events) -> for each ROUND: install the received components
    and merged terms, hand training to the compute pool (hafl_pool.h) so the actor keeps
    heartbeating while it trains, then UPDATE with the components it trained (role TRAINABLE),
    their local scores, the head, its sample count and loss. A straggle delay from the server
    holds the finished upload on a loop timer. A crash (hafl_faults.h) drops all local state and
    rejoins with rejoin = true. A ROUND that arrives while an older one is still training makes
    the older one abandoned (logged, never uploaded).

    Ends when the server sends REJECT: the actor then sends "DONE" s(reason) on its pipe and
    waits for $TERM. Pipe commands: $TERM.
*/
#ifndef HAFL_CLIENT_H
#define HAFL_CLIENT_H

#include "hafl_task.h"
#include "hafl_security.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <stdint.h>

typedef struct {
    hafl_task_t *task;               //  shared, must outlive the actor
    const hafl_topology_t *topology; //  seed, faults, weight decay; must outlive the actor
    uint32_t index;                  //  client number, < clients/count
    const char *server;              //  server endpoint
    const char *log_endpoint;        //  logger PULL endpoint (NULL: no events)
    const char *pool;                //  compute pool endpoint (hafl_pool_endpoint)
    int64_t max_msg_bytes;           //  inbound frame cap
    const uint8_t *digest;           //  base digest to announce; NULL: the task's own
    const hafl_security_t *security; //  CURVE client role on tcp; NULL or off: none
    //  Out: 0 once started, -1 with err.
    int status;
    char err[256];
} hafl_client_args_t;

zactor_t *hafl_client_new(hafl_client_args_t *args);
void hafl_client_actor(zsock_t *pipe, void *args);

#endif
