/*  hafl_server_checkpoint: the server's checkpoints in a run folder, as generations that a
    kill at any instant leaves resumable, and the settings check that keeps a resume exact.

    A generation is the checkpoint of one round R: RUN/checkpoint/round-R.bin (the global
    adapter) and RUN/checkpoint/round-R.state (hafl_server_state.h, which names the adapter's
    digest). Each file is written atomically (temporary file, fsync, rename), the adapter
    first: a generation counts only once its state exists, so a kill between the two writes
    leaves a lone .bin that resume ignores. Older generations are deleted only after the new
    one is complete, and the previous one is kept, so there is always an intact generation to
    resume from, and a newest one that turns out damaged (a bad disk, an edit) is passed over
    for the previous one, with a note saying why.

    Settings: a state carries the run's settings that decide its result (every topology key
    but those listed below, as `hafl check` prints them, plus the base model's digest). Resume
    compares them with the topology it is given and refuses the first key that differs, naming
    it. Keys that may change across a resume: server/rounds (above the checkpoint's round),
    the timing and liveness keys (server/deadline_ms, join_timeout_ms, heartbeat_ms,
    heartbeat_misses, checkpoint_every), endpoints and placement (every mode gives the same
    result), every evaluator, logger and security key, data/test_limit (evaluation only) and the paths
    of the model, tokenizer and data (their content is checked through the base digest).

    Errors are one line naming the file (or key) and why.
*/
#ifndef HAFL_SERVER_CHECKPOINT_H
#define HAFL_SERVER_CHECKPOINT_H

#include "hafl_adapter.h"
#include "hafl_server_state.h"
#include "hafl_topology.h"

#include <stddef.h>
#include <stdint.h>

#define HAFL_CHECKPOINT_DIR "checkpoint"

//  The two files of round's generation in run_dir.
void hafl_server_checkpoint_paths(const char *run_dir, uint32_t round, char *adapter_path,
                                  char *state_path, size_t pathlen);

//  Write the generation of state->round (the adapter, then the state), then delete every
//  generation but it and the newest complete one before it, and any lone adapter file. On
//  failure nothing older is touched and the new generation's files are removed; 0, or -1 with
//  a reason in err.
int hafl_server_checkpoint_save(const char *run_dir, const hafl_adapter_t *adapter,
                                const hafl_server_state_t *state, char *err, size_t errlen);

//  The newest intact generation in run_dir: its state (caller owns) and, when adapter_out is
//  given, its adapter (caller owns). When newer generations were refused, note gets one line
//  saying which and why; else note is "". NULL with a reason in err: every generation refused
//  (the newest one's reason), or none at all.
hafl_server_state_t *hafl_server_checkpoint_load(const char *run_dir, hafl_adapter_t **adapter_out,
                                                 char *note, size_t notelen, char *err,
                                                 size_t errlen);

//  The settings of t that decide a run's result, as "key = value\n" lines (malloc'd; NULL on
//  no memory), with "base_digest = HEX" last when base_digest is given.
char *hafl_server_checkpoint_settings(const hafl_topology_t *t, const uint8_t *base_digest);

//  Resuming state with topology t (and base_digest, when given) is exact: 0. Else -1 with the
//  first key that differs in err. server/rounds must also exceed the state's round.
int hafl_server_checkpoint_compare(const hafl_server_state_t *state, const hafl_topology_t *t,
                                   const uint8_t *base_digest, char *err, size_t errlen);

#endif
