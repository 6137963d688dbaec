/*  test_wire: what the bus actors receive is checked against their layout before it is used.

    A well-formed UPDATE (it decodes) whose component does not fit the receiver's layout (a wrong
    shape, a matrix id or component index out of range, a head of another shape) must come back
    MALFORMED with the codec's reason, and a fitting one must be copied into the adapter exactly,
    marking the components present. Merged terms exported from one adapter (borrowing its
    memory) and sent in an EVAL_REQUEST land in another in the sender's per-matrix order,
    appended or replacing as asked. Sockets are an inproc PAIR; waits are blocking receives of
    messages already sent.
*/
#include "hafl_test.h"
#include "hafl_wire.h"

#include <string.h>

//  Layout: two matrices, 4x3 and 2x3, rank 2, head 2x4.
static hafl_matrix_info_t s_matrices[2] = {{"L0.wq", 4, 3}, {"L0.wk", 2, 3}};
static const hafl_layout_t s_layout = {2, s_matrices, 2, 1.0f, 2, 4};

static float s_b[4] = {1, 2, 3, 4}, s_a[3] = {-1, 0.5f, 2}, s_head[8] = {1, 2, 3, 4, 5, 6, 7, 8};

//  An UPDATE with one component (matrix, k) of shape d_out x d_in, and a head rows x cols.
static hafl_msg_t *s_update(uint32_t matrix, uint32_t k, uint32_t d_out, uint32_t head_rows)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_UPDATE);
    CHECK(msg);
    hafl_update_t *u = &msg->u.update;
    u->round = 1;
    u->n_samples = 10;
    u->n_components = 1;
    u->components = calloc(1, sizeof(hafl_rank1_t));
    hafl_rank1_t *c = &u->components[0];
    c->matrix = matrix;
    c->k = k;
    c->score = 0.25f;
    c->d_out = d_out;
    c->d_in = 3;
    c->b = malloc(d_out * sizeof(float));
    c->a = malloc(3 * sizeof(float));
    for (uint32_t i = 0; i < d_out; i++)
        c->b[i] = s_b[i % 4];
    memcpy(c->a, s_a, sizeof s_a);
    u->head.rows = head_rows;
    u->head.cols = 4;
    u->head.data = malloc(head_rows * 4 * sizeof(float));
    for (uint32_t i = 0; i < head_rows * 4; i++)
        u->head.data[i] = s_head[i % 8];
    return msg;
}

//  Send msg through the pair and receive it with the layout check.
static hafl_wire_status_t s_pass(zsock_t *out, zsock_t *in, hafl_msg_t *msg, hafl_msg_t **got,
                                 hafl_msg_error_t *err)
{
    hafl_msg_error_t send_err;
    CHECKF(hafl_wire_send(out, NULL, msg, NULL, &send_err) == 0, "%s", send_err.text);
    hafl_msg_destroy(&msg);
    return hafl_wire_recv(in, false, &s_layout, NULL, got, NULL, NULL, err);
}

//  Merged terms: a sender adapter with terms on both matrices exports them (borrowed), sends
//  an EVAL_REQUEST, and the receiver appends, then replaces, keeping each matrix's order.
static void s_check_merged(zsock_t *out, zsock_t *in, hafl_adapter_t *receiver)
{
    hafl_adapter_t *sender = hafl_adapter_new(&s_layout);
    CHECK(sender);
    float bt0[3 * 4], a0[3 * 3], bt1[2 * 2], a1[2 * 3];
    for (int i = 0; i < 12; i++)
        bt0[i] = (float)i;
    for (int i = 0; i < 9; i++)
        a0[i] = (float)(100 + i);
    for (int i = 0; i < 4; i++)
        bt1[i] = (float)(-i);
    for (int i = 0; i < 6; i++)
        a1[i] = (float)(-100 - i);
    CHECK(hafl_adapter_set_merged(sender, 0, 3, bt0, a0) == 0);
    CHECK(hafl_adapter_set_merged(sender, 1, 2, bt1, a1) == 0);
    for (int reset = 0; reset < 2; reset++) {
        hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_EVAL_REQUEST);
        CHECK(msg);
        hafl_eval_request_t *r = &msg->u.eval_request;
        r->merged = hafl_wire_export_merged(sender, NULL, &r->n_merged);
        CHECK(r->merged && r->n_merged == 5 && r->merged[0].borrowed);
        CHECK(r->merged[0].b == sender->mbt[0] && r->merged[4].a == sender->ma[1] + 3);
        CHECK(hafl_wire_export_head(sender, &r->head) == 0 && r->head.borrowed);
        hafl_msg_t *got = NULL;
        hafl_msg_error_t err;
        CHECKF(s_pass(out, in, msg, &got, &err) == HAFL_WIRE_OK, "%s", err.text);
        const hafl_eval_request_t *e = &got->u.eval_request;
        char text[128];
        uint64_t epoch = receiver->merged_epoch;
        CHECKF(hafl_wire_take_merged(receiver, e->merged, e->n_merged, reset, "eval", text,
                                     sizeof text) == 0,
               "%s", text);
        //  First pass appends to an empty adapter, second replaces: 3 and 2 terms either way,
        //  and only the replacement starts a new epoch.
        CHECK(receiver->n_merged[0] == 3 && receiver->n_merged[1] == 2);
        CHECK(reset ? receiver->merged_epoch > epoch : receiver->merged_epoch == epoch);
        CHECK(memcmp(receiver->mbt[0], bt0, sizeof bt0) == 0);
        CHECK(memcmp(receiver->ma[0], a0, sizeof a0) == 0);
        CHECK(memcmp(receiver->mbt[1], bt1, sizeof bt1) == 0);
        CHECK(memcmp(receiver->ma[1], a1, sizeof a1) == 0);
        hafl_msg_destroy(&got);
    }
    //  Appending without a reset adds after what is there.
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_EVAL_REQUEST);
    CHECK(msg);
    hafl_eval_request_t *r = &msg->u.eval_request;
    uint32_t from[2] = {2, 2}; //  matrix 0's last term only, none of matrix 1
    r->merged = hafl_wire_export_merged(sender, from, &r->n_merged);
    CHECK(r->n_merged == 1 && hafl_wire_export_head(sender, &r->head) == 0);
    hafl_msg_t *got = NULL;
    hafl_msg_error_t err;
    CHECKF(s_pass(out, in, msg, &got, &err) == HAFL_WIRE_OK, "%s", err.text);
    char text[128];
    CHECK(hafl_wire_take_merged(receiver, got->u.eval_request.merged,
                                got->u.eval_request.n_merged, false, "eval", text,
                                sizeof text) == 0);
    CHECK(receiver->n_merged[0] == 4 && receiver->n_merged[1] == 2);
    CHECK(memcmp(receiver->mbt[0] + 3 * 4, bt0 + 2 * 4, 4 * sizeof(float)) == 0);
    CHECK(memcmp(receiver->ma[0] + 3 * 3, a0 + 2 * 3, 3 * sizeof(float)) == 0);
    hafl_msg_destroy(&got);
    hafl_adapter_destroy(&sender);

    //  Past the per-matrix cap: refused with the numbers, and nothing changes (not even the
    //  matrix that would have fitted).
    uint32_t many = HAFL_ADAPTER_MAX_MERGED - 1;
    hafl_rank1_t *terms = calloc(many + 1, sizeof *terms);
    CHECK(terms);
    terms[0] = (hafl_rank1_t){.matrix = 0, .d_out = 4, .d_in = 3, .b = bt0, .a = a0,
                              .borrowed = true};
    for (uint32_t i = 1; i <= many; i++)
        terms[i] = (hafl_rank1_t){.matrix = 1, .d_out = 2, .d_in = 3, .b = bt1, .a = a1,
                                  .borrowed = true};
    CHECK(hafl_wire_take_merged(receiver, terms, many + 1, false, "round", text,
                                sizeof text) == -1);
    CHECKF(strstr(text, "round: 65535 merged terms for matrix 1 on top of 2 exceed the cap of "
                        "65536"), "%s", text);
    CHECK(receiver->n_merged[0] == 4 && receiver->n_merged[1] == 2);
    //  The same terms replacing what is there fit.
    CHECKF(hafl_wire_take_merged(receiver, terms, many + 1, true, "round", text, sizeof text) == 0,
           "%s", text);
    CHECK(receiver->n_merged[0] == 1 && receiver->n_merged[1] == many);
    CHECK(memcmp(receiver->mbt[1] + (size_t)(many - 1) * 2, bt1, 2 * sizeof(float)) == 0);
    free(terms);
}

int main(void)
{
    zsock_t *out = zsock_new_pair("@inproc://test-wire");
    zsock_t *in = zsock_new_pair(">inproc://test-wire");
    CHECK(out && in);
    hafl_msg_t *got = NULL;
    hafl_msg_error_t err;

    //  Each misfit decodes but is refused against the layout, with the codec's code.
    CHECK(s_pass(out, in, s_update(1, 0, 4, 2), &got, &err) == HAFL_WIRE_MALFORMED);
    CHECKF(!got && err.code == HAFL_MSG_ELENGTH, "%s", err.text);
    CHECK(s_pass(out, in, s_update(2, 0, 4, 2), &got, &err) == HAFL_WIRE_MALFORMED);
    CHECKF(!got && err.code == HAFL_MSG_ERANGE, "%s", err.text);
    CHECK(s_pass(out, in, s_update(0, 2, 4, 2), &got, &err) == HAFL_WIRE_MALFORMED);
    CHECKF(!got && err.code == HAFL_MSG_ERANGE, "%s", err.text);
    CHECK(s_pass(out, in, s_update(0, 1, 4, 3), &got, &err) == HAFL_WIRE_MALFORMED);
    CHECKF(!got && err.code == HAFL_MSG_ELENGTH, "%s", err.text);

    //  A fitting one is received and copied exactly into its slot.
    CHECK(s_pass(out, in, s_update(0, 1, 4, 2), &got, &err) == HAFL_WIRE_OK);
    CHECK(got);
    hafl_adapter_t *adapter = hafl_adapter_new(&s_layout);
    uint8_t present[4] = {0};
    const hafl_update_t *u = &got->u.update;
    CHECK(hafl_wire_take_components(adapter, u->components, u->n_components, present) == 0);
    char text[128];
    CHECKF(hafl_wire_take_head(adapter, &u->head, "update", text, sizeof text) == 0, "%s", text);
    CHECK(present[0] == 0 && present[1] == 1 && present[2] == 0 && present[3] == 0);
    CHECK(memcmp(hafl_adapter_b(adapter, 0, 1), s_b, sizeof s_b) == 0);
    CHECK(memcmp(hafl_adapter_a(adapter, 0, 1), s_a, sizeof s_a) == 0);
    CHECK(adapter->score[1] == 0.25f && adapter->score[0] == 0.0f);
    CHECK(memcmp(adapter->head, s_head, sizeof s_head) == 0);

    //  A message without a head (0 x 0, allowed by the protocol) is refused by take_head.
    hafl_tensor_t none = {0};
    CHECK(hafl_wire_take_head(adapter, &none, "update", text, sizeof text) == -1);
    CHECKF(strstr(text, "update.head") != NULL, "%s", text);

    hafl_msg_destroy(&got);
    s_check_merged(out, in, adapter);
    hafl_adapter_destroy(&adapter);
    zsock_destroy(&in);
    zsock_destroy(&out);
    printf("wire: ok\n");
    return 0;
}
