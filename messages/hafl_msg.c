/*  hafl_msg: the wire codec of messages/PROTOCOL.md (API and ownership in hafl_msg.h).

    Both directions are driven by one table per message type listing its header fields in wire
    order with their kind, place in hafl_msg_t and allowed range, so the encoder, the decoder
    and PROTOCOL.md describe the same thing. Encoding validates the message with the same
    checks the decoder applies, computes every frame's exact size, then packs with msgpack-c
    straight into the frame's buffer; tensors are copied once, from the caller's arrays into
    the frame, checking finiteness in the same pass (hafl_f32le). Rank-1 frames carry two pads
    that put their tensors 4-aligned in the frame. Decoding reads each frame with the
    bounds-checked hafl_mpreader, checks types, ranges, caps (before allocating) and declared
    against actual lengths, then either copies each tensor once from the frame into a 64-byte
    aligned array, checking finiteness in the same pass, or (the zero-copy decoders) only
    checks it and leaves it in the frame when it lies aligned there.
*/
#include "hafl_msg.h"
#include "hafl_f32le.h"
#include "hafl_mpreader.h"

#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ALIGN     64 //  alignment of decoded tensors
#define S_MAX_DEPTH 32 //  nesting allowed inside ignored trailing elements of a newer minor
#define S_RANK1_ELEMENTS  7 //  matrix, k, score, pad, b, pad, a
#define S_RANK1_PAD_BYTES 3 //  the reference encoder's pad: bin 8 holding one byte

//  ---------------------------------------------------------------------------------------
//  Errors

//  Where in a message a field is: base[.list[index]][.leaf], e.g. update.component[3].b.
//  Paths are only formatted when something fails, so the happy path costs no printf.
typedef struct {
    const char *base; //  "update", "header", "rank1"
    const char *list; //  "component", "matrices", ... or NULL
    uint32_t index;
    const char *leaf; //  or NULL
} s_where_t;

#define S_W(base, leaf)           (&(const s_where_t){base, NULL, 0, leaf})
#define S_WI(base, list, i, leaf) (&(const s_where_t){base, list, i, leaf})
#define S_LEAF(w, leaf)           (&(const s_where_t){(w)->base, (w)->list, (w)->index, leaf})

static void s_where_format(const s_where_t *w, char *out, size_t size)
{
    char index[24] = "";
    if (w->list)
        snprintf(index, sizeof index, "[%u]", w->index);
    snprintf(out, size, "%s%s%s%s%s%s", w->base, w->list ? "." : "", w->list ? w->list : "", index,
             w->leaf ? "." : "", w->leaf ? w->leaf : "");
}

static int s_fail(hafl_msg_error_t *err, hafl_msg_code_t code, const s_where_t *where,
                  const char *fmt, ...)
{
    if (!err)
        return -1;
    char path[96];
    s_where_format(where, path, sizeof path);
    err->code = code;
    size_t len = strnlen(path, sizeof err->field - 1); //  truncated paths keep their start
    memcpy(err->field, path, len);
    err->field[len] = 0;
    int n = snprintf(err->text, sizeof err->text, "%s: ", path);
    if (n < 0 || (size_t)n >= sizeof err->text)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text + n, sizeof err->text - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

//  ---------------------------------------------------------------------------------------
//  The message tables

typedef enum {
    F_U32,      //  uint32_t, range [min, max]
    F_U64,      //  uint64_t, range [min, max]
    F_I32,      //  int32_t, range [min, max]
    F_F32,      //  float, finite, range [fmin, fmax]
    F_BOOL,     //  bool
    F_STR,      //  char[max + 1] in place, length [min, max] bytes
    F_HEAPSTR,  //  char *, owned, length [min, max] bytes
    F_DIGEST,   //  uint8_t[32], bin of exactly 32 bytes
    F_SESSION,  //  hafl_session_t: bin of 32 bytes, or of 0 (absent) when min is 0
    F_MATRICES, //  welcome.matrices: array of [name, d_out, d_in]
    F_ROLES,    //  round.roles: bin of n_matrices * rank role bytes
    F_NCOMP,    //  uint32_t count of component frames
    F_NMERGED,  //  uint32_t count of merged frames
    F_FIELDS,   //  log_event.fields: map key -> value
    F_ARGS,     //  control.argv: array of strings
} s_kind_t;

typedef struct {
    const char *name;
    s_kind_t kind;
    size_t offset; //  in hafl_msg_t
    int64_t min;
    uint64_t max;
    int cap; //  above max is ECAP (a size cap) rather than ERANGE
    float fmin, fmax;
    uint16_t since; //  the minor that appended the field; a sender of an older minor omits it
} s_field_t;

// clang-format off
#define S_OFF(t, f)            offsetof(hafl_msg_t, u.t.f)
#define S_U32(t, f, lo, hi)    {#f, F_U32, S_OFF(t, f), lo, hi, 0, 0, 0, 0}
#define S_U32CAP(t, f, lo, hi) {#f, F_U32, S_OFF(t, f), lo, hi, 1, 0, 0, 0}
#define S_U64(t, f)            {#f, F_U64, S_OFF(t, f), 0, UINT64_MAX, 0, 0, 0, 0}
#define S_F32(t, f, lo, hi)    {#f, F_F32, S_OFF(t, f), 0, 0, 0, lo, hi, 0}
#define S_BOOL(t, f)           {#f, F_BOOL, S_OFF(t, f), 0, 1, 0, 0, 0, 0}
#define S_STR(t, f, lo)        {#f, F_STR, S_OFF(t, f), lo, sizeof(((hafl_msg_t *)0)->u.t.f) - 1, 1, 0, 0, 0}
#define S_SPECIAL(t, f, kind, lo, hi) {#f, kind, S_OFF(t, f), lo, hi, 1, 0, 0, 0}
#define S_SESSION(t, lo, since) {"session", F_SESSION, S_OFF(t, session), lo, 32, 0, 0, 0, since}

static const s_field_t s_hello[] = {
    S_U32(hello, client_index, 0, UINT32_MAX - 1),
    S_STR(hello, name, 0),
    S_U32CAP(hello, rank_budget, 1, HAFL_MSG_MAX_RANK),
    S_U64(hello, n_samples),
    S_SPECIAL(hello, base_digest, F_DIGEST, 32, 32),
    S_BOOL(hello, rejoin),
    S_SESSION(hello, 0, 1),
};
static const s_field_t s_welcome[] = {
    S_U32(welcome, client_index, 0, UINT32_MAX - 1),
    S_STR(welcome, run_id, 1),
    S_U32(welcome, heartbeat_ms, 1, 3600000),
    S_U32CAP(welcome, rank, 1, HAFL_MSG_MAX_RANK),
    S_F32(welcome, scale, FLT_MIN, FLT_MAX),
    S_U32CAP(welcome, head_rows, 0, HAFL_MSG_MAX_HEAD),
    S_U32CAP(welcome, head_cols, 0, HAFL_MSG_MAX_HEAD),
    S_SPECIAL(welcome, matrices, F_MATRICES, 0, HAFL_MSG_MAX_MATRICES),
    S_SESSION(welcome, 32, 1),
};
//  Reasons above the last one this minor defines are accepted from a newer minor only.
#define S_REJECT_LAST HAFL_REJECT_REPLACED
static const s_field_t s_reject[] = {
    S_U32(reject, reason, 1, 255),
    S_STR(reject, text, 0),
};
static const s_field_t s_round[] = {
    S_U32(round, round, 1, UINT32_MAX),
    S_U32(round, deadline_ms, 1, UINT32_MAX),
    S_U32(round, local_epochs, 0, UINT32_MAX),
    S_U32(round, local_steps, 0, UINT32_MAX),
    S_U32(round, batch, 1, UINT32_MAX),
    S_F32(round, lr, 0.0f, FLT_MAX),
    S_U64(round, seed),
    S_U32(round, straggle_ms, 0, UINT32_MAX),
    S_BOOL(round, fresh_optimizer),
    S_U32CAP(round, n_matrices, 0, HAFL_MSG_MAX_MATRICES),
    S_U32CAP(round, rank, 1, HAFL_MSG_MAX_RANK),
    S_SPECIAL(round, roles, F_ROLES, 0, 0),
    S_SPECIAL(round, n_components, F_NCOMP, 0, HAFL_MSG_MAX_COMPONENTS),
    S_SPECIAL(round, n_merged, F_NMERGED, 0, HAFL_MSG_MAX_COMPONENTS),
    S_BOOL(round, reset_merged),
};
static const s_field_t s_update[] = {
    S_U32(update, round, 1, UINT32_MAX),
    S_U32(update, client_index, 0, UINT32_MAX - 1),
    S_U64(update, n_samples),
    S_F32(update, train_loss, -FLT_MAX, FLT_MAX),
    S_U32(update, steps, 0, UINT32_MAX),
    S_U32(update, wall_ms, 0, UINT32_MAX),
    S_SPECIAL(update, n_components, F_NCOMP, 0, HAFL_MSG_MAX_COMPONENTS),
};
static const s_field_t s_eval_request[] = {
    S_U32(eval_request, round, 0, UINT32_MAX),
    S_U32(eval_request, tag, 0, UINT32_MAX),
    S_SPECIAL(eval_request, n_components, F_NCOMP, 0, HAFL_MSG_MAX_COMPONENTS),
    S_SPECIAL(eval_request, n_merged, F_NMERGED, 0, HAFL_MSG_MAX_COMPONENTS),
};
static const s_field_t s_eval_result[] = {
    S_U32(eval_result, round, 0, UINT32_MAX),
    S_U32(eval_result, tag, 0, UINT32_MAX),
    S_F32(eval_result, accuracy, 0.0f, 1.0f),
    S_F32(eval_result, loss, 0.0f, FLT_MAX),
    S_U64(eval_result, n_examples),
    S_U32(eval_result, wall_ms, 0, UINT32_MAX),
};
static const s_field_t s_log_event[] = {
    S_U64(log_event, time_us),
    S_STR(log_event, run_id, 0),
    {"round", F_I32, S_OFF(log_event, round), -1, INT32_MAX, 0, 0, 0, 0},
    S_STR(log_event, actor, 1),
    S_STR(log_event, event, 1),
    S_SPECIAL(log_event, fields, F_FIELDS, 0, HAFL_MSG_MAX_FIELDS),
};
static const s_field_t s_control[] = {
    S_STR(control, command, 1),
    S_SPECIAL(control, argv, F_ARGS, 0, HAFL_MSG_MAX_ARGS),
};
static const s_field_t s_control_reply[] = {
    S_BOOL(control_reply, ok),
    S_SPECIAL(control_reply, json, F_HEAPSTR, 0, HAFL_MSG_MAX_JSON),
};
static const s_field_t s_heartbeat[] = {
    S_U32(heartbeat, client_index, 0, UINT32_MAX),
    S_U64(heartbeat, seq),
    S_U64(heartbeat, time_us),
};
// clang-format on

//  Where a type keeps its bulk frames (0: the type has none of that kind).
typedef struct {
    const char *name;
    const s_field_t *fields;
    size_t n_fields;
    size_t n_comp, comp; //  uint32_t count, hafl_rank1_t *
    size_t n_merged, merged;
    size_t head; //  hafl_tensor_t
} s_type_t;

#define S_TYPE(t, table) #t, table, sizeof table / sizeof table[0]
#define S_BULK(t)        S_OFF(t, n_components), S_OFF(t, components)
static const s_type_t s_types[HAFL_MSG_TYPE_COUNT] = {
    [HAFL_MSG_HELLO] = {S_TYPE(hello, s_hello), 0, 0, 0, 0, 0},
    [HAFL_MSG_WELCOME] = {S_TYPE(welcome, s_welcome), 0, 0, 0, 0, 0},
    [HAFL_MSG_REJECT] = {S_TYPE(reject, s_reject), 0, 0, 0, 0, 0},
    [HAFL_MSG_ROUND] = {S_TYPE(round, s_round), S_BULK(round), S_OFF(round, n_merged),
                        S_OFF(round, merged), S_OFF(round, head)},
    [HAFL_MSG_UPDATE] = {S_TYPE(update, s_update), S_BULK(update), 0, 0, S_OFF(update, head)},
    [HAFL_MSG_EVAL_REQUEST] = {S_TYPE(eval_request, s_eval_request), S_BULK(eval_request),
                               S_OFF(eval_request, n_merged), S_OFF(eval_request, merged),
                               S_OFF(eval_request, head)},
    [HAFL_MSG_EVAL_RESULT] = {S_TYPE(eval_result, s_eval_result), 0, 0, 0, 0, 0},
    [HAFL_MSG_LOG_EVENT] = {S_TYPE(log_event, s_log_event), 0, 0, 0, 0, 0},
    [HAFL_MSG_CONTROL] = {S_TYPE(control, s_control), 0, 0, 0, 0, 0},
    [HAFL_MSG_CONTROL_REPLY] = {S_TYPE(control_reply, s_control_reply), 0, 0, 0, 0, 0},
    [HAFL_MSG_HEARTBEAT] = {S_TYPE(heartbeat, s_heartbeat), 0, 0, 0, 0, 0},
};

static const s_type_t *s_type(uint64_t type)
{
    return type >= 1 && type < HAFL_MSG_TYPE_COUNT ? &s_types[type] : NULL;
}

//  How many of a type's fields a sender of `minor` writes (all of ours for a newer minor).
static uint32_t s_fields_in(const s_type_t *t, uint64_t minor)
{
    uint32_t n = 0;
    while (n < t->n_fields && t->fields[n].since <= minor)
        n++;
    return n;
}

//  The last REJECT reason each minor defines: 2.0 had VERSION..AUTH, 2.1 added SESSION and
//  REPLACED.
static uint32_t s_reject_last(uint64_t minor)
{
    return minor == 0 ? HAFL_REJECT_AUTH : S_REJECT_LAST;
}

#define S_AT(msg, off, T)  ((T *)((char *)(msg) + (off)))
#define S_CAT(msg, off, T) ((const T *)((const char *)(msg) + (off)))

//  ---------------------------------------------------------------------------------------
//  Checks shared by the encoder and the decoder

static int s_check_uint(hafl_msg_error_t *err, const s_where_t *path, uint64_t v, uint64_t min,
                        uint64_t max, int cap)
{
    if (v > max)
        return s_fail(err, cap ? HAFL_MSG_ECAP : HAFL_MSG_ERANGE, path, "%llu exceeds the %s %llu",
                      (unsigned long long)v, cap ? "cap" : "maximum", (unsigned long long)max);
    if (v < min)
        return s_fail(err, HAFL_MSG_ERANGE, path, "%llu is below the minimum %llu",
                      (unsigned long long)v, (unsigned long long)min);
    return 0;
}

static int s_check_float(hafl_msg_error_t *err, const s_where_t *path, double v, float min,
                         float max)
{
    if (!isfinite(v))
        return s_fail(err, HAFL_MSG_ENONFINITE, path, "%g is not finite", v);
    if (v < min || v > max)
        return s_fail(err, HAFL_MSG_ERANGE, path, "%g is outside [%g, %g]", v, (double)min,
                      (double)max);
    return 0;
}

//  Strings: length within [min, max] bytes (ECAP above), no NUL byte, well-formed UTF-8
//  (shortest form, no surrogates, at most U+10FFFF).
static int s_check_str(hafl_msg_error_t *err, const s_where_t *path, const uint8_t *s, size_t len,
                       size_t min, size_t max)
{
    if (len > max)
        return s_fail(err, HAFL_MSG_ECAP, path, "%zu bytes exceed the cap of %zu", len, max);
    if (len < min)
        return s_fail(err, HAFL_MSG_ERANGE, path, "%zu bytes, at least %zu required", len, min);
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0)
            return s_fail(err, HAFL_MSG_ESTRING, path, "NUL byte at offset %zu", i);
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, lo;
        if (c >= 0xc2 && c <= 0xdf)
            n = 2, cp = c & 0x1f, lo = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3, cp = c & 0x0f, lo = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4, cp = c & 0x07, lo = 0x10000;
        else
            return s_fail(err, HAFL_MSG_ESTRING, path, "invalid UTF-8 byte 0x%02x at offset %zu", c,
                          i);
        if (n > len - i)
            return s_fail(err, HAFL_MSG_ESTRING, path, "UTF-8 sequence cut at offset %zu", i);
        for (size_t j = 1; j < n; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return s_fail(err, HAFL_MSG_ESTRING, path,
                              "invalid UTF-8 continuation at offset %zu", i + j);
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < lo || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return s_fail(err, HAFL_MSG_ESTRING, path, "invalid UTF-8 code point at offset %zu", i);
        i += n;
    }
    return 0;
}

//  A C string held in a char[size] field: it must be terminated inside the array.
static int s_check_cstr(hafl_msg_error_t *err, const s_where_t *path, const char *s, size_t size,
                        size_t min)
{
    size_t len = strnlen(s, size);
    if (len == size)
        return s_fail(err, HAFL_MSG_ECAP, path, "not terminated within %zu bytes", size);
    return s_check_str(err, path, (const uint8_t *)s, len, min, size - 1);
}

//  The part of a rank-1 check that needs no context: ids, dimensions, score.
static int s_check_rank1(hafl_msg_error_t *err, const s_where_t *path, const hafl_rank1_t *r,
                         int merged)
{
    if (s_check_uint(err, S_LEAF(path, "matrix"), r->matrix, 0, HAFL_MSG_MAX_MATRICES - 1, 1))
        return -1;
    if (!merged && s_check_uint(err, S_LEAF(path, "k"), r->k, 0, HAFL_MSG_MAX_RANK - 1, 1))
        return -1;
    if (s_check_float(err, S_LEAF(path, "score"), r->score, -FLT_MAX, FLT_MAX))
        return -1;
    if (s_check_uint(err, S_LEAF(path, "b"), r->d_out, 1, HAFL_MSG_MAX_DIM, 1))
        return -1;
    if (s_check_uint(err, S_LEAF(path, "a"), r->d_in, 1, HAFL_MSG_MAX_DIM, 1))
        return -1;
    return 0;
}

static int s_check_head_shape(hafl_msg_error_t *err, const s_where_t *path, uint64_t rows,
                              uint64_t cols)
{
    if (rows > HAFL_MSG_MAX_HEAD || cols > HAFL_MSG_MAX_HEAD || rows * cols > HAFL_MSG_MAX_HEAD)
        return s_fail(err, HAFL_MSG_ECAP, path, "%llu x %llu exceeds the cap of %u floats",
                      (unsigned long long)rows, (unsigned long long)cols, HAFL_MSG_MAX_HEAD);
    if ((rows == 0) != (cols == 0))
        return s_fail(err, HAFL_MSG_ERANGE, path, "%llu x %llu: both or neither must be 0",
                      (unsigned long long)rows, (unsigned long long)cols);
    return 0;
}

//  Sort key for the cross-component checks.
typedef struct {
    uint32_t matrix, k, d_out, d_in;
    uint32_t index;  //  position in its list
    uint32_t merged; //  1 for a merged term
} s_key_t;

static int s_key_cmp(const void *x, const void *y)
{
    const s_key_t *a = x, *b = y;
    if (a->matrix != b->matrix)
        return a->matrix < b->matrix ? -1 : 1;
    if (a->merged != b->merged)
        return a->merged < b->merged ? -1 : 1;
    if (a->k != b->k)
        return a->k < b->k ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

//  Checks that relate a message's parts to each other: no component (matrix, k) twice, one
//  shape per matrix across components and merged terms, ROUND components within its roles,
//  WELCOME head shape, REJECT reasons known in `minor` (the sender's when decoding, ours when
//  encoding: a reason from a newer minor can be read but not forwarded).
static int s_check_message(const hafl_msg_t *m, uint16_t minor, hafl_msg_error_t *err)
{
    const s_type_t *t = s_type(m->type);
    if (m->type == HAFL_MSG_WELCOME)
        return s_check_head_shape(err, S_W("welcome", "head"), m->u.welcome.head_rows,
                                  m->u.welcome.head_cols);
    if (m->type == HAFL_MSG_REJECT && minor <= HAFL_PROTO_MINOR &&
        m->u.reject.reason > s_reject_last(minor))
        return s_fail(err, HAFL_MSG_ERANGE, S_W("reject", "reason"), "%u is not a reason of 2.%u",
                      m->u.reject.reason, (unsigned)minor);
    if (m->type == HAFL_MSG_ROUND && m->u.round.local_epochs == 0 && m->u.round.local_steps == 0)
        return s_fail(err, HAFL_MSG_ERANGE, S_W("round", "local_steps"),
                      "local_epochs and local_steps are both 0");
    if (!t->comp)
        return 0;

    uint32_t nc = *S_CAT(m, t->n_comp, uint32_t);
    uint32_t nm = t->merged ? *S_CAT(m, t->n_merged, uint32_t) : 0;
    const hafl_rank1_t *comp = *S_CAT(m, t->comp, hafl_rank1_t *);
    const hafl_rank1_t *merged = t->merged ? *S_CAT(m, t->merged, hafl_rank1_t *) : NULL;
    if ((uint64_t)nc + nm > HAFL_MSG_MAX_COMPONENTS)
        return s_fail(err, HAFL_MSG_ECAP, S_W(t->name, NULL), "%u components + %u merged exceed %u",
                      nc, nm, HAFL_MSG_MAX_COMPONENTS);
    if (m->type == HAFL_MSG_ROUND) {
        const hafl_round_t *r = &m->u.round;
        for (uint32_t i = 0; i < nc + nm; i++) {
            const hafl_rank1_t *x = i < nc ? &comp[i] : &merged[i - nc];
            const s_where_t *path =
                S_WI("round", i < nc ? "component" : "merged", i < nc ? i : i - nc, "matrix");
            if (x->matrix >= r->n_matrices)
                return s_fail(err, HAFL_MSG_ERANGE, path, "%u >= n_matrices %u", x->matrix,
                              r->n_matrices);
            if (i >= nc)
                continue;
            path = S_LEAF(path, "k");
            if (x->k >= r->rank)
                return s_fail(err, HAFL_MSG_ERANGE, path, "%u >= rank %u", x->k, r->rank);
            if (r->roles[(size_t)x->matrix * r->rank + x->k] == HAFL_ROLE_ABSENT)
                return s_fail(err, HAFL_MSG_ERANGE, path,
                              "component (%u, %u) is sent but its role is absent", x->matrix, x->k);
        }
    }
    if (nc + nm < 2)
        return 0;
    s_key_t *keys = malloc((size_t)(nc + nm) * sizeof *keys);
    if (!keys)
        return s_fail(err, HAFL_MSG_ENOMEM, S_W(t->name, NULL), "no memory for %u keys", nc + nm);
    for (uint32_t i = 0; i < nc + nm; i++) {
        const hafl_rank1_t *x = i < nc ? &comp[i] : &merged[i - nc];
        keys[i] = (s_key_t){x->matrix, x->k, x->d_out, x->d_in, i < nc ? i : i - nc, i >= nc};
    }
    qsort(keys, nc + nm, sizeof *keys, s_key_cmp);
    int rc = 0;
    for (uint32_t i = 1; i < nc + nm && rc == 0; i++) {
        const s_key_t *p = &keys[i - 1], *q = &keys[i];
        if (p->matrix != q->matrix)
            continue;
        const s_where_t *path = S_WI(t->name, q->merged ? "merged" : "component", q->index, NULL);
        if (p->d_out != q->d_out || p->d_in != q->d_in)
            rc = s_fail(err, HAFL_MSG_ELENGTH, path,
                        "matrix %u is %u x %u here but %u x %u in %s[%u]", q->matrix, q->d_out,
                        q->d_in, p->d_out, p->d_in, p->merged ? "merged" : "component", p->index);
        else if (!q->merged && !p->merged && p->k == q->k)
            rc = s_fail(err, HAFL_MSG_ERANGE, path, "component (%u, %u) also in component[%u]",
                        q->matrix, q->k, p->index);
    }
    free(keys);
    return rc;
}

static float *s_alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + S_ALIGN - 1) / S_ALIGN * S_ALIGN;
    return aligned_alloc(S_ALIGN, bytes ? bytes : S_ALIGN);
}

//  ---------------------------------------------------------------------------------------
//  Encoding

typedef struct {
    uint8_t *buf; //  NULL while only counting
    size_t size, pos;
} s_writer_t;

static int s_write(void *data, const char *buf, size_t len)
{
    s_writer_t *w = data;
    if (w->buf && len) {
        if (len > w->size - w->pos)
            return -1;
        memcpy(w->buf + w->pos, buf, len);
    }
    w->pos += len;
    return 0;
}

//  A bin32 header: fixed width so frame sizes do not depend on tensor sizes.
static void s_put_bin32(s_writer_t *w, uint32_t len)
{
    uint8_t h[5] = {0xc6, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    memcpy(w->buf + w->pos, h, 5);
    w->pos += 5;
}

static void s_pack_string(msgpack_packer *pk, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

//  Validate one header field of a message about to be encoded, with the decoder's rules.
static int s_validate_field(const hafl_msg_t *m, const s_type_t *t, const s_field_t *f,
                            hafl_msg_error_t *err)
{
    const s_where_t *path = S_W(t->name, f->name);
    const void *at = (const char *)m + f->offset;
    switch (f->kind) {
    case F_U32:
    case F_NCOMP:
    case F_NMERGED:
        return s_check_uint(err, path, *(const uint32_t *)at, (uint64_t)f->min, f->max, f->cap);
    case F_I32: {
        int32_t v = *(const int32_t *)at;
        if (v < f->min || (v > 0 && (uint64_t)v > f->max))
            return s_fail(err, HAFL_MSG_ERANGE, path, "%d is outside [%lld, %llu]", v,
                          (long long)f->min, (unsigned long long)f->max);
        return 0;
    }
    case F_F32:
        return s_check_float(err, path, *(const float *)at, f->fmin, f->fmax);
    case F_STR:
        return s_check_cstr(err, path, at, f->max + 1, (size_t)f->min);
    case F_HEAPSTR: {
        const char *s = *(char *const *)at;
        size_t len = s ? strnlen(s, f->max + 1) : 0;
        return s_check_str(err, path, (const uint8_t *)s, len, (size_t)f->min, f->max);
    }
    case F_MATRICES: {
        const hafl_welcome_t *w = &m->u.welcome;
        if (s_check_uint(err, path, w->n_matrices, 0, f->max, 1))
            return -1;
        if (w->n_matrices && !w->matrices)
            return s_fail(err, HAFL_MSG_ERANGE, path, "NULL with n_matrices %u", w->n_matrices);
        for (uint32_t i = 0; i < w->n_matrices; i++) {
            path = S_WI("welcome", "matrices", i, "name");
            if (s_check_cstr(err, path, w->matrices[i].name, sizeof w->matrices[i].name, 1))
                return -1;
            path = S_WI("welcome", "matrices", i, "d_out");
            if (s_check_uint(err, path, w->matrices[i].d_out, 1, HAFL_MSG_MAX_DIM, 1))
                return -1;
            path = S_WI("welcome", "matrices", i, "d_in");
            if (s_check_uint(err, path, w->matrices[i].d_in, 1, HAFL_MSG_MAX_DIM, 1))
                return -1;
        }
        return 0;
    }
    case F_ROLES: {
        const hafl_round_t *r = &m->u.round;
        size_t n = (size_t)r->n_matrices * r->rank;
        if (n && !r->roles)
            return s_fail(err, HAFL_MSG_ELENGTH, path, "NULL, %zu role bytes expected", n);
        for (size_t i = 0; i < n; i++)
            if (r->roles[i] > HAFL_ROLE_TRAINABLE)
                return s_fail(err, HAFL_MSG_ERANGE, path, "byte %zu is %u, not a role", i,
                              r->roles[i]);
        return 0;
    }
    case F_FIELDS: {
        const hafl_log_event_t *e = &m->u.log_event;
        if (s_check_uint(err, path, e->n_fields, 0, f->max, 1))
            return -1;
        if (e->n_fields && !e->fields)
            return s_fail(err, HAFL_MSG_ERANGE, path, "NULL with n_fields %u", e->n_fields);
        for (uint32_t i = 0; i < e->n_fields; i++) {
            const hafl_field_t *x = &e->fields[i];
            path = S_WI("log_event", "fields", i, "key");
            if (s_check_cstr(err, path, x->key, sizeof x->key, 1))
                return -1;
            for (uint32_t j = 0; j < i; j++)
                if (strcmp(e->fields[j].key, x->key) == 0)
                    return s_fail(err, HAFL_MSG_ERANGE, path, "key repeats fields[%u]", j);
            path = S_WI("log_event", "fields", i, "value");
            if (x->kind == HAFL_VALUE_STRING) {
                size_t len = x->s ? strnlen(x->s, HAFL_MSG_MAX_TEXT + 1) : 0;
                if (s_check_str(err, path, (const uint8_t *)x->s, len, 0, HAFL_MSG_MAX_TEXT))
                    return -1;
            } else if (x->kind == HAFL_VALUE_BOOL && x->i != 0 && x->i != 1)
                return s_fail(err, HAFL_MSG_ERANGE, path, "bool value %lld", (long long)x->i);
            else if (x->kind < HAFL_VALUE_INT || x->kind > HAFL_VALUE_BOOL)
                return s_fail(err, HAFL_MSG_EFIELDTYPE, path, "unknown kind %d", (int)x->kind);
        }
        return 0;
    }
    case F_ARGS: {
        const hafl_control_t *c = &m->u.control;
        if (s_check_uint(err, path, c->argc, 0, f->max, 1))
            return -1;
        if (c->argc && !c->argv)
            return s_fail(err, HAFL_MSG_ERANGE, path, "NULL with argc %u", c->argc);
        for (uint32_t i = 0; i < c->argc; i++) {
            path = S_WI("control", "argv", i, NULL);
            const char *s = c->argv[i];
            size_t len = s ? strnlen(s, HAFL_MSG_MAX_TEXT + 1) : 0;
            if (s_check_str(err, path, (const uint8_t *)s, len, 0, HAFL_MSG_MAX_TEXT))
                return -1;
        }
        return 0;
    }
    case F_SESSION: {
        const hafl_session_t *session = at;
        if (!session->present && f->min > 0)
            return s_fail(err, HAFL_MSG_ELENGTH, path, "no session, %lld bytes required",
                          (long long)f->min);
        return 0;
    }
    case F_U64:
    case F_BOOL:
    case F_DIGEST:
        return 0;
    }
    return 0;
}

static void s_pack_field(msgpack_packer *pk, const hafl_msg_t *m, const s_field_t *f)
{
    const void *at = (const char *)m + f->offset;
    switch (f->kind) {
    case F_U32:
    case F_NCOMP:
    case F_NMERGED:
        msgpack_pack_uint32(pk, *(const uint32_t *)at);
        break;
    case F_U64:
        msgpack_pack_uint64(pk, *(const uint64_t *)at);
        break;
    case F_I32:
        msgpack_pack_int32(pk, *(const int32_t *)at);
        break;
    case F_F32:
        msgpack_pack_float(pk, *(const float *)at);
        break;
    case F_BOOL:
        if (*(const bool *)at)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case F_STR:
        s_pack_string(pk, at);
        break;
    case F_HEAPSTR:
        s_pack_string(pk, *(char *const *)at);
        break;
    case F_DIGEST:
        msgpack_pack_bin(pk, 32);
        msgpack_pack_bin_body(pk, at, 32);
        break;
    case F_SESSION: {
        const hafl_session_t *session = at;
        size_t n = session->present ? HAFL_SESSION_BYTES : 0;
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, session->bytes, n);
        break;
    }
    case F_MATRICES: {
        const hafl_welcome_t *w = &m->u.welcome;
        msgpack_pack_array(pk, w->n_matrices);
        for (uint32_t i = 0; i < w->n_matrices; i++) {
            msgpack_pack_array(pk, 3);
            s_pack_string(pk, w->matrices[i].name);
            msgpack_pack_uint32(pk, w->matrices[i].d_out);
            msgpack_pack_uint32(pk, w->matrices[i].d_in);
        }
        break;
    }
    case F_ROLES: {
        size_t n = (size_t)m->u.round.n_matrices * m->u.round.rank;
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, m->u.round.roles, n);
        break;
    }
    case F_FIELDS: {
        const hafl_log_event_t *e = &m->u.log_event;
        msgpack_pack_map(pk, e->n_fields);
        for (uint32_t i = 0; i < e->n_fields; i++) {
            const hafl_field_t *x = &e->fields[i];
            s_pack_string(pk, x->key);
            switch (x->kind) {
            case HAFL_VALUE_INT:
                msgpack_pack_int64(pk, x->i);
                break;
            case HAFL_VALUE_FLOAT:
                msgpack_pack_double(pk, x->f);
                break;
            case HAFL_VALUE_STRING:
                s_pack_string(pk, x->s);
                break;
            case HAFL_VALUE_BOOL:
                if (x->i)
                    msgpack_pack_true(pk);
                else
                    msgpack_pack_false(pk);
                break;
            }
        }
        break;
    }
    case F_ARGS:
        msgpack_pack_array(pk, m->u.control.argc);
        for (uint32_t i = 0; i < m->u.control.argc; i++)
            s_pack_string(pk, m->u.control.argv[i]);
        break;
    }
}

static void s_pack_header(msgpack_packer *pk, const hafl_msg_t *m, const s_type_t *t)
{
    msgpack_pack_array(pk, 3 + t->n_fields);
    msgpack_pack_uint32(pk, HAFL_PROTO_MAJOR);
    msgpack_pack_uint32(pk, HAFL_PROTO_MINOR);
    msgpack_pack_uint32(pk, (uint32_t)m->type);
    for (size_t i = 0; i < t->n_fields; i++)
        s_pack_field(pk, m, &t->fields[i]);
}

//  A frame of exactly `size` bytes with a packer writing into it from the start.
static zframe_t *s_frame_new(size_t size, s_writer_t *w, msgpack_packer *pk, const s_where_t *path,
                             hafl_msg_error_t *err)
{
    zframe_t *frame = zframe_new(NULL, size);
    if (!frame) {
        s_fail(err, HAFL_MSG_ENOMEM, path, "no memory for a %zu-byte frame", size);
        return NULL;
    }
    *w = (s_writer_t){zframe_data(frame), size, 0};
    msgpack_packer_init(pk, w, s_write);
    return frame;
}

//  A float tensor as bin32 + little-endian payload, copied once; non-finite values refused.
static int s_put_tensor(s_writer_t *w, const float *x, size_t n, const s_where_t *path,
                        hafl_msg_error_t *err)
{
    s_put_bin32(w, (uint32_t)(4 * n));
    if (!hafl_f32le_copy_finite(w->buf + w->pos, x, n)) {
        float bad;
        size_t i = hafl_f32le_first_nonfinite(w->buf + w->pos, n, &bad);
        return s_fail(err, HAFL_MSG_ENONFINITE, path, "element %zu is %g", i, (double)bad);
    }
    w->pos += 4 * n;
    return 0;
}

//  An alignment pad: bin 8 of one zero byte. With the fixed-width header before it, each pad
//  puts the tensor after it at a multiple of 4 bytes from the frame start (PROTOCOL.md 4).
static void s_put_pad(s_writer_t *w)
{
    const uint8_t pad[S_RANK1_PAD_BYTES] = {0xc4, 0x01, 0x00};
    memcpy(w->buf + w->pos, pad, sizeof pad);
    w->pos += sizeof pad;
}

//  One rank-1 frame [matrix, k, score, pad, bin b, pad, bin a], validated and packed. NULL on
//  error.
static zframe_t *s_encode_rank1(const hafl_rank1_t *r, int merged, const s_where_t *path,
                                hafl_msg_error_t *err)
{
    if (s_check_rank1(err, path, r, merged))
        return NULL;
    if (!r->b || !r->a) {
        s_fail(err, HAFL_MSG_ELENGTH, path, "b or a is NULL");
        return NULL;
    }
    s_writer_t w;
    msgpack_packer pk;
    size_t size = HAFL_MSG_RANK1_OVERHEAD + 4 * ((size_t)r->d_out + r->d_in);
    zframe_t *frame = s_frame_new(size, &w, &pk, path, err);
    if (!frame)
        return NULL;
    msgpack_pack_array(&pk, S_RANK1_ELEMENTS);
    msgpack_pack_fix_uint32(&pk, r->matrix);
    msgpack_pack_fix_uint32(&pk, r->k);
    msgpack_pack_float(&pk, r->score);
    s_put_pad(&w);
    if (s_put_tensor(&w, r->b, r->d_out, S_LEAF(path, "b"), err)) {
        zframe_destroy(&frame);
        return NULL;
    }
    s_put_pad(&w);
    if (s_put_tensor(&w, r->a, r->d_in, S_LEAF(path, "a"), err))
        zframe_destroy(&frame);
    return frame;
}

//  The head frame [rows, cols, bin data].
static zframe_t *s_encode_head(const hafl_tensor_t *h, const s_where_t *path, hafl_msg_error_t *err)
{
    if (s_check_head_shape(err, path, h->rows, h->cols))
        return NULL;
    size_t n = (size_t)h->rows * h->cols;
    if (n && !h->data) {
        s_fail(err, HAFL_MSG_ELENGTH, path, "data is NULL for %u x %u", h->rows, h->cols);
        return NULL;
    }
    s_writer_t w;
    msgpack_packer pk;
    zframe_t *frame = s_frame_new(HAFL_MSG_HEAD_OVERHEAD + 4 * n, &w, &pk, path, err);
    if (!frame)
        return NULL;
    msgpack_pack_array(&pk, 3);
    msgpack_pack_fix_uint32(&pk, h->rows);
    msgpack_pack_fix_uint32(&pk, h->cols);
    if (s_put_tensor(&w, h->data, n, S_LEAF(path, "data"), err))
        zframe_destroy(&frame);
    return frame;
}

zframe_t *hafl_msg_rank1_encode(const hafl_rank1_t *rank1, hafl_msg_error_t *err)
{
    return s_encode_rank1(rank1, 0, S_W("rank1", NULL), err);
}

zmsg_t *hafl_msg_encode(const hafl_msg_t *self, hafl_msg_error_t *err)
{
    const s_type_t *t = self ? s_type(self->type) : NULL;
    if (!t) {
        s_fail(err, HAFL_MSG_EUNKNOWN, S_W("header", "type"), "cannot encode type %d",
               self ? (int)self->type : -1);
        return NULL;
    }
    for (size_t i = 0; i < t->n_fields; i++)
        if (s_validate_field(self, t, &t->fields[i], err))
            return NULL;
    if (t->comp) {
        //  Arrays must exist before the cross checks read them.
        uint32_t nc = *S_CAT(self, t->n_comp, uint32_t);
        uint32_t nm = t->merged ? *S_CAT(self, t->n_merged, uint32_t) : 0;
        if ((nc && !*S_CAT(self, t->comp, hafl_rank1_t *)) ||
            (nm && !*S_CAT(self, t->merged, hafl_rank1_t *))) {
            s_fail(err, HAFL_MSG_ENOFRAMES, S_W(t->name, NULL),
                   "component or merged array is NULL");
            return NULL;
        }
    }
    if (s_check_message(self, HAFL_PROTO_MINOR, err)) //  what is written is this minor
        return NULL;

    //  Frame 0: count, check the cap, then pack into the exact buffer.
    s_writer_t w = {NULL, 0, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, s_write);
    s_pack_header(&pk, self, t);
    if (w.pos > HAFL_MSG_MAX_HEADER) {
        s_fail(err, HAFL_MSG_ECAP, S_W(t->name, NULL), "header of %zu bytes exceeds the cap of %u",
               w.pos, HAFL_MSG_MAX_HEADER);
        return NULL;
    }
    zmsg_t *zmsg = zmsg_new();
    zframe_t *frame = zmsg ? zframe_new(NULL, w.pos) : NULL;
    if (!frame) {
        zmsg_destroy(&zmsg);
        s_fail(err, HAFL_MSG_ENOMEM, S_W(t->name, NULL), "no memory for the header");
        return NULL;
    }
    w = (s_writer_t){zframe_data(frame), zframe_size(frame), 0};
    s_pack_header(&pk, self, t);
    zmsg_append(zmsg, &frame);
    if (w.pos != w.size) { //  the two passes disagree: a codec bug, never input-dependent
        s_fail(err, HAFL_MSG_ENOMEM, S_W(t->name, NULL), "header packed %zu of %zu bytes", w.pos,
               w.size);
        zmsg_destroy(&zmsg);
        return NULL;
    }

    size_t total = w.pos;
    if (t->comp) {
        uint32_t nc = *S_CAT(self, t->n_comp, uint32_t);
        uint32_t nm = t->merged ? *S_CAT(self, t->n_merged, uint32_t) : 0;
        const hafl_rank1_t *comp = *S_CAT(self, t->comp, hafl_rank1_t *);
        const hafl_rank1_t *merged = t->merged ? *S_CAT(self, t->merged, hafl_rank1_t *) : NULL;
        for (uint32_t i = 0; i < nc + nm; i++) {
            const s_where_t *path =
                S_WI(t->name, i < nc ? "component" : "merged", i < nc ? i : i - nc, NULL);
            const hafl_rank1_t *r = i < nc ? &comp[i] : &merged[i - nc];
            total += HAFL_MSG_RANK1_OVERHEAD + 4 * ((size_t)r->d_out + r->d_in);
            if (total > HAFL_MSG_MAX_BYTES) {
                s_fail(err, HAFL_MSG_ECAP, path, "message exceeds %u bytes", HAFL_MSG_MAX_BYTES);
                zmsg_destroy(&zmsg);
                return NULL;
            }
            frame = s_encode_rank1(r, i >= nc, path, err);
            if (!frame) {
                zmsg_destroy(&zmsg);
                return NULL;
            }
            zmsg_append(zmsg, &frame);
        }
        const s_where_t *path = S_W(t->name, "head");
        const hafl_tensor_t *h = S_CAT(self, t->head, hafl_tensor_t);
        total += HAFL_MSG_HEAD_OVERHEAD + 4 * (size_t)h->rows * h->cols;
        frame = total <= HAFL_MSG_MAX_BYTES ? s_encode_head(h, path, err) : NULL;
        if (!frame) {
            if (total > HAFL_MSG_MAX_BYTES)
                s_fail(err, HAFL_MSG_ECAP, path, "message exceeds %u bytes", HAFL_MSG_MAX_BYTES);
            zmsg_destroy(&zmsg);
            return NULL;
        }
        zmsg_append(zmsg, &frame);
    }
    return zmsg;
}

//  ---------------------------------------------------------------------------------------
//  Decoding

static const char *s_kind_name(hafl_mp_kind_t kind)
{
    static const char *names[] = {"?",   "nil", "bool",  "uint", "int", "float",
                                  "str", "bin", "array", "map",  "ext"};
    return kind <= HAFL_MP_EXT ? names[kind] : "?";
}

static int s_next(hafl_mpreader_t *r, hafl_mp_item_t *it, const s_where_t *path,
                  hafl_msg_error_t *err)
{
    int rc = hafl_mpreader_next(r, it);
    if (rc == HAFL_MP_ETRUNCATED)
        return s_fail(err, HAFL_MSG_ETRUNCATED, path, "frame ends inside the value");
    if (rc)
        return s_fail(err, HAFL_MSG_EFIELDTYPE, path, "byte 0x%02x is not MessagePack",
                      r->p < r->end ? *r->p : 0);
    return 0;
}

static int s_expect(const hafl_mp_item_t *it, hafl_mp_kind_t kind, const s_where_t *path,
                    hafl_msg_error_t *err)
{
    if (it->kind == kind)
        return 0;
    return s_fail(err, HAFL_MSG_EFIELDTYPE, path, "expected %s, got %s (0x%02x)", s_kind_name(kind),
                  s_kind_name(it->kind), it->tag);
}

static int s_read_uint(hafl_mpreader_t *r, const s_where_t *path, uint64_t min, uint64_t max,
                       int cap, uint64_t *out, hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_next(r, &it, path, err))
        return -1;
    if (it.kind == HAFL_MP_INT)
        return s_fail(err, HAFL_MSG_ERANGE, path, "%lld is negative", (long long)it.i);
    if (s_expect(&it, HAFL_MP_UINT, path, err))
        return -1;
    *out = it.u;
    return s_check_uint(err, path, it.u, min, max, cap);
}

//  Floats arrive as float 32 or float 64; a float 64 must fit a float 32.
static int s_read_float(hafl_mpreader_t *r, const s_where_t *path, float min, float max, float *out,
                        hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_next(r, &it, path, err) || s_expect(&it, HAFL_MP_FLOAT, path, err))
        return -1;
    if (s_check_float(err, path, it.f, min, max))
        return -1;
    *out = (float)it.f;
    return 0;
}

static int s_read_bool(hafl_mpreader_t *r, const s_where_t *path, bool *out, hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_next(r, &it, path, err) || s_expect(&it, HAFL_MP_BOOL, path, err))
        return -1;
    *out = it.u != 0;
    return 0;
}

static int s_read_str(hafl_mpreader_t *r, const s_where_t *path, size_t min, size_t max,
                      hafl_mp_item_t *it, hafl_msg_error_t *err)
{
    if (s_next(r, it, path, err) || s_expect(it, HAFL_MP_STR, path, err))
        return -1;
    return s_check_str(err, path, it->ptr, it->len, min, max);
}

static int s_read_cstr(hafl_mpreader_t *r, const s_where_t *path, char *dst, size_t size,
                       size_t min, hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_read_str(r, path, min, size - 1, &it, err))
        return -1;
    memcpy(dst, it.ptr, it.len);
    dst[it.len] = 0;
    return 0;
}

static int s_read_heapstr(hafl_mpreader_t *r, const s_where_t *path, size_t max, char **dst,
                          hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_read_str(r, path, 0, max, &it, err))
        return -1;
    *dst = malloc((size_t)it.len + 1);
    if (!*dst)
        return s_fail(err, HAFL_MSG_ENOMEM, path, "no memory for %u bytes", it.len);
    memcpy(*dst, it.ptr, it.len);
    (*dst)[it.len] = 0;
    return 0;
}

//  An array of at least `need` elements; more only from a newer minor (their values are then
//  skipped by s_skip_extra). Returns the element count in *n.
static int s_read_tuple(hafl_mpreader_t *r, const s_where_t *path, uint32_t need, uint16_t minor,
                        uint32_t *n, hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_next(r, &it, path, err) || s_expect(&it, HAFL_MP_ARRAY, path, err))
        return -1;
    *n = it.len;
    if (it.len < need)
        return s_fail(err, HAFL_MSG_EARITY, path, "%u elements, %u required", it.len, need);
    if (it.len > need && minor <= HAFL_PROTO_MINOR)
        return s_fail(err, HAFL_MSG_EARITY, path, "%u elements, exactly %u in 2.%u", it.len, need,
                      minor);
    return 0;
}

static int s_skip_extra(hafl_mpreader_t *r, const s_where_t *path, uint32_t extra,
                        hafl_msg_error_t *err)
{
    for (uint32_t i = 0; i < extra; i++) {
        int rc = hafl_mpreader_skip(r, S_MAX_DEPTH);
        if (rc == HAFL_MP_ETRUNCATED)
            return s_fail(err, HAFL_MSG_ETRUNCATED, path, "frame ends inside extra element %u", i);
        if (rc == HAFL_MP_EDEPTH)
            return s_fail(err, HAFL_MSG_ECAP, path, "extra element nests deeper than %d",
                          S_MAX_DEPTH);
        if (rc)
            return s_fail(err, HAFL_MSG_EFIELDTYPE, path, "extra element %u is not MessagePack", i);
    }
    return 0;
}

static int s_expect_end(const hafl_mpreader_t *r, const s_where_t *path, hafl_msg_error_t *err)
{
    size_t left = hafl_mpreader_remaining(r);
    if (left)
        return s_fail(err, HAFL_MSG_ETRAILING, path, "%zu bytes after the last value", left);
    return 0;
}

//  A float tensor as bin: byte length checked against 4 x dimension by the caller.
static int s_read_bin(hafl_mpreader_t *r, const s_where_t *path, hafl_mp_item_t *it,
                      hafl_msg_error_t *err)
{
    return s_next(r, it, path, err) || s_expect(it, HAFL_MP_BIN, path, err) ? -1 : 0;
}

//  A checked bin payload of n floats, finiteness tested. Copied into a new aligned array, or,
//  when borrow is set, the host is little-endian and the bytes lie 4-aligned in memory, used
//  where it lies (*borrowed set). *out is NULL for n == 0.
static int s_take_floats(const uint8_t *src, size_t n, bool borrow, float **out, bool *borrowed,
                         const s_where_t *path, hafl_msg_error_t *err)
{
    *out = NULL;
    *borrowed = false;
    if (n == 0)
        return 0;
    if (borrow && hafl_f32le_host_order() && (uintptr_t)src % _Alignof(float) == 0) {
        if (!hafl_f32le_all_finite(src, n))
            goto nonfinite;
        //  The frame's bytes are writable (zframe_data); the cast only drops the reader's const.
        *out = (float *)(uintptr_t)src;
        *borrowed = true;
        return 0;
    }
    float *x = s_alloc_floats(n);
    if (!x)
        return s_fail(err, HAFL_MSG_ENOMEM, path, "no memory for %zu floats", n);
    if (!hafl_f32le_copy_finite(x, src, n)) {
        free(x);
        goto nonfinite;
    }
    *out = x;
    return 0;
nonfinite:;
    float bad;
    size_t i = hafl_f32le_first_nonfinite(src, n, &bad);
    return s_fail(err, HAFL_MSG_ENONFINITE, path, "element %zu is %g", i, (double)bad);
}

//  The dimension a bin of float32 declares, checked: a multiple of 4 bytes, 1..MAX_DIM floats.
static int s_dim_of(const hafl_mp_item_t *it, const s_where_t *path, uint32_t *dim,
                    hafl_msg_error_t *err)
{
    if (it->len % 4)
        return s_fail(err, HAFL_MSG_ELENGTH, path, "%u bytes is not a multiple of 4", it->len);
    *dim = it->len / 4;
    return s_check_uint(err, path, *dim, 1, HAFL_MSG_MAX_DIM, 1);
}

//  A pad element: bin of at most HAFL_MSG_MAX_PAD bytes whose content is ignored.
static int s_read_pad(hafl_mpreader_t *r, const s_where_t *path, hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_read_bin(r, path, &it, err))
        return -1;
    if (it.len > HAFL_MSG_MAX_PAD)
        return s_fail(err, HAFL_MSG_ECAP, path, "%u bytes exceed the cap of %u", it.len,
                      HAFL_MSG_MAX_PAD);
    return 0;
}

static bool s_float_aligned(const void *p)
{
    return (uintptr_t)p % _Alignof(float) == 0;
}

//  One rank-1 frame; with borrow, b and a stay in the frame when both can (see s_take_floats).
static int s_decode_rank1(zframe_t *frame, uint16_t minor, int merged, bool borrow,
                          const s_where_t *path, hafl_rank1_t *r, hafl_msg_error_t *err)
{
    memset(r, 0, sizeof *r);
    hafl_mpreader_t rd;
    hafl_mpreader_init(&rd, zframe_data(frame), zframe_size(frame));
    const s_where_t *p;
    uint32_t n;
    uint64_t v;
    hafl_mp_item_t b, a;
    if (s_read_tuple(&rd, path, S_RANK1_ELEMENTS, minor, &n, err))
        return -1;
    p = S_LEAF(path, "matrix");
    if (s_read_uint(&rd, p, 0, HAFL_MSG_MAX_MATRICES - 1, 1, &v, err))
        return -1;
    r->matrix = (uint32_t)v;
    p = S_LEAF(path, "k");
    if (s_read_uint(&rd, p, 0, merged ? UINT32_MAX : HAFL_MSG_MAX_RANK - 1, 1, &v, err))
        return -1;
    r->k = (uint32_t)v;
    p = S_LEAF(path, "score");
    if (s_read_float(&rd, p, -FLT_MAX, FLT_MAX, &r->score, err))
        return -1;
    if (s_read_pad(&rd, S_LEAF(path, "pad_b"), err))
        return -1;
    p = S_LEAF(path, "b");
    if (s_read_bin(&rd, p, &b, err) || s_dim_of(&b, p, &r->d_out, err))
        return -1;
    if (s_read_pad(&rd, S_LEAF(path, "pad_a"), err))
        return -1;
    p = S_LEAF(path, "a");
    if (s_read_bin(&rd, p, &a, err) || s_dim_of(&a, p, &r->d_in, err))
        return -1;
    if (s_skip_extra(&rd, path, n - S_RANK1_ELEMENTS, err) || s_expect_end(&rd, path, err))
        return -1;
    //  Borrow both tensors or neither, so one flag tells what the struct owns.
    borrow = borrow && s_float_aligned(b.ptr) && s_float_aligned(a.ptr);
    p = S_LEAF(path, "b");
    if (s_take_floats(b.ptr, r->d_out, borrow, &r->b, &r->borrowed, p, err))
        return -1;
    p = S_LEAF(path, "a");
    //  Same decision as for b, but its own flag: a failure here must not clear b's.
    bool borrowed_a;
    if (s_take_floats(a.ptr, r->d_in, borrow, &r->a, &borrowed_a, p, err)) {
        hafl_msg_rank1_clear(r);
        return -1;
    }
    return 0;
}

static int s_decode_head(zframe_t *frame, uint16_t minor, bool borrow, const s_where_t *path,
                         hafl_tensor_t *h, hafl_msg_error_t *err)
{
    hafl_mpreader_t rd;
    hafl_mpreader_init(&rd, zframe_data(frame), zframe_size(frame));
    const s_where_t *p;
    uint32_t n;
    uint64_t rows, cols;
    hafl_mp_item_t data;
    if (s_read_tuple(&rd, path, 3, minor, &n, err))
        return -1;
    p = S_LEAF(path, "rows");
    if (s_read_uint(&rd, p, 0, HAFL_MSG_MAX_HEAD, 1, &rows, err))
        return -1;
    p = S_LEAF(path, "cols");
    if (s_read_uint(&rd, p, 0, HAFL_MSG_MAX_HEAD, 1, &cols, err))
        return -1;
    if (s_check_head_shape(err, path, rows, cols))
        return -1;
    p = S_LEAF(path, "data");
    if (s_read_bin(&rd, p, &data, err))
        return -1;
    if (data.len != 4 * rows * cols)
        return s_fail(err, HAFL_MSG_ELENGTH, p, "%u bytes, 4 x %llu x %llu expected", data.len,
                      (unsigned long long)rows, (unsigned long long)cols);
    if (s_skip_extra(&rd, path, n - 3, err) || s_expect_end(&rd, path, err))
        return -1;
    h->rows = (uint32_t)rows;
    h->cols = (uint32_t)cols;
    return s_take_floats(data.ptr, rows * cols, borrow, &h->data, &h->borrowed, p, err);
}

static int s_decode_matrices(hafl_mpreader_t *r, hafl_msg_t *m, const s_field_t *f,
                             hafl_msg_error_t *err)
{
    hafl_welcome_t *w = &m->u.welcome;
    hafl_mp_item_t it;
    const s_where_t *path;
    if (s_next(r, &it, S_W("welcome", "matrices"), err) ||
        s_expect(&it, HAFL_MP_ARRAY, S_W("welcome", "matrices"), err))
        return -1;
    if (s_check_uint(err, S_W("welcome", "matrices"), it.len, 0, f->max, 1))
        return -1;
    //  Each entry takes at least 5 bytes, so a count the frame cannot hold is refused before
    //  allocating for it.
    if ((uint64_t)it.len * 5 > hafl_mpreader_remaining(r))
        return s_fail(err, HAFL_MSG_ETRUNCATED, S_W("welcome", "matrices"),
                      "%u entries cannot fit in %zu bytes", it.len, hafl_mpreader_remaining(r));
    w->n_matrices = it.len;
    if (it.len && !(w->matrices = calloc(it.len, sizeof *w->matrices)))
        return s_fail(err, HAFL_MSG_ENOMEM, S_W("welcome", "matrices"), "no memory for %u", it.len);
    for (uint32_t i = 0; i < it.len; i++) {
        uint32_t n;
        uint64_t v;
        path = S_WI("welcome", "matrices", i, NULL);
        if (s_read_tuple(r, path, 3, m->minor, &n, err))
            return -1;
        path = S_WI("welcome", "matrices", i, "name");
        if (s_read_cstr(r, path, w->matrices[i].name, sizeof w->matrices[i].name, 1, err))
            return -1;
        path = S_WI("welcome", "matrices", i, "d_out");
        if (s_read_uint(r, path, 1, HAFL_MSG_MAX_DIM, 1, &v, err))
            return -1;
        w->matrices[i].d_out = (uint32_t)v;
        path = S_WI("welcome", "matrices", i, "d_in");
        if (s_read_uint(r, path, 1, HAFL_MSG_MAX_DIM, 1, &v, err))
            return -1;
        w->matrices[i].d_in = (uint32_t)v;
        path = S_WI("welcome", "matrices", i, NULL);
        if (s_skip_extra(r, path, n - 3, err))
            return -1;
    }
    return 0;
}

static int s_decode_fields(hafl_mpreader_t *r, hafl_msg_t *m, const s_field_t *f,
                           hafl_msg_error_t *err)
{
    hafl_log_event_t *e = &m->u.log_event;
    hafl_mp_item_t it;
    const s_where_t *path;
    if (s_next(r, &it, S_W("log_event", "fields"), err) ||
        s_expect(&it, HAFL_MP_MAP, S_W("log_event", "fields"), err))
        return -1;
    if (s_check_uint(err, S_W("log_event", "fields"), it.len, 0, f->max, 1))
        return -1;
    if (it.len && !(e->fields = calloc(it.len, sizeof *e->fields)))
        return s_fail(err, HAFL_MSG_ENOMEM, S_W("log_event", "fields"), "no memory for %u", it.len);
    uint32_t n = it.len;
    for (uint32_t i = 0; i < n; i++) {
        hafl_field_t *x = &e->fields[i];
        path = S_WI("log_event", "fields", i, "key");
        if (s_read_cstr(r, path, x->key, sizeof x->key, 1, err))
            return -1;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(e->fields[j].key, x->key) == 0)
                return s_fail(err, HAFL_MSG_ERANGE, path, "key repeats fields[%u]", j);
        path = S_WI("log_event", "fields", i, "value");
        hafl_mp_item_t v;
        const uint8_t *before = r->p;
        if (s_next(r, &v, path, err))
            return -1;
        e->n_fields = i + 1; //  from here on destroy frees this field's string
        switch (v.kind) {
        case HAFL_MP_UINT:
            if (v.u > INT64_MAX)
                return s_fail(err, HAFL_MSG_ERANGE, path, "%llu exceeds int64",
                              (unsigned long long)v.u);
            x->kind = HAFL_VALUE_INT;
            x->i = (int64_t)v.u;
            break;
        case HAFL_MP_INT:
            x->kind = HAFL_VALUE_INT;
            x->i = v.i;
            break;
        case HAFL_MP_FLOAT:
            x->kind = HAFL_VALUE_FLOAT;
            x->f = v.f;
            break;
        case HAFL_MP_BOOL:
            x->kind = HAFL_VALUE_BOOL;
            x->i = (int64_t)v.u;
            break;
        case HAFL_MP_STR:
            r->p = before;
            x->kind = HAFL_VALUE_STRING;
            if (s_read_heapstr(r, path, HAFL_MSG_MAX_TEXT, &x->s, err))
                return -1;
            break;
        default:
            return s_fail(err, HAFL_MSG_EFIELDTYPE, path,
                          "expected int, float, str or bool, got %s (0x%02x)", s_kind_name(v.kind),
                          v.tag);
        }
    }
    return 0;
}

static int s_decode_args(hafl_mpreader_t *r, hafl_msg_t *m, const s_field_t *f,
                         hafl_msg_error_t *err)
{
    hafl_control_t *c = &m->u.control;
    hafl_mp_item_t it;
    const s_where_t *path;
    if (s_next(r, &it, S_W("control", "argv"), err) ||
        s_expect(&it, HAFL_MP_ARRAY, S_W("control", "argv"), err))
        return -1;
    if (s_check_uint(err, S_W("control", "argv"), it.len, 0, f->max, 1))
        return -1;
    if (it.len && !(c->argv = calloc(it.len, sizeof *c->argv)))
        return s_fail(err, HAFL_MSG_ENOMEM, S_W("control", "argv"), "no memory for %u", it.len);
    c->argc = it.len;
    for (uint32_t i = 0; i < c->argc; i++) {
        path = S_WI("control", "argv", i, NULL);
        if (s_read_heapstr(r, path, HAFL_MSG_MAX_TEXT, &c->argv[i], err))
            return -1;
    }
    return 0;
}

static int s_decode_field(hafl_mpreader_t *r, hafl_msg_t *m, const s_type_t *t, const s_field_t *f,
                          hafl_msg_error_t *err)
{
    const s_where_t *path = S_W(t->name, f->name);
    void *at = (char *)m + f->offset;
    uint64_t u;
    hafl_mp_item_t it;
    switch (f->kind) {
    case F_U32:
    case F_NCOMP:
    case F_NMERGED:
        if (s_read_uint(r, path, (uint64_t)f->min, f->max, f->cap, &u, err))
            return -1;
        *(uint32_t *)at = (uint32_t)u;
        return 0;
    case F_U64:
        return s_read_uint(r, path, 0, UINT64_MAX, 0, (uint64_t *)at, err);
    case F_I32:
        if (s_next(r, &it, path, err))
            return -1;
        if (it.kind == HAFL_MP_UINT) {
            if (s_check_uint(err, path, it.u, 0, f->max, 0))
                return -1;
            *(int32_t *)at = (int32_t)it.u;
            return 0;
        }
        if (s_expect(&it, HAFL_MP_INT, path, err))
            return -1;
        if (it.i < f->min)
            return s_fail(err, HAFL_MSG_ERANGE, path, "%lld is below the minimum %lld",
                          (long long)it.i, (long long)f->min);
        *(int32_t *)at = (int32_t)it.i;
        return 0;
    case F_F32:
        return s_read_float(r, path, f->fmin, f->fmax, at, err);
    case F_BOOL:
        return s_read_bool(r, path, at, err);
    case F_STR:
        return s_read_cstr(r, path, at, f->max + 1, (size_t)f->min, err);
    case F_HEAPSTR:
        return s_read_heapstr(r, path, f->max, at, err);
    case F_DIGEST:
        if (s_read_bin(r, path, &it, err))
            return -1;
        if (it.len != 32)
            return s_fail(err, HAFL_MSG_ELENGTH, path, "%u bytes, 32 required", it.len);
        memcpy(at, it.ptr, 32);
        return 0;
    case F_SESSION: {
        if (s_read_bin(r, path, &it, err))
            return -1;
        hafl_session_t *session = at;
        if (it.len == 0 && f->min == 0)
            return 0;
        if (it.len != HAFL_SESSION_BYTES)
            return s_fail(err, HAFL_MSG_ELENGTH, path, "%u bytes, %s32 required", it.len,
                          f->min == 0 ? "0 or " : "");
        memcpy(session->bytes, it.ptr, HAFL_SESSION_BYTES);
        session->present = true;
        return 0;
    }
    case F_ROLES: {
        hafl_round_t *rd = &m->u.round;
        size_t n = (size_t)rd->n_matrices * rd->rank;
        if (s_read_bin(r, path, &it, err))
            return -1;
        if (it.len != n)
            return s_fail(err, HAFL_MSG_ELENGTH, path, "%u bytes, n_matrices x rank = %zu", it.len,
                          n);
        for (size_t i = 0; i < n; i++)
            if (it.ptr[i] > HAFL_ROLE_TRAINABLE)
                return s_fail(err, HAFL_MSG_ERANGE, path, "byte %zu is %u, not a role", i,
                              it.ptr[i]);
        if (n && !(rd->roles = malloc(n)))
            return s_fail(err, HAFL_MSG_ENOMEM, path, "no memory for %zu bytes", n);
        if (n)
            memcpy(rd->roles, it.ptr, n);
        return 0;
    }
    case F_MATRICES:
        return s_decode_matrices(r, m, f, err);
    case F_FIELDS:
        return s_decode_fields(r, m, f, err);
    case F_ARGS:
        return s_decode_args(r, m, f, err);
    }
    return 0;
}

//  Frame 0 up to the type: [major, minor, type, ...]. Fills *n with the array length.
static int s_decode_prefix(hafl_mpreader_t *r, uint32_t *n, uint64_t *major, uint64_t *minor,
                           uint64_t *type, hafl_msg_error_t *err)
{
    hafl_mp_item_t it;
    if (s_next(r, &it, S_W("header", NULL), err) ||
        s_expect(&it, HAFL_MP_ARRAY, S_W("header", NULL), err))
        return -1;
    *n = it.len;
    if (it.len < 1)
        return s_fail(err, HAFL_MSG_EARITY, S_W("header", NULL), "empty header array");
    if (s_read_uint(r, S_W("header", "major"), 0, UINT64_MAX, 0, major, err))
        return -1;
    if (*major != HAFL_PROTO_MAJOR) {
        s_fail(err, HAFL_MSG_EVERSION, S_W("header", "major"),
               "protocol %llu, this peer speaks %u.%u", (unsigned long long)*major,
               HAFL_PROTO_MAJOR, HAFL_PROTO_MINOR);
        //  [major, minor, type] keep their meaning in every major: the type tells a HELLO (to
        //  be answered REJECT VERSION) from any other message (dropped).
        hafl_mp_item_t minor_item, type_item;
        hafl_msg_error_t scratch;
        if (it.len >= 3 && s_next(r, &minor_item, S_W("header", "minor"), &scratch) == 0 &&
            s_next(r, &type_item, S_W("header", "type"), &scratch) == 0 &&
            type_item.kind == HAFL_MP_UINT)
            err->type = type_item.u;
        return -1;
    }
    if (it.len < 3)
        return s_fail(err, HAFL_MSG_EARITY, S_W("header", NULL), "%u elements, at least 3 required",
                      it.len);
    if (s_read_uint(r, S_W("header", "minor"), 0, UINT16_MAX, 0, minor, err))
        return -1;
    if (s_next(r, &it, S_W("header", "type"), err))
        return -1;
    if (it.kind == HAFL_MP_INT || (it.kind == HAFL_MP_UINT && !s_type(it.u)))
        return s_fail(err, HAFL_MSG_EUNKNOWN, S_W("header", "type"), "unknown message type %lld",
                      it.kind == HAFL_MP_INT ? (long long)it.i : (long long)it.u);
    if (s_expect(&it, HAFL_MP_UINT, S_W("header", "type"), err))
        return -1;
    *type = it.u;
    return 0;
}

//  The whole decoder; with borrow, tensors stay in zmsg's frames where they can.
static hafl_msg_t *s_decode(zmsg_t *zmsg, bool borrow, hafl_msg_error_t *err)
{
    size_t frames = zmsg ? zmsg_size(zmsg) : 0;
    if (frames == 0) {
        s_fail(err, HAFL_MSG_ENOFRAMES, S_W("message", NULL), "no frames");
        return NULL;
    }
    if (zmsg_content_size(zmsg) > HAFL_MSG_MAX_BYTES) {
        s_fail(err, HAFL_MSG_ECAP, S_W("message", NULL), "%zu bytes exceed the cap of %u",
               zmsg_content_size(zmsg), HAFL_MSG_MAX_BYTES);
        return NULL;
    }
    zframe_t *frame = zmsg_first(zmsg);
    if (zframe_size(frame) > HAFL_MSG_MAX_HEADER) {
        s_fail(err, HAFL_MSG_ECAP, S_W("header", NULL), "%zu bytes exceed the cap of %u",
               zframe_size(frame), HAFL_MSG_MAX_HEADER);
        return NULL;
    }
    hafl_mpreader_t rd;
    hafl_mpreader_init(&rd, zframe_data(frame), zframe_size(frame));
    uint32_t n = 0;
    uint64_t major = 0, minor = 0, type = 0;
    if (s_decode_prefix(&rd, &n, &major, &minor, &type, err))
        return NULL;
    const s_type_t *t = s_type(type);
    //  A sender of an older minor writes only the fields that minor had; they come first, since
    //  minors only append.
    uint32_t known = s_fields_in(t, minor);
    uint32_t need = 3 + known;
    if (n < need || (n > need && minor <= HAFL_PROTO_MINOR)) {
        s_fail(err, HAFL_MSG_EARITY, S_W(t->name, NULL), "header has %u elements, %s%u in 2.%llu",
               n, n < need ? "at least " : "exactly ", need, (unsigned long long)minor);
        return NULL;
    }
    hafl_msg_t *m = hafl_msg_new((hafl_msg_type_t)type);
    if (!m) {
        s_fail(err, HAFL_MSG_ENOMEM, S_W(t->name, NULL), "no memory for the message");
        return NULL;
    }
    m->minor = (uint16_t)minor;
    for (size_t i = 0; i < known; i++)
        if (s_decode_field(&rd, m, t, &t->fields[i], err))
            goto fail;
    if (s_skip_extra(&rd, S_W(t->name, NULL), n - need, err) ||
        s_expect_end(&rd, S_W(t->name, NULL), err))
        goto fail;

    //  The header says how many frames follow; nothing is allocated for them before the
    //  actual count matches.
    uint32_t nc = t->comp ? *S_AT(m, t->n_comp, uint32_t) : 0;
    uint32_t nm = t->merged ? *S_AT(m, t->n_merged, uint32_t) : 0;
    size_t expect = 1 + (size_t)nc + nm + (t->head ? 1 : 0);
    if (frames != expect) {
        s_fail(err, HAFL_MSG_ENOFRAMES, S_W(t->name, NULL), "%zu frames, header declares %zu",
               frames, expect);
        goto fail;
    }
    for (int pass = 0; pass < 2 && t->comp; pass++) {
        uint32_t count = pass ? nm : nc;
        if (count == 0)
            continue;
        hafl_rank1_t *list = calloc(count, sizeof *list);
        if (!list) {
            s_fail(err, HAFL_MSG_ENOMEM, S_W(t->name, NULL), "no memory for %u rank-1 terms",
                   count);
            goto fail;
        }
        //  Owned by the message from here on, so a failure below frees what was decoded.
        *S_AT(m, pass ? t->merged : t->comp, hafl_rank1_t *) = list;
        for (uint32_t i = 0; i < count; i++) {
            const s_where_t *path;
            path = S_WI(t->name, pass ? "merged" : "component", i, NULL);
            if (s_decode_rank1(zmsg_next(zmsg), m->minor, pass, borrow, path, &list[i], err))
                goto fail;
        }
    }
    if (t->head) {
        const s_where_t *path;
        path = S_W(t->name, "head");
        if (s_decode_head(zmsg_next(zmsg), m->minor, borrow, path, S_AT(m, t->head, hafl_tensor_t),
                          err))
            goto fail;
    }
    if (s_check_message(m, m->minor, err))
        goto fail;
    return m;
fail:
    hafl_msg_destroy(&m);
    return NULL;
}

hafl_msg_t *hafl_msg_decode(zmsg_t *zmsg, hafl_msg_error_t *err)
{
    hafl_msg_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    return s_decode(zmsg, false, err);
}

hafl_msg_t *hafl_msg_decode_take(zmsg_t **zmsg_p, hafl_msg_error_t *err)
{
    hafl_msg_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    hafl_msg_t *m = s_decode(zmsg_p ? *zmsg_p : NULL, true, err);
    if (m) {
        m->frames = *zmsg_p;
        *zmsg_p = NULL;
    }
    return m;
}

static int s_rank1_decode(zframe_t *frame, bool borrow, hafl_rank1_t *rank1,
                          hafl_msg_error_t *err)
{
    hafl_msg_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    if (!frame) {
        memset(rank1, 0, sizeof *rank1);
        return s_fail(err, HAFL_MSG_ENOFRAMES, S_W("rank1", NULL), "no frame");
    }
    if (s_decode_rank1(frame, HAFL_PROTO_MINOR, 0, borrow, S_W("rank1", NULL), rank1, err)) {
        hafl_msg_rank1_clear(rank1); //  frees nothing left by a failure, zeroes the fields read
        return -1;
    }
    return 0;
}

int hafl_msg_rank1_decode(zframe_t *frame, hafl_rank1_t *rank1, hafl_msg_error_t *err)
{
    return s_rank1_decode(frame, false, rank1, err);
}

int hafl_msg_rank1_view(zframe_t *frame, hafl_rank1_t *rank1, hafl_msg_error_t *err)
{
    return s_rank1_decode(frame, true, rank1, err);
}

void hafl_msg_rank1_clear(hafl_rank1_t *rank1)
{
    if (!rank1)
        return;
    if (!rank1->borrowed) {
        free(rank1->b);
        free(rank1->a);
    }
    memset(rank1, 0, sizeof *rank1);
}

int hafl_msg_peek(zmsg_t *zmsg, uint64_t *major, uint64_t *minor, uint64_t *type)
{
    zframe_t *frame = zmsg ? zmsg_first(zmsg) : NULL;
    if (!frame)
        return -1;
    hafl_mpreader_t rd;
    hafl_mpreader_init(&rd, zframe_data(frame), zframe_size(frame));
    hafl_mp_item_t it;
    uint64_t v[3];
    if (hafl_mpreader_next(&rd, &it) || it.kind != HAFL_MP_ARRAY || it.len < 3)
        return -1;
    for (int i = 0; i < 3; i++) {
        if (hafl_mpreader_next(&rd, &it) || it.kind != HAFL_MP_UINT)
            return -1;
        v[i] = it.u;
    }
    *major = v[0];
    *minor = v[1];
    *type = v[2];
    return 0;
}

int hafl_msg_check_layout(const hafl_msg_t *self, const hafl_layout_t *layout,
                          hafl_msg_error_t *err)
{
    const s_type_t *t = s_type(self->type);
    if (!t || !t->comp)
        return 0;
    if (self->type == HAFL_MSG_ROUND &&
        (self->u.round.n_matrices != layout->n_matrices || self->u.round.rank != layout->rank))
        return s_fail(err, HAFL_MSG_ERANGE, S_W("round", "n_matrices"),
                      "%u matrices of rank %u, the layout has %u of rank %u",
                      self->u.round.n_matrices, self->u.round.rank, layout->n_matrices,
                      layout->rank);
    uint32_t nc = *S_CAT(self, t->n_comp, uint32_t);
    uint32_t nm = t->merged ? *S_CAT(self, t->n_merged, uint32_t) : 0;
    const hafl_rank1_t *comp = *S_CAT(self, t->comp, hafl_rank1_t *);
    const hafl_rank1_t *merged = t->merged ? *S_CAT(self, t->merged, hafl_rank1_t *) : NULL;
    for (uint32_t i = 0; i < nc + nm; i++) {
        const hafl_rank1_t *x = i < nc ? &comp[i] : &merged[i - nc];
        const s_where_t *path =
            S_WI(t->name, i < nc ? "component" : "merged", i < nc ? i : i - nc, NULL);
        if (x->matrix >= layout->n_matrices)
            return s_fail(err, HAFL_MSG_ERANGE, path, "matrix %u >= n_matrices %u", x->matrix,
                          layout->n_matrices);
        if (i < nc && x->k >= layout->rank)
            return s_fail(err, HAFL_MSG_ERANGE, path, "k %u >= rank %u", x->k, layout->rank);
        const hafl_matrix_info_t *mi = &layout->matrices[x->matrix];
        if (x->d_out != mi->d_out || x->d_in != mi->d_in)
            return s_fail(err, HAFL_MSG_ELENGTH, path, "%u x %u, matrix %s is %u x %u", x->d_out,
                          x->d_in, mi->name, mi->d_out, mi->d_in);
    }
    const hafl_tensor_t *h = S_CAT(self, t->head, hafl_tensor_t);
    if ((h->rows || h->cols) && (h->rows != layout->head_rows || h->cols != layout->head_cols)) {
        return s_fail(err, HAFL_MSG_ELENGTH, S_W(t->name, "head"),
                      "%u x %u, the layout's head is %u x %u", h->rows, h->cols, layout->head_rows,
                      layout->head_cols);
    }
    return 0;
}

//  ---------------------------------------------------------------------------------------
//  Life cycle and helpers

hafl_msg_t *hafl_msg_new(hafl_msg_type_t type)
{
    hafl_msg_t *self = calloc(1, sizeof *self);
    if (self) {
        self->type = type;
        self->minor = HAFL_PROTO_MINOR;
    }
    return self;
}

static void s_free_rank1s(hafl_rank1_t *list, uint32_t n)
{
    for (uint32_t i = 0; list && i < n; i++)
        hafl_msg_rank1_clear(&list[i]);
    free(list);
}

void hafl_msg_destroy(hafl_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hafl_msg_t *m = *self_p;
    switch (m->type) {
    case HAFL_MSG_WELCOME:
        free(m->u.welcome.matrices);
        break;
    case HAFL_MSG_ROUND:
        free(m->u.round.roles);
        s_free_rank1s(m->u.round.components, m->u.round.n_components);
        s_free_rank1s(m->u.round.merged, m->u.round.n_merged);
        if (!m->u.round.head.borrowed)
            free(m->u.round.head.data);
        break;
    case HAFL_MSG_UPDATE:
        s_free_rank1s(m->u.update.components, m->u.update.n_components);
        if (!m->u.update.head.borrowed)
            free(m->u.update.head.data);
        break;
    case HAFL_MSG_EVAL_REQUEST:
        s_free_rank1s(m->u.eval_request.components, m->u.eval_request.n_components);
        s_free_rank1s(m->u.eval_request.merged, m->u.eval_request.n_merged);
        if (!m->u.eval_request.head.borrowed)
            free(m->u.eval_request.head.data);
        break;
    case HAFL_MSG_LOG_EVENT:
        for (uint32_t i = 0; m->u.log_event.fields && i < m->u.log_event.n_fields; i++)
            free(m->u.log_event.fields[i].s);
        free(m->u.log_event.fields);
        break;
    case HAFL_MSG_CONTROL:
        for (uint32_t i = 0; m->u.control.argv && i < m->u.control.argc; i++)
            free(m->u.control.argv[i]);
        free(m->u.control.argv);
        break;
    case HAFL_MSG_CONTROL_REPLY:
        free(m->u.control_reply.json);
        break;
    default:
        break;
    }
    zmsg_destroy(&m->frames); //  after the tensors that may point into it
    free(m);
    *self_p = NULL;
}

const char *hafl_msg_type_name(hafl_msg_type_t type)
{
    const s_type_t *t = s_type((uint64_t)type);
    return t ? t->name : "unknown";
}

const char *hafl_msg_code_name(hafl_msg_code_t code)
{
    static const char *names[HAFL_MSG_ERROR_COUNT] = {
        [HAFL_MSG_OK] = "OK",
        [HAFL_MSG_ENOFRAMES] = "ENOFRAMES",
        [HAFL_MSG_ETRUNCATED] = "ETRUNCATED",
        [HAFL_MSG_ETRAILING] = "ETRAILING",
        [HAFL_MSG_EVERSION] = "EVERSION",
        [HAFL_MSG_EUNKNOWN] = "EUNKNOWN",
        [HAFL_MSG_EFIELDTYPE] = "EFIELDTYPE",
        [HAFL_MSG_ERANGE] = "ERANGE",
        [HAFL_MSG_ECAP] = "ECAP",
        [HAFL_MSG_ELENGTH] = "ELENGTH",
        [HAFL_MSG_ENONFINITE] = "ENONFINITE",
        [HAFL_MSG_EARITY] = "EARITY",
        [HAFL_MSG_ENOMEM] = "ENOMEM",
        [HAFL_MSG_ESTRING] = "ESTRING",
    };
    return (unsigned)code < HAFL_MSG_ERROR_COUNT && names[code] ? names[code] : "EUNKNOWNCODE";
}

//  Log event fields grow one at a time; at most HAFL_MSG_MAX_FIELDS, keys unique by contract
//  of the encoder (it refuses duplicates).
static hafl_field_t *s_add_field(hafl_log_event_t *e, const char *key, hafl_value_kind_t kind)
{
    if (!e || !key || e->n_fields >= HAFL_MSG_MAX_FIELDS || strlen(key) == 0 ||
        strlen(key) >= HAFL_MSG_MAX_NAME)
        return NULL;
    hafl_field_t *fields = realloc(e->fields, (e->n_fields + 1) * sizeof *fields);
    if (!fields)
        return NULL;
    e->fields = fields;
    hafl_field_t *x = &fields[e->n_fields];
    memset(x, 0, sizeof *x);
    strcpy(x->key, key);
    x->kind = kind;
    return x;
}

int hafl_log_event_add_int(hafl_log_event_t *event, const char *key, int64_t value)
{
    hafl_field_t *x = s_add_field(event, key, HAFL_VALUE_INT);
    if (!x)
        return -1;
    x->i = value;
    event->n_fields++;
    return 0;
}

int hafl_log_event_add_float(hafl_log_event_t *event, const char *key, double value)
{
    hafl_field_t *x = s_add_field(event, key, HAFL_VALUE_FLOAT);
    if (!x)
        return -1;
    x->f = value;
    event->n_fields++;
    return 0;
}

int hafl_log_event_add_string(hafl_log_event_t *event, const char *key, const char *value)
{
    if (!value || strlen(value) > HAFL_MSG_MAX_TEXT)
        return -1;
    hafl_field_t *x = s_add_field(event, key, HAFL_VALUE_STRING);
    if (!x || !(x->s = strdup(value)))
        return -1;
    event->n_fields++;
    return 0;
}

int hafl_log_event_add_bool(hafl_log_event_t *event, const char *key, bool value)
{
    hafl_field_t *x = s_add_field(event, key, HAFL_VALUE_BOOL);
    if (!x)
        return -1;
    x->i = value ? 1 : 0;
    event->n_fields++;
    return 0;
}
