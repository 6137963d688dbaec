/*  hafl_wire: what every bus actor does with protocol messages: send and receive them on a
    socket (with the ROUTER identity when there is one, measuring their bytes), and move rank-1
    components, merged terms and heads between messages and adapters with strict checks.

    Everything received is untrusted. hafl_wire_recv decodes strictly (hafl_msg_decode_take:
    types, ranges, lengths, finite tensors, no duplicate components; the tensors stay in the
    received frames) and then checks the message against
    the local layout (hafl_msg_check_layout: matrix ids, component indices, tensor and head
    shapes), so the take functions below only copy what already passed both; every error comes
    back as one line naming the field.

    Ownership: hafl_wire_recv returns a message and (on ROUTER) an identity frame the caller owns;
    the message's tensors may be borrowed from its frames, so they live exactly as long as it
    (copy what must outlive it, as the take functions do). hafl_wire_send never takes
    ownership. The rank-1 arrays returned by the export functions are owned by the caller and
    are meant to be handed to a hafl_msg_t, which then frees them; the factors and heads in
    them are borrowed from the source adapter (marked so; the encoder copies them into the
    frames, which is the only copy on the sending side), so a message built by the export
    functions must be sent or destroyed before that adapter changes.
*/
#ifndef HAFL_WIRE_H
#define HAFL_WIRE_H

#include "hafl_adapter.h"
#include "hafl_msg.h"
#include "hafl_traffic.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

//  Encode msg and send it, preceded by a copy of identity when not NULL. Measures it into
//  traffic when not NULL. 0, or -1 with err (encode failure) or errno (send failure).
int hafl_wire_send(zsock_t *sock, zframe_t *identity, const hafl_msg_t *msg,
                   hafl_traffic_t *traffic, hafl_msg_error_t *err);

typedef enum {
    HAFL_WIRE_OK = 0,          //  *msg_p holds the decoded message
    HAFL_WIRE_MALFORMED = 1,   //  decode failed: err says why; *bytes says how big it was
    HAFL_WIRE_INTERRUPTED = 2, //  nothing received (interrupted or socket closed)
} hafl_wire_status_t;

//  Receive one message; when router, the first frame is the peer identity, returned in
//  *identity (also on MALFORMED, NULL if there was none). A message that decodes but does not
//  fit layout (when not NULL) is MALFORMED too. Measures into traffic when not NULL.
hafl_wire_status_t hafl_wire_recv(zsock_t *sock, bool router, const hafl_layout_t *layout,
                                  zframe_t **identity, hafl_msg_t **msg_p, hafl_traffic_t *traffic,
                                  size_t *bytes, hafl_msg_error_t *err);

//  Receive one message on a DEALER, checked against layout as above. NULL when nothing came
//  (reason "") or it was malformed (reason "CODE: what was wrong").
hafl_msg_t *hafl_wire_recv_dealer(zsock_t *sock, const hafl_layout_t *layout, char *reason,
                                  size_t reasonlen);

//  A printable peer name: the identity's hex (at most 40 chars) or "-".
void hafl_wire_peer(zframe_t *identity, char *text, size_t textlen);
//  The remote address of a connected socket descriptor, "a.b.c.d:port" or "[v6]:port"; a
//  Unix-domain peer is "local"; "unknown" when the descriptor is no longer connected.
void hafl_wire_socket_peer(int fd, char *text, size_t textlen);

//  The take functions copy from a message hafl_wire_recv returned, checked against dst's layout.
//  Copy components into dst (factors and scores); marks present[m*R+k] when present is not
//  NULL. 0 (the components were validated on receipt).
int hafl_wire_take_components(hafl_adapter_t *dst, const hafl_rank1_t *components, uint32_t n,
                              uint8_t *present);
//  Merged terms: replace (reset) or extend dst's merged terms of each matrix, keeping order.
//  0, or -1 with err naming `what` when a matrix would pass HAFL_ADAPTER_MAX_MERGED terms
//  (nothing is changed then) or memory runs out.
int hafl_wire_take_merged(hafl_adapter_t *dst, const hafl_rank1_t *terms, uint32_t n, bool reset,
                          const char *what, char *err, size_t errlen);
//  Copy a head tensor into dst. The protocol lets a message carry no head (0 x 0); the
//  receivers need one, so anything but the layout's shape is refused with err naming `what`.
int hafl_wire_take_head(hafl_adapter_t *dst, const hafl_tensor_t *head, const char *what, char *err,
                        size_t errlen);

//  Export the components of src whose roles[m*R+k] >= min_role (all when roles is NULL) as a
//  new rank-1 array in (matrix, k) order; *n gets the count. NULL on no memory (or n == 0).
hafl_rank1_t *hafl_wire_export_components(const hafl_adapter_t *src, const uint8_t *roles,
                                          uint8_t min_role, uint32_t *n);
//  Export merged terms of src from index from[m] (NULL: 0) to the end, per matrix in order.
hafl_rank1_t *hafl_wire_export_merged(const hafl_adapter_t *src, const uint32_t *from, uint32_t *n);
//  Point a tensor at src's head (borrowed, like the factors above). Returns 0.
int hafl_wire_export_head(const hafl_adapter_t *src, hafl_tensor_t *head);
//  Free a rank-1 array made above (when it was not handed to a message).
void hafl_wire_free_rank1(hafl_rank1_t **terms_p, uint32_t n);

//  Whether a welcome's layout equals ours (names, shapes, rank, scale, head). On mismatch
//  returns false with a reason.
bool hafl_wire_layout_matches(const hafl_welcome_t *welcome, const hafl_layout_t *layout, char *err,
                              size_t errlen);

//  Send a HEARTBEAT (client_index, seq, current time). 0 or -1.
int hafl_wire_send_heartbeat(zsock_t *sock, zframe_t *identity, uint32_t client_index, uint64_t seq,
                             hafl_traffic_t *traffic);

//  A zloop reader for an actor's pipe whose only command is $TERM: ends the loop on it.
int hafl_wire_pipe_term(zloop_t *loop, zsock_t *pipe, void *arg);

//  Set the socket's inbound message-size cap and a small linger.
void hafl_wire_limit(zsock_t *sock, int64_t max_bytes);

#endif
