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

    State across a resume (hafl_client_state.h): with state_dir set and checkpoints on
    (server/checkpoint_every > 0), the client writes its cross-round state (the trainer's
    importance EMAs) into state_dir at start (round 0, fresh), whenever a training job comes
    back (before its upload leaves, so a checkpoint of that round always finds it) and when it
    crashes (fresh again), keeping the files a checkpoint may still need. A failed write is
    logged (state-save-failed) and removes the client's files, so a resume from there refuses
    instead of continuing from an older state. With resume_dir set, it starts from its newest
    state in resume_dir at or before resume_round, and copies it into state_dir; a missing or
    corrupt file fails the start with a one-line reason naming it. When resume_round is 0 (a
    client host whose folder has no checkpoint/) the bound is the round before the first
    ROUND it receives, and a failure there ends the actor with that reason.

    Refusal: on any endpoint but inproc:// the client watches its handshakes
    (hafl_security_connect). When the server refuses one (a certificate outside the allow-list,
    a security mismatch), or it is lost HAFL_SECURITY_MAX_LOST times in a row (the server's
    key is not the one we hold), the client logs handshake-refused with the reason (naming the
    server's endpoint), stops connecting and ends with "client N: REASON". A server that is not
    up yet is no refusal: the client keeps connecting until it is.

    Ends when the server sends REJECT or refuses the handshake: the actor then sends "DONE"
    s(reason) on its pipe and waits for $TERM. Pipe commands: $TERM.
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
    const struct hafl_log_auth_t *log_auth; //  the emitter's credentials (hafl_log_auth.h)
    const char *run_id;              //  run id of events sent before WELCOME (NULL: "")
    const char *pool;                //  compute pool endpoint (hafl_pool_endpoint)
    int64_t max_msg_bytes;           //  inbound frame cap
    const uint8_t *digest;           //  base digest to announce; NULL: the task's own
    const hafl_security_t *security; //  CURVE client role on tcp; NULL or off: none
    const char *state_dir;           //  run folder to keep its state in; NULL: none
    const char *resume_dir;          //  run folder to take its state from; NULL: fresh
    uint32_t resume_round;           //  the checkpoint's round; 0: before its first ROUND
    //  Out: 0 once started, -1 with err.
    int status;
    char err[256];
} hafl_client_args_t;

zactor_t *hafl_client_new(hafl_client_args_t *args);
void hafl_client_actor(zsock_t *pipe, void *args);

#endif
