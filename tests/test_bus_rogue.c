/*  test_bus_rogue: hostile and mistaken peers do not disturb a federation.
    - A rogue DEALER sends the server random bytes, a truncated message, an unknown type and a
      HELLO of another protocol major; another sends garbage to the control socket. Each is
      counted and logged with the peer and the codec's reason; the HELLO of the other major
      gets REJECT with reason VERSION, while an UPDATE of another major (a third DEALER) is
      logged and dropped, never answered (PROTOCOL.md, versioning); the run completes with the
      same final adapter as an undisturbed run.
    - A client built on another base model (wrong base digest) is refused, with the reason in
      the log, and its actor is told so.
    - A second evaluator (a well-formed HELLO for the evaluator's place, once the real one has
      joined, without the evaluator's session) is refused with REJECT SESSION while the real
      one is alive: it can neither replace it nor write accuracies into the run (the digest
      stays the undisturbed one).
    - A HELLO claiming a million samples (its weight in aggregation) is refused with REJECT AUTH
      naming the cap (server/max_samples, by default the largest shard the data gives).
*/
#include "test_bus_util.h"

#include "hafl_client.h"
#include "hafl_evaluator.h"
#include "hafl_msg.h"
#include "hafl_pool.h"

static void s_send_bytes(zsock_t *sock, const void *data, size_t size)
{
    zframe_t *frame = zframe_new(data, size);
    CHECK(frame && zframe_send(&frame, sock, 0) == 0);
}

//  True when sock receives, within 5 s of silence, a REJECT of this reason whose text holds
//  `text` (other messages are skipped).
static bool s_got_reject(zsock_t *sock, uint32_t reason, const char *text)
{
    zpoller_t *poller = zpoller_new(sock, NULL);
    bool got = false;
    while (!got && zpoller_wait(poller, 5000) == sock) {
        zmsg_t *zmsg = zmsg_recv(sock);
        hafl_msg_t *msg = hafl_msg_decode(zmsg, NULL);
        got = msg && msg->type == HAFL_MSG_REJECT && msg->u.reject.reason == reason &&
              strstr(msg->u.reject.text, text);
        hafl_msg_destroy(&msg);
        zmsg_destroy(&zmsg);
    }
    zpoller_destroy(&poller);
    return got;
}

int main(void)
{
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", NULL);
    char clean[65], run_dir[4096];
    CHECK(bus_run_inproc(t, clean, run_dir, sizeof run_dir) == 0);

    char hex[65], reason[256];
    hafl_node_t *node = bus_node(t, NULL, NULL);
    const hafl_endpoints_t *e = hafl_node_endpoints(node);

    zsock_t *rogue = zsock_new_dealer(e->server);
    zsock_t *rogue_ctl = zsock_new_dealer(e->control);
    zsock_t *rogue_other = zsock_new_dealer(e->server); //  a non-HELLO of another major
    CHECK(rogue && rogue_ctl && rogue_other);
    uint8_t noise[300];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)(i * 131u + 7u);
    s_send_bytes(rogue, noise, sizeof noise); //  random bytes
    const uint8_t truncated[] = {0x93, 0x01}; //  array of 3, one element
    s_send_bytes(rogue, truncated, sizeof truncated);
    const uint8_t unknown[] = {0x93, HAFL_PROTO_MAJOR, 0x00, 0x63}; //  type 99
    s_send_bytes(rogue, unknown, sizeof unknown);
    const uint8_t major[] = {0x93, 0x07, 0x00, 0x01}; //  a HELLO of major version 7
    s_send_bytes(rogue, major, sizeof major);
    const uint8_t other[] = {0x93, 0x07, 0x00, 0x05}; //  an UPDATE of major version 7
    s_send_bytes(rogue_other, other, sizeof other);
    s_send_bytes(rogue_ctl, noise, 40); //  garbage control command

    //  A client on another base model.
    hafl_pool_t *pool = hafl_pool_new(1);
    CHECK(pool);
    uint8_t wrong[32] = {0xde, 0xad};
    hafl_client_args_t ca = {0};
    ca.task = hafl_node_task(node);
    ca.topology = t;
    ca.index = 0;
    ca.server = e->server;
    ca.pool = hafl_pool_endpoint(pool);
    ca.max_msg_bytes = 1 << 20;
    ca.digest = wrong;
    zactor_t *impostor = hafl_client_new(&ca);
    CHECKF(impostor != NULL, "%s", ca.err);

    //  A second evaluator, well formed, once the real one has joined: refused while the real
    //  one is alive, so it can neither replace it nor write accuracies into the run.
    bus_wait_event(node, "\"event\":\"evaluator-joined\"");
    zsock_t *fake_evaluator = zsock_new_dealer(e->server);
    CHECK(fake_evaluator);
    hafl_msg_t *hello = hafl_msg_new(HAFL_MSG_HELLO);
    CHECK(hello);
    hello->u.hello.client_index = HAFL_EVALUATOR_INDEX;
    snprintf(hello->u.hello.name, sizeof hello->u.hello.name, "evaluator");
    hello->u.hello.rank_budget = 1;
    hello->u.hello.n_samples = 1;
    hafl_task_base_digest(hafl_node_task(node), hello->u.hello.base_digest);
    zmsg_t *hello_frames = hafl_msg_encode(hello, NULL);
    CHECK(hello_frames && zmsg_send(&hello_frames, fake_evaluator) == 0);
    //  A client claiming a million samples (its weight in every aggregation): refused.
    zsock_t *heavy = zsock_new_dealer(e->server);
    CHECK(heavy);
    hello->u.hello.client_index = 0;
    snprintf(hello->u.hello.name, sizeof hello->u.hello.name, "heavy");
    hello->u.hello.rank_budget = t->clients.ranks[0];
    hello->u.hello.n_samples = 1000000;
    hello_frames = hafl_msg_encode(hello, NULL);
    CHECK(hello_frames && zmsg_send(&hello_frames, heavy) == 0);
    hafl_msg_destroy(&hello);

    int rc = hafl_node_wait(node, hex, reason, sizeof reason);
    CHECKF(rc == 0, "%s", reason);
    CHECKF(streq(hex, clean), "disturbed run %s, clean run %s", hex, clean);

    //  The impostor was told why (poll with a deadline: the REJECT came long ago).
    zpoller_t *poller = zpoller_new(impostor, NULL);
    CHECK(zpoller_wait(poller, 10000) == impostor);
    char *done = NULL, *why = NULL;
    CHECK(zsock_recv(impostor, "ss", &done, &why) == 0);
    CHECKF(streq(done, "DONE") && strstr(why, "base digest"), "%s %s", done, why);
    zpoller_destroy(&poller);
    zstr_free(&done);
    zstr_free(&why);

    //  The rogue that spoke another major got REJECT VERSION; the heavy client was told its
    //  claim is above the cap; the second evaluator that its place is taken.
    CHECK(s_got_reject(rogue, HAFL_REJECT_VERSION, ""));
    CHECK(s_got_reject(heavy, HAFL_REJECT_AUTH, "n_samples 1000000 above the cap of "));
    CHECK(s_got_reject(fake_evaluator, HAFL_REJECT_SESSION,
                       "the evaluator is held by a live peer"));
    //  Any other message of another major is counted and logged, but never answered.
    poller = zpoller_new(rogue_other, NULL);
    CHECKF(zpoller_wait(poller, 200) == NULL, "a non-HELLO of another major was answered");
    zpoller_destroy(&poller);

    char path[4300];
    snprintf(path, sizeof path, "%s/events.jsonl", hafl_node_run_dir(node));
    char *events = bus_read_file(path);
    CHECK(events != NULL);
    CHECKF(bus_count(events, "\"event\":\"malformed\"") >= 5, "malformed events: %zu",
           bus_count(events, "\"event\":\"malformed\""));
    CHECK(strstr(events, "\"socket\":\"control\""));
    CHECK(strstr(events, "\"code\":\"") && strstr(events, "\"peer\":\""));
    CHECK(strstr(events, "\"reason_code\":2") && strstr(events, "base digest"));
    CHECK(strstr(events, "\"reason_code\":1")); //  the VERSION reject is logged too
    free(events);

    zactor_destroy(&impostor);
    hafl_pool_destroy(&pool);
    zsock_destroy(&rogue);
    zsock_destroy(&rogue_ctl);
    zsock_destroy(&rogue_other);
    zsock_destroy(&fake_evaluator);
    zsock_destroy(&heavy);
    hafl_node_destroy(&node);
    hafl_topology_destroy(&t);
    printf("bus rogue: ok\n");
    bus_cleanup();
    return 0;
}
