/*  hafl_msg: every message of the hafl wire protocol, and its strict codec.

    The normative specification is messages/PROTOCOL.md; this header is its C binding. A
    message is one ZeroMQ message (several frames). Frame 0 is a MessagePack array starting with
    the protocol major and minor version and the message type; bulk tensors travel in their own
    frames: one frame per rank-1 update (matrix id, component k, importance score, b_k, a_k as
    little-endian float32 `bin`) and one for the head. ROUTER routing frames are not part of the
    message: callers strip them before decoding and add them after encoding.

    Ownership: a decoded hafl_msg_t owns every array it points to; hafl_msg_destroy frees them
    with free(), except tensors marked `borrowed`. hafl_msg_decode copies each tensor once into
    an array from aligned_alloc (64-byte alignment), so a receiver may take one over (copy the
    pointer, set the field to NULL) and later free() it itself; it never takes ownership of the
    zmsg_t. hafl_msg_decode_take is the zero-copy decoder: it takes the zmsg_t over, keeps it
    in the message (`frames`) and leaves each tensor in its frame when the host is
    little-endian and the floats lie 4-aligned there (the reference encoder places them so);
    such tensors are marked borrowed and live as long as the message. Arrays a sender sets
    before encoding must come from malloc, or be marked borrowed when the sender keeps them.
    hafl_msg_encode never takes ownership of its input and returns a new zmsg_t (the caller's),
    or NULL on allocation failure.
    Decoding checks everything (version, types, ranges, caps before allocation, tensor byte
    length == 4 * declared dimension, finite floats where the spec requires) and reports the
    first violation as a distinct code plus a message naming the field.
*/
#ifndef HAFL_MSG_H
#define HAFL_MSG_H

#include "hafl_adapter.h"   //  HAFL_ROLE_* (ROUND.roles)

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define HAFL_PROTO_MAJOR 2
#define HAFL_PROTO_MINOR 1

//  Caps enforced by the decoder before any allocation (PROTOCOL.md "Limits").
#define HAFL_MSG_MAX_DIM        65536u      //  d_out, d_in of an adapted matrix
#define HAFL_MSG_MAX_RANK       256u        //  R
#define HAFL_MSG_MAX_MATRICES   4096u
#define HAFL_MSG_MAX_COMPONENTS 262144u     //  rank-1 frames (components + merged) per message
#define HAFL_MSG_MAX_HEAD       (1u << 22)  //  head floats
#define HAFL_MSG_MAX_NAME       64u         //  client names, run ids, actor names (bytes)
#define HAFL_MSG_MAX_TEXT       1024u       //  reasons, event names, control args (bytes)
#define HAFL_MSG_MAX_JSON       (1u << 20)  //  control reply body (bytes)
#define HAFL_MSG_MAX_FIELDS     64u         //  log event fields
#define HAFL_MSG_MAX_ARGS       16u         //  control command arguments
#define HAFL_MSG_MAX_BYTES      (1u << 30)  //  whole message; also set as ZMQ_MAXMSGSIZE
#define HAFL_MSG_MAX_HEADER     (1u << 22)  //  frame 0 (the header array) in bytes

//  Exact bytes this codec adds around the float payload of a rank-1 frame (fixarray 1 +
//  matrix 5 + k 5 + score 5 + two one-byte pads 3 + 3 + two bin32 headers 5 + 5), which puts b
//  at byte 24 of the frame and a at byte 32 + 4 d_out, and of a head frame (data at byte 16).
#define HAFL_MSG_RANK1_OVERHEAD 32u
#define HAFL_MSG_RANK1_B_OFFSET 24u
#define HAFL_MSG_HEAD_OVERHEAD  16u
#define HAFL_MSG_MAX_PAD        7u  //  bytes in a rank-1 frame's pad elements

typedef enum {
    HAFL_MSG_HELLO = 1,          //  client -> server: join request
    HAFL_MSG_WELCOME = 2,        //  server -> client: admitted, with the adapter layout
    HAFL_MSG_REJECT = 3,         //  server -> client: refused, with a reason
    HAFL_MSG_ROUND = 4,          //  server -> client: a round's selection, components, head
    HAFL_MSG_UPDATE = 5,         //  client -> server: trained components, scores, head, metrics
    HAFL_MSG_EVAL_REQUEST = 6,   //  server -> evaluator: a model to score
    HAFL_MSG_EVAL_RESULT = 7,    //  evaluator -> server: its accuracy and loss
    HAFL_MSG_LOG_EVENT = 8,      //  any actor -> logger (and logger -> tail subscribers)
    HAFL_MSG_CONTROL = 9,        //  operator -> server: a control command
    HAFL_MSG_CONTROL_REPLY = 10, //  server -> operator: JSON reply
    HAFL_MSG_HEARTBEAT = 11,     //  client <-> server: liveness
    HAFL_MSG_TYPE_COUNT
} hafl_msg_type_t;

//  Decode failures, one code per reason.
typedef enum {
    HAFL_MSG_OK = 0,
    HAFL_MSG_ENOFRAMES,     //  no frames, or fewer/more frames than the header declares
    HAFL_MSG_ETRUNCATED,    //  MessagePack data ends inside a value
    HAFL_MSG_ETRAILING,     //  bytes left after the last value of a frame
    HAFL_MSG_EVERSION,      //  unsupported protocol major version
    HAFL_MSG_EUNKNOWN,      //  unknown message type
    HAFL_MSG_EFIELDTYPE,    //  a field has the wrong MessagePack type
    HAFL_MSG_ERANGE,        //  a value is outside its allowed range
    HAFL_MSG_ECAP,          //  a size exceeds its cap (checked before allocating)
    HAFL_MSG_ELENGTH,       //  a tensor's byte length differs from 4 x its declared dimension
    HAFL_MSG_ENONFINITE,    //  NaN or infinity where the spec requires finite values
    HAFL_MSG_EARITY,        //  an array has too few elements for its type and version
    HAFL_MSG_ENOMEM,        //  allocation failed
    HAFL_MSG_ESTRING,       //  a string holds a NUL byte or is not valid UTF-8
    HAFL_MSG_ERROR_COUNT
} hafl_msg_code_t;

typedef struct {
    hafl_msg_code_t code;
    char field[48];     //  dotted field path, e.g. "update.component[3].a"
    char text[192];     //  one line for logs: what was wrong and the values involved
    uint64_t type;      //  EVERSION: the header's type when it could be read, else 0
} hafl_msg_error_t;

//  One rank-1 component b_k a_k^T of adapted matrix `matrix`.
typedef struct {
    uint32_t matrix;    //  adapted-matrix id, < n_matrices of the welcome
    uint32_t k;         //  component index, < R (for merged terms: any index, informational)
    float score;        //  importance S_k (finite)
    uint32_t d_out;     //  length of b
    uint32_t d_in;      //  length of a
    float *b;           //  [d_out], owned by the message unless borrowed
    float *a;           //  [d_in], owned by the message unless borrowed
    bool borrowed;      //  b and a point into memory owned elsewhere (a frame): never freed
} hafl_rank1_t;

//  A dense row-major float32 tensor [rows][cols].
typedef struct {
    uint32_t rows, cols;
    float *data;        //  [rows * cols], owned by the message unless borrowed; NULL when empty
    bool borrowed;      //  data points into memory owned elsewhere (a frame): never freed
} hafl_tensor_t;

//  The secret a WELCOME hands an admitted peer (2.1). A rejoin for an index that a live peer
//  holds must present it; `present` is false when a HELLO carries none (an empty bin) or the
//  sender speaks 2.0, which has no such field.
#define HAFL_SESSION_BYTES 32
typedef struct {
    bool present;
    uint8_t bytes[HAFL_SESSION_BYTES];
} hafl_session_t;

typedef struct {
    uint32_t client_index;          //  the topology's client number this peer claims
    char name[HAFL_MSG_MAX_NAME];   //  free-form peer name for logs
    uint32_t rank_budget;           //  r_i, 1..R
    uint64_t n_samples;             //  training samples in its shard
    uint8_t base_digest[32];        //  SHA-256 of the frozen base model (and task)
    bool rejoin;                    //  true after a crash: resume, do not count as new
    hafl_session_t session;         //  2.1: the session its last WELCOME gave it, if any
} hafl_hello_t;

typedef struct {
    uint32_t client_index;
    char run_id[HAFL_MSG_MAX_NAME];
    uint32_t heartbeat_ms;          //  the client sends a heartbeat at least this often
    uint32_t rank;                  //  R
    float scale;                    //  alpha / R
    uint32_t head_rows, head_cols;
    uint32_t n_matrices;
    struct hafl_msg_matrix {
        char name[32];
        uint32_t d_out, d_in;
    } *matrices;                    //  [n_matrices]
    hafl_session_t session;         //  2.1: this peer's secret (always present from 2.1)
} hafl_welcome_t;

typedef enum {
    HAFL_REJECT_VERSION = 1,        //  protocol major version differs
    HAFL_REJECT_BASE_DIGEST = 2,    //  base model digest differs
    HAFL_REJECT_INDEX = 3,          //  client index out of range or already taken
    HAFL_REJECT_RANK = 4,           //  rank budget outside 1..R or not the topology's
    HAFL_REJECT_FULL = 5,           //  federation has ended or is not admitting
    HAFL_REJECT_AUTH = 6,           //  security policy refused the peer
    HAFL_REJECT_SESSION = 7,        //  2.1: index held by a live peer, and no valid session
    HAFL_REJECT_REPLACED = 8,       //  2.1: this peer's place was taken by a valid rejoin
} hafl_reject_reason_t;

typedef struct {
    uint32_t reason;                //  hafl_reject_reason_t
    char text[HAFL_MSG_MAX_TEXT];
} hafl_reject_t;

typedef struct {
    uint32_t round;                 //  1-based
    uint32_t deadline_ms;           //  time the client has, from receipt
    uint32_t local_epochs;          //  used when local_steps == 0
    uint32_t local_steps;
    uint32_t batch;
    float lr;
    uint64_t seed;                  //  the client's batch-order seed for this round
    uint32_t straggle_ms;           //  simulated extra delay injected by the fault model
    bool fresh_optimizer;           //  reset AdamW state (always true in the default method)
    uint32_t n_matrices, rank;
    uint8_t *roles;                 //  [n_matrices * rank], HAFL_ROLE_*
    uint32_t n_components;
    hafl_rank1_t *components;       //  every non-absent component, with its global score
    uint32_t n_merged;
    hafl_rank1_t *merged;           //  rank-1 terms to add to the frozen base before training
    bool reset_merged;              //  true: drop previously merged terms before adding these
    hafl_tensor_t head;
} hafl_round_t;

typedef struct {
    uint32_t round;
    uint32_t client_index;
    uint64_t n_samples;
    float train_loss;               //  mean training loss of the last local epoch
    uint32_t steps;                 //  optimiser steps taken
    uint32_t wall_ms;               //  local training wall time
    uint32_t n_components;
    hafl_rank1_t *components;       //  the components it trained, with local scores S_k
    hafl_tensor_t head;
} hafl_update_t;

typedef struct {
    uint32_t round;
    uint32_t tag;                   //  0: the global model; 1 + i: client i's starting model
    uint32_t n_components;
    hafl_rank1_t *components;       //  the adapter to score (absent components omitted)
    uint32_t n_merged;
    hafl_rank1_t *merged;           //  full set of merged base terms
    hafl_tensor_t head;
} hafl_eval_request_t;

typedef struct {
    uint32_t round;
    uint32_t tag;
    float accuracy;                 //  0..1
    float loss;                     //  mean cross-entropy
    uint64_t n_examples;
    uint32_t wall_ms;
} hafl_eval_result_t;

typedef enum {
    HAFL_VALUE_INT = 1,
    HAFL_VALUE_FLOAT = 2,
    HAFL_VALUE_STRING = 3,
    HAFL_VALUE_BOOL = 4,
} hafl_value_kind_t;

typedef struct {
    char key[HAFL_MSG_MAX_NAME];
    hafl_value_kind_t kind;
    int64_t i;                      //  INT, BOOL (0/1)
    double f;                       //  FLOAT (may be non-finite: written as null in JSON)
    char *s;                        //  STRING, owned, at most HAFL_MSG_MAX_TEXT bytes
} hafl_field_t;

typedef struct {
    uint64_t time_us;               //  microseconds since the Unix epoch
    char run_id[HAFL_MSG_MAX_NAME];
    int32_t round;                  //  -1 when not tied to a round
    char actor[HAFL_MSG_MAX_NAME];  //  "server", "client-3", "aggregator", ...
    char event[HAFL_MSG_MAX_NAME];  //  "round-start", "upload", "late-upload", ...
    uint32_t n_fields;
    hafl_field_t *fields;           //  [n_fields]
} hafl_log_event_t;

typedef struct {
    char command[HAFL_MSG_MAX_NAME];    //  "status", "swap-aggregator", "fault", "stop"
    uint32_t argc;
    char **argv;                        //  [argc], each owned
} hafl_control_t;

typedef struct {
    bool ok;
    char *json;                         //  owned, NUL-terminated JSON document
} hafl_control_reply_t;

typedef struct {
    uint32_t client_index;              //  UINT32_MAX from the server
    uint64_t seq;
    uint64_t time_us;
} hafl_heartbeat_t;

typedef struct {
    hafl_msg_type_t type;
    uint16_t minor;                     //  sender's minor version (informational)
    zmsg_t *frames;                     //  hafl_msg_decode_take: the frames borrowed tensors
                                        //  point into, owned; NULL otherwise
    union {
        hafl_hello_t hello;
        hafl_welcome_t welcome;
        hafl_reject_t reject;
        hafl_round_t round;
        hafl_update_t update;
        hafl_eval_request_t eval_request;
        hafl_eval_result_t eval_result;
        hafl_log_event_t log_event;
        hafl_control_t control;
        hafl_control_reply_t control_reply;
        hafl_heartbeat_t heartbeat;
    } u;
} hafl_msg_t;

//  A zeroed message of this type, to be filled by the caller (arrays it sets become owned).
hafl_msg_t *hafl_msg_new (hafl_msg_type_t type);
//  Frees the message and every array it owns. NULL-safe; nulls the caller's pointer.
void hafl_msg_destroy (hafl_msg_t **self_p);

//  Encode into a new multi-frame zmsg_t; tensor payloads are copied once, into the frames.
//  Returns NULL if the message violates the spec (the reason goes to err, when given) or on
//  allocation failure.
zmsg_t *hafl_msg_encode (const hafl_msg_t *self, hafl_msg_error_t *err);
//  Decode; returns a new message or NULL with err filled in. Never crashes on any input.
//  Tensors are copied out of the frames (once), so zmsg stays the caller's and may go.
hafl_msg_t *hafl_msg_decode (zmsg_t *zmsg, hafl_msg_error_t *err);
//  Zero-copy decode, with the same checks: on success the message takes *zmsg_p over (and
//  nulls it) and tensors that can stay in their frames are borrowed from them, only checked
//  for finiteness; on failure *zmsg_p stays the caller's. A receiver that copies tensors into
//  its own state (the actors do) thus copies each payload once in all.
hafl_msg_t *hafl_msg_decode_take (zmsg_t **zmsg_p, hafl_msg_error_t *err);

//  Frame-level codec of one rank-1 frame (the bulk of ROUND, UPDATE and EVAL_REQUEST), for
//  senders that share one encoded frame between several messages (zframe_dup) and for the
//  benchmark. Encode returns a new frame of exactly HAFL_MSG_RANK1_OVERHEAD + 4 (d_out + d_in)
//  bytes, or NULL (reason in err). Decode checks the frame as a component (k < MAX_RANK),
//  fills *rank1 with newly allocated b and a and returns 0, or -1 with err filled in and
//  *rank1 zeroed. View is the zero-copy decode of one frame: b and a point into the frame
//  (borrowed, valid while it lives) when they can, as in hafl_msg_decode_take, else they are
//  copied. hafl_msg_rank1_clear frees b and a unless borrowed and zeroes *rank1.
zframe_t *hafl_msg_rank1_encode (const hafl_rank1_t *rank1, hafl_msg_error_t *err);
int hafl_msg_rank1_decode (zframe_t *frame, hafl_rank1_t *rank1, hafl_msg_error_t *err);
int hafl_msg_rank1_view (zframe_t *frame, hafl_rank1_t *rank1, hafl_msg_error_t *err);
void hafl_msg_rank1_clear (hafl_rank1_t *rank1);

//  Check a decoded ROUND, UPDATE or EVAL_REQUEST against the adapter layout of the welcome:
//  every component's and merged term's matrix < n_matrices, every component's k < rank,
//  d_out and d_in equal to the layout's (ELENGTH otherwise), the head either 0 x 0 or exactly
//  head_rows x head_cols, and for ROUND n_matrices and rank equal to the layout's. Other
//  types pass. Returns 0, or -1 with err filled in.
int hafl_msg_check_layout (const hafl_msg_t *self, const hafl_layout_t *layout,
                           hafl_msg_error_t *err);

//  Read only the version prefix [major, minor, type] of frame 0, which every major version
//  keeps, so a server can answer a HELLO of another major with REJECT reason VERSION.
//  Returns 0, or -1 if frame 0 does not start with an array of three unsigned integers.
int hafl_msg_peek (zmsg_t *zmsg, uint64_t *major, uint64_t *minor, uint64_t *type);

const char *hafl_msg_type_name (hafl_msg_type_t type);
const char *hafl_msg_code_name (hafl_msg_code_t code);

//  Convenience for log events: append a field (copies key and string). 0 or -1.
int hafl_log_event_add_int (hafl_log_event_t *event, const char *key, int64_t value);
int hafl_log_event_add_float (hafl_log_event_t *event, const char *key, double value);
int hafl_log_event_add_string (hafl_log_event_t *event, const char *key, const char *value);
int hafl_log_event_add_bool (hafl_log_event_t *event, const char *key, bool value);

#endif
