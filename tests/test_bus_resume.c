/*  test_bus_resume: the server checkpoints after every round (checkpoint.bin + checkpoint.state,
    written atomically) and `--resume RUNDIR` continues from it: a 3-round run's checkpoint is
    its final adapter, and resuming it with 5 rounds runs rounds 4 and 5 only, starting from
    that adapter.
*/
#include "test_bus_util.h"

#include "hafl_adapter.h"

int main(void)
{
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", "server/rounds=3", NULL);
    char hex[65], first[4096];
    CHECK(bus_run_inproc(t, hex, first, sizeof first) == 0);
    hafl_topology_destroy(&t);
    char path[4300], err[256], again[65];
    snprintf(path, sizeof path, "%s/checkpoint.bin", first);
    hafl_adapter_t *checkpoint = hafl_adapter_load(path, err, sizeof err);
    CHECKF(checkpoint != NULL, "%s", err);
    hafl_adapter_digest_hex(checkpoint, again);
    CHECKF(streq(again, hex), "checkpoint %s, final %s", again, hex);
    hafl_adapter_destroy(&checkpoint);
    snprintf(path, sizeof path, "%s/checkpoint.state", first);
    char *state = bus_read_file(path);
    CHECK(state && strstr(state, "round 3\n") && strstr(state, "strategy adaptive\n"));
    free(state);

    t = bus_load("topologies/smoke.zpl", NULL);
    char err2[512], reason[256], second[4096];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.resume = first;
    hafl_node_t *node = hafl_node_new(&opts, err2, sizeof err2);
    CHECKF(node != NULL, "%s", err2);
    CHECKF(hafl_node_wait(node, hex, reason, sizeof reason) == 0, "%s", reason);
    snprintf(second, sizeof second, "%s", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
    double rounds[16];
    size_t n = bus_csv_column(second, "round", rounds, 16);
    CHECKF(n == 2 && rounds[0] == 4 && rounds[1] == 5, "%zu rows", n);
    snprintf(path, sizeof path, "%s/events.jsonl", second);
    char *events = bus_read_file(path);
    CHECK(events && strstr(events, "\"first_round\":4"));
    free(events);

    //  A missing checkpoint is refused at start.
    opts.resume = "/nonexistent-run-folder";
    node = hafl_node_new(&opts, err2, sizeof err2);
    CHECK(node == NULL && strstr(err2, "checkpoint.state"));
    hafl_topology_destroy(&t);
    bus_cleanup();
    printf("bus resume: ok\n");
    return 0;
}
