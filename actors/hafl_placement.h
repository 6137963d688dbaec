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
//  Resolve endpoints; in_process selects inproc derivation, otherwise the topology's transport
//  (ipc or tcp; tcp on loopback unless the mode is hosts). run_id names derived endpoints.
void hafl_placement_endpoints(const hafl_topology_t *topology, bool in_process, const char *run_id,
                              hafl_endpoints_t *endpoints);

#endif
