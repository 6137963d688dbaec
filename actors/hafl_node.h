/*  hafl_node: runs the actors of one placement group (hafl_placement.h) in this process, or
    every actor of a federation when no group is named (the in-process mode of `hafl run`).

    It builds the task once (shared read-only by every actor of the process), starts the logger
    and the server (which starts the aggregator) when it hosts them, the evaluator, a compute
    pool and the clients, and then waits: a node with the server ends when the server reports
    DONE; a node without it ends when every local client and the evaluator were told the
    federation is over, or gave up (a refused handshake, hafl_client.h): it then fails with the
    last such reason. Progress lines from the server are printed to opts.progress: a single
    rewritten line when it is a terminal, one plain line per round otherwise.

    The node hosting the server creates the run folder (logger/run_dir/NAME-UTCSTAMP) unless
    one is given; the folder's name is the run id. A node with clients but without the server
    and without a given folder (a client host) creates logger/run_dir/NAME-UTCSTAMP-GROUP when
    checkpoints are on, for its clients' state files (hafl_client_state.h).

    Resume (opts.resume): the server starts from the folder's checkpoint (hafl_server.h) and
    every client from its state file there at or before the checkpoint's round (hafl_client.h);
    on a client host the folder is that host's own earlier run folder, which has no
    checkpoint/, and each client then takes the state before the first round it is sent.

    Threads: BLAS is set single-threaded (the compute pool gives parallelism, and results must
    not depend on thread counts). Ownership: _new returns a node the caller owns.
*/
#ifndef HAFL_NODE_H
#define HAFL_NODE_H

#include "hafl_placement.h"
#include "hafl_task.h"
#include "hafl_topology.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const hafl_topology_t *topology; //  must outlive the node
    const char *group;               //  placement group to run; NULL: everything, inproc
    const char *run_dir;             //  NULL: create one (server group only)
    const char *run_id;              //  NULL: the run folder's name
    const char *resume;              //  run folder to resume from (see above), or NULL
    FILE *progress;                  //  NULL: print nothing
    uint32_t slots;                  //  compute pool size; 0: number of cores
} hafl_node_opts_t;

typedef struct hafl_node_t hafl_node_t;

//  Start the actors. NULL with a one-line reason in err.
hafl_node_t *hafl_node_new(const hafl_node_opts_t *opts, char *err, size_t errlen);
void hafl_node_destroy(hafl_node_t **self_p);

//  Block until the node's part of the federation is over. On an interrupt (SIGINT) the server
//  is asked to stop cleanly; a second interrupt abandons the wait. Returns 0 when the run
//  completed, -1 otherwise; hex gets the final adapter digest ("" when this node has no
//  server) and reason a one-line account.
int hafl_node_wait(hafl_node_t *self, char hex[65], char *reason, size_t reasonlen);

//  After hafl_node_wait on the server's node: why the result depends on timing rather than on
//  the topology and seed alone ("" when it does not; hafl_server.h).
const char *hafl_node_unreproducible(const hafl_node_t *self);

//  The run folder ("" when the node has neither the server nor a client state folder), the
//  run id ("" when the node does not host the server and was given none), and the endpoints.
const char *hafl_node_run_dir(const hafl_node_t *self);
const char *hafl_node_run_id(const hafl_node_t *self);
const hafl_endpoints_t *hafl_node_endpoints(const hafl_node_t *self);
hafl_task_t *hafl_node_task(hafl_node_t *self);

//  Create logger/run_dir/NAME-YYYYmmddTHHMMSSZ (with a -N suffix when taken). 0, or -1 + err.
int hafl_node_make_run_dir(const hafl_topology_t *topology, char *dir, size_t dirlen, char *err,
                           size_t errlen);

//  The largest frame a peer may send (ZMQ_MAXMSGSIZE): header cap, largest rank-1 frame, head.
int64_t hafl_node_frame_cap(const hafl_layout_t *layout);

#endif
