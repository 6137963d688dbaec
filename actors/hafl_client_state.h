/*  hafl_client_state: a client's cross-round state in a run folder, so that a resumed run
    continues every client exactly where it stood at the server's checkpoint.

    What is saved: the trainer's state that outlives a round (hafl_trainer_state_size in
    hafl_task.h: the importance EMAs Ibar and Ubar of every adapter entry) as it stood after
    round R, or "fresh" (n = 0: no trainer yet, or its state dropped by a crash). A client's
    state changes only when it trains or crashes, and it writes a file at each of those and
    once at start (round 0, fresh), so its state after any round N is the newest file with
    R <= N. Everything else a client holds is sent again by the server after a resume (the
    components, the head and, with merged terms reset, every merged term) or derived from
    (seed, round, client).

    Where: RUN/clients/client-C-round-R.state, written atomically (hafl_file.h). The client
    keeps the newest file and those from the newest one at or before the older of the two
    checkpoint generations the server may hold up to it (hafl_client_state_prune), so the
    folder holds at most checkpoint_every + 2 per client.

    File (little-endian):
        "HAFLCLST" | u32 version (1) | u32 client | u32 round | u32 reserved (0) | u64 n
        f32 values [n]
        SHA-256 of every byte before it [32]
    Reading checks the magic, version, reserved word, that the size equals 64 + 4 n exactly,
    and the checksum (and _load that the client and round are those of the file's name); a
    value's meaning (finite, >= 0) is checked by the trainer that takes it. Errors are one
    line naming the file.

    Ownership: _load and _read return a state the caller owns; _destroy frees it and nulls the
    pointer.
*/
#ifndef HAFL_CLIENT_STATE_H
#define HAFL_CLIENT_STATE_H

#include <stddef.h>
#include <stdint.h>

#define HAFL_CLIENT_STATE_VERSION 1

typedef struct {
    uint32_t client;
    uint32_t round; //  the state as it stood after this round (0: before the first)
    size_t n;       //  floats in values; 0: fresh (no trainer)
    float *values;  //  [n], NULL when n is 0
} hafl_client_state_t;

//  RUN/clients/client-C-round-R.state into path.
void hafl_client_state_path(const char *dir, uint32_t client, uint32_t round, char *path,
                            size_t pathlen);
//  Write the client's state after `round` (n floats, values may be NULL when n is 0) into dir
//  (its clients/ folder is created when missing). 0, or -1 with a reason in err.
int hafl_client_state_save(const char *dir, uint32_t client, uint32_t round, const float *values,
                           size_t n, char *err, size_t errlen);
//  Delete the client's files in dir older than the newest one at or before keep_upto (the
//  states the checkpoint generations at or after keep_upto need are kept: the server keeps two,
//  hafl_server_checkpoint.h); nothing when there is none. `keep` (the file just written) is
//  never older, so it stays.
void hafl_client_state_prune(const char *dir, uint32_t client, uint32_t keep, uint32_t keep_upto);
//  Delete every file of the client in dir: after a failed save, so that no older file can
//  stand in for the state that was lost (a resume then refuses instead of drifting).
void hafl_client_state_forget(const char *dir, uint32_t client);
//  The client's state after round max_round: the newest of its files in dir at or before it.
//  NULL with a one-line reason naming the file (or the folder and the name pattern when there
//  is none).
hafl_client_state_t *hafl_client_state_load(const char *dir, uint32_t client, uint32_t max_round,
                                            char *err, size_t errlen);
//  One state file, checked as described above.
hafl_client_state_t *hafl_client_state_read(const char *path, char *err, size_t errlen);
void hafl_client_state_destroy(hafl_client_state_t **self_p);

#endif
