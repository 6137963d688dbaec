/*  hafl_msg_samples: one deterministic, fully populated message of every type, for the codec
    test and the fuzzer's seed corpus, and a byte-exact comparison of encoded messages. Tensors hold
   awkward but finite bit patterns (negative zero, subnormals, the largest float); shapes follow a
   three-matrix layout (s_dout, s_din). Everything is allocated with malloc so hafl_msg_destroy
   frees it; allocation failures end the process through CHECK (tests only).
*/
#ifndef HAFL_MSG_SAMPLES_H
#define HAFL_MSG_SAMPLES_H

#include "hafl_msg.h"
#include "hafl_test.h"

#include <math.h>
#include <string.h>

//  splitmix64: the sample tensors are a pure function of (salt, index).
static uint32_t s_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((x ^ (x >> 31)) >> 16);
}

//  Finite values with awkward bit patterns: negative zero, subnormals, extremes.
static float *s_floats(size_t n, uint64_t salt)
{
    float *x = malloc(n * sizeof *x + 1);
    CHECK(x);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = s_mix(salt * 1000003u + i);
        if ((bits & 0x7f800000u) == 0x7f800000u)
            bits &= 0xbfffffffu;
        memcpy(&x[i], &bits, 4);
    }
    if (n > 0)
        x[0] = -0.0f;
    if (n > 1)
        x[1] = 1e-45f;
    if (n > 2)
        x[2] = 3.4028235e38f;
    return x;
}

static void s_rank1(hafl_rank1_t *r, uint32_t matrix, uint32_t k, uint32_t d_out, uint32_t d_in)
{
    r->matrix = matrix;
    r->k = k;
    r->score = 0.5f + (float)k;
    r->d_out = d_out;
    r->d_in = d_in;
    r->b = s_floats(d_out, 4 * (matrix * 4099u + k));
    r->a = s_floats(d_in, 4 * (matrix * 4099u + k) + 1);
}

static void s_head(hafl_tensor_t *h, uint32_t rows, uint32_t cols)
{
    h->rows = rows;
    h->cols = cols;
    h->data = rows && cols ? s_floats((size_t)rows * cols, 2) : NULL;
}

//  Layout of the samples: matrix 0 is 6 x 5, matrix 1 is 4 x 7, matrix 2 is 3 x 3.
static const uint32_t s_dout[] = {6, 4, 3}, s_din[] = {5, 7, 3};

static inline hafl_msg_t *s_sample(hafl_msg_type_t type)
{
    hafl_msg_t *m = hafl_msg_new(type);
    CHECK(m);
    switch (type) {
    case HAFL_MSG_HELLO: {
        hafl_hello_t *x = &m->u.hello;
        x->client_index = 3;
        strcpy(x->name, "client-3 \xc3\xa9\xe2\x9c\x93");
        x->rank_budget = 4;
        x->n_samples = 1ull << 40;
        for (int i = 0; i < 32; i++)
            x->base_digest[i] = (uint8_t)(i * 7 + 1);
        x->rejoin = true;
        x->session.present = true;
        for (int i = 0; i < HAFL_SESSION_BYTES; i++)
            x->session.bytes[i] = (uint8_t)(255 - 3 * i);
        break;
    }
    case HAFL_MSG_WELCOME: {
        hafl_welcome_t *x = &m->u.welcome;
        x->client_index = 3;
        strcpy(x->run_id, "run-42");
        x->heartbeat_ms = 500;
        x->rank = 8;
        x->scale = 2.0f;
        x->head_rows = 4;
        x->head_cols = 9;
        x->n_matrices = 3;
        x->matrices = calloc(3, sizeof *x->matrices);
        CHECK(x->matrices);
        const char *names[] = {"L0.wq", "L0.wk", "L1.wo"};
        for (int i = 0; i < 3; i++) {
            strcpy(x->matrices[i].name, names[i]);
            x->matrices[i].d_out = s_dout[i];
            x->matrices[i].d_in = s_din[i];
        }
        x->session.present = true;
        for (int i = 0; i < HAFL_SESSION_BYTES; i++)
            x->session.bytes[i] = (uint8_t)(i * 5 + 2);
        break;
    }
    case HAFL_MSG_REJECT:
        m->u.reject.reason = HAFL_REJECT_BASE_DIGEST;
        strcpy(m->u.reject.text, "base model digest differs");
        break;
    case HAFL_MSG_ROUND: {
        hafl_round_t *x = &m->u.round;
        x->round = 2;
        x->deadline_ms = 30000;
        x->local_epochs = 1;
        x->local_steps = 0;
        x->batch = 8;
        x->lr = 1e-3f;
        x->seed = 0xdeadbeefcafef00dull;
        x->straggle_ms = 250;
        x->fresh_optimizer = true;
        x->n_matrices = 3;
        x->rank = 4;
        x->roles = calloc(12, 1);
        CHECK(x->roles);
        //  matrix 0: k 0 trainable, k 1 frozen; matrix 2: k 3 trainable; the rest absent
        x->roles[0] = HAFL_ROLE_TRAINABLE;
        x->roles[1] = HAFL_ROLE_FROZEN;
        x->roles[2 * 4 + 3] = HAFL_ROLE_TRAINABLE;
        x->n_components = 3;
        x->components = calloc(3, sizeof *x->components);
        CHECK(x->components);
        s_rank1(&x->components[0], 0, 0, s_dout[0], s_din[0]);
        s_rank1(&x->components[1], 0, 1, s_dout[0], s_din[0]);
        s_rank1(&x->components[2], 2, 3, s_dout[2], s_din[2]);
        x->n_merged = 2;
        x->merged = calloc(2, sizeof *x->merged);
        CHECK(x->merged);
        s_rank1(&x->merged[0], 1, 17, s_dout[1], s_din[1]);
        s_rank1(&x->merged[1], 1, 17, s_dout[1], s_din[1]);
        x->reset_merged = true;
        s_head(&x->head, 4, 9);
        break;
    }
    case HAFL_MSG_UPDATE: {
        hafl_update_t *x = &m->u.update;
        x->round = 2;
        x->client_index = 3;
        x->n_samples = 500;
        x->train_loss = 1.25f;
        x->steps = 10;
        x->wall_ms = 1234;
        x->n_components = 3;
        x->components = calloc(3, sizeof *x->components);
        CHECK(x->components);
        s_rank1(&x->components[0], 0, 0, s_dout[0], s_din[0]);
        s_rank1(&x->components[1], 2, 3, s_dout[2], s_din[2]);
        s_rank1(&x->components[2], 0, 2, s_dout[0], s_din[0]);
        s_head(&x->head, 4, 9);
        break;
    }
    case HAFL_MSG_EVAL_REQUEST: {
        hafl_eval_request_t *x = &m->u.eval_request;
        x->round = 0;
        x->tag = 4;
        x->n_components = 2;
        x->components = calloc(2, sizeof *x->components);
        CHECK(x->components);
        s_rank1(&x->components[0], 1, 0, s_dout[1], s_din[1]);
        s_rank1(&x->components[1], 1, 1, s_dout[1], s_din[1]);
        x->n_merged = 1;
        x->merged = calloc(1, sizeof *x->merged);
        CHECK(x->merged);
        s_rank1(&x->merged[0], 0, 0, s_dout[0], s_din[0]);
        s_head(&x->head, 0, 0); //  an empty head travels as 0 x 0
        break;
    }
    case HAFL_MSG_EVAL_RESULT:
        m->u.eval_result = (hafl_eval_result_t){5, 0, 0.75f, 0.9f, 7532, 999};
        break;
    case HAFL_MSG_LOG_EVENT: {
        hafl_log_event_t *x = &m->u.log_event;
        x->time_us = 1700000000123456ull;
        strcpy(x->run_id, "run-42");
        x->round = -1;
        strcpy(x->actor, "server");
        strcpy(x->event, "round-start");
        CHECK(hafl_log_event_add_int(x, "clients", -5) == 0);
        CHECK(hafl_log_event_add_int(x, "min", INT64_MIN) == 0);
        CHECK(hafl_log_event_add_float(x, "loss", NAN) == 0);
        CHECK(hafl_log_event_add_float(x, "big", -INFINITY) == 0);
        CHECK(hafl_log_event_add_float(x, "acc", 0.8125) == 0);
        CHECK(hafl_log_event_add_string(x, "who",
                                        "\xc3\xbcn\xc3\xaf"
                                        "code") == 0);
        CHECK(hafl_log_event_add_bool(x, "late", true) == 0);
        break;
    }
    case HAFL_MSG_CONTROL: {
        hafl_control_t *x = &m->u.control;
        strcpy(x->command, "fault");
        x->argc = 3;
        x->argv = calloc(3, sizeof *x->argv);
        CHECK(x->argv);
        x->argv[0] = strdup("straggle");
        x->argv[1] = strdup("3");
        x->argv[2] = strdup("");
        CHECK(x->argv[0] && x->argv[1] && x->argv[2]);
        break;
    }
    case HAFL_MSG_CONTROL_REPLY:
        m->u.control_reply.ok = true;
        m->u.control_reply.json = strdup("{\"round\":3,\"alive\":[0,1,2]}");
        CHECK(m->u.control_reply.json);
        break;
    case HAFL_MSG_HEARTBEAT:
        m->u.heartbeat = (hafl_heartbeat_t){UINT32_MAX, 77, 123456789};
        break;
    default:
        CHECK(0);
    }
    return m;
}

//  Two encoded messages with the same frames, byte for byte.
static int s_same_frames(zmsg_t *a, zmsg_t *b)
{
    if (zmsg_size(a) != zmsg_size(b))
        return 0;
    for (zframe_t *p = zmsg_first(a), *q = zmsg_first(b); p; p = zmsg_next(a), q = zmsg_next(b))
        if (!zframe_eq(p, q))
            return 0;
    return 1;
}

#endif
