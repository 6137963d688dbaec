/*  hafl_traffic: exact byte accounting of protocol messages, split by kind.

    Every message the server sends to or receives from a client is measured from its encoded
    frames (ZeroMQ frame payload sizes; transport framing is not included). The split follows the
    codec's frame layout (PROTOCOL.md): frame 0 (version, type, scalar fields, roles) is
    `control`; each rank-1 frame is `components` except the bytes of its encoded importance
    score, which are `scores`; the head frame is `head`. Heartbeats, join and reject messages
    are all `control`. Floats are counted too: components and merged terms (d_out + d_in each),
    head floats, and one per score.
*/
#ifndef HAFL_TRAFFIC_H
#define HAFL_TRAFFIC_H

#include "hafl_msg.h"

#include <czmq.h>
#include <stdint.h>

typedef struct {
    uint64_t components; //  bytes of rank-1 frames (b, a, indices), scores excluded
    uint64_t head;       //  bytes of the head frame
    uint64_t scores;     //  bytes of the encoded importance scores
    uint64_t control;    //  bytes of everything else
    uint64_t floats;     //  float32 values carried (factors, head, scores)
    uint64_t messages;
} hafl_traffic_t;

//  Add the frames of zmsg, the encoding of msg (both describe the same message).
void hafl_traffic_add_msg(hafl_traffic_t *self, zmsg_t *zmsg, const hafl_msg_t *msg);
//  Add a message that was not decoded (malformed or unexpected): all of it is control.
void hafl_traffic_add_raw(hafl_traffic_t *self, zmsg_t *zmsg);
void hafl_traffic_add(hafl_traffic_t *self, const hafl_traffic_t *other);
uint64_t hafl_traffic_total(const hafl_traffic_t *self);

#endif
