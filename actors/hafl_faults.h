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
    Each client draws the same number of values every round, whatever the outcome, so one
    client's fault never shifts another's.
*/
#ifndef HAFL_FAULTS_H
#define HAFL_FAULTS_H

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

#endif
