/*  test_bus_oversize: a frame above the server socket's size cap leaves a trace in the log.

    libzmq enforces ZMQ_MAXMSGSIZE (hafl_node_frame_cap of the layout) by closing the
    connection, silently. The server watches its ROUTER's connections, so such a peer is
    logged as `connection-closed` with its address and the cap. The smoke topology runs as
    processes over loopback tcp (the server's node and both clients' nodes in this process);
    a raw DEALER sends one frame a byte above the cap. The run completes, and the log holds a
    connection-closed line naming this DEALER's own address (its local port, read from the
    kernel) and the cap.
*/
#include "test_bus_util.h"

#include "hafl_msg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(void)
{
    char port[64];
    snprintf(port, sizeof port, "placement/base_port=%d", 26000 + (int)(getpid() % 1000) * 4);
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", "placement/mode=processes",
                                  "placement/transport=tcp", port, "evaluator/enabled=false",
                                  NULL);
    hafl_node_t *server = bus_node(t, "server", NULL);
    int64_t cap = hafl_node_frame_cap(hafl_task_layout(hafl_node_task(server)));
    CHECK(cap > 0 && cap < (1 << 28));

    //  The oversized frame, from a DEALER whose local address the test knows.
    zsock_t *big = zsock_new(ZMQ_DEALER);
    CHECK(big);
    CHECK(zsock_connect(big, "%s", hafl_node_endpoints(server)->server) == 0);
    size_t size = (size_t)cap + 1;
    uint8_t *bytes = calloc(1, size);
    CHECK(bytes);
    zframe_t *frame = zframe_new(bytes, size);
    free(bytes);
    CHECK(frame && zframe_send(&frame, big, 0) == 0);

    hafl_node_t *clients0 = bus_node(t, "clients-0", server);
    hafl_node_t *clients1 = bus_node(t, "clients-1", server);
    char hex[65], reason[512];
    CHECKF(hafl_node_wait(server, hex, reason, sizeof reason) == 0, "the run failed: %s", reason);
    CHECKF(hafl_node_wait(clients0, hex, reason, sizeof reason) == 0, "clients-0: %s", reason);
    CHECKF(hafl_node_wait(clients1, hex, reason, sizeof reason) == 0, "clients-1: %s", reason);
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&clients1);
    hafl_node_destroy(&clients0);
    hafl_node_destroy(&server);

    char *events = bus_events(run_dir);
    char needle[160];
    snprintf(needle, sizeof needle, "\"frame_cap\":%lld", (long long)cap);
    bool found = false;
    for (const char *line = strstr(events, "\"event\":\"connection-closed\""); line && !found;
         line = strstr(line + 1, "\"event\":\"connection-closed\"")) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        char copy[2048];
        snprintf(copy, sizeof copy, "%.*s", (int)(n < sizeof copy ? n : sizeof copy - 1), line);
        found = strstr(copy, needle) && strstr(copy, "\"peer\":\"127.0.0.1:");
    }
    CHECKF(found, "no connection-closed line with the peer's address and %s in:\n%s", needle,
           events);
    printf("oversized frame (%zu bytes, cap %lld): logged as connection-closed with its peer\n",
           size, (long long)cap);
    free(events);
    zsock_destroy(&big);
    hafl_topology_destroy(&t);
    bus_cleanup();
    return 0;
}
