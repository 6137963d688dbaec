/*  hafl_wire: message I/O and adapter <-> message conversion for the actors. See hafl_wire.h. */
#include "hafl_wire.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int hafl_wire_send(zsock_t *sock, zframe_t *identity, const hafl_msg_t *msg,
                   hafl_traffic_t *traffic, hafl_msg_error_t *err)
{
    hafl_msg_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    zmsg_t *zmsg = hafl_msg_encode(msg, err);
    if (!zmsg)
        return -1;
    if (traffic)
        hafl_traffic_add_msg(traffic, zmsg, msg);
    if (identity) {
        zframe_t *copy = zframe_dup(identity);
        if (!copy || zmsg_prepend(zmsg, &copy)) {
            zframe_destroy(&copy);
            zmsg_destroy(&zmsg);
            return -1;
        }
    }
    if (zmsg_send(&zmsg, sock)) {
        zmsg_destroy(&zmsg);
        return -1;
    }
    return 0;
}

hafl_wire_status_t hafl_wire_recv(zsock_t *sock, bool router, const hafl_layout_t *layout,
                                  zframe_t **identity, hafl_msg_t **msg_p, hafl_traffic_t *traffic,
                                  size_t *bytes, hafl_msg_error_t *err)
{
    *msg_p = NULL;
    if (identity)
        *identity = NULL;
    if (bytes)
        *bytes = 0;
    memset(err, 0, sizeof *err);
    zmsg_t *zmsg = zmsg_recv(sock);
    if (!zmsg)
        return HAFL_WIRE_INTERRUPTED;
    if (router) {
        zframe_t *id = zmsg_pop(zmsg);
        if (identity)
            *identity = id;
        else
            zframe_destroy(&id);
    }
    if (bytes)
        *bytes = zmsg_content_size(zmsg);
    //  Zero-copy: the message keeps the frames and its tensors stay in them, so the take
    //  functions' copy into an adapter is the only one on the receiving side.
    hafl_msg_t *msg = hafl_msg_decode_take(&zmsg, err);
    if (!msg) {
        if (traffic)
            hafl_traffic_add_raw(traffic, zmsg);
        zmsg_destroy(&zmsg);
        return HAFL_WIRE_MALFORMED;
    }
    if (layout && hafl_msg_check_layout(msg, layout, err)) {
        if (traffic)
            hafl_traffic_add_raw(traffic, msg->frames);
        hafl_msg_destroy(&msg);
        return HAFL_WIRE_MALFORMED;
    }
    if (traffic)
        hafl_traffic_add_msg(traffic, msg->frames, msg);
    *msg_p = msg;
    return HAFL_WIRE_OK;
}

hafl_msg_t *hafl_wire_recv_dealer(zsock_t *sock, const hafl_layout_t *layout, char *reason,
                                  size_t reasonlen)
{
    hafl_msg_t *msg = NULL;
    hafl_msg_error_t err;
    reason[0] = 0;
    if (hafl_wire_recv(sock, false, layout, NULL, &msg, NULL, NULL, &err) == HAFL_WIRE_MALFORMED)
        snprintf(reason, reasonlen, "%s: %s", hafl_msg_code_name(err.code), err.text);
    return msg;
}

void hafl_wire_socket_peer(int fd, char *text, size_t textlen)
{
    struct sockaddr_storage address;
    socklen_t len = sizeof address;
    char host[INET6_ADDRSTRLEN] = "";
    snprintf(text, textlen, "unknown");
    if (getpeername(fd, (struct sockaddr *)&address, &len) != 0)
        return;
    if (address.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&address;
        if (inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host))
            snprintf(text, textlen, "%s:%u", host, ntohs(v4->sin_port));
    } else if (address.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&address;
        if (inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host))
            snprintf(text, textlen, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else if (address.ss_family == AF_UNIX)
        snprintf(text, textlen, "local");
}

void hafl_wire_peer(zframe_t *identity, char *text, size_t textlen)
{
    if (!identity || zframe_size(identity) == 0) {
        snprintf(text, textlen, "-");
        return;
    }
    size_t size = zframe_size(identity);
    const uint8_t *data = zframe_data(identity);
    size_t used = 0;
    for (size_t i = 0; i < size && i < 20 && used + 3 <= textlen; i++)
        used += (size_t)snprintf(text + used, textlen - used, "%02x", data[i]);
    if (used == 0 && textlen)
        text[0] = 0;
}

int hafl_wire_take_components(hafl_adapter_t *dst, const hafl_rank1_t *components, uint32_t n,
                              uint8_t *present)
{
    uint32_t R = dst->layout.rank;
    for (uint32_t i = 0; i < n; i++) {
        const hafl_rank1_t *c = &components[i];
        size_t slot = (size_t)c->matrix * R + c->k;
        memcpy(hafl_adapter_b(dst, c->matrix, c->k), c->b, (size_t)c->d_out * sizeof(float));
        memcpy(hafl_adapter_a(dst, c->matrix, c->k), c->a, (size_t)c->d_in * sizeof(float));
        dst->score[slot] = c->score;
        if (present)
            present[slot] = 1;
    }
    return 0;
}

//  Terms of matrix m among n.
static uint32_t s_terms_of(const hafl_rank1_t *terms, uint32_t n, uint32_t m)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++)
        count += terms[i].matrix == m;
    return count;
}

int hafl_wire_take_merged(hafl_adapter_t *dst, const hafl_rank1_t *terms, uint32_t n, bool reset,
                          const char *what, char *err, size_t errlen)
{
    const hafl_layout_t *L = &dst->layout;
    //  The cap first, for every matrix, so a refused message changes nothing.
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t count = s_terms_of(terms, n, m), kept = reset ? 0 : dst->n_merged[m];
        if ((uint64_t)kept + count > HAFL_ADAPTER_MAX_MERGED) {
            snprintf(err, errlen, "%s: %u merged terms for matrix %u on top of %u exceed the cap "
                     "of %u", what, count, m, kept, HAFL_ADAPTER_MAX_MERGED);
            return -1;
        }
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t count = s_terms_of(terms, n, m);
        if (reset && hafl_adapter_set_merged(dst, m, 0, NULL, NULL))
            goto nomem;
        if (count == 0)
            continue;
        uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        float *bt, *a;
        if (hafl_adapter_grow_merged(dst, m, count, &bt, &a))
            goto nomem;
        //  Straight from the message into the adapter, keeping the message's order.
        for (uint32_t i = 0; i < n; i++) {
            if (terms[i].matrix != m)
                continue;
            memcpy(bt, terms[i].b, (size_t)d_out * sizeof(float));
            memcpy(a, terms[i].a, (size_t)d_in * sizeof(float));
            bt += d_out;
            a += d_in;
        }
    }
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory for merged terms", what);
    return -1;
}

int hafl_wire_take_head(hafl_adapter_t *dst, const hafl_tensor_t *head, const char *what, char *err,
                        size_t errlen)
{
    const hafl_layout_t *L = &dst->layout;
    if (head->rows != L->head_rows || head->cols != L->head_cols ||
        ((size_t)L->head_rows * L->head_cols != 0 && !head->data)) {
        snprintf(err, errlen, "%s.head: shape %ux%u differs from the layout's %ux%u", what,
                 head->rows, head->cols, L->head_rows, L->head_cols);
        return -1;
    }
    size_t count = (size_t)head->rows * head->cols;
    if (count)
        memcpy(dst->head, head->data, count * sizeof(float));
    return 0;
}

//  A term that borrows its factors from the adapter (the encoder copies them into the frame,
//  and the message never frees or writes them).
static void s_fill_term(hafl_rank1_t *t, uint32_t m, uint32_t k, float score, const float *b,
                        const float *a, uint32_t d_out, uint32_t d_in)
{
    t->matrix = m;
    t->k = k;
    t->score = score;
    t->d_out = d_out;
    t->d_in = d_in;
    t->b = (float *)(uintptr_t)b;
    t->a = (float *)(uintptr_t)a;
    t->borrowed = true;
}

hafl_rank1_t *hafl_wire_export_components(const hafl_adapter_t *src, const uint8_t *roles,
                                          uint8_t min_role, uint32_t *n)
{
    const hafl_layout_t *L = &src->layout;
    uint32_t R = L->rank, count = 0;
    for (size_t s = 0; s < (size_t)L->n_matrices * R; s++)
        count += !roles || roles[s] >= min_role;
    *n = count;
    if (count == 0)
        return NULL;
    hafl_rank1_t *terms = calloc(count, sizeof(hafl_rank1_t));
    if (!terms)
        return NULL;
    uint32_t j = 0;
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < R; k++) {
            size_t slot = (size_t)m * R + k;
            if (roles && roles[slot] < min_role)
                continue;
            s_fill_term(&terms[j++], m, k, src->score[slot], hafl_adapter_b(src, m, k),
                        hafl_adapter_a(src, m, k), L->matrices[m].d_out, L->matrices[m].d_in);
        }
    return terms;
}

hafl_rank1_t *hafl_wire_export_merged(const hafl_adapter_t *src, const uint32_t *from, uint32_t *n)
{
    const hafl_layout_t *L = &src->layout;
    uint32_t count = 0;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t start = from ? from[m] : 0;
        count += src->n_merged[m] > start ? src->n_merged[m] - start : 0;
    }
    *n = count;
    if (count == 0)
        return NULL;
    hafl_rank1_t *terms = calloc(count, sizeof(hafl_rank1_t));
    if (!terms)
        return NULL;
    uint32_t j = 0;
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        uint32_t d_out = L->matrices[m].d_out, d_in = L->matrices[m].d_in;
        for (uint32_t t = from ? from[m] : 0; t < src->n_merged[m]; t++)
            s_fill_term(&terms[j++], m, t, 0.0f, src->mbt[m] + (size_t)t * d_out,
                        src->ma[m] + (size_t)t * d_in, d_out, d_in);
    }
    return terms;
}

int hafl_wire_export_head(const hafl_adapter_t *src, hafl_tensor_t *head)
{
    const hafl_layout_t *L = &src->layout;
    head->rows = L->head_rows;
    head->cols = L->head_cols;
    bool empty = L->head_rows == 0 || L->head_cols == 0;
    head->data = empty ? NULL : (float *)(uintptr_t)src->head;
    head->borrowed = true;
    return 0;
}

void hafl_wire_free_rank1(hafl_rank1_t **terms_p, uint32_t n)
{
    if (!terms_p || !*terms_p)
        return;
    for (uint32_t i = 0; i < n; i++)
        if (!(*terms_p)[i].borrowed) {
            free((*terms_p)[i].b);
            free((*terms_p)[i].a);
        }
    free(*terms_p);
    *terms_p = NULL;
}

bool hafl_wire_layout_matches(const hafl_welcome_t *w, const hafl_layout_t *L, char *err,
                              size_t errlen)
{
    if (w->rank != L->rank || w->n_matrices != L->n_matrices || w->head_rows != L->head_rows ||
        w->head_cols != L->head_cols || w->scale != L->scale) {
        snprintf(err, errlen,
                 "welcome: layout (rank %u, %u matrices, head %ux%u, scale %g) differs from "
                 "ours (rank %u, %u matrices, head %ux%u, scale %g)",
                 w->rank, w->n_matrices, w->head_rows, w->head_cols, (double)w->scale, L->rank,
                 L->n_matrices, L->head_rows, L->head_cols, (double)L->scale);
        return false;
    }
    for (uint32_t m = 0; m < L->n_matrices; m++) {
        const struct hafl_msg_matrix *x = &w->matrices[m];
        if (strncmp(x->name, L->matrices[m].name, sizeof x->name) != 0 ||
            x->d_out != L->matrices[m].d_out || x->d_in != L->matrices[m].d_in) {
            snprintf(err, errlen, "welcome.matrices[%u]: %s %ux%u differs from ours %s %ux%u", m,
                     x->name, x->d_out, x->d_in, L->matrices[m].name, L->matrices[m].d_out,
                     L->matrices[m].d_in);
            return false;
        }
    }
    return true;
}

void hafl_wire_limit(zsock_t *sock, int64_t max_bytes)
{
    zsock_set_maxmsgsize(sock, (int)(max_bytes > INT32_MAX ? INT32_MAX : max_bytes));
    zsock_set_linger(sock, 200);
}

int hafl_wire_send_heartbeat(zsock_t *sock, zframe_t *identity, uint32_t client_index, uint64_t seq,
                             hafl_traffic_t *traffic)
{
    hafl_msg_t *msg = hafl_msg_new(HAFL_MSG_HEARTBEAT);
    if (!msg)
        return -1;
    msg->u.heartbeat.client_index = client_index;
    msg->u.heartbeat.seq = seq;
    msg->u.heartbeat.time_us = (uint64_t)zclock_time() * 1000u;
    int rc = hafl_wire_send(sock, identity, msg, traffic, NULL);
    hafl_msg_destroy(&msg);
    return rc;
}

int hafl_wire_pipe_term(zloop_t *loop, zsock_t *pipe, void *arg)
{
    char *command = zstr_recv(pipe);
    bool term = !command || streq(command, "$TERM");
    zstr_free(&command);
    return term ? -1 : 0;
}
