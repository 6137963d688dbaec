/*  hafl_faults: the seeded fault model of a federation (topology section faults/).

    Every decision is a pure function of (topology seed, round, client), drawn from the FAULTS
    stream, so a run's faults are the same in every mode and on every host:
    - dropout: the server does not send ROUND to the client this round (it is logged as
      dropped and does not count towards the round's reports);
    - straggler: the server sends ROUND.straggle_ms > 0; the client holds its finished upload
      that long (a loop timer, never a blocking sleep) before sending it. A delay past the
      deadline makes a late upload, which the server drops and logs;
    - crash: decided by the client itself on receiving ROUND: it drops its whole state
      (trainer, importance EMAs, merged terms), reconnects and joins again with rejoin = true;
      the server then leaves it out of the next faults/rejoin_rounds rounds.
    - byzantine: a fixed set of round(faults/byzantine x clients/count) clients (nearest
      whole number, halves up), drawn once for the run: client c gets the key u_c, the first
      uniform of the stream (seed, FAULTS, 2^62 | c), and the clients with the smallest
      (u_c, c) are byzantine. Each trains honestly, then corrupts its upload before sending
      it: with g = what it was given this round (the ROUND's components and head), x = what
      it trained and s = faults/byzantine_scale, every uploaded component (b_k and a_k) and
      the head become
          scale:      g + s (x - g)
          sign-flip:  g - s (x - g)
          noise:      g + s rms(x - g) z,  z ~ N(0, 1) per value
      where rms is over the one vector of that component (d_out + d_in values) or of the head,
      and z is drawn from the stream (seed, FAULTS, 2^61 | round << 32 | client), components in
      upload order (b then a), the head last. Scores, sample count and metrics stay honest.
      The trainer's own state is never touched: only the message carries the corruption.
    Each client draws the same number of values every round, whatever the outcome, so one
    client's fault never shifts another's.
*/
#ifndef HAFL_FAULTS_H
#define HAFL_FAULTS_H

#include "hafl_adapter.h"
#include "hafl_msg.h"
#include "hafl_topology.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool drop;            //  not sent ROUND this round
    uint32_t straggle_ms; //  extra delay before the upload, 0 for none
} hafl_fault_t;

//  The server's decisions for one client in one round.
hafl_fault_t hafl_faults_round(const hafl_topology_t *topology, uint32_t round, uint32_t client);
//  Whether the client crashes on receiving this round's ROUND.
bool hafl_faults_crash(const hafl_topology_t *topology, uint32_t round, uint32_t client);
//  Whether the client is byzantine, for the whole run. O(clients/count) draws per call.
bool hafl_faults_byzantine(const hafl_topology_t *topology, uint32_t client);
//  Apply the attack to a built UPDATE of `client` in `round` when the client is byzantine
//  (nothing otherwise). given is what it received this round (same layout as the task's).
//  Borrowed component and head buffers are replaced by corrupted copies the message owns;
//  owned ones are corrupted in place. 0, or -1 on no memory or a component outside given's
//  layout (the update is then partly corrupted: the caller drops it).
int hafl_faults_byzantine_apply(const hafl_topology_t *topology, uint32_t round, uint32_t client,
                                const hafl_adapter_t *given, hafl_update_t *update);

#endif
