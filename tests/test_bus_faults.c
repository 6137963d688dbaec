/*  test_bus_faults: topologies/faults.zpl (30% stragglers, 20% dropouts, crashes with rejoin)
    completes every round; the log names, for each round, which clients counted, which were
    dropped and which straggled; crashed clients rejoin and are left out for rejoin_rounds.
*/
#include "test_bus_util.h"

int main(void)
{
    hafl_topology_t *t = bus_load("topologies/faults.zpl", NULL);
    CHECK(t->faults.straggler_share > 0.29f && t->faults.dropout > 0.19f);
    char hex[65], run_dir[4096];
    CHECK(bus_run_inproc(t, hex, run_dir, sizeof run_dir) == 0);
    double reported[128], dropped[128], stragglers[128];
    size_t n = bus_csv_column(run_dir, "reported", reported, 128);
    CHECKF(n == t->server.rounds, "%zu of %u rounds completed", n, t->server.rounds);
    bus_csv_column(run_dir, "dropped", dropped, 128);
    bus_csv_column(run_dir, "stragglers", stragglers, 128);
    double total_dropped = 0, total_stragglers = 0;
    for (size_t i = 0; i < n; i++) {
        CHECKF(reported[i] >= 1, "round %zu aggregated nothing", i + 1);
        total_dropped += dropped[i];
        total_stragglers += stragglers[i];
    }
    CHECK(total_dropped > 0 && total_stragglers > 0);

    char path[4300];
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    char *events = bus_read_file(path);
    CHECK(events != NULL);
    CHECK(bus_count(events, "\"event\":\"round-end\"") == t->server.rounds);
    CHECK(bus_count(events, "\"counted\":\"") == t->server.rounds);
    CHECK(bus_count(events, "\"dropped\":\"") >= t->server.rounds);
    CHECK(bus_count(events, "\"stragglers\":\"") == t->server.rounds);
    //  Every crash is followed by a rejoin (seed 11 crashes at least one client).
    size_t crashes = bus_count(events, "\"event\":\"crash\"");
    CHECK(crashes >= 1);
    CHECK(bus_count(events, "\"event\":\"client-rejoined\"") == crashes);
    free(events);
    hafl_topology_destroy(&t);
    printf("bus faults: ok, %zu rounds, %.0f dropouts, %.0f stragglers, %zu crashes\n", n,
           total_dropped, total_stragglers, crashes);
    bus_cleanup();
    return 0;
}
