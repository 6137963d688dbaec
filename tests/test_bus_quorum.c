/*  test_bus_quorum: no round runs with nobody in it (hafl_server.h, Quorum). The smoke
    federation placed as processes (no evaluator; heartbeats every 250 ms, dead after 8 missed)
    runs its server node in this process and its two client nodes (clients-0: 0-3, clients-1:
    4-7) as `hafl node` child processes, which the test kills or pauses once two rounds have
    ended (events from the server's PUB endpoint, no sleeps):
    - SIGKILL, server/join_timeout_ms 5000: the round then open fails (round-failed), the
      server goes back to the join phase (quorum-lost) and ends failed at the join timeout,
      naming it; every rounds.csv row had reports, the newest checkpoint generation is that of
      the last of them, and resuming from it ends with the digest of the run never interrupted;
    - SIGSTOP past the heartbeat death limit, then SIGCONT once the server says quorum-lost:
      the clients are revived, quorum-regained, the failed round is run again and the run ends
      ok with every round once in rounds.csv, each with reports;
    - SIGSTOP with a heartbeat death limit (20 s) far beyond the deadline (1 s), so the
      clients stay joined but never report: three failed attempts at the round, and the run
      ends failed naming them, the checkpoint of the last real round intact.
    Before these rules, the first case ended well after rounds that nobody reported in.
*/
#include "test_bus_util.h"

#include "hafl_server_checkpoint.h"
#include "hafl_server_state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

#define S_SMOKE       "topologies/smoke.zpl"
#define S_DEADLINE_MS 60000 //  for any one event; only a broken run gets near it
#define S_ROUNDS      "server/rounds=12"
//  The settings every node of a run gets (the resume and the uninterrupted run drop the
//  placement, which does not change the result).
#define S_COMMON      "evaluator/enabled=false", S_ROUNDS

typedef struct {
    const char *sets[8]; //  extra overrides of this case, NULL-terminated
} s_case_t;

//  The case's topology as processes, with the common settings and the case's.
static hafl_topology_t *s_load(const s_case_t *c)
{
    const char *const *s = c->sets;
    return bus_load(S_SMOKE, "placement/mode=processes", S_COMMON, s[0], s[1], s[2], s[3], s[4],
                    s[5], s[6], s[7], NULL);
}

//  `hafl node FILE --host group` as a child process of the run of server, with the same
//  settings; its output goes to TMP/group-N.log.
static pid_t s_spawn(const s_case_t *c, const char *group, hafl_node_t *server)
{
    static int serial;
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary != NULL, "HAFL_BINARY is not set (run through ctest)");
    char topology[4096], log_path[256], logger[256];
    bus_source_path(topology, sizeof topology, S_SMOKE);
    snprintf(log_path, sizeof log_path, "%s/%s-%d.log", bus_tmpdir(), group, ++serial);
    snprintf(logger, sizeof logger, "logger/run_dir=%s/runs", bus_tmpdir());
    //  The server node's endpoints, as `hafl run --processes` passes them to its nodes (a
    //  derived ipc name holds the launcher's process id).
    const hafl_endpoints_t *e = hafl_node_endpoints(server);
    char endpoints[4][HAFL_ENDPOINT_MAX + 32];
    snprintf(endpoints[0], sizeof endpoints[0], "server/endpoint=%s", e->server);
    snprintf(endpoints[1], sizeof endpoints[1], "server/control=%s", e->control);
    snprintf(endpoints[2], sizeof endpoints[2], "logger/pull=%s", e->log);
    snprintf(endpoints[3], sizeof endpoints[3], "logger/pub=%s", e->pub);
    const char *fixed[] = {"placement/mode=processes", S_COMMON, logger, endpoints[0],
                           endpoints[1], endpoints[2], endpoints[3]};
    char *argv[80];
    size_t argc = 0;
    argv[argc++] = (char *)binary;
    argv[argc++] = "node";
    argv[argc++] = topology;
    argv[argc++] = "--host";
    argv[argc++] = (char *)group;
    argv[argc++] = "--run-dir";
    argv[argc++] = (char *)hafl_node_run_dir(server);
    argv[argc++] = "--run-id";
    argv[argc++] = (char *)hafl_node_run_id(server);
    argv[argc++] = "--slots";
    argv[argc++] = "1";
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        argv[argc++] = "--set";
        argv[argc++] = (char *)fixed[i];
    }
    for (size_t i = 0; i < 8 && c->sets[i]; i++) {
        argv[argc++] = "--set";
        argv[argc++] = (char *)c->sets[i];
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_t actions;
    CHECK(posix_spawn_file_actions_init(&actions) == 0);
    CHECK(posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC,
                                           0644) == 0);
    CHECK(posix_spawn_file_actions_adddup2(&actions, 1, 2) == 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, binary, &actions, NULL, argv, environ);
    CHECKF(rc == 0, "cannot start %s: %s", binary, strerror(rc));
    posix_spawn_file_actions_destroy(&actions);
    return pid;
}

//  Wait for a child; its wait status.
static int s_reap(pid_t pid)
{
    int status = 0;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    CHECKF(got == pid, "waitpid %d: %s", (int)pid, strerror(errno));
    return status;
}

static hafl_node_t *s_server(const hafl_topology_t *t)
{
    char err[512];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.group = "server";
    opts.slots = 1;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    CHECKF(node != NULL, "server node: %s", err);
    return node;
}

//  Wait (at most S_DEADLINE_MS) for the next event whose topic starts with one of the
//  subscriptions of sub; returns its event name (caller frees).
static char *s_next_event(zsock_t *sub)
{
    zpoller_t *poller = zpoller_new(sub, NULL);
    CHECK(poller != NULL);
    CHECKF(zpoller_wait(poller, S_DEADLINE_MS) == sub, "no event within %d ms", S_DEADLINE_MS);
    zpoller_destroy(&poller);
    zmsg_t *msg = zmsg_recv(sub);
    CHECK(msg != NULL);
    char *topic = zmsg_popstr(msg);
    zmsg_destroy(&msg);
    CHECK(topic != NULL);
    char *space = strchr(topic, ' ');
    if (space)
        *space = 0;
    return topic;
}

//  Wait for the count-th event named name (other subscribed events are passed over).
static void s_wait_event(zsock_t *sub, const char *name, int count)
{
    for (int seen = 0; seen < count;) {
        char *event = s_next_event(sub);
        seen += streq(event, name);
        zstr_free(&event);
    }
}

//  The first line of events holding event (NULL-safe copy into line); false when none.
static bool s_event_line(const char *events, const char *event, char *line, size_t linelen)
{
    char needle[128];
    snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
    const char *hit = strstr(events, needle);
    if (!hit)
        return false;
    const char *start = hit;
    while (start > events && start[-1] != '\n')
        start--;
    snprintf(line, linelen, "%.*s", (int)strcspn(start, "\n"), start);
    return true;
}

//  rounds.csv holds rounds 1..n once each, every one with reports; returns n.
static size_t s_real_rounds(const char *run_dir)
{
    double rounds[64], reported[64];
    size_t n = bus_csv_column(run_dir, "round", rounds, 64);
    CHECK(bus_csv_column(run_dir, "reported", reported, 64) == n);
    for (size_t i = 0; i < n; i++) {
        CHECKF(rounds[i] == (double)(i + 1), "%s: row %zu is round %.0f", run_dir, i, rounds[i]);
        CHECKF(reported[i] > 0, "%s: round %.0f has a row with nobody reported", run_dir,
               rounds[i]);
    }
    return n;
}

//  The newest checkpoint generation of run_dir is intact, of round `round`, with its state
//  file in place.
static void s_check_checkpoint(const char *run_dir, size_t round)
{
    char bin[4300], state_path[4300], note[700], err[700];
    hafl_server_checkpoint_paths(run_dir, (uint32_t)round, bin, state_path, sizeof bin);
    struct stat st;
    CHECKF(stat(state_path, &st) == 0 && stat(bin, &st) == 0, "no generation of round %zu",
           round);
    hafl_server_state_t *state =
        hafl_server_checkpoint_load(run_dir, NULL, note, sizeof note, err, sizeof err);
    CHECKF(state != NULL, "%s", err);
    CHECKF(state->round == round && !note[0], "newest checkpoint round %u (%s), expected %zu",
           state->round, note, round);
    hafl_server_state_destroy(&state);
}

//  Start case c: the server in this process, both client nodes as children; once round 2
//  has ended, send every client node `sig`. Returns the server's node; *t gets the topology,
//  clients the children, and *sub (when sub is given) stays subscribed to round-end and
//  `also` (when not NULL) for the caller, else it is closed.
static hafl_node_t *s_start_then_signal(s_case_t *c, hafl_topology_t **t, pid_t clients[2],
                                        int sig, const char *also, zsock_t **sub_p)
{
    *t = s_load(c);
    hafl_node_t *server = s_server(*t);
    zsock_t *sub = zsock_new_sub(hafl_node_endpoints(server)->pub, "round-end ");
    CHECK(sub != NULL);
    if (also)
        zsock_set_subscribe(sub, also);
    clients[0] = s_spawn(c, "clients-0", server);
    clients[1] = s_spawn(c, "clients-1", server);
    s_wait_event(sub, "round-end", 2);
    for (int i = 0; i < 2; i++)
        CHECK(kill(clients[i], sig) == 0);
    if (sub_p)
        *sub_p = sub;
    else
        zsock_destroy(&sub);
    return server;
}

//  All clients killed after round 2: the run ends failed at the join timeout, its rounds and
//  checkpoint those that really had reports, and resuming it reaches the uninterrupted digest.
static void s_killed(const char *uninterrupted)
{
    s_case_t c = {{"server/deadline_ms=4000", "server/heartbeat_ms=250",
                   "server/heartbeat_misses=8", "server/join_timeout_ms=5000", NULL}};
    hafl_topology_t *t;
    pid_t clients[2];
    hafl_node_t *server = s_start_then_signal(&c, &t, clients, SIGKILL, NULL, NULL);
    char hex[65], reason[512];
    CHECKF(hafl_node_wait(server, hex, reason, sizeof reason) == -1,
           "the run ended well without clients: %s", reason);
    for (int i = 0; i < 2; i++) {
        int status = s_reap(clients[i]);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&server);
    hafl_topology_destroy(&t);

    size_t n = s_real_rounds(run_dir);
    CHECKF(n >= 2 && n < 12, "%zu rounds", n);
    char want[256];
    snprintf(want, sizeof want,
             "join timeout: 0 of the 4 clients needed joined within 5000 ms (8 expected; "
             "missing: 0-7) after round %zu; the run folder keeps the checkpoint of round %zu",
             n, n);
    CHECKF(streq(reason, want), "reason '%s', expected '%s'", reason, want);
    s_check_checkpoint(run_dir, n);
    char *events = bus_events(run_dir);
    char line[4096];
    CHECKF(bus_count(events, "\"event\":\"round-end\"") == n, "round-end events beyond row %zu", n);
    CHECKF(s_event_line(events, "round-failed", line, sizeof line), "no round-failed event");
    snprintf(want, sizeof want, "\"round\":%zu,", n + 1);
    CHECKF(strstr(line, want) && strstr(line, "\"attempt\":1"), "%s", line);
    CHECKF(s_event_line(events, "quorum-lost", line, sizeof line), "no quorum-lost event");
    //  Some clients not in the failed round may not be declared dead yet: fewer than needed.
    const char *joined = strstr(line, "\"joined\":");
    snprintf(want, sizeof want, ",\"needed\":4,\"next_round\":%zu,", n + 1);
    CHECKF(joined && strtol(joined + 9, NULL, 10) < 4 && strstr(line, want), "%s", line);
    CHECK(!strstr(events, "\"event\":\"quorum-regained\""));
    CHECKF(s_event_line(events, "join-timeout", line, sizeof line), "no join-timeout event");
    CHECKF(s_event_line(events, "final", line, sizeof line) && strstr(line, "\"ok\":false") &&
               strstr(line, "join timeout"),
           "%s", line);
    free(events);

    //  Resumed in this process, it ends as the run never interrupted.
    t = bus_load(S_SMOKE, S_COMMON, NULL);
    char err[512];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.resume = run_dir;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    CHECKF(node != NULL, "resume from %s: %s", run_dir, err);
    CHECKF(hafl_node_wait(node, hex, reason, sizeof reason) == 0, "%s", reason);
    hafl_node_destroy(&node);
    hafl_topology_destroy(&t);
    CHECKF(streq(hex, uninterrupted), "resumed after round %zu: %s, uninterrupted %s", n, hex,
           uninterrupted);
    printf("killed after round %zu: failed at the join timeout, resumed to the same digest\n", n);
}

//  All clients paused past the death limit, then continued: quorum regained, the run ends ok.
static void s_paused(void)
{
    s_case_t c = {{"server/deadline_ms=4000", "server/heartbeat_ms=250",
                   "server/heartbeat_misses=8", "server/join_timeout_ms=60000", NULL}};
    hafl_topology_t *t;
    pid_t clients[2];
    zsock_t *sub = NULL;
    hafl_node_t *server = s_start_then_signal(&c, &t, clients, SIGSTOP, "quorum-lost ", &sub);
    s_wait_event(sub, "quorum-lost", 1);
    for (int i = 0; i < 2; i++)
        CHECK(kill(clients[i], SIGCONT) == 0);
    zsock_destroy(&sub);
    char hex[65], reason[512];
    CHECKF(hafl_node_wait(server, hex, reason, sizeof reason) == 0, "the run failed: %s", reason);
    for (int i = 0; i < 2; i++) {
        int status = s_reap(clients[i]);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client node %d ended with %d", i,
               status);
    }
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&server);
    hafl_topology_destroy(&t);

    CHECKF(s_real_rounds(run_dir) == 12, "not every round in %s/rounds.csv", run_dir);
    s_check_checkpoint(run_dir, 12);
    char *events = bus_events(run_dir);
    char line[4096];
    CHECKF(s_event_line(events, "quorum-lost", line, sizeof line), "no quorum-lost event");
    const char *lost = strstr(events, "\"event\":\"quorum-lost\"");
    const char *regained = strstr(events, "\"event\":\"quorum-regained\"");
    CHECKF(regained && regained > lost, "no quorum-regained after quorum-lost");
    CHECKF(s_event_line(events, "round-failed", line, sizeof line), "no round-failed event");
    CHECK(strstr(events, "\"event\":\"client-revived\""));
    CHECK(bus_count(events, "\"event\":\"round-end\"") == 12);
    CHECK(!strstr(events, "\"event\":\"join-timeout\""));
    CHECKF(s_event_line(events, "final", line, sizeof line) && strstr(line, "\"ok\":true"), "%s",
           line);
    free(events);
    printf("paused and continued: quorum regained, all 12 rounds\n");
}

//  All clients paused but never declared dead (death limit 20 s, deadline 1 s): each
//  attempt at the round closes with nobody reported; the third ends the run failed.
static void s_silent(void)
{
    s_case_t c = {{"server/deadline_ms=1000", "server/heartbeat_ms=1000",
                   "server/heartbeat_misses=20", "server/join_timeout_ms=60000", NULL}};
    hafl_topology_t *t;
    pid_t clients[2];
    hafl_node_t *server = s_start_then_signal(&c, &t, clients, SIGSTOP, NULL, NULL);
    char hex[65], reason[512];
    int rc = hafl_node_wait(server, hex, reason, sizeof reason);
    for (int i = 0; i < 2; i++) {
        CHECK(kill(clients[i], SIGKILL) == 0);
        s_reap(clients[i]);
    }
    CHECKF(rc == -1, "the run ended well with nobody reporting: %s", reason);
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&server);
    hafl_topology_destroy(&t);

    size_t n = s_real_rounds(run_dir);
    CHECKF(n >= 2 && n < 12, "%zu rounds", n);
    char want[256];
    snprintf(want, sizeof want,
             "round %zu failed 3 times: no client reported within server/deadline_ms (1000 ms); "
             "the run folder keeps the checkpoint of round %zu",
             n + 1, n);
    CHECKF(streq(reason, want), "reason '%s', expected '%s'", reason, want);
    s_check_checkpoint(run_dir, n);
    char *events = bus_events(run_dir);
    snprintf(want, sizeof want, "\"round\":%zu,\"actor\":\"server\",\"event\":\"round-failed\"",
             n + 1);
    CHECKF(bus_count(events, want) == 3, "not three failed attempts at round %zu", n + 1);
    CHECK(strstr(events, "\"attempt\":3,\"max_attempts\":3"));
    CHECK(!strstr(events, "\"event\":\"quorum-lost\""));
    CHECK(bus_count(events, "\"event\":\"round-end\"") == n);
    char line[4096];
    CHECKF(s_event_line(events, "final", line, sizeof line) && strstr(line, "\"ok\":false") &&
               strstr(line, "failed 3 times"),
           "%s", line);
    free(events);
    printf("silent clients: round %zu failed 3 times, checkpoint of round %zu kept\n", n + 1, n);
}

int main(void)
{
    hafl_topology_t *t = bus_load(S_SMOKE, S_COMMON, NULL);
    char uninterrupted[65], dir[4096];
    CHECK(bus_run_inproc(t, uninterrupted, dir, sizeof dir) == 0);
    hafl_topology_destroy(&t);
    s_killed(uninterrupted);
    s_paused();
    s_silent();
    printf("bus quorum: ok\n");
    bus_cleanup();
    return 0;
}
