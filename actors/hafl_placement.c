/*  hafl_placement: actor groups and endpoints. See hafl_placement.h. */
#include "hafl_placement.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void hafl_placement_groups(const hafl_topology_t *t, hafl_placement_t *p)
{
    memset(p, 0, sizeof *p);
    if (t->placement.mode == HAFL_PLACEMENT_HOSTS && t->placement.n_hosts > 0) {
        bool evaluator_placed = false;
        for (uint32_t h = 0; h < t->placement.n_hosts && h < HAFL_TOPOLOGY_MAX_HOSTS; h++)
            evaluator_placed |= t->placement.hosts[h].evaluator;
        for (uint32_t h = 0; h < t->placement.n_hosts && h < HAFL_TOPOLOGY_MAX_HOSTS; h++) {
            const hafl_host_t *host = &t->placement.hosts[h];
            hafl_group_t *g = &p->groups[p->n_groups++];
            snprintf(g->name, sizeof g->name, "%s", host->name);
            g->server = host->server;
            g->evaluator =
                t->evaluator.enabled && (host->evaluator || (!evaluator_placed && host->server));
            g->client_first = host->client_first;
            g->client_last = host->client_last;
        }
        return;
    }
    hafl_group_t *g = &p->groups[p->n_groups++];
    snprintf(g->name, sizeof g->name, "server");
    g->server = true;
    g->client_first = 1;
    g->client_last = 0;
    if (t->evaluator.enabled) {
        g = &p->groups[p->n_groups++];
        snprintf(g->name, sizeof g->name, "evaluator");
        g->evaluator = true;
        g->client_first = 1;
        g->client_last = 0;
    }
    uint32_t n = t->clients.count;
    uint32_t halves = n >= 2 ? 2 : 1;
    uint32_t first = 0;
    for (uint32_t h = 0; h < halves; h++) {
        uint32_t size = n / halves + (h < n % halves);
        g = &p->groups[p->n_groups++];
        snprintf(g->name, sizeof g->name, "clients-%u", h);
        g->client_first = first;
        g->client_last = first + size - 1;
        first += size;
    }
}

const hafl_group_t *hafl_placement_find(const hafl_placement_t *p, const char *name)
{
    for (uint32_t i = 0; i < p->n_groups; i++)
        if (strcmp(p->groups[i].name, name) == 0)
            return &p->groups[i];
    return NULL;
}

static void s_pick(char *connect, char *bind, const char *given, const char *derived_connect,
                   const char *derived_bind)
{
    if (given && *given) {
        snprintf(connect, HAFL_ENDPOINT_MAX, "%s", given);
        snprintf(bind, HAFL_ENDPOINT_MAX, "%s", given);
    } else {
        snprintf(connect, HAFL_ENDPOINT_MAX, "%s", derived_connect);
        snprintf(bind, HAFL_ENDPOINT_MAX, "%s", derived_bind);
    }
}

void hafl_placement_endpoints(const hafl_topology_t *t, bool in_process, const char *run_id,
                              hafl_endpoints_t *e)
{
    static const char *names[4] = {"server", "control", "log", "pub"};
    char connect[4][HAFL_ENDPOINT_MAX], bind[4][HAFL_ENDPOINT_MAX];
    bool tcp = !in_process && (t->placement.mode == HAFL_PLACEMENT_HOSTS ||
                               strcmp(t->placement.transport, "tcp") == 0);
    const char *address = "127.0.0.1";
    int pid = (int)getpid(); //  abstract ipc names are machine-wide: keep concurrent runs apart
    if (t->placement.mode == HAFL_PLACEMENT_HOSTS)
        for (uint32_t h = 0; h < t->placement.n_hosts; h++)
            if (t->placement.hosts[h].server)
                address = t->placement.hosts[h].address;
    for (int i = 0; i < 4; i++) {
        if (tcp) {
            unsigned port = t->placement.base_port + (unsigned)i;
            snprintf(connect[i], HAFL_ENDPOINT_MAX, "tcp://%s:%u", address, port);
            snprintf(bind[i], HAFL_ENDPOINT_MAX, "tcp://*:%u", port);
        } else if (in_process && (i == 0 || i == 2))
            snprintf(connect[i], HAFL_ENDPOINT_MAX, "inproc://hafl-%s-%d-%s", run_id, pid,
                     names[i]);
        else
            snprintf(connect[i], HAFL_ENDPOINT_MAX, "ipc://@hafl-%s-%d-%s", run_id, pid, names[i]);
        if (!tcp)
            snprintf(bind[i], HAFL_ENDPOINT_MAX, "%s", connect[i]);
    }
    s_pick(e->server, e->server_bind, t->server.endpoint, connect[0], bind[0]);
    s_pick(e->control, e->control_bind, t->server.control, connect[1], bind[1]);
    s_pick(e->log, e->log_bind, t->logger.pull, connect[2], bind[2]);
    s_pick(e->pub, e->pub_bind, t->logger.pub, connect[3], bind[3]);
}

uint32_t hafl_placement_max_clients_per_process(const hafl_topology_t *t, bool in_process)
{
    if (in_process || t->placement.mode == HAFL_PLACEMENT_INPROC)
        return t->clients.count;
    hafl_placement_t p;
    hafl_placement_groups(t, &p);
    uint32_t most = 0;
    for (uint32_t g = 0; g < p.n_groups; g++) {
        const hafl_group_t *group = &p.groups[g];
        uint32_t n = group->client_first <= group->client_last
                         ? group->client_last - group->client_first + 1
                         : 0;
        most = n > most ? n : most;
    }
    return most;
}

//  One unsigned number from a /proc file (its first field), or 0 when it cannot be read.
static uint64_t s_proc_number(const char *path)
{
    FILE *file = fopen(path, "r");
    unsigned long long value = 0;
    if (!file)
        return 0;
    if (fscanf(file, "%llu", &value) != 1)
        value = 0;
    fclose(file);
    return value;
}

//  Threads a process may still start, as this system's limits allow: kernel.pid_max less the
//  threads alive now (/proc/loadavg's total), kernel.threads-max, vm.max_map_count / 2 (each
//  thread stack is a mapping and its guard page another) and, for a user without root,
//  RLIMIT_NPROC. why receives the limits as "name value" words. UINT64_MAX when none is known.
static uint64_t s_threads_left(char *why, size_t whylen)
{
    uint64_t pid_max = s_proc_number("/proc/sys/kernel/pid_max");
    uint64_t threads_max = s_proc_number("/proc/sys/kernel/threads-max");
    uint64_t maps = s_proc_number("/proc/sys/vm/max_map_count");
    unsigned long long running = 0, total = 0;
    FILE *loadavg = fopen("/proc/loadavg", "r");
    if (loadavg) {
        if (fscanf(loadavg, "%*f %*f %*f %llu/%llu", &running, &total) != 2)
            total = 0;
        fclose(loadavg);
    }
    uint64_t left = UINT64_MAX;
    int used = snprintf(why, whylen,
                        "kernel.pid_max %llu with %llu threads running, "
                        "kernel.threads-max %llu, vm.max_map_count %llu",
                        (unsigned long long)pid_max, total, (unsigned long long)threads_max,
                        (unsigned long long)maps);
    if (pid_max)
        left = pid_max > total ? pid_max - total : 0;
    uint64_t threads_left = threads_max > total ? threads_max - total : 0;
    if (threads_max && threads_left < left)
        left = threads_left;
    if (maps && maps / 2 < left)
        left = maps / 2;
    struct rlimit nproc;
    if (getuid() != 0 && getrlimit(RLIMIT_NPROC, &nproc) == 0 && nproc.rlim_cur != RLIM_INFINITY) {
        if (nproc.rlim_cur < left)
            left = nproc.rlim_cur;
        if (used > 0 && (size_t)used < whylen)
            snprintf(why + used, whylen - (size_t)used, ", ulimit -u %llu",
                     (unsigned long long)nproc.rlim_cur);
    }
    return left;
}

int hafl_placement_check_limits(const hafl_topology_t *t, bool in_process, char *err, size_t errlen)
{
    uint32_t clients = hafl_placement_max_clients_per_process(t, in_process);
    //  Each in-process client is an actor thread of its own.
    char limits[256];
    uint64_t threads = s_threads_left(limits, sizeof limits);
    if (threads != UINT64_MAX && (uint64_t)clients + HAFL_PLACEMENT_THREADS_BASE > threads) {
        uint64_t fit =
            threads > HAFL_PLACEMENT_THREADS_BASE ? threads - HAFL_PLACEMENT_THREADS_BASE : 0;
        snprintf(err, errlen,
                 "%s: clients/count: %u clients in one process need %u threads (one each), and "
                 "this system allows about %llu more (%s), enough for %llu: spread them over "
                 "more processes (placement/mode hosts) or raise those limits",
                 t->path, clients, clients, (unsigned long long)threads, limits,
                 (unsigned long long)fit);
        return -1;
    }
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_max == RLIM_INFINITY)
        return 0;
    uint64_t need = (uint64_t)clients * HAFL_PLACEMENT_FDS_PER_CLIENT + HAFL_PLACEMENT_FDS_BASE;
    if (need <= (uint64_t)limit.rlim_max)
        return 0;
    uint64_t fit = limit.rlim_max > HAFL_PLACEMENT_FDS_BASE
                       ? (limit.rlim_max - HAFL_PLACEMENT_FDS_BASE) / HAFL_PLACEMENT_FDS_PER_CLIENT
                       : 0;
    snprintf(err, errlen,
             "%s: clients/count: %u clients in one process need about %llu open files, and this "
             "system allows %llu per process (ulimit -Hn), enough for %llu: spread them over "
             "more processes (placement/mode hosts) or raise the hard limit",
             t->path, clients, (unsigned long long)need, (unsigned long long)limit.rlim_max,
             (unsigned long long)fit);
    return -1;
}
