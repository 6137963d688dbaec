/*  hafl_traffic: byte accounting by kind. See hafl_traffic.h. */
#include "hafl_traffic.h"

//  A MessagePack float32 is one marker byte and four payload bytes.
#define S_SCORE_BYTES 5u

//  Rank-1 frames and float counts of a message: the number of frames after frame 0 that carry
//  rank-1 terms, and the head it carries.
static void s_shape(const hafl_msg_t *msg, uint32_t *rank1, const hafl_tensor_t **head,
                    const hafl_rank1_t **a, uint32_t *na, const hafl_rank1_t **b, uint32_t *nb)
{
    *rank1 = 0;
    *head = NULL;
    *a = *b = NULL;
    *na = *nb = 0;
    switch (msg->type) {
    case HAFL_MSG_ROUND:
        *a = msg->u.round.components, *na = msg->u.round.n_components;
        *b = msg->u.round.merged, *nb = msg->u.round.n_merged;
        *head = &msg->u.round.head;
        break;
    case HAFL_MSG_UPDATE:
        *a = msg->u.update.components, *na = msg->u.update.n_components;
        *head = &msg->u.update.head;
        break;
    case HAFL_MSG_EVAL_REQUEST:
        *a = msg->u.eval_request.components, *na = msg->u.eval_request.n_components;
        *b = msg->u.eval_request.merged, *nb = msg->u.eval_request.n_merged;
        *head = &msg->u.eval_request.head;
        break;
    default:
        break;
    }
    *rank1 = *na + *nb;
}

void hafl_traffic_add_msg(hafl_traffic_t *self, zmsg_t *zmsg, const hafl_msg_t *msg)
{
    uint32_t rank1;
    const hafl_tensor_t *head;
    const hafl_rank1_t *a, *b;
    uint32_t na, nb;
    s_shape(msg, &rank1, &head, &a, &na, &b, &nb);
    size_t index = 0;
    for (zframe_t *frame = zmsg_first(zmsg); frame; frame = zmsg_next(zmsg), index++) {
        uint64_t size = zframe_size(frame);
        if (index == 0)
            self->control += size;
        else if (index <= rank1) {
            uint64_t score = size >= S_SCORE_BYTES ? S_SCORE_BYTES : size;
            self->scores += score;
            self->components += size - score;
        } else if (head)
            self->head += size;
        else
            self->control += size;
    }
    for (uint32_t i = 0; i < na; i++)
        self->floats += (uint64_t)a[i].d_out + a[i].d_in + 1;
    for (uint32_t i = 0; i < nb; i++)
        self->floats += (uint64_t)b[i].d_out + b[i].d_in + 1;
    if (head)
        self->floats += (uint64_t)head->rows * head->cols;
    self->messages++;
}

void hafl_traffic_add_raw(hafl_traffic_t *self, zmsg_t *zmsg)
{
    self->control += zmsg_content_size(zmsg);
    self->messages++;
}

void hafl_traffic_add(hafl_traffic_t *self, const hafl_traffic_t *other)
{
    self->components += other->components;
    self->head += other->head;
    self->scores += other->scores;
    self->control += other->control;
    self->floats += other->floats;
    self->messages += other->messages;
}

uint64_t hafl_traffic_total(const hafl_traffic_t *self)
{
    return self->components + self->head + self->scores + self->control;
}
