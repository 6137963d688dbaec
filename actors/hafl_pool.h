/*  hafl_pool: a bounded pool of compute slots shared by the in-process clients of one process.

    A hundred client actors in one process must not all train at once on two cores, and a client
    that is training must still answer heartbeats. So a client does not train on its own thread:
    it hands a training job to the pool and keeps polling its sockets; one of `slots` worker
    threads (default: the number of cores) runs it and hands it back. Jobs wait in FIFO order.

    Wire shape (inproc only): the pool binds a ROUTER at hafl_pool_endpoint(); a client connects
    a DEALER and sends one frame holding a hafl_pool_job_t pointer; the same pointer comes back
    when the job is done. Hand-off: from sending until the pointer comes back, the job and
    everything it points to (trainer, received adapter, roles) belong to the pool and the client
    must not touch them. The trainer is used by one thread at a time only.
*/
#ifndef HAFL_POOL_H
#define HAFL_POOL_H

#include "hafl_task.h"

#include <czmq.h>
#include <stdint.h>

typedef struct {
    //  In: what to train. load is skipped when received is NULL.
    hafl_trainer_t *trainer;
    const hafl_adapter_t *received;
    const uint8_t *roles;
    hafl_train_opts_t opts;
    //  Out: the outcome.
    int rc; //  0, or -1 with err filled
    char err[256];
    hafl_train_stats_t stats;
    uint32_t wall_ms; //  load + train wall time on the worker
} hafl_pool_job_t;

typedef struct hafl_pool_t hafl_pool_t;

//  Start a pool with `slots` workers (0: the number of online cores). NULL on failure.
hafl_pool_t *hafl_pool_new(uint32_t slots);
void hafl_pool_destroy(hafl_pool_t **self_p);
//  The inproc endpoint client DEALERs connect to.
const char *hafl_pool_endpoint(const hafl_pool_t *self);
uint32_t hafl_pool_slots(const hafl_pool_t *self);

//  Client side: send a job (hand-off) / take a finished job back from the DEALER.
int hafl_pool_submit(zsock_t *dealer, hafl_pool_job_t *job);
hafl_pool_job_t *hafl_pool_collect(zsock_t *dealer);

#endif
