/*  hafl_server: the server actor. It owns the global adapter (factors, scores, head, merged
    terms), runs the rounds and answers control commands.

    Sockets: a ROUTER on `endpoint` for clients and the evaluator, a ROUTER on `control` for
    operators (`hafl ctl`; REQ or DEALER peers), the pipe of its aggregator actor
    (hafl_aggregator.h) and an event emitter to the logger. Control has its own socket so it never
    queues behind tensor traffic.

    A round: participants (all eligible clients, or server/participants of them drawn from the
    SAMPLE stream) -> fault model (hafl_faults.h: dropped clients get no ROUND) -> client views
    from the aggregator's strategy -> the scheme's roles per client -> ROUND (non-absent
    components with their global scores, the merged terms the client lacks, the head) -> wait
    until every participant has reported, crashed or died, or the deadline (k of n: with
    server/min_reports unmet at the deadline it waits one more deadline, then goes on with what
    it has) -> uploads in client-index order to the aggregator -> pending swap, if any ->
    EVAL_REQUEST to the evaluator, wait for the result (one deadline at most) -> rounds.csv row,
    events, checkpoint -> next round. An upload for another round, or after its round closed, is
    dropped and logged as late.

    Joins: rounds start as soon as every client (and the evaluator, when enabled) has joined;
    after server/deadline_ms, as soon as the clients a round needs have: server/min_reports of
    them, or one when min_reports is 0. Until then a join-wait event every deadline_ms says
    how many joined and which are missing. If fewer than needed have joined when
    server/join_timeout_ms has passed (0: never), the run ends failed: a join-timeout event
    (joined, needed, expected, missing client indexes), the final event and DONE "1" with the
    reason. Clients may join later, and rejoin after a crash, at any time while the run goes.

    Quorum: no round runs with nobody in it. At each round boundary, with fewer clients alive
    than a round needs (all declared dead after a partition, say), the server goes back to the
    join phase (quorum-lost event) under the same rules and limit: rounds go on once enough
    have rejoined (quorum-regained), or the run ends failed at server/join_timeout_ms. A round
    that closes with no report although some participant was sent it (they missed the deadline
    or died; rounds emptied by injected dropout or crash faults count as they are) does not
    count: a round-failed event, nothing aggregated, no CSV row, no checkpoint; it is attempted
    again under the same round number (same seeds and faults), and after three failed attempts
    the run ends failed, the checkpoint of the last real round intact.

    Run folder (run_dir): rounds.csv, a checkpoint generation after each round
    (server/checkpoint_every; hafl_server_checkpoint.h), final_adapter.bin at the end. A
    checkpoint that cannot be written (a full disk) ends the run failed at once, the previous
    generation intact. With resume set, it starts from the newest intact checkpoint of that
    folder, refusing settings that would change the result: the adapter, the round, the
    strategy and a pending swap, each client's crash exclusion and pending runtime faults, and
    the cumulative traffic and counters; the clients restore their own state (hafl_client.h).

    Pipe: in "$TERM", "STOP" (end now, cleanly; the node sends it on SIGINT or SIGTERM, and
    the final event's reason says so). Out, unsolicited: "PROGRESS" followed by the
    string frames round, rounds, accuracy, loss, bytes up, bytes down, round wall ms, reported,
    participants, cumulative bytes up, cumulative bytes down (a resumed run's totals include the
    rounds before its checkpoint); and at the end "DONE" s(status "0" ok / "1" failed) s(final
    adapter sha256 hex) s(reason) s(why the result depends on timing, not on the topology and
    seed alone: a late join, a client declared dead; "" when it does not). After DONE the actor
    waits for $TERM (late joiners are refused as "full").
*/
#ifndef HAFL_SERVER_H
#define HAFL_SERVER_H

#include "hafl_security.h"
#include "hafl_task.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <stdint.h>

typedef struct {
    const hafl_topology_t *topology; //  must outlive the actor
    const hafl_task_t *task;         //  layout and base digest; must outlive the actor
    const char *endpoint;            //  bind: clients and evaluator
    const char *control;             //  bind: control commands
    const char *log_endpoint;        //  logger PULL endpoint (NULL: no events)
    const struct hafl_log_auth_t *log_auth; //  the emitters' credentials (hafl_log_auth.h)
    const char *run_id;
    const char *run_dir;   //  existing folder for the run's files
    int64_t max_msg_bytes; //  inbound frame cap
    const char *resume;    //  run folder to resume from (checkpoint), or NULL
    bool all_local;        //  every client runs in this process: round 1 waits for all of them
    const hafl_security_t *security; //  CURVE on the client endpoint; NULL or off: none
    //  Out: 0 once started, -1 with err.
    int status;
    char err[1024];
} hafl_server_args_t;

zactor_t *hafl_server_new(hafl_server_args_t *args);
void hafl_server_actor(zsock_t *pipe, void *args);

#endif
