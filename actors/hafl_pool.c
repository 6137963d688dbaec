/*  hafl_pool: compute slots as worker threads behind a ROUTER. See hafl_pool.h.

    The dispatcher actor owns the ROUTER and one pipe per worker. A job arrives as
    [identity][pointer]; it goes to a free worker over that worker's pipe, or waits in a FIFO.
    A worker replies with the same pointer; the dispatcher returns [identity][pointer] to the
    client and gives the worker the next queued job.
*/
#include "hafl_pool.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct hafl_pool_t {
    zactor_t *actor;
    char endpoint[64];
    uint32_t slots;
};

//  Read by the actor before it signals; `ok` is written before the signal, so the caller reads
//  it safely once zactor_new returns (the handshake orders the two threads).
typedef struct {
    const char *endpoint;
    uint32_t slots;
    bool ok;
} s_pool_args_t;

typedef struct {
    zframe_t *identity;
    hafl_pool_job_t *job;
} s_pending_t;

static uint32_t s_now_ms(int64_t since)
{
    int64_t d = zclock_mono() - since;
    return d < 0 ? 0 : (uint32_t)d;
}

//  One compute slot: runs load + train for each job pointer it receives.
static void s_worker(zsock_t *pipe, void *args)
{
    zsock_signal(pipe, 0);
    while (true) {
        char *command = NULL;
        void *pointer = NULL;
        if (zsock_recv(pipe, "sp", &command, &pointer) == -1) {
            //  A signal (Ctrl-C) interrupts the receive; the pool's $TERM ends the worker, so
            //  that a job is never abandoned half-way by an interrupt.
            if (zmq_errno() == EINTR)
                continue;
            break;
        }
        bool term = command && streq(command, "$TERM");
        bool job = command && streq(command, "JOB");
        zstr_free(&command);
        if (term)
            break;
        if (!job)
            continue;
        hafl_pool_job_t *j = (hafl_pool_job_t *)pointer;
        int64_t start = zclock_mono();
        j->rc = 0;
        j->err[0] = 0;
        memset(&j->stats, 0, sizeof j->stats);
        if (j->received &&
            hafl_trainer_load(j->trainer, j->received, j->roles, j->err, sizeof j->err))
            j->rc = -1;
        if (j->rc == 0 &&
            hafl_trainer_train(j->trainer, &j->opts, &j->stats, j->err, sizeof j->err))
            j->rc = -1;
        j->wall_ms = s_now_ms(start);
        zsock_send(pipe, "sp", "DONE", j);
    }
}

static void s_pool_actor(zsock_t *pipe, void *args)
{
    s_pool_args_t *a = (s_pool_args_t *)args;
    uint32_t n = a->slots;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zactor_t **workers = calloc(n, sizeof(zactor_t *));
    zframe_t **busy = calloc(n, sizeof(zframe_t *)); //  identity served by worker w
    zlistx_t *queue = zlistx_new();
    zpoller_t *poller = NULL;
    bool ok = router && workers && busy && queue && zsock_bind(router, "%s", a->endpoint) == 0;
    for (uint32_t w = 0; ok && w < n; w++)
        ok = (workers[w] = zactor_new(s_worker, NULL)) != NULL;
    if (ok) {
        poller = zpoller_new(pipe, router, NULL);
        for (uint32_t w = 0; poller && w < n; w++)
            zpoller_add(poller, workers[w]);
        ok = poller != NULL;
        //  Signals do not end the pool: only $TERM does, once every client has collected the
        //  job it still had here (hafl_node_destroy's order), so no job outlives its owner.
        if (ok)
            zpoller_set_nonstop(poller, true);
    }
    a->ok = ok;
    zsock_signal(pipe, ok ? 0 : 1);
    while (ok) {
        void *which = zpoller_wait(poller, -1);
        if (!which) {
            if (zpoller_terminated(poller))
                break; //  the context is terminating
            continue;  //  a signal
        }
        if (which == pipe) {
            char *command = zstr_recv(pipe);
            bool term = !command || streq(command, "$TERM");
            zstr_free(&command);
            if (term)
                break;
        } else if (which == router) {
            zframe_t *identity = zframe_recv(router);
            void *pointer = NULL;
            if (identity && zsock_recv(router, "p", &pointer) == 0 && pointer) {
                s_pending_t *p = malloc(sizeof(s_pending_t));
                if (p) {
                    p->identity = identity;
                    p->job = (hafl_pool_job_t *)pointer;
                    identity = NULL;
                    zlistx_add_end(queue, p);
                }
            }
            zframe_destroy(&identity);
        } else {
            for (uint32_t w = 0; w < n; w++) {
                if (which != workers[w])
                    continue;
                char *command = NULL;
                void *pointer = NULL;
                if (zsock_recv(workers[w], "sp", &command, &pointer) == 0 && busy[w]) {
                    zframe_send(&busy[w], router, ZFRAME_MORE);
                    zsock_send(router, "p", pointer);
                }
                zframe_destroy(&busy[w]);
                zstr_free(&command);
            }
        }
        //  Give every idle worker the next queued job.
        for (uint32_t w = 0; w < n && zlistx_size(queue) > 0; w++) {
            if (busy[w])
                continue;
            s_pending_t *p = (s_pending_t *)zlistx_first(queue);
            zlistx_delete(queue, zlistx_cursor(queue));
            busy[w] = p->identity;
            zsock_send(workers[w], "sp", "JOB", p->job);
            free(p);
        }
    }
    //  Jobs still queued are abandoned with their clients (the federation is ending).
    if (queue) {
        for (s_pending_t *p = zlistx_first(queue); p; p = zlistx_next(queue)) {
            zframe_destroy(&p->identity);
            free(p);
        }
        zlistx_destroy(&queue);
    }
    for (uint32_t w = 0; workers && w < n; w++) {
        zactor_destroy(&workers[w]);
        if (busy)
            zframe_destroy(&busy[w]);
    }
    free(workers);
    free(busy);
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

hafl_pool_t *hafl_pool_new(uint32_t slots)
{
    hafl_pool_t *self = calloc(1, sizeof(hafl_pool_t));
    if (!self)
        return NULL;
    if (slots == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        slots = cores > 0 ? (uint32_t)cores : 1;
    }
    self->slots = slots;
    snprintf(self->endpoint, sizeof self->endpoint, "inproc://hafl-pool-%p", (void *)self);
    s_pool_args_t args = {self->endpoint, slots, false};
    self->actor = zactor_new(s_pool_actor, &args);
    if (!self->actor || !args.ok) {
        hafl_pool_destroy(&self);
        return NULL;
    }
    return self;
}

void hafl_pool_destroy(hafl_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zactor_destroy(&(*self_p)->actor);
    free(*self_p);
    *self_p = NULL;
}

const char *hafl_pool_endpoint(const hafl_pool_t *self)
{
    return self->endpoint;
}

uint32_t hafl_pool_slots(const hafl_pool_t *self)
{
    return self->slots;
}

int hafl_pool_submit(zsock_t *dealer, hafl_pool_job_t *job)
{
    return zsock_send(dealer, "p", job);
}

hafl_pool_job_t *hafl_pool_collect(zsock_t *dealer)
{
    void *pointer = NULL;
    int rc;
    while ((rc = zsock_recv(dealer, "p", &pointer)) == -1 && zmq_errno() == EINTR)
        ;
    return rc == -1 ? NULL : (hafl_pool_job_t *)pointer;
}
