/*  hafl_server_state: the server's bookkeeping that outlives a round, saved beside its
    checkpointed adapter so that `hafl run --resume` continues the run exactly.

    A checkpoint of round N is one generation of two files (hafl_server_checkpoint.h): the
    global adapter (factors, scores, head, merged terms; hafl_adapter_save) and this state,
    which holds what the next rounds depend on besides the adapter:
    - round N, the current strategy and a swap requested for the next round boundary;
    - per client: the last round it sits out after a crash (down_until), and the one-shot
      runtime faults (`hafl ctl fault`) waiting for round N + 1;
    - the cumulative traffic and counters the per-round CSV and the final event report;
    - the SHA-256 of the adapter file's content, so an adapter of another round is refused
      rather than mixed;
    - the settings the run was made with ("key = value" lines, opaque here), so that a resume
      with settings that would change the result is refused, naming the key;
    - a SHA-256 of every byte before it, checked before anything is parsed: an edited or damaged
      byte anywhere is refused, never read as state.
    Everything else is either derived from (seed, round, client) (participants, faults, batch
    order, scheme draws, fresh flora/flexlora factors), sent again after a resume (each
    client's view with merged terms reset), or kept by the clients themselves
    (hafl_client_state.h).

    File: text, one key per line, in this order:
        hafl-checkpoint-state 3
        round N
        strategy NAME
        pending_swap NAME | -
        adapter HEX64
        up COMPONENTS HEAD SCORES CONTROL FLOATS MESSAGES      (bytes, floats, messages)
        down COMPONENTS HEAD SCORES CONTROL FLOATS MESSAGES
        counters MALFORMED UNEXPECTED LATE
        clients COUNT
        client I DOWN_UNTIL CTL_DROP(0|1) CTL_STRAGGLE_MS      (COUNT lines, I = 0, 1, ...)
        settings COUNT
        setting TEXT                                           (COUNT lines, printable)
        sha256 HEX64                                           (of every byte above)
    Reading is strict: the checksum first, then every line, key, number and strategy name, with
    numbers decimal without sign; anything else is refused with a one-line reason naming the
    file and line. A file of another version (older ones had no checksum or settings) is
    refused as such. Writes are atomic (hafl_file.h).

    Ownership: _new and _load return a state the caller owns; _destroy frees it (and its
    settings) and nulls the pointer.
*/
#ifndef HAFL_SERVER_STATE_H
#define HAFL_SERVER_STATE_H

#include "hafl_traffic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAFL_SERVER_STATE_VERSION 3

typedef struct {
    uint32_t down_until;      //  not selected in rounds <= this (after a crash)
    bool ctl_drop;            //  `hafl ctl fault drop` waiting for the next round
    uint32_t ctl_straggle_ms; //  `hafl ctl fault straggle` waiting for the next round, or 0
} hafl_server_state_client_t;

typedef struct {
    uint32_t round;        //  the last round done, >= 1
    char strategy[64];     //  the aggregator's strategy
    char pending_swap[64]; //  strategy for the next round boundary, "" when none
    uint8_t adapter[32];   //  digest of the checkpointed adapter (hafl_adapter_digest)
    hafl_traffic_t up, down;
    uint64_t malformed, unexpected, late;
    uint32_t n_clients;
    hafl_server_state_client_t *clients; //  [n_clients]
    char *settings; //  "key = value\n" lines, malloc'd (or NULL: none); see the header
} hafl_server_state_t;

//  A zeroed state for n_clients clients, or NULL.
hafl_server_state_t *hafl_server_state_new(uint32_t n_clients);
void hafl_server_state_destroy(hafl_server_state_t **self_p);
//  Write the file atomically. 0, or -1 with a reason in err.
int hafl_server_state_save(const hafl_server_state_t *self, const char *path, char *err,
                           size_t errlen);
//  Read and check a file. NULL with a one-line reason naming the file (and line) in err.
hafl_server_state_t *hafl_server_state_load(const char *path, char *err, size_t errlen);

#endif
