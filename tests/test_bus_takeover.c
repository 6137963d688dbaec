/*  test_bus_takeover: nobody takes over a client's place by speaking the protocol correctly.

    PROTOCOL.md (HELLO, sessions): a WELCOME carries a session secret; while the holder of a
    client index is alive, a HELLO for that index from another connection is admitted only with
    that secret, and the holder is then told REJECT REPLACED. Two parts:
    - In-process smoke federation, once undisturbed and once with three peers trying to take
      client 3's place while it is alive: rejoin = true without a session and with a wrong one
      (REJECT SESSION, logged as takeover-refused), and a plain HELLO (REJECT INDEX). The final
      adapter is the undisturbed run's.
    - The same topology in processes mode, the server's node and clients-0's node in this
      process, while the test itself plays client 7 (of clients-1) over raw DEALER sockets:
      a first connection is welcomed with a session; a second one presenting that session is
      welcomed (a legitimate rejoin) and the first is told REJECT REPLACED naming the new peer;
      a third presenting the first, now stale, session is refused. The run still completes.
*/
#include "test_bus_util.h"

#include "hafl_msg.h"

//  The next message on sock other than a heartbeat, within 10 s; NULL when none came.
static hafl_msg_t *s_next(zsock_t *sock)
{
    zpoller_t *poller = zpoller_new(sock, NULL);
    CHECK(poller);
    hafl_msg_t *msg = NULL;
    while (!msg && zpoller_wait(poller, 10000) == sock) {
        zmsg_t *zmsg = zmsg_recv(sock);
        msg = hafl_msg_decode(zmsg, NULL);
        zmsg_destroy(&zmsg);
        if (msg && msg->type == HAFL_MSG_HEARTBEAT)
            hafl_msg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    return msg;
}

//  A DEALER connected to the server that has said HELLO for `index`.
static zsock_t *s_hello(const hafl_topology_t *t, hafl_node_t *node, const char *endpoint,
                        uint32_t index, bool rejoin, const hafl_session_t *session)
{
    zsock_t *sock = zsock_new_dealer(endpoint);
    CHECK(sock);
    hafl_msg_t *hello = hafl_msg_new(HAFL_MSG_HELLO);
    CHECK(hello);
    hafl_hello_t *h = &hello->u.hello;
    h->client_index = index;
    snprintf(h->name, sizeof h->name, "taker-%u", index);
    h->rank_budget = t->clients.ranks[index];
    h->n_samples = hafl_task_client_samples(hafl_node_task(node), index);
    hafl_task_base_digest(hafl_node_task(node), h->base_digest);
    h->rejoin = rejoin;
    if (session)
        h->session = *session;
    zmsg_t *frames = hafl_msg_encode(hello, NULL);
    CHECK(frames && zmsg_send(&frames, sock) == 0);
    hafl_msg_destroy(&hello);
    return sock;
}

//  The reply to a HELLO must be REJECT of `reason` with `text` in it.
static void s_expect_reject(zsock_t *sock, uint32_t reason, const char *text, const char *label)
{
    hafl_msg_t *msg = s_next(sock);
    CHECKF(msg && msg->type == HAFL_MSG_REJECT, "%s: no REJECT", label);
    CHECKF(msg->u.reject.reason == reason && strstr(msg->u.reject.text, text),
           "%s: REJECT %u '%s', expected %u with '%s'", label, msg->u.reject.reason,
           msg->u.reject.text, reason, text);
    hafl_msg_destroy(&msg);
}

static void s_inproc_takeovers(void)
{
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", "server/rounds=12", NULL);
    char clean[65], run_dir[4096];
    CHECK(bus_run_inproc(t, clean, run_dir, sizeof run_dir) == 0);

    char hex[65], reason[256];
    hafl_node_t *node = bus_node(t, NULL, NULL);
    const char *server = hafl_node_endpoints(node)->server;
    bus_wait_event(node, "\"event\":\"federation-start\"");

    hafl_session_t wrong = {.present = true};
    for (int i = 0; i < HAFL_SESSION_BYTES; i++)
        wrong.bytes[i] = (uint8_t)(i * 11 + 5);
    zsock_t *bare = s_hello(t, node, server, 3, true, NULL);
    zsock_t *guess = s_hello(t, node, server, 3, true, &wrong);
    zsock_t *plain = s_hello(t, node, server, 3, false, NULL);
    s_expect_reject(bare, HAFL_REJECT_SESSION, "client 3 is held by a live peer",
                    "rejoin without a session");
    s_expect_reject(guess, HAFL_REJECT_SESSION, "the one presented is wrong",
                    "rejoin with a wrong session");
    s_expect_reject(plain, HAFL_REJECT_INDEX, "client index 3 is already taken", "plain HELLO");

    int rc = hafl_node_wait(node, hex, reason, sizeof reason);
    CHECKF(rc == 0, "%s", reason);
    CHECKF(streq(hex, clean), "disturbed run %s, clean run %s", hex, clean);
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
    char *events = bus_events(run_dir);
    CHECKF(bus_count(events, "\"event\":\"takeover-refused\"") == 2, "takeover-refused events: %zu",
           bus_count(events, "\"event\":\"takeover-refused\""));
    CHECK(strstr(events, "\"session_presented\":false") &&
          strstr(events, "\"session_presented\":true"));
    CHECK(!strstr(events, "\"event\":\"client-rejoined\""));
    CHECK(!strstr(events, "\"event\":\"peer-replaced\""));
    free(events);
    zsock_destroy(&bare);
    zsock_destroy(&guess);
    zsock_destroy(&plain);
    hafl_topology_destroy(&t);
    printf("in-process: three takeover attempts refused, digest unchanged\n");
}

static void s_replaced(void)
{
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", "placement/mode=processes",
                                  "evaluator/enabled=false", "server/deadline_ms=300",
                                  "server/rounds=3", NULL);
    hafl_node_t *server = bus_node(t, "server", NULL);
    hafl_node_t *clients = bus_node(t, "clients-0", server);
    const char *endpoint = hafl_node_endpoints(server)->server;

    zsock_t *first = s_hello(t, server, endpoint, 7, false, NULL);
    hafl_msg_t *welcome = s_next(first);
    CHECKF(welcome && welcome->type == HAFL_MSG_WELCOME && welcome->u.welcome.client_index == 7,
           "client 7 was not welcomed");
    CHECK(welcome->u.welcome.session.present);
    hafl_session_t session = welcome->u.welcome.session;
    hafl_msg_destroy(&welcome);

    //  The holder's own session: a rejoin. The new peer is welcomed with a new session and the
    //  first one told it was replaced.
    zsock_t *second = s_hello(t, server, endpoint, 7, true, &session);
    welcome = s_next(second);
    CHECKF(welcome && welcome->type == HAFL_MSG_WELCOME, "the rejoin with its session failed");
    CHECK(welcome->u.welcome.session.present &&
          memcmp(welcome->u.welcome.session.bytes, session.bytes, HAFL_SESSION_BYTES) != 0);
    hafl_msg_destroy(&welcome);
    s_expect_reject(first, HAFL_REJECT_REPLACED, "client 7 was taken over by a rejoin",
                    "the replaced holder");
    //  The first session died with the first connection.
    zsock_t *third = s_hello(t, server, endpoint, 7, true, &session);
    s_expect_reject(third, HAFL_REJECT_SESSION, "client 7 is held by a live peer", "stale session");

    char hex[65], reason[512];
    CHECKF(hafl_node_wait(server, hex, reason, sizeof reason) == 0, "the run failed: %s", reason);
    CHECKF(hafl_node_wait(clients, hex, reason, sizeof reason) == 0, "clients-0: %s", reason);
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&clients);
    hafl_node_destroy(&server);
    char *events = bus_events(run_dir);
    CHECK(bus_count(events, "\"event\":\"peer-replaced\"") == 1);
    CHECK(bus_count(events, "\"event\":\"takeover-refused\"") == 1);
    CHECK(strstr(events, "\"event\":\"client-rejoined\""));
    free(events);
    zsock_destroy(&first);
    zsock_destroy(&second);
    zsock_destroy(&third);
    hafl_topology_destroy(&t);
    printf("processes: a rejoin with the session replaced the holder, who was told\n");
}

int main(void)
{
    s_inproc_takeovers();
    s_replaced();
    printf("bus takeover: ok\n");
    bus_cleanup();
    return 0;
}
