/*  hafl bench round: the actor bus's own costs, measured on real in-process federations of the
    synthetic task.

    1. Round overhead: N clients (default 100) whose training costs nothing (one optimiser step
       on one sample of a tiny model) and a tiny evaluation; the median of the rounds' wall
       times (server clock, from the first ROUND out to the evaluated model) is compared with
       the target of 20 ms.
    2. Scale (--clients 1000): the same federation with many clients; the peak resident set of
       the process is reported against the 24 GiB budget.
    3. Wire efficiency (--ratio): 10 clients on a wide model (dim 1024); protocol bytes moved
       per round divided by the raw float32 payload (factors, scores, head) they carry, compared
       with the 1.02 target. Bytes are ZeroMQ frame payloads as the server counted them.
    Each prints one JSON line. The topology is written to a temporary folder with the runs.
*/
#include "hafl_cmd.h"
#include "hafl_node.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out, "usage: hafl bench round [--clients N] [--rounds R] [--dim D] [--ratio]\n"
                 "\n"
                 "  --clients N  in-process clients (default 100)\n"
                 "  --rounds R   rounds (default 20)\n"
                 "  --dim D      synthetic model width (default 16; --ratio uses 1024)\n"
                 "  --ratio      measure wire bytes / raw float payload (10 clients, dim 1024)\n"
                 "  --keep       keep the temporary run folder\n");
}

//  Column `name` of every data row of rounds.csv, into values (at most cap). Returns the count.
static size_t s_csv_column(const char *path, const char *name, double *values, size_t cap)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return 0;
    char line[8192];
    int column = -1;
    size_t n = 0;
    if (fgets(line, sizeof line, file)) {
        int index = 0;
        for (char *tok = strtok(line, ",\n"); tok; tok = strtok(NULL, ",\n"), index++)
            if (strcmp(tok, name) == 0)
                column = index;
    }
    while (column >= 0 && n < cap && fgets(line, sizeof line, file)) {
        int index = 0;
        for (char *tok = strtok(line, ",\n"); tok; tok = strtok(NULL, ",\n"), index++)
            if (index == column)
                values[n++] = atof(tok);
    }
    fclose(file);
    return n;
}

int hafl_bench_round(int argc, char **argv)
{
    uint32_t clients = 100, rounds = 20, dim = 16;
    bool ratio = false, keep = false;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        } else if (streq(argv[i], "--clients") && i + 1 < argc)
            clients = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (streq(argv[i], "--rounds") && i + 1 < argc)
            rounds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (streq(argv[i], "--dim") && i + 1 < argc)
            dim = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (streq(argv[i], "--ratio"))
            ratio = true;
        else if (streq(argv[i], "--keep"))
            keep = true;
        else {
            s_usage(stderr);
            return HAFL_EXIT_USAGE;
        }
    }
    if (ratio) {
        clients = 10;
        dim = 1024;
        if (rounds > 5)
            rounds = 5;
    }
    if (clients == 0 || clients > 100000 || rounds == 0 || dim == 0 || dim > 4096) {
        s_usage(stderr);
        return HAFL_EXIT_USAGE;
    }
    char dir[] = "/tmp/hafl-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("hafl bench round: mkdtemp");
        return HAFL_EXIT_FAILURE;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/bench-round.zpl", dir);
    FILE *file = fopen(path, "w");
    if (!file) {
        perror("hafl bench round: topology");
        return HAFL_EXIT_FAILURE;
    }
    fprintf(file,
            "seed = 5\nmodel\n    kind = synthetic\n    rank = 8\n    dim = %u\n    classes = 4\n"
            "data\n    dataset = synthetic\n    train_size = %u\n    test_size = %u\n"
            "server\n    rounds = %u\n    deadline_ms = 600000\n    scheme = freeze\n"
            "    aggregator = adaptive\n    heartbeat_ms = 1000\n    checkpoint_every = 0\n"
            "clients\n    count = %u\n    local_steps = 1\n    batch = 1\n    lr = 0.01\n"
            "    ranks = ",
            dim, clients * (ratio ? 8 : 2), ratio ? 64 : 8, rounds, clients);
    //  Mixed budgets 2, 2, 8, 4, repeating.
    for (uint32_t i = 0; i < clients; i++)
        fprintf(file, i ? ",%u" : "%u", i % 4 == 2 ? 8u : i % 4 == 3 ? 4u : 2u);
    fprintf(file, "\nlogger\n    run_dir = \"%s/runs\"\n", dir);
    fclose(file);

    hafl_topology_error_t terr;
    hafl_topology_t *t = hafl_topology_load(path, NULL, 0, &terr);
    if (!t) {
        fprintf(stderr, "hafl bench round: %s\n", terr.text);
        return HAFL_EXIT_FAILURE;
    }
    char err[512], hex[65], reason[256];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    int64_t start = zclock_mono();
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    if (!node) {
        fprintf(stderr, "hafl bench round: %s\n", err);
        hafl_topology_destroy(&t);
        return HAFL_EXIT_FAILURE;
    }
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    int rc = hafl_node_wait(node, hex, reason, sizeof reason);
    getrusage(RUSAGE_SELF, &after);
    //  CPU time of the whole process (every thread) per round: what a round costs whatever else
    //  the machine is running.
    double cpu_ms = (double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec) * 1e3 +
                    (double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e3 +
                    (double)(after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1e3 +
                    (double)(after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e3;
    double load[1] = {0};
    if (getloadavg(load, 1) != 1)
        load[0] = -1;
    int64_t total_ms = zclock_mono() - start;
    char csv[4300];
    snprintf(csv, sizeof csv, "%s/rounds.csv", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double peak_gib = (double)usage.ru_maxrss * 1024.0 / (1024.0 * 1024.0 * 1024.0);
    double *wall = calloc(rounds + 1, sizeof(double));
    double *up = calloc(rounds + 1, sizeof(double));
    double *down = calloc(rounds + 1, sizeof(double));
    double *upf = calloc(rounds + 1, sizeof(double));
    double *downf = calloc(rounds + 1, sizeof(double));
    if (rc || !wall || !up || !down || !upf || !downf) {
        fprintf(stderr, "hafl bench round: the federation failed: %s\n", reason);
        rc = -1;
    } else {
        size_t n = s_csv_column(csv, "wall_ms", wall, rounds);
        s_csv_column(csv, "up_bytes", up, rounds);
        s_csv_column(csv, "down_bytes", down, rounds);
        s_csv_column(csv, "up_floats", upf, rounds);
        s_csv_column(csv, "down_floats", downf, rounds);
        double bytes = 0, floats = 0;
        for (size_t i = 0; i < n; i++) {
            bytes += up[i] + down[i];
            floats += upf[i] + downf[i];
        }
        qsort(wall, n, sizeof(double), hafl_cmd_cmp_double);
        double median = n ? (n % 2 ? wall[n / 2] : (wall[n / 2 - 1] + wall[n / 2]) / 2) : 0;
        if (ratio)
            printf("{\"bench\":\"round-ratio\",\"clients\":%u,\"dim\":%u,\"rounds\":%zu,"
                   "\"bytes_per_round\":%.0f,\"raw_float_bytes_per_round\":%.0f,"
                   "\"ratio\":%.5f,\"target\":1.02}\n",
                   clients, dim, n, n ? bytes / n : 0, n ? 4 * floats / n : 0,
                   floats > 0 ? bytes / (4 * floats) : 0);
        else
            printf("{\"bench\":\"round\",\"clients\":%u,\"rounds\":%zu,\"median_round_ms\":%.1f,"
                   "\"min_round_ms\":%.1f,\"max_round_ms\":%.1f,\"target_ms\":20,"
                   "\"total_ms\":%lld,\"cpu_ms_per_round\":%.1f,\"cores\":%ld,\"load_avg\":%.2f,"
                   "\"peak_rss_gib\":%.3f,\"rss_budget_gib\":24,\"final_sha256\":\"%s\"}\n",
                   clients, n, median, n ? wall[0] : 0, n ? wall[n - 1] : 0, (long long)total_ms,
                   n ? cpu_ms / n : 0, sysconf(_SC_NPROCESSORS_ONLN), load[0], peak_gib, hex);
    }
    free(wall);
    free(up);
    free(down);
    free(upf);
    free(downf);
    hafl_topology_destroy(&t);
    if (!keep) {
        char command[4400];
        snprintf(command, sizeof command, "rm -rf '%s'", dir);
        if (system(command) != 0)
            fprintf(stderr, "hafl bench round: could not remove %s\n", dir);
    } else
        fprintf(stderr, "kept %s\n", dir);
    return rc ? HAFL_EXIT_FAILURE : HAFL_EXIT_OK;
}
