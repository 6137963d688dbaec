/*  test_msg_codec: the wire codec of messages/PROTOCOL.md, on valid and hostile input.

    For every message type: a bit-exact round trip (and re-encoding gives the same bytes);
    every prefix of frame 0 (ETRUNCATED); a size cap exceeded (ECAP); other major versions
    (EVERSION), a newer minor with extra trailing elements (accepted) and wrong arity (EARITY);
    unknown type ids (EUNKNOWN) and a wrong MessagePack type in every header field
    (EFIELDTYPE); wrong-length and non-finite tensors (ELENGTH, ENONFINITE); wrong frame
    counts (ENOFRAMES); random bytes and random byte mutations (never a crash; a mutation that
    still decodes must survive a second round trip). Mutated headers are built by unpacking a
    valid frame 0 with msgpack-c, replacing one element and packing it again, so the tests do
    not share the codec's own reader. Runs under ASan/UBSan (label asan).
*/
#include "hafl_msg.h"
#include "hafl_msg_samples.h"
#include "hafl_test.h"

#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

static uint64_t s_seed = 0x9e3779b97f4a7c15ull; //  the random tests' generator

static uint32_t s_rand(void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (uint32_t)(s_seed >> 16);
}

//  ---------------------------------------------------------------------------------------
//  Bit-exact comparison

#define SAME(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0)

static int s_same_floats(const float *a, const float *b, size_t n)
{
    return n == 0 || (a && b && memcmp(a, b, n * sizeof *a) == 0);
}

static int s_same_rank1s(const hafl_rank1_t *a, const hafl_rank1_t *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i].matrix != b[i].matrix || a[i].k != b[i].k || !SAME(a[i].score, b[i].score) ||
            a[i].d_out != b[i].d_out || a[i].d_in != b[i].d_in ||
            !s_same_floats(a[i].b, b[i].b, a[i].d_out) || !s_same_floats(a[i].a, b[i].a, a[i].d_in))
            return 0;
    return 1;
}

static int s_same_head(const hafl_tensor_t *a, const hafl_tensor_t *b)
{
    return a->rows == b->rows && a->cols == b->cols &&
           s_same_floats(a->data, b->data, (size_t)a->rows * a->cols);
}

static int s_equal(const hafl_msg_t *x, const hafl_msg_t *y)
{
    if (x->type != y->type)
        return 0;
    switch (x->type) {
    case HAFL_MSG_HELLO:
    case HAFL_MSG_REJECT:
    case HAFL_MSG_EVAL_RESULT:
    case HAFL_MSG_HEARTBEAT:
        //  plain values only; compare field by field through their C representation
        if (x->type == HAFL_MSG_HELLO) {
            const hafl_hello_t *a = &x->u.hello, *b = &y->u.hello;
            return a->client_index == b->client_index && strcmp(a->name, b->name) == 0 &&
                   a->rank_budget == b->rank_budget && a->n_samples == b->n_samples &&
                   SAME(a->base_digest, b->base_digest) && a->rejoin == b->rejoin &&
                   SAME(a->session, b->session);
        }
        if (x->type == HAFL_MSG_REJECT)
            return x->u.reject.reason == y->u.reject.reason &&
                   strcmp(x->u.reject.text, y->u.reject.text) == 0;
        if (x->type == HAFL_MSG_EVAL_RESULT) {
            const hafl_eval_result_t *a = &x->u.eval_result, *b = &y->u.eval_result;
            return a->round == b->round && a->tag == b->tag && SAME(a->accuracy, b->accuracy) &&
                   SAME(a->loss, b->loss) && a->n_examples == b->n_examples &&
                   a->wall_ms == b->wall_ms;
        }
        return x->u.heartbeat.client_index == y->u.heartbeat.client_index &&
               x->u.heartbeat.seq == y->u.heartbeat.seq &&
               x->u.heartbeat.time_us == y->u.heartbeat.time_us;
    case HAFL_MSG_WELCOME: {
        const hafl_welcome_t *a = &x->u.welcome, *b = &y->u.welcome;
        if (a->client_index != b->client_index || strcmp(a->run_id, b->run_id) ||
            a->heartbeat_ms != b->heartbeat_ms || a->rank != b->rank || !SAME(a->scale, b->scale) ||
            a->head_rows != b->head_rows || a->head_cols != b->head_cols ||
            a->n_matrices != b->n_matrices || !SAME(a->session, b->session))
            return 0;
        for (uint32_t i = 0; i < a->n_matrices; i++)
            if (strcmp(a->matrices[i].name, b->matrices[i].name) ||
                a->matrices[i].d_out != b->matrices[i].d_out ||
                a->matrices[i].d_in != b->matrices[i].d_in)
                return 0;
        return 1;
    }
    case HAFL_MSG_ROUND: {
        const hafl_round_t *a = &x->u.round, *b = &y->u.round;
        return a->round == b->round && a->deadline_ms == b->deadline_ms &&
               a->local_epochs == b->local_epochs && a->local_steps == b->local_steps &&
               a->batch == b->batch && SAME(a->lr, b->lr) && a->seed == b->seed &&
               a->straggle_ms == b->straggle_ms && a->fresh_optimizer == b->fresh_optimizer &&
               a->n_matrices == b->n_matrices && a->rank == b->rank &&
               memcmp(a->roles, b->roles, (size_t)a->n_matrices * a->rank) == 0 &&
               a->n_components == b->n_components &&
               s_same_rank1s(a->components, b->components, a->n_components) &&
               a->n_merged == b->n_merged && s_same_rank1s(a->merged, b->merged, a->n_merged) &&
               a->reset_merged == b->reset_merged && s_same_head(&a->head, &b->head);
    }
    case HAFL_MSG_UPDATE: {
        const hafl_update_t *a = &x->u.update, *b = &y->u.update;
        return a->round == b->round && a->client_index == b->client_index &&
               a->n_samples == b->n_samples && SAME(a->train_loss, b->train_loss) &&
               a->steps == b->steps && a->wall_ms == b->wall_ms &&
               a->n_components == b->n_components &&
               s_same_rank1s(a->components, b->components, a->n_components) &&
               s_same_head(&a->head, &b->head);
    }
    case HAFL_MSG_EVAL_REQUEST: {
        const hafl_eval_request_t *a = &x->u.eval_request, *b = &y->u.eval_request;
        return a->round == b->round && a->tag == b->tag && a->n_components == b->n_components &&
               s_same_rank1s(a->components, b->components, a->n_components) &&
               a->n_merged == b->n_merged && s_same_rank1s(a->merged, b->merged, a->n_merged) &&
               s_same_head(&a->head, &b->head);
    }
    case HAFL_MSG_LOG_EVENT: {
        const hafl_log_event_t *a = &x->u.log_event, *b = &y->u.log_event;
        if (a->time_us != b->time_us || strcmp(a->run_id, b->run_id) || a->round != b->round ||
            strcmp(a->actor, b->actor) || strcmp(a->event, b->event) || a->n_fields != b->n_fields)
            return 0;
        for (uint32_t i = 0; i < a->n_fields; i++) {
            const hafl_field_t *p = &a->fields[i], *q = &b->fields[i];
            if (strcmp(p->key, q->key) || p->kind != q->kind)
                return 0;
            if ((p->kind == HAFL_VALUE_INT || p->kind == HAFL_VALUE_BOOL) && p->i != q->i)
                return 0;
            if (p->kind == HAFL_VALUE_FLOAT && !SAME(p->f, q->f))
                return 0;
            if (p->kind == HAFL_VALUE_STRING && strcmp(p->s, q->s))
                return 0;
        }
        return 1;
    }
    case HAFL_MSG_CONTROL: {
        const hafl_control_t *a = &x->u.control, *b = &y->u.control;
        if (strcmp(a->command, b->command) || a->argc != b->argc)
            return 0;
        for (uint32_t i = 0; i < a->argc; i++)
            if (strcmp(a->argv[i], b->argv[i]))
                return 0;
        return 1;
    }
    case HAFL_MSG_CONTROL_REPLY:
        return x->u.control_reply.ok == y->u.control_reply.ok &&
               strcmp(x->u.control_reply.json, y->u.control_reply.json) == 0;
    default:
        return 0;
    }
}

//  ---------------------------------------------------------------------------------------
//  Encoding, decoding and frame surgery

static zmsg_t *s_encode(const hafl_msg_t *m)
{
    hafl_msg_error_t err;
    zmsg_t *z = hafl_msg_encode(m, &err);
    CHECKF(z, "encode %s: %s", hafl_msg_type_name(m->type), err.text);
    return z;
}

//  The zero-copy decoder on a copy of z must agree with the copying one: the same error code
//  and field, or an equal message. On failure the copy stays the caller's (freed here).
static void s_check_take_agrees(zmsg_t *z, const hafl_msg_t *copied, const hafl_msg_error_t *err)
{
    zmsg_t *dup = zmsg_dup(z);
    CHECK(dup);
    hafl_msg_error_t terr;
    hafl_msg_t *taken = hafl_msg_decode_take(&dup, &terr);
    if (!copied) {
        CHECKF(!taken && dup && terr.code == err->code && strcmp(terr.field, err->field) == 0,
               "take decoder: %s at %s, copying decoder: %s at %s", hafl_msg_code_name(terr.code),
               terr.field, hafl_msg_code_name(err->code), err->field);
        zmsg_destroy(&dup);
        return;
    }
    CHECKF(taken && !dup && taken->frames, "take decoder failed: %s", terr.text);
    CHECK(s_equal(copied, taken));
    hafl_msg_destroy(&taken);
}

//  Decode; a success must survive encode + decode again unchanged. Returns the code.
static hafl_msg_code_t s_decode_code(zmsg_t *z, hafl_msg_error_t *err)
{
    hafl_msg_t *m = hafl_msg_decode(z, err);
    if (z)
        s_check_take_agrees(z, m, err);
    if (!m) {
        CHECKF(err->code > HAFL_MSG_OK && err->code < HAFL_MSG_ERROR_COUNT, "bad code %d",
               err->code);
        CHECKF(err->text[0] && !strchr(err->text, '\n'), "error text '%s'", err->text);
        return err->code;
    }
    zmsg_t *again = hafl_msg_encode(m, err);
    if (!again && m->minor > HAFL_PROTO_MINOR) {
        //  A newer minor's values (say a REJECT reason) can be read but not written as ours.
        hafl_msg_destroy(&m);
        return HAFL_MSG_OK;
    }
    CHECKF(again, "re-encode of a decoded %s: %s", hafl_msg_type_name(m->type), err->text);
    hafl_msg_error_t err2;
    hafl_msg_t *m2 = hafl_msg_decode(again, &err2);
    CHECKF(m2, "second decode: %s", err2.text);
    CHECK(s_equal(m, m2));
    hafl_msg_destroy(&m2);
    hafl_msg_destroy(&m);
    zmsg_destroy(&again);
    return HAFL_MSG_OK;
}

#define EXPECT(z, want, label)                                                                     \
    do {                                                                                           \
        hafl_msg_error_t e_;                                                                       \
        hafl_msg_code_t got_ = s_decode_code(z, &e_);                                              \
        CHECKF(got_ == (want), "%s: expected %s, got %s (%s)", label, hafl_msg_code_name(want),    \
               hafl_msg_code_name(got_), got_ ? e_.text : "decoded");                              \
    } while (0)

//  A copy of z with frame `index` replaced by `bytes` (or removed when bytes is NULL).
static zmsg_t *s_with_frame(zmsg_t *z, size_t index, const void *bytes, size_t size)
{
    zmsg_t *out = zmsg_new();
    size_t i = 0;
    for (zframe_t *f = zmsg_first(z); f; f = zmsg_next(z), i++) {
        if (i != index)
            zmsg_addmem(out, zframe_data(f), zframe_size(f));
        else if (bytes)
            zmsg_addmem(out, bytes, size);
    }
    return out;
}

static zframe_t *s_frame(zmsg_t *z, size_t index)
{
    zframe_t *f = zmsg_first(z);
    while (f && index--)
        f = zmsg_next(z);
    return f;
}

//  Frame 0 of a valid encoding as a msgpack-c object tree the tests may edit.
typedef struct {
    msgpack_unpacked u;
    msgpack_object *root; //  the header array
} s_header_t;

static void s_header_open(s_header_t *h, zmsg_t *z)
{
    zframe_t *f = zmsg_first(z);
    msgpack_unpacked_init(&h->u);
    size_t off = 0;
    CHECK(msgpack_unpack_next(&h->u, (const char *)zframe_data(f), zframe_size(f), &off) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(off == zframe_size(f));
    h->root = &h->u.data;
    CHECK(h->root->type == MSGPACK_OBJECT_ARRAY);
}

//  Pack the (edited) header and return z with it as frame 0.
static zmsg_t *s_header_apply(s_header_t *h, zmsg_t *z)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    CHECK(msgpack_pack_object(&pk, *h->root) == 0);
    zmsg_t *out = s_with_frame(z, 0, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static void s_header_close(s_header_t *h)
{
    msgpack_unpacked_destroy(&h->u);
}

//  z with header element `index` replaced by `value`.
static zmsg_t *s_with_element(zmsg_t *z, uint32_t index, msgpack_object value)
{
    s_header_t h;
    s_header_open(&h, z);
    CHECK(index < h.root->via.array.size);
    h.root->via.array.ptr[index] = value;
    zmsg_t *out = s_header_apply(&h, z);
    s_header_close(&h);
    return out;
}

//  Decode z with header element `index` replaced by `value`; expect `want`.
static void s_expect_element(zmsg_t *z, uint32_t index, msgpack_object value, hafl_msg_code_t want,
                             const char *fmt, ...)
{
    char label[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(label, sizeof label, fmt, ap);
    va_end(ap);
    zmsg_t *t = s_with_element(z, index, value);
    EXPECT(t, want, label);
    zmsg_destroy(&t);
}

//  z with minor set to `minor`, `extra` appended to the header (when extra.type != NIL or
//  append is set) or the last element dropped (drop).
static zmsg_t *s_with_arity(zmsg_t *z, uint64_t minor, int append, msgpack_object extra, int drop)
{
    s_header_t h;
    s_header_open(&h, z);
    uint32_t n = h.root->via.array.size;
    msgpack_object *items = malloc((n + 1) * sizeof *items);
    CHECK(items);
    memcpy(items, h.root->via.array.ptr, n * sizeof *items);
    items[1].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    items[1].via.u64 = minor;
    if (append)
        items[n++] = extra;
    if (drop)
        n--;
    h.root->via.array.ptr = items;
    h.root->via.array.size = n;
    zmsg_t *out = s_header_apply(&h, z);
    free(items);
    s_header_close(&h);
    return out;
}

static msgpack_object s_obj_uint(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    o.via.u64 = v;
    return o;
}

static msgpack_object s_obj_int(int64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER};
    o.via.i64 = v;
    return o;
}

static msgpack_object s_obj_nil(void)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    return o;
}

static msgpack_object s_obj_float(double v, int wide)
{
    msgpack_object o = {.type = wide ? MSGPACK_OBJECT_FLOAT64 : MSGPACK_OBJECT_FLOAT32};
    o.via.f64 = v;
    return o;
}

static msgpack_object s_obj_str(const char *s, uint32_t len)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = len;
    return o;
}

static msgpack_object s_obj_bin(const void *p, uint32_t len)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.ptr = p;
    o.via.bin.size = len;
    return o;
}

static msgpack_object s_obj_array(msgpack_object *items, uint32_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY};
    o.via.array.ptr = items;
    o.via.array.size = n;
    return o;
}

//  A rank-1 frame built by hand with msgpack-c's shortest encodings: [matrix, k, score,
//  bin pad_b, bin b, bin pad_a, bin a] with raw byte payloads and pads of the given lengths.
static zframe_t *s_rank1_frame_padded(uint64_t matrix, uint64_t k, float score, size_t pad_b,
                                      const void *b, size_t b_bytes, size_t pad_a, const void *a,
                                      size_t a_bytes)
{
    static const unsigned char zeros[16] = {0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint64(&pk, matrix);
    msgpack_pack_uint64(&pk, k);
    msgpack_pack_float(&pk, score);
    msgpack_pack_bin(&pk, pad_b);
    msgpack_pack_bin_body(&pk, zeros, pad_b);
    msgpack_pack_bin(&pk, b_bytes);
    msgpack_pack_bin_body(&pk, b, b_bytes);
    msgpack_pack_bin(&pk, pad_a);
    msgpack_pack_bin_body(&pk, zeros, pad_a);
    msgpack_pack_bin(&pk, a_bytes);
    msgpack_pack_bin_body(&pk, a, a_bytes);
    zframe_t *f = zframe_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return f;
}

//  The same with empty pads: a valid frame whose tensors need not lie 4-aligned.
static zframe_t *s_rank1_frame(uint64_t matrix, uint64_t k, float score, const void *b,
                               size_t b_bytes, const void *a, size_t a_bytes)
{
    return s_rank1_frame_padded(matrix, k, score, 0, b, b_bytes, 0, a, a_bytes);
}

static zmsg_t *s_with_zframe(zmsg_t *z, size_t index, zframe_t *f)
{
    zmsg_t *out = s_with_frame(z, index, zframe_data(f), zframe_size(f));
    zframe_destroy(&f);
    return out;
}

//  ---------------------------------------------------------------------------------------
//  Per-type facts the hostile tests need (header element indexes follow PROTOCOL.md)

static int s_bulk(hafl_msg_type_t t)
{
    return t == HAFL_MSG_ROUND || t == HAFL_MSG_UPDATE || t == HAFL_MSG_EVAL_REQUEST;
}

//  ---------------------------------------------------------------------------------------
//  The tests

//  Whether [p, p + bytes) lies inside frame f.
static bool s_inside(zframe_t *f, const void *p, size_t bytes)
{
    const unsigned char *lo = zframe_data(f), *x = p;
    return x >= lo && x + bytes <= lo + zframe_size(f);
}

//  The zero-copy decoder on the reference encoder's frames borrows every tensor from its own
//  frame (they lie 4-aligned there), takes the zmsg over and decodes what the copying one did.
static void s_check_take_borrows(zmsg_t *z, const hafl_msg_t *copied)
{
    zmsg_t *dup = zmsg_dup(z);
    hafl_msg_error_t err;
    hafl_msg_t *m = hafl_msg_decode_take(&dup, &err);
    CHECKF(m && !dup && m->frames, "take: %s", err.text);
    CHECK(s_equal(copied, m));
    const hafl_rank1_t *lists[2] = {NULL, NULL};
    uint32_t counts[2] = {0, 0};
    const hafl_tensor_t *head = NULL;
    if (m->type == HAFL_MSG_ROUND) {
        lists[0] = m->u.round.components, counts[0] = m->u.round.n_components;
        lists[1] = m->u.round.merged, counts[1] = m->u.round.n_merged;
        head = &m->u.round.head;
    } else if (m->type == HAFL_MSG_UPDATE) {
        lists[0] = m->u.update.components, counts[0] = m->u.update.n_components;
        head = &m->u.update.head;
    } else if (m->type == HAFL_MSG_EVAL_REQUEST) {
        lists[0] = m->u.eval_request.components, counts[0] = m->u.eval_request.n_components;
        lists[1] = m->u.eval_request.merged, counts[1] = m->u.eval_request.n_merged;
        head = &m->u.eval_request.head;
    }
    zframe_t *f = zmsg_first(m->frames);
    for (int list = 0; list < 2; list++)
        for (uint32_t i = 0; i < counts[list]; i++) {
            const hafl_rank1_t *r = &lists[list][i];
            f = zmsg_next(m->frames);
            CHECK(r->borrowed && s_inside(f, r->b, 4 * (size_t)r->d_out) &&
                  s_inside(f, r->a, 4 * (size_t)r->d_in));
            CHECK((unsigned char *)r->b == zframe_data(f) + HAFL_MSG_RANK1_B_OFFSET);
        }
    if (head && head->rows) {
        f = zmsg_next(m->frames);
        CHECK(head->borrowed && s_inside(f, head->data, 4 * (size_t)head->rows * head->cols));
    }
    hafl_msg_destroy(&m); //  frees the frames; ASan would catch a free of a borrowed tensor
}

static void s_test_round_trip(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    hafl_msg_error_t err;
    hafl_msg_t *d = hafl_msg_decode(z, &err);
    CHECKF(d, "decode %s: %s", hafl_msg_type_name(type), err.text);
    CHECKF(s_equal(m, d), "%s changed in a round trip", hafl_msg_type_name(type));
    CHECK(d->minor == HAFL_PROTO_MINOR);
    zmsg_t *z2 = s_encode(d);
    CHECKF(s_same_frames(z, z2), "%s re-encodes differently", hafl_msg_type_name(type));
    //  The decoder leaves the message it read untouched and the arrays aligned.
    if (type == HAFL_MSG_UPDATE)
        CHECK(((uintptr_t)d->u.update.components[0].b & 63) == 0);
    s_check_take_borrows(z, d);
    uint64_t major, minor, t;
    CHECK(hafl_msg_peek(z, &major, &minor, &t) == 0);
    CHECK(major == HAFL_PROTO_MAJOR && minor == HAFL_PROTO_MINOR && t == (uint64_t)type);
    zmsg_destroy(&z2);
    hafl_msg_destroy(&d);
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static void s_test_truncated(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    char label[96];
    //  Every strict prefix of every frame (frame 0, rank-1 frames and head) is ETRUNCATED.
    size_t frames = zmsg_size(z);
    for (size_t fi = 0; fi < frames; fi++) {
        zframe_t *f = s_frame(z, fi);
        size_t size = zframe_size(f);
        unsigned char *copy = malloc(size + 1);
        CHECK(copy);
        memcpy(copy, zframe_data(f), size);
        for (size_t len = 0; len < size; len++) {
            zmsg_t *t = s_with_frame(z, fi, copy, len);
            snprintf(label, sizeof label, "%s frame %zu prefix %zu/%zu", hafl_msg_type_name(type),
                     fi, len, size);
            EXPECT(t, HAFL_MSG_ETRUNCATED, label);
            zmsg_destroy(&t);
        }
        //  One byte too many: ETRAILING.
        copy[size] = 0xc0;
        zmsg_t *t = s_with_frame(z, fi, copy, size + 1);
        snprintf(label, sizeof label, "%s frame %zu + 1 byte", hafl_msg_type_name(type), fi);
        EXPECT(t, HAFL_MSG_ETRAILING, label);
        zmsg_destroy(&t);
        free(copy);
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

typedef struct {
    uint32_t index; //  header element
    msgpack_object value;
} s_cap_t;

static void s_test_oversized(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    const char *name = hafl_msg_type_name(type);
    char label[96];
    //  Any type: frame 0 above HAFL_MSG_MAX_HEADER, even as ignorable extra data of a newer
    //  minor.
    size_t big = HAFL_MSG_MAX_HEADER;
    char *junk = calloc(1, big);
    CHECK(junk);
    zmsg_t *t = s_with_arity(z, HAFL_PROTO_MINOR + 1, 1, s_obj_bin(junk, (uint32_t)big), 0);
    snprintf(label, sizeof label, "%s header over the cap", name);
    EXPECT(t, HAFL_MSG_ECAP, label);
    zmsg_destroy(&t);

    //  Then the type's own caps.
    char *text = malloc(HAFL_MSG_MAX_JSON + 2);
    CHECK(text);
    memset(text, 'x', HAFL_MSG_MAX_JSON + 2);
    s_cap_t caps[4];
    int n = 0;
    static msgpack_object entries[HAFL_MSG_MAX_MATRICES + 1];
    static msgpack_object entry[3];
    static msgpack_object_kv kv[HAFL_MSG_MAX_FIELDS + 1];
    static char keys[HAFL_MSG_MAX_FIELDS + 1][8];
    static msgpack_object args[HAFL_MSG_MAX_ARGS + 1];
    switch (type) {
    case HAFL_MSG_HELLO:
        caps[n++] = (s_cap_t){4, s_obj_str(text, HAFL_MSG_MAX_NAME)};
        caps[n++] = (s_cap_t){5, s_obj_uint(HAFL_MSG_MAX_RANK + 1)};
        break;
    case HAFL_MSG_WELCOME:
        caps[n++] = (s_cap_t){4, s_obj_str(text, HAFL_MSG_MAX_NAME)};
        caps[n++] = (s_cap_t){6, s_obj_uint(HAFL_MSG_MAX_RANK + 1)};
        caps[n++] = (s_cap_t){8, s_obj_uint(HAFL_MSG_MAX_HEAD + 1)};
        entry[0] = s_obj_str("m", 1);
        entry[1] = s_obj_uint(2);
        entry[2] = s_obj_uint(2);
        for (uint32_t i = 0; i <= HAFL_MSG_MAX_MATRICES; i++)
            entries[i] = s_obj_array(entry, 3);
        caps[n++] = (s_cap_t){10, s_obj_array(entries, HAFL_MSG_MAX_MATRICES + 1)};
        break;
    case HAFL_MSG_REJECT:
        caps[n++] = (s_cap_t){4, s_obj_str(text, HAFL_MSG_MAX_TEXT)};
        break;
    case HAFL_MSG_ROUND:
        caps[n++] = (s_cap_t){12, s_obj_uint(HAFL_MSG_MAX_MATRICES + 1)};
        caps[n++] = (s_cap_t){15, s_obj_uint(HAFL_MSG_MAX_COMPONENTS + 1)};
        caps[n++] = (s_cap_t){16, s_obj_uint(HAFL_MSG_MAX_COMPONENTS + 1)};
        break;
    case HAFL_MSG_UPDATE:
        caps[n++] = (s_cap_t){9, s_obj_uint(HAFL_MSG_MAX_COMPONENTS + 1)};
        break;
    case HAFL_MSG_EVAL_REQUEST:
        caps[n++] = (s_cap_t){5, s_obj_uint(HAFL_MSG_MAX_COMPONENTS + 1)};
        caps[n++] = (s_cap_t){6, s_obj_uint(UINT32_MAX)};
        break;
    case HAFL_MSG_LOG_EVENT:
        caps[n++] = (s_cap_t){6, s_obj_str(text, HAFL_MSG_MAX_NAME)};
        for (uint32_t i = 0; i <= HAFL_MSG_MAX_FIELDS; i++) {
            snprintf(keys[i], sizeof keys[i], "k%u", i);
            kv[i].key = s_obj_str(keys[i], (uint32_t)strlen(keys[i]));
            kv[i].val = s_obj_uint(i);
        }
        {
            msgpack_object map = {.type = MSGPACK_OBJECT_MAP};
            map.via.map.ptr = kv;
            map.via.map.size = HAFL_MSG_MAX_FIELDS + 1;
            caps[n++] = (s_cap_t){8, map};
        }
        break;
    case HAFL_MSG_CONTROL:
        caps[n++] = (s_cap_t){3, s_obj_str(text, HAFL_MSG_MAX_NAME)};
        for (uint32_t i = 0; i <= HAFL_MSG_MAX_ARGS; i++)
            args[i] = s_obj_str("a", 1);
        caps[n++] = (s_cap_t){4, s_obj_array(args, HAFL_MSG_MAX_ARGS + 1)};
        args[0] = s_obj_str(text, HAFL_MSG_MAX_TEXT + 1);
        caps[n++] = (s_cap_t){4, s_obj_array(args, 1)};
        break;
    case HAFL_MSG_CONTROL_REPLY:
        caps[n++] = (s_cap_t){4, s_obj_str(text, HAFL_MSG_MAX_JSON + 1)};
        break;
    default:
        break; //  EVAL_RESULT, HEARTBEAT: fixed-size, only the header cap applies
    }
    for (int i = 0; i < n; i++) {
        s_expect_element(z, caps[i].index, caps[i].value, HAFL_MSG_ECAP,
                         "%s element %u over its cap", name, caps[i].index);
    }
    //  The encoder refuses what the decoder would refuse.
    if (type == HAFL_MSG_HELLO) {
        memset(m->u.hello.name, 'y', sizeof m->u.hello.name); //  not terminated
        hafl_msg_error_t err;
        CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ECAP);
        CHECK(strcmp(err.field, "hello.name") == 0);
    }
    free(text);
    free(junk);
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static void s_test_version(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    const char *name = hafl_msg_type_name(type);
    char label[96];
    //  1 is the previous major, whose rank-1 frames had no pads.
    uint64_t majors[] = {0, 1, HAFL_PROTO_MAJOR + 1, 255, 70000, UINT64_MAX};
    for (size_t i = 0; i < sizeof majors / sizeof majors[0]; i++) {
        zmsg_t *t = s_with_element(z, 0, s_obj_uint(majors[i]));
        snprintf(label, sizeof label, "%s major %llu", name, (unsigned long long)majors[i]);
        EXPECT(t, HAFL_MSG_EVERSION, label);
        uint64_t major, minor, ty;
        CHECK(hafl_msg_peek(t, &major, &minor, &ty) == 0 && major == majors[i] &&
              ty == (uint64_t)type);
        zmsg_destroy(&t);
    }
    //  Another major wins over everything else that might be wrong after it.
    zmsg_t *t = s_with_arity(z, 0, 0, s_obj_nil(), 1);
    zmsg_t *t2 = s_with_element(t, 0, s_obj_uint(HAFL_PROTO_MAJOR + 1));
    EXPECT(t2, HAFL_MSG_EVERSION, "other major with a short header");
    zmsg_destroy(&t2);
    zmsg_destroy(&t);

    //  A newer minor may append elements (even nested ones); they are skipped.
    msgpack_object inner[2] = {s_obj_str("future", 6), s_obj_float(1.5, 1)};
    msgpack_object extra = s_obj_array(inner, 2);
    t = s_with_arity(z, HAFL_PROTO_MINOR + 1, 1, extra, 0);
    hafl_msg_error_t err;
    hafl_msg_t *d = hafl_msg_decode(t, &err);
    CHECKF(d, "%s newer minor with an extra element: %s", name, err.text);
    CHECK(d->minor == HAFL_PROTO_MINOR + 1);
    CHECK(s_equal(m, d));
    hafl_msg_destroy(&d);
    zmsg_destroy(&t);
    //  ... but not in this minor.
    t = s_with_arity(z, HAFL_PROTO_MINOR, 1, extra, 0);
    snprintf(label, sizeof label, "%s extra element in minor 0", name);
    EXPECT(t, HAFL_MSG_EARITY, label);
    zmsg_destroy(&t);
    //  Missing last element: EARITY in any minor.
    t = s_with_arity(z, HAFL_PROTO_MINOR + 1, 0, s_obj_nil(), 1);
    snprintf(label, sizeof label, "%s short header", name);
    EXPECT(t, HAFL_MSG_EARITY, label);
    zmsg_destroy(&t);
    //  Minor beyond uint16.
    s_expect_element(z, 1, s_obj_uint(65536), HAFL_MSG_ERANGE, "minor 65536");
    //  A newer minor's rank-1 frames may carry extra elements too.
    if (s_bulk(type)) {
        zframe_t *f = s_frame(z, 1);
        unsigned char *copy = malloc(zframe_size(f) + 1);
        CHECK(copy);
        memcpy(copy, zframe_data(f), zframe_size(f));
        CHECK(copy[0] == 0x97);
        copy[zframe_size(f)] = 0xc0; //  nil as an eighth element
        //  Six elements: too few in any minor.
        copy[0] = 0x96;
        zmsg_t *t5 = s_with_frame(z, 1, copy, zframe_size(f));
        EXPECT(t5, HAFL_MSG_EARITY, "six-element rank-1 frame");
        zmsg_destroy(&t5);
        zframe_t *hf = s_frame(z, zmsg_size(z) - 1);
        unsigned char *hcopy = malloc(zframe_size(hf));
        CHECK(hcopy);
        memcpy(hcopy, zframe_data(hf), zframe_size(hf));
        hcopy[0] = 0x92;
        t5 = s_with_frame(z, zmsg_size(z) - 1, hcopy, zframe_size(hf));
        EXPECT(t5, HAFL_MSG_EARITY, "two-element head frame");
        zmsg_destroy(&t5);
        free(hcopy);
        copy[0] = 0x98;
        zmsg_t *t3 = s_with_frame(z, 1, copy, zframe_size(f) + 1);
        EXPECT(t3, HAFL_MSG_EARITY, "eight-element rank-1 frame in minor 0");
        zmsg_t *t4 = s_with_element(t3, 1, s_obj_uint(HAFL_PROTO_MINOR + 1));
        d = hafl_msg_decode(t4, &err);
        CHECKF(d, "eight-element rank-1 frame in a newer minor: %s", err.text);
        CHECK(s_equal(m, d));
        hafl_msg_destroy(&d);
        zmsg_destroy(&t4);
        zmsg_destroy(&t3);
        free(copy);
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static void s_test_wrong_type(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    const char *name = hafl_msg_type_name(type);
    //  Unknown message types.
    msgpack_object bad_types[] = {s_obj_uint(0), s_obj_uint(HAFL_MSG_TYPE_COUNT), s_obj_uint(255),
                                  s_obj_int(-1)};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        s_expect_element(z, 2, bad_types[i], HAFL_MSG_EUNKNOWN, "%s with type id #%zu", name, i);
    }
    //  Another known type id over this body: refused, whatever the reason.
    for (int other = 1; other < HAFL_MSG_TYPE_COUNT; other++) {
        if (other == (int)type)
            continue;
        zmsg_t *t = s_with_element(z, 2, s_obj_uint((uint64_t)other));
        hafl_msg_error_t err;
        hafl_msg_t *d = hafl_msg_decode(t, &err);
        CHECKF(!d, "%s body accepted as %s", name, hafl_msg_type_name(other));
        zmsg_destroy(&t);
    }
    //  Every element given a MessagePack type no field has (nil), then a string where a number
    //  is due and a number where a string is due.
    s_header_t h;
    s_header_open(&h, z);
    uint32_t n = h.root->via.array.size;
    msgpack_object *orig = malloc(n * sizeof *orig);
    CHECK(orig);
    memcpy(orig, h.root->via.array.ptr, n * sizeof *orig);
    s_header_close(&h);
    for (uint32_t i = 0; i < n; i++) {
        s_expect_element(z, i, s_obj_nil(), HAFL_MSG_EFIELDTYPE, "%s element %u as nil", name, i);
        msgpack_object swap =
            orig[i].type == MSGPACK_OBJECT_STR ? s_obj_uint(1) : s_obj_str("1", 1);
        s_expect_element(z, i, swap, HAFL_MSG_EFIELDTYPE, "%s element %u with a swapped type", name,
                         i);
    }
    free(orig);
    //  Frame 0 that is not an array at all.
    const unsigned char map[] = {0x81, 0xa1, 'a', 0x01};
    zmsg_t *t = s_with_frame(z, 0, map, sizeof map);
    EXPECT(t, HAFL_MSG_EFIELDTYPE, "header is a map");
    zmsg_destroy(&t);
    const unsigned char empty[] = {0x90};
    t = s_with_frame(z, 0, empty, sizeof empty);
    EXPECT(t, HAFL_MSG_EARITY, "header is an empty array");
    zmsg_destroy(&t);
    //  A rank-1 frame that is not an array, and one with a string for its score.
    if (s_bulk(type)) {
        t = s_with_frame(z, 1, map, sizeof map);
        EXPECT(t, HAFL_MSG_EFIELDTYPE, "rank-1 frame is a map");
        zmsg_destroy(&t);
        float b[8] = {0}, a[8] = {0};
        hafl_rank1_t *r = type == HAFL_MSG_ROUND    ? &m->u.round.components[0]
                          : type == HAFL_MSG_UPDATE ? &m->u.update.components[0]
                                                    : &m->u.eval_request.components[0];
        //  0: score as a string; 1: pad_b as an integer; 2: pad_a as nil.
        for (int wrong = 0; wrong < 3; wrong++) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 7);
            msgpack_pack_uint32(&pk, r->matrix);
            msgpack_pack_uint32(&pk, r->k);
            if (wrong == 0)
                msgpack_pack_str_with_body(&pk, "0.5", 3);
            else
                msgpack_pack_float(&pk, 0.5f);
            if (wrong == 1)
                msgpack_pack_uint32(&pk, 0);
            else
                msgpack_pack_bin_with_body(&pk, b, 1);
            msgpack_pack_bin_with_body(&pk, b, 4 * r->d_out);
            if (wrong == 2)
                msgpack_pack_nil(&pk);
            else
                msgpack_pack_bin_with_body(&pk, a, 1);
            msgpack_pack_bin_with_body(&pk, a, 4 * r->d_in);
            t = s_with_frame(z, 1, sb.data, sb.size);
            EXPECT(t, HAFL_MSG_EFIELDTYPE, wrong == 0   ? "rank-1 score as a string"
                                           : wrong == 1 ? "rank-1 pad_b as an integer"
                                                        : "rank-1 pad_a as nil");
            zmsg_destroy(&t);
            msgpack_sbuffer_destroy(&sb);
        }
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static hafl_rank1_t *s_first_component(hafl_msg_t *m)
{
    return m->type == HAFL_MSG_ROUND    ? &m->u.round.components[0]
           : m->type == HAFL_MSG_UPDATE ? &m->u.update.components[0]
                                        : &m->u.eval_request.components[0];
}

static hafl_tensor_t *s_head_of(hafl_msg_t *m)
{
    return m->type == HAFL_MSG_ROUND    ? &m->u.round.head
           : m->type == HAFL_MSG_UPDATE ? &m->u.update.head
                                        : &m->u.eval_request.head;
}

static void s_test_wrong_length(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    const char *name = hafl_msg_type_name(type);
    char label[96];
    unsigned char bytes[4 * 64] = {0};
    if (s_bulk(type)) {
        hafl_rank1_t *r = s_first_component(m);
        size_t bb = 4 * r->d_out, ab = 4 * r->d_in;
        //  b or a not a whole number of floats.
        zmsg_t *t =
            s_with_zframe(z, 1, s_rank1_frame(r->matrix, r->k, 1, bytes, bb + 2, bytes, ab));
        snprintf(label, sizeof label, "%s b of %zu bytes", name, bb + 2);
        EXPECT(t, HAFL_MSG_ELENGTH, label);
        zmsg_destroy(&t);
        t = s_with_zframe(z, 1, s_rank1_frame(r->matrix, r->k, 1, bytes, bb, bytes, ab - 1));
        EXPECT(t, HAFL_MSG_ELENGTH, "a one byte short");
        zmsg_destroy(&t);
        //  Same matrix, another shape than its other components or merged terms.
        t = s_with_zframe(z, 1, s_rank1_frame(r->matrix, r->k, 1, bytes, bb + 4, bytes, ab));
        snprintf(label, sizeof label, "%s component with another shape", name);
        EXPECT(t, HAFL_MSG_ELENGTH, label);
        zmsg_destroy(&t);
        //  Empty tensors.
        t = s_with_zframe(z, 1, s_rank1_frame(r->matrix, r->k, 1, bytes, 0, bytes, ab));
        EXPECT(t, HAFL_MSG_ERANGE, "empty b");
        zmsg_destroy(&t);
        //  The head's data against its declared rows x cols.
        hafl_tensor_t *h = s_head_of(m);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, 2);
        msgpack_pack_uint32(&pk, 3);
        msgpack_pack_bin_with_body(&pk, bytes, 4 * 6 - 4);
        t = s_with_frame(z, zmsg_size(z) - 1, sb.data, sb.size);
        EXPECT(t, HAFL_MSG_ELENGTH, "head 2 x 3 with 5 floats");
        zmsg_destroy(&t);
        msgpack_sbuffer_destroy(&sb);
        //  Layout check: the decoded message against a layout of other shapes.
        hafl_msg_t *d = hafl_msg_decode(z, NULL);
        CHECK(d);
        hafl_matrix_info_t mats[3];
        for (int i = 0; i < 3; i++)
            mats[i] = (hafl_matrix_info_t){"m", s_dout[i], s_din[i]};
        hafl_layout_t layout = {3, mats, 4, 1.0f, 4, 9};
        hafl_msg_error_t err;
        CHECKF(hafl_msg_check_layout(d, &layout, &err) == 0, "%s", err.text);
        mats[r->matrix].d_in++;
        CHECK(hafl_msg_check_layout(d, &layout, &err) == -1 && err.code == HAFL_MSG_ELENGTH);
        mats[r->matrix].d_in--;
        if (h->rows) {
            layout.head_cols++;
            CHECK(hafl_msg_check_layout(d, &layout, &err) == -1 && err.code == HAFL_MSG_ELENGTH);
            layout.head_cols--;
        }
        layout.n_matrices = 1;
        CHECK(hafl_msg_check_layout(d, &layout, &err) == -1 && err.code == HAFL_MSG_ERANGE);
        hafl_msg_destroy(&d);
        //  The encoder refuses NULL tensors.
        float *keep = r->b;
        r->b = NULL;
        CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ELENGTH);
        r->b = keep;
    }
    if (type == HAFL_MSG_HELLO) {
        s_expect_element(z, 7, s_obj_bin(bytes, 31), HAFL_MSG_ELENGTH, "hello digest of 31 bytes");
    }
    if (type == HAFL_MSG_ROUND) {
        s_expect_element(z, 14, s_obj_bin(bytes, 11), HAFL_MSG_ELENGTH,
                         "round roles of 11 bytes for 3 x 4");
        memset(bytes, 3, 12);
        s_expect_element(z, 14, s_obj_bin(bytes, 12), HAFL_MSG_ERANGE, "round role byte 3");
    }
    if (!s_bulk(type) && type != HAFL_MSG_HELLO) {
        //  No tensor in this type: a tensor (bin) where a field is due is a type error.
        s_expect_element(z, 3, s_obj_bin(bytes, 8), HAFL_MSG_EFIELDTYPE,
                         "%s tensor in place of its first field", name);
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static void s_test_nonfinite(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    const char *name = hafl_msg_type_name(type);
    char label[96];
    hafl_msg_error_t err;
    float specials[] = {NAN, -NAN, INFINITY, -INFINITY};
    if (s_bulk(type)) {
        hafl_rank1_t *r = s_first_component(m);
        for (size_t s = 0; s < 4; s++) {
            float b[64], a[64];
            memcpy(b, r->b, 4 * r->d_out);
            memcpy(a, r->a, 4 * r->d_in);
            b[r->d_out - 1] = specials[s];
            zmsg_t *t = s_with_zframe(
                z, 1, s_rank1_frame(r->matrix, r->k, 1, b, 4 * r->d_out, a, 4 * r->d_in));
            snprintf(label, sizeof label, "%s special %zu in b", name, s);
            EXPECT(t, HAFL_MSG_ENONFINITE, label);
            zmsg_destroy(&t);
            b[r->d_out - 1] = 0;
            a[0] = specials[s];
            t = s_with_zframe(z, 1,
                              s_rank1_frame(r->matrix, r->k, 1, b, 4 * r->d_out, a, 4 * r->d_in));
            EXPECT(t, HAFL_MSG_ENONFINITE, "non-finite in a");
            zmsg_destroy(&t);
            a[0] = 0;
            t = s_with_zframe(
                z, 1, s_rank1_frame(r->matrix, r->k, specials[s], b, 4 * r->d_out, a, 4 * r->d_in));
            EXPECT(t, HAFL_MSG_ENONFINITE, "non-finite score");
            zmsg_destroy(&t);
        }
        //  Head data.
        float hd[6] = {1, 2, 3, 4, 5, NAN};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint32(&pk, 2);
        msgpack_pack_uint32(&pk, 3);
        msgpack_pack_bin_with_body(&pk, hd, sizeof hd);
        zmsg_t *t = s_with_frame(z, zmsg_size(z) - 1, sb.data, sb.size);
        EXPECT(t, HAFL_MSG_ENONFINITE, "NaN in the head");
        zmsg_destroy(&t);
        msgpack_sbuffer_destroy(&sb);
        //  The encoder refuses them too, naming the element.
        float keep = r->a[r->d_in - 1];
        r->a[r->d_in - 1] = INFINITY;
        CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ENONFINITE);
        CHECKF(strstr(err.field, "component[0].a"), "field %s", err.field);
        r->a[r->d_in - 1] = keep;
        r->score = NAN;
        CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ENONFINITE);
        r->score = 0;
    }
    //  Scalar floats that must be finite.
    int index = type == HAFL_MSG_WELCOME       ? 7
                : type == HAFL_MSG_ROUND       ? 8
                : type == HAFL_MSG_UPDATE      ? 6
                : type == HAFL_MSG_EVAL_RESULT ? 5
                                               : -1;
    if (index > 0)
        for (size_t s = 0; s < 4; s++)
            for (int wide = 0; wide < 2; wide++) {
                s_expect_element(z, (uint32_t)index, s_obj_float(specials[s], wide),
                                 HAFL_MSG_ENONFINITE, "%s element %d special %zu wide %d", name,
                                 index, s, wide);
            }
    if (type == HAFL_MSG_EVAL_RESULT) {
        s_expect_element(z, 5, s_obj_float(1.5, 0), HAFL_MSG_ERANGE, "accuracy 1.5");
        s_expect_element(z, 6, s_obj_float(1e300, 1), HAFL_MSG_ERANGE, "loss beyond float32");
        s_expect_element(z, 5, s_obj_float(0.25, 1), HAFL_MSG_OK, "accuracy as float 64");
    }
    if (type == HAFL_MSG_LOG_EVENT) {
        //  Log values are free to be non-finite: the sample carries NaN and -inf already.
        EXPECT(z, HAFL_MSG_OK, "log event with NaN fields");
    }
    if (index < 0 && !s_bulk(type) && type != HAFL_MSG_LOG_EVENT) {
        //  No float field: a NaN where an integer, string or bool is due is a type error.
        s_expect_element(z, 3, s_obj_float(NAN, 0), HAFL_MSG_EFIELDTYPE,
                         "%s NaN in place of its first field", name);
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static void s_test_frames(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    const char *name = hafl_msg_type_name(type);
    char label[96];
    //  One frame more.
    zmsg_t *t = zmsg_dup(z);
    zmsg_addmem(t, "\x90", 1);
    snprintf(label, sizeof label, "%s with an extra frame", name);
    EXPECT(t, HAFL_MSG_ENOFRAMES, label);
    zmsg_destroy(&t);
    //  One frame less (frame 0 alone has nothing to lose).
    if (zmsg_size(z) > 1) {
        for (size_t drop = 1; drop < zmsg_size(z); drop++) {
            t = s_with_frame(z, drop, NULL, 0);
            snprintf(label, sizeof label, "%s without frame %zu", name, drop);
            EXPECT(t, HAFL_MSG_ENOFRAMES, label);
            zmsg_destroy(&t);
        }
        //  Declared counts off by one either way.
        uint32_t index = type == HAFL_MSG_UPDATE ? 9 : type == HAFL_MSG_ROUND ? 15 : 5;
        uint32_t count = type == HAFL_MSG_UPDATE  ? m->u.update.n_components
                         : type == HAFL_MSG_ROUND ? m->u.round.n_components
                                                  : m->u.eval_request.n_components;
        s_expect_element(z, index, s_obj_uint(count + 1), HAFL_MSG_ENOFRAMES,
                         "declared one component more");
        s_expect_element(z, index, s_obj_uint(count - 1), HAFL_MSG_ENOFRAMES,
                         "declared one component less");
        s_expect_element(z, index, s_obj_uint(HAFL_MSG_MAX_COMPONENTS), HAFL_MSG_ENOFRAMES,
                         "declared the cap, sent a few");
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

static void s_test_random(hafl_msg_type_t type)
{
    hafl_msg_t *m = s_sample(type);
    zmsg_t *z = s_encode(m);
    unsigned char buf[256];
    //  Random frame 0 (the start forced to a plausible array and version sometimes).
    for (int i = 0; i < 3000; i++) {
        size_t len = s_rand() % sizeof buf;
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)s_rand();
        if (i % 2 && len > 3) {
            buf[0] = (unsigned char)(0x90 | (s_rand() % 16));
            buf[1] = 1;
            buf[2] = 0;
            buf[3] = (unsigned char)type;
        }
        zmsg_t *t = s_with_frame(z, 0, buf, len);
        hafl_msg_error_t err;
        hafl_msg_code_t code = s_decode_code(t, &err);
        (void)code; //  any outcome but a crash, a leak or a bad code (checked inside)
        zmsg_destroy(&t);
    }
    //  Random bytes in every other frame.
    for (size_t fi = 1; fi < zmsg_size(z); fi++)
        for (int i = 0; i < 300; i++) {
            size_t len = s_rand() % sizeof buf;
            for (size_t j = 0; j < len; j++)
                buf[j] = (unsigned char)s_rand();
            zmsg_t *t = s_with_frame(z, fi, buf, len);
            hafl_msg_error_t err;
            CHECK(s_decode_code(t, &err) != HAFL_MSG_OK);
            zmsg_destroy(&t);
        }
    //  Mutations of a valid encoding: flip one to three bytes anywhere.
    for (int i = 0; i < 3000; i++) {
        size_t fi = s_rand() % zmsg_size(z);
        zframe_t *f = s_frame(z, fi);
        size_t size = zframe_size(f);
        unsigned char *copy = malloc(size);
        CHECK(copy);
        memcpy(copy, zframe_data(f), size);
        for (int k = 1 + (int)(s_rand() % 3); k > 0; k--)
            copy[s_rand() % size] ^= (unsigned char)(1u << (s_rand() % 8));
        zmsg_t *t = s_with_frame(z, fi, copy, size);
        hafl_msg_error_t err;
        (void)s_decode_code(t, &err);
        zmsg_destroy(&t);
        free(copy);
    }
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);
}

//  ---------------------------------------------------------------------------------------
//  Cross-type checks

static void s_test_semantics(void)
{
    hafl_msg_error_t err;
    //  Duplicate component in an update.
    hafl_msg_t *m = s_sample(HAFL_MSG_UPDATE);
    hafl_rank1_t *c = m->u.update.components;
    uint32_t keep_m = c[1].matrix, keep_k = c[1].k, keep_do = c[1].d_out, keep_di = c[1].d_in;
    float *keep_b = c[1].b, *keep_a = c[1].a;
    c[1].matrix = c[0].matrix;
    c[1].k = c[0].k;
    c[1].d_out = c[0].d_out;
    c[1].d_in = c[0].d_in;
    c[1].b = c[0].b;
    c[1].a = c[0].a;
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ERANGE);
    CHECKF(strcmp(err.field, "update.component[1]") == 0, "%s", err.field);
    c[1].matrix = keep_m, c[1].k = keep_k, c[1].d_out = keep_do, c[1].d_in = keep_di;
    c[1].b = keep_b, c[1].a = keep_a;
    //  k beyond the cap, matrix beyond the cap.
    c[0].k = HAFL_MSG_MAX_RANK;
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ECAP);
    c[0].k = 0;
    zmsg_t *z = s_encode(m);
    unsigned char zero[64] = {0};
    zmsg_t *t = s_with_zframe(
        z, 1,
        s_rank1_frame(HAFL_MSG_MAX_MATRICES, 0, 1, zero, 4 * c[0].d_out, zero, 4 * c[0].d_in));
    EXPECT(t, HAFL_MSG_ECAP, "matrix id at the cap");
    zmsg_destroy(&t);
    float *huge = calloc(HAFL_MSG_MAX_DIM + 1, sizeof *huge);
    CHECK(huge);
    t = s_with_zframe(
        z, 1,
        s_rank1_frame(c[0].matrix, 0, 1, huge, 4 * (HAFL_MSG_MAX_DIM + 1), zero, 4 * c[0].d_in));
    EXPECT(t, HAFL_MSG_ECAP, "b longer than the dimension cap");
    zmsg_destroy(&t);
    free(huge);
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);

    //  ROUND: a component whose role is absent, or beyond the round's rank.
    m = s_sample(HAFL_MSG_ROUND);
    m->u.round.roles[1] = HAFL_ROLE_ABSENT;
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ERANGE);
    CHECKF(strcmp(err.field, "round.component[1].k") == 0, "%s", err.field);
    m->u.round.roles[1] = HAFL_ROLE_FROZEN;
    m->u.round.components[2].k = 4;
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ERANGE);
    m->u.round.components[2].k = 3;
    m->u.round.local_epochs = 0;
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ERANGE);
    m->u.round.local_epochs = 1;
    m->u.round.merged[0].d_out = 5; //  matrix 1 is 4 x 7 in the other merged term
    m->u.round.merged[0].b = realloc(m->u.round.merged[0].b, 5 * sizeof(float));
    CHECK(m->u.round.merged[0].b);
    m->u.round.merged[0].b[4] = 1;
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ELENGTH);
    hafl_msg_destroy(&m);

    //  REJECT: a reason the sender's minor does not define, unless the sender is newer than us.
    //  1.0 ended at AUTH; 1.1 added SESSION and REPLACED.
    m = s_sample(HAFL_MSG_REJECT);
    z = s_encode(m);
    t = s_with_element(z, 3, s_obj_uint(HAFL_REJECT_SESSION));
    zmsg_t *t2 = s_with_element(t, 1, s_obj_uint(0));
    EXPECT(t2, HAFL_MSG_ERANGE, "reject reason 7 from minor 0");
    zmsg_destroy(&t2);
    hafl_msg_t *d = hafl_msg_decode(t, &err);
    CHECKF(d && d->u.reject.reason == HAFL_REJECT_SESSION, "reason 7 from 1.1: %s", err.text);
    hafl_msg_destroy(&d);
    zmsg_destroy(&t);
    t = s_with_element(z, 3, s_obj_uint(HAFL_REJECT_REPLACED + 1));
    EXPECT(t, HAFL_MSG_ERANGE, "reject reason 9 from this minor");
    t2 = s_with_element(t, 1, s_obj_uint(HAFL_PROTO_MINOR + 1));
    d = hafl_msg_decode(t2, &err);
    CHECKF(d && d->u.reject.reason == HAFL_REJECT_REPLACED + 1, "newer reason: %s", err.text);
    hafl_msg_destroy(&d);
    zmsg_destroy(&t2);
    zmsg_destroy(&t);
    //  Strings: NUL bytes and broken UTF-8.
    const char *bad[] = {"a\0b", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
    uint32_t bad_len[] = {3, 1, 2, 3, 4, 1};
    for (int i = 0; i < 6; i++) {
        t = s_with_element(z, 4, s_obj_str(bad[i], bad_len[i]));
        char label[64];
        snprintf(label, sizeof label, "reject text bad string #%d", i);
        EXPECT(t, HAFL_MSG_ESTRING, label);
        zmsg_destroy(&t);
    }
    s_expect_element(z, 4, s_obj_str("\xf0\x9f\x98\x80 ok", 7), HAFL_MSG_OK, "4-byte UTF-8");
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);

    //  Integer ranges: negative, above the type, above uint32, in any encoding width.
    m = s_sample(HAFL_MSG_HELLO);
    z = s_encode(m);
    s_expect_element(z, 3, s_obj_int(-1), HAFL_MSG_ERANGE, "negative client index");
    s_expect_element(z, 3, s_obj_uint(1ull << 32), HAFL_MSG_ERANGE, "client index above uint32");
    s_expect_element(z, 5, s_obj_uint(0), HAFL_MSG_ERANGE, "rank budget 0");
    s_expect_element(z, 6, s_obj_uint(UINT64_MAX), HAFL_MSG_OK, "n_samples at uint64 max");
    s_expect_element(z, 8, s_obj_uint(1), HAFL_MSG_EFIELDTYPE, "rejoin as an integer");
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);

    //  LOG_EVENT: a key twice (one with a newline, which must not reach the one-line text).
    m = s_sample(HAFL_MSG_LOG_EVENT);
    z = s_encode(m);
    msgpack_object_kv kv[2] = {{s_obj_str("a\nb", 3), s_obj_uint(1)},
                               {s_obj_str("a\nb", 3), s_obj_uint(2)}};
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP};
    map.via.map.ptr = kv;
    map.via.map.size = 2;
    s_expect_element(z, 8, map, HAFL_MSG_ERANGE, "log event key twice");
    kv[1].key = s_obj_str("c", 1);
    kv[1].val = s_obj_int(-3);
    s_expect_element(z, 8, map, HAFL_MSG_OK, "log event keys with a newline");
    kv[1].val = s_obj_nil();
    s_expect_element(z, 8, map, HAFL_MSG_EFIELDTYPE, "log event nil value");
    zmsg_destroy(&z);
    hafl_msg_destroy(&m);

    //  No frames at all.
    z = zmsg_new();
    EXPECT(z, HAFL_MSG_ENOFRAMES, "empty message");
    zmsg_destroy(&z);
    CHECK(!hafl_msg_decode(NULL, &err) && err.code == HAFL_MSG_ENOFRAMES);
    //  Encoding an unknown type.
    m = hafl_msg_new((hafl_msg_type_t)0);
    CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_EUNKNOWN);
    hafl_msg_destroy(&m);
    hafl_msg_destroy(&m); //  idempotent
}

static void s_test_rank1_api(void)
{
    hafl_rank1_t r;
    s_rank1(&r, 5, 2, 33, 17);
    hafl_msg_error_t err;
    zframe_t *f = hafl_msg_rank1_encode(&r, &err);
    CHECKF(f, "%s", err.text);
    CHECK(zframe_size(f) == HAFL_MSG_RANK1_OVERHEAD + 4 * (33 + 17));
    hafl_rank1_t d;
    CHECKF(hafl_msg_rank1_decode(f, &d, &err) == 0, "%s", err.text);
    CHECK(s_same_rank1s(&r, &d, 1));
    CHECK(((uintptr_t)d.b & 63) == 0 && ((uintptr_t)d.a & 63) == 0);
    hafl_msg_rank1_clear(&d);
    CHECK(d.b == NULL && d.a == NULL);
    zframe_t *cut = zframe_new(zframe_data(f), zframe_size(f) - 1);
    CHECK(hafl_msg_rank1_decode(cut, &d, &err) == -1 && err.code == HAFL_MSG_ETRUNCATED);
    CHECK(d.b == NULL && d.a == NULL);
    CHECK(hafl_msg_rank1_decode(NULL, &d, &err) == -1 && err.code == HAFL_MSG_ENOFRAMES);
    //  A failure after some fields were read leaves nothing behind.
    float ones[4] = {1, 1, 1, 1};
    zframe_t *bad = s_rank1_frame(7, 3, 1, ones, sizeof ones, ones, 6);
    CHECK(hafl_msg_rank1_decode(bad, &d, &err) == -1 && err.code == HAFL_MSG_ELENGTH);
    CHECK(d.matrix == 0 && d.k == 0 && d.b == NULL && d.a == NULL);
    CHECK(strcmp(err.field, "rank1.a") == 0);
    zframe_destroy(&bad);
    zframe_destroy(&cut);

    //  The reference layout (PROTOCOL.md section 4): one-byte pads put b at byte 24 and a at
    //  byte 32 + 4 d_out, so the zero-copy view borrows both from the frame.
    const unsigned char *bytes = zframe_data(f);
    CHECK(bytes[0] == 0x97 && bytes[16] == 0xc4 && bytes[17] == 0x01 && bytes[19] == 0xc6);
    CHECK(bytes[24 + 4 * 33] == 0xc4 && bytes[24 + 4 * 33 + 3] == 0xc6);
    CHECKF(hafl_msg_rank1_view(f, &d, &err) == 0, "%s", err.text);
    CHECK(d.borrowed && (unsigned char *)d.b == bytes + HAFL_MSG_RANK1_B_OFFSET &&
          (unsigned char *)d.a == bytes + 32 + 4 * 33);
    CHECK(s_same_rank1s(&r, &d, 1));
    hafl_msg_rank1_clear(&d); //  must not free the frame's bytes (ASan would say)
    CHECK(d.b == NULL && !d.borrowed);
    //  A frame whose tensors lie at odd offsets (shortest integers and a one-byte pad put b at
    //  byte 13) is still valid: the view copies.
    zframe_t *odd = s_rank1_frame_padded(5, 2, r.score, 1, r.b, 4 * 33, 0, r.a, 4 * 17);
    CHECK(zframe_data(odd)[11] == 0xc4 && zframe_data(odd)[12] == 4 * 33 &&
          ((uintptr_t)zframe_data(odd) + 13) % 4 != 0);
    CHECKF(hafl_msg_rank1_view(odd, &d, &err) == 0, "%s", err.text);
    CHECK(!d.borrowed && ((uintptr_t)d.b & 63) == 0 && s_same_rank1s(&r, &d, 1));
    hafl_msg_rank1_clear(&d);
    zframe_destroy(&odd);
    //  Pads of 0..7 bytes are accepted, longer ones refused with the pad's name.
    for (size_t pad = 0; pad <= HAFL_MSG_MAX_PAD + 1; pad++)
        for (int which = 0; which < 2; which++) {
            zframe_t *p = s_rank1_frame_padded(5, 2, r.score, which ? 1 : pad, r.b, 4 * 33,
                                               which ? pad : 1, r.a, 4 * 17);
            int rc = hafl_msg_rank1_view(p, &d, &err);
            if (pad <= HAFL_MSG_MAX_PAD) {
                CHECKF(rc == 0 && s_same_rank1s(&r, &d, 1), "pad %zu: %s", pad, err.text);
                hafl_msg_rank1_clear(&d);
            } else
                CHECKF(rc == -1 && err.code == HAFL_MSG_ECAP &&
                           strcmp(err.field, which ? "rank1.pad_a" : "rank1.pad_b") == 0,
                       "pad %zu: %s %s", pad, hafl_msg_code_name(err.code), err.field);
            zframe_destroy(&p);
        }
    //  A NaN in a borrowed tensor is refused like a copied one, with its index.
    zframe_t *nan = zframe_dup(f);
    const float qnan = NAN;
    memcpy(zframe_data(nan) + 32 + 4 * 33 + 4 * 5, &qnan, 4);
    CHECK(hafl_msg_rank1_view(nan, &d, &err) == -1 && err.code == HAFL_MSG_ENONFINITE);
    CHECKF(strcmp(err.field, "rank1.a") == 0 && strstr(err.text, "element 5"), "%s: %s", err.field,
           err.text);
    CHECK(d.b == NULL && d.a == NULL);
    zframe_destroy(&nan);
    zframe_destroy(&f);
    hafl_msg_rank1_clear(&r);
    //  Code names are distinct.
    for (int i = 0; i < HAFL_MSG_ERROR_COUNT; i++)
        for (int j = 0; j < i; j++)
            CHECK(strcmp(hafl_msg_code_name(i), hafl_msg_code_name(j)) != 0);
    //  Log event helpers enforce their caps.
    hafl_log_event_t e = {0};
    CHECK(hafl_log_event_add_int(&e, "", 1) == -1);
    char longkey[HAFL_MSG_MAX_NAME + 1];
    memset(longkey, 'k', HAFL_MSG_MAX_NAME);
    longkey[HAFL_MSG_MAX_NAME] = 0;
    CHECK(hafl_log_event_add_int(&e, longkey, 1) == -1);
    for (uint32_t i = 0; i < HAFL_MSG_MAX_FIELDS; i++) {
        char key[16];
        snprintf(key, sizeof key, "f%u", i);
        CHECK(hafl_log_event_add_bool(&e, key, i % 2) == 0);
    }
    CHECK(hafl_log_event_add_bool(&e, "one-more", true) == -1);
    CHECK(e.n_fields == HAFL_MSG_MAX_FIELDS);
    free(e.fields);
}

//  The 1.1 session fields: HELLO's may be empty (a first join), WELCOME's is always 32 bytes;
//  a 1.0 sender writes neither and its message decodes as "no session"; any other length is
//  ELENGTH; a 1.1 sender that omits the field is EARITY.
static void s_test_session(void)
{
    static const uint8_t five[5] = {1, 2, 3, 4, 5};
    hafl_msg_error_t err;
    for (int w = 0; w < 2; w++) {
        hafl_msg_type_t type = w ? HAFL_MSG_WELCOME : HAFL_MSG_HELLO;
        uint32_t at = w ? 11 : 9; //  element index of `session`
        hafl_msg_t *m = s_sample(type);
        zmsg_t *z = s_encode(m);
        //  1.0: the header ends before `session`.
        zmsg_t *t = s_with_arity(z, 0, 0, s_obj_nil(), 1);
        hafl_msg_t *d = hafl_msg_decode(t, &err);
        CHECKF(d, "%s from 1.0 without a session: %s", hafl_msg_type_name(type), err.text);
        const hafl_session_t *got = w ? &d->u.welcome.session : &d->u.hello.session;
        CHECK(!got->present && d->minor == 0);
        hafl_msg_destroy(&d);
        zmsg_destroy(&t);
        //  1.1 without it.
        t = s_with_arity(z, HAFL_PROTO_MINOR, 0, s_obj_nil(), 1);
        EXPECT(t, HAFL_MSG_EARITY, "1.1 header without its session");
        zmsg_destroy(&t);
        //  Wrong lengths and types.
        s_expect_element(z, at, s_obj_bin(five, 5), HAFL_MSG_ELENGTH, "5-byte session");
        s_expect_element(z, at, s_obj_str("abc", 3), HAFL_MSG_EFIELDTYPE, "string session");
        t = s_with_element(z, at, s_obj_bin(five, 0));
        d = hafl_msg_decode(t, &err);
        if (w) {
            CHECKF(!d && err.code == HAFL_MSG_ELENGTH && strstr(err.field, "session"),
                   "WELCOME with an empty session: %s", d ? "decoded" : err.text);
        } else {
            CHECKF(d && !d->u.hello.session.present, "HELLO with an empty session: %s", err.text);
        }
        hafl_msg_destroy(&d);
        zmsg_destroy(&t);
        //  The encoder refuses a WELCOME without a session and writes a HELLO without one as an
        //  empty bin.
        if (w) {
            m->u.welcome.session.present = false;
            CHECK(!hafl_msg_encode(m, &err) && err.code == HAFL_MSG_ELENGTH);
        } else {
            memset(&m->u.hello.session, 0, sizeof m->u.hello.session);
            zmsg_t *z2 = s_encode(m);
            d = hafl_msg_decode(z2, &err);
            CHECK(d && !d->u.hello.session.present && s_equal(m, d));
            hafl_msg_destroy(&d);
            zmsg_destroy(&z2);
        }
        zmsg_destroy(&z);
        hafl_msg_destroy(&m);
    }
}

int main(void)
{
    for (int t = 1; t < HAFL_MSG_TYPE_COUNT; t++) {
        hafl_msg_type_t type = (hafl_msg_type_t)t;
        s_test_round_trip(type);
        s_test_truncated(type);
        s_test_oversized(type);
        s_test_version(type);
        s_test_wrong_type(type);
        s_test_wrong_length(type);
        s_test_nonfinite(type);
        s_test_frames(type);
        s_test_random(type);
        printf("%-14s ok\n", hafl_msg_type_name(type));
    }
    s_test_semantics();
    s_test_rank1_api();
    s_test_session();
    printf("test_msg_codec: all passed\n");
    return 0;
}
