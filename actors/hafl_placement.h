/*  hafl_placement: where each actor of a federation runs and which endpoints connect them.

    Groups: with placement/mode hosts, one group per placement/hosts entry (the evaluator goes to
    the server's host when no host claims it). Otherwise the implicit groups "server" (server,
    aggregator, logger), "evaluator" (when enabled) and "clients-0", "clients-1" (the clients
    split in two halves, one when there is a single client). `hafl run --processes` starts one
    `hafl node` per group; in-process runs start every group in one process.

    Endpoints: a non-empty server/endpoint, server/control, logger/pull or logger/pub in the
    topology is used as given (bind and connect). Empty ones are derived from the run id and
    the transport:
        inproc      inproc://hafl-RUN-PID-server, inproc://hafl-RUN-PID-log; control and pub
                    (which other processes reach) on ipc://@hafl-RUN-PID-control and -pub
        ipc         ipc://@hafl-RUN-PID-{server,control,log,pub} (Linux abstract namespace;
                    PID is the deriving process's, so concurrent runs never collide)
        tcp         loopback (processes) or the server host's address (hosts), ports
                    base_port + 0 (server), + 1 (control), + 2 (log), + 3 (pub); the server
                    host binds every interface on those ports
    In hosts mode, derived names use no run id (other hosts cannot know it), so they are tcp.
*/
#ifndef HAFL_PLACEMENT_H
#define HAFL_PLACEMENT_H

#include "hafl_topology.h"

#include <stdbool.h>
#include <stdint.h>

#define HAFL_ENDPOINT_MAX 256

typedef struct {
    char name[64];
    bool server; //  server + aggregator + logger
    bool evaluator;
    uint32_t client_first; //  clients [client_first, client_last]; first > last: none
    uint32_t client_last;
} hafl_group_t;

typedef struct {
    //  Where peers connect.
    char server[HAFL_ENDPOINT_MAX];
    char control[HAFL_ENDPOINT_MAX];
    char log[HAFL_ENDPOINT_MAX];
    char pub[HAFL_ENDPOINT_MAX];
    //  What the owning group binds.
    char server_bind[HAFL_ENDPOINT_MAX];
    char control_bind[HAFL_ENDPOINT_MAX];
    char log_bind[HAFL_ENDPOINT_MAX];
    char pub_bind[HAFL_ENDPOINT_MAX];
} hafl_endpoints_t;

typedef struct {
    uint32_t n_groups;
    hafl_group_t groups[HAFL_TOPOLOGY_MAX_HOSTS + 4];
} hafl_placement_t;

//  The groups of the topology, as described above.
void hafl_placement_groups(const hafl_topology_t *topology, hafl_placement_t *placement);
//  The group named `name`, or NULL.
const hafl_group_t *hafl_placement_find(const hafl_placement_t *placement, const char *name);
//  File descriptors one in-process client holds (its pipe, dealer, events, the pool's share and
//  each socket's mailbox; measured 4.75 with 1000 clients), and those a process holds besides.
#define HAFL_PLACEMENT_FDS_PER_CLIENT 5u
#define HAFL_PLACEMENT_FDS_BASE 256u
//  Threads a process runs besides one per in-process client (pool, I/O, server, aggregator,
//  evaluator, logger, signals), with room to spare.
#define HAFL_PLACEMENT_THREADS_BASE 256u
//  The most clients one process of this placement runs: all of them in one process (in_process,
//  or placement/mode inproc), else the largest group's. 0 when no process runs clients.
uint32_t hafl_placement_max_clients_per_process(const hafl_topology_t *topology, bool in_process);
//  0 when every process of the placement can start a thread per client (kernel.pid_max less
//  the threads running, kernel.threads-max, vm.max_map_count / 2 and, without root, ulimit -u)
//  and open the file descriptors its clients need under this system's hard limit
//  (RLIMIT_NOFILE, which a node raises its soft limit to); else -1 with a one-line reason
//  naming clients/count, the need and the limits. `hafl check` and `hafl run` refuse the
//  topology with it (exit 2), so they agree.
int hafl_placement_check_limits(const hafl_topology_t *topology, bool in_process, char *err,
                                size_t errlen);
//  Resolve endpoints; in_process selects inproc derivation, otherwise the topology's transport
//  (ipc or tcp; tcp on loopback unless the mode is hosts). run_id names derived endpoints.
void hafl_placement_endpoints(const hafl_topology_t *topology, bool in_process, const char *run_id,
                              hafl_endpoints_t *endpoints);

#endif
