/*  test_bus_inproc: the smoke federation (topologies/smoke.zpl, synthetic task, mixed ranks,
    stragglers and a dropout) in one process converges, writes its run folder, accounts bytes
    by kind, and is deterministic: a second run gives the same final adapter digest.
*/
#include "test_bus_util.h"

#include "hafl_adapter.h"

#include <math.h>

int main(void)
{
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", NULL);
    char hex[65], run_dir[4096];
    CHECK(bus_run_inproc(t, hex, run_dir, sizeof run_dir) == 0);
    CHECK(strlen(hex) == 64);

    //  Converges: accuracy well above chance (1 / classes) and evaluation loss decreasing.
    double acc[64], loss[64], reported[64], up[64], up_comp[64], down_head[64];
    size_t n = bus_csv_column(run_dir, "accuracy", acc, 64);
    CHECKF(n == t->server.rounds, "%zu rows for %u rounds", n, t->server.rounds);
    bus_csv_column(run_dir, "loss", loss, 64);
    bus_csv_column(run_dir, "reported", reported, 64);
    bus_csv_column(run_dir, "up_bytes", up, 64);
    bus_csv_column(run_dir, "up_components", up_comp, 64);
    bus_csv_column(run_dir, "down_head", down_head, 64);
    double chance = 1.0 / t->model.classes;
    CHECKF(acc[n - 1] > chance + 0.4, "final accuracy %.3f vs chance %.3f", acc[n - 1], chance);
    CHECKF(loss[n - 1] < loss[0], "loss %.4f -> %.4f", loss[0], loss[n - 1]);
    for (size_t i = 0; i < n; i++) {
        CHECK(reported[i] >= 1);
        CHECK(up[i] > up_comp[i] && up_comp[i] > 0 && down_head[i] > 0);
    }

    //  Run folder: final adapter with the printed digest, events with every round's summary.
    bus_check_adapter_digest(run_dir, "final_adapter.bin", hex);
    char path[4300];
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    char *events = bus_read_file(path);
    CHECK(events != NULL);
    CHECK(bus_count(events, "\"event\":\"round-end\"") == t->server.rounds);
    CHECK(bus_count(events, "\"event\":\"client-round\"") >= t->server.rounds);
    CHECK(bus_count(events, "\"counted\":") == t->server.rounds);
    CHECK(strstr(events, hex) != NULL); //  the final digest is logged
    free(events);

    //  Same topology and seed: bit-identical.
    char hex2[65], run_dir2[4096];
    CHECK(bus_run_inproc(t, hex2, run_dir2, sizeof run_dir2) == 0);
    CHECKF(streq(hex, hex2), "%s != %s", hex, hex2);
    CHECK(!streq(run_dir, run_dir2));
    hafl_topology_destroy(&t);
    printf("bus inproc: ok, final accuracy %.3f, digest %s\n", acc[n - 1], hex);
    bus_cleanup();
    return 0;
}
