/*  test_bus_join: the server's join phase with clients that never come (server/join_timeout_ms).
    The smoke federation placed as processes (groups server, clients-0 with clients 0-3,
    clients-1 with 4-7; no evaluator) runs some of its groups as nodes in this process:
    - the server alone: after join_timeout_ms the run ends failed with a join-timeout event
      (0 joined of the 4 needed, missing 0-7), join-wait events before it, the final event
      marked not ok, and hafl_node_wait's reason saying so;
    - server and clients-0 with server/min_reports = 5: 4 of 5 needed, missing 4-7, failed;
    - server and clients-0 with min_reports = 4: the quorum is there, so the rounds start after
      the grace period (server/deadline_ms) without clients-1 and the run completes;
    - server and clients-0 with min_reports = 5 and a long join timeout: once the server says
      join-wait, clients-1 starts late, and the run completes with all 8;
    - `hafl node FILE --host server` alone exits 1 with the one-line reason on stderr.
*/
#include "test_bus_util.h"

//  Deadline for any one run or event; only a broken run gets near it.
#define S_DEADLINE_MS 60000

//  The smoke topology as processes, with a short grace period, two rounds, and the given
//  server/min_reports and server/join_timeout_ms.
static hafl_topology_t *s_load(const char *min_reports, const char *join_timeout_ms)
{
    char reports[64], timeout[64];
    snprintf(reports, sizeof reports, "server/min_reports=%s", min_reports);
    snprintf(timeout, sizeof timeout, "server/join_timeout_ms=%s", join_timeout_ms);
    return bus_load("topologies/smoke.zpl", "placement/mode=processes", "evaluator/enabled=false",
                    "server/deadline_ms=300", "server/rounds=2", reports, timeout, NULL);
}

//  The one line of `events` holding `event`, copied into line (CHECKs that there is one).
static void s_event_line(const char *events, const char *event, char *line, size_t linelen)
{
    char needle[128];
    snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
    const char *hit = strstr(events, needle);
    CHECKF(hit != NULL, "no %s event in:\n%s", event, events);
    CHECKF(!strstr(hit + 1, needle), "more than one %s event", event);
    const char *start = hit;
    while (start > events && start[-1] != '\n')
        start--;
    size_t n = strcspn(start, "\n");
    snprintf(line, linelen, "%.*s", (int)n, start);
}

//  Runs the server node (and a clients-0 node when with_clients) until the server ends, which
//  must be a join timeout; checks the reason and the events.
static void s_expect_timeout(const char *min_reports, bool with_clients, const char *reason_want,
                             const char *fields)
{
    hafl_topology_t *t = s_load(min_reports, "1500");
    hafl_node_t *server = bus_node(t, "server", NULL);
    hafl_node_t *clients = with_clients ? bus_node(t, "clients-0", server) : NULL;
    char hex[65], reason[512];
    CHECKF(hafl_node_wait(server, hex, reason, sizeof reason) == -1, "the run did not fail");
    CHECKF(strstr(reason, reason_want), "reason '%s' lacks '%s'", reason, reason_want);
    CHECKF(!strchr(reason, '\n'), "reason is not one line: %s", reason);
    CHECKF(strlen(hex) == 64, "no final adapter digest");
    if (clients) {
        //  The server ended the federation: its clients were told and end well.
        char chex[65], creason[512];
        CHECKF(hafl_node_wait(clients, chex, creason, sizeof creason) == 0, "clients: %s", creason);
    }
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&clients);
    hafl_node_destroy(&server);
    char *events = bus_events(run_dir);
    char line[4096];
    s_event_line(events, "join-timeout", line, sizeof line);
    CHECKF(strstr(line, fields), "join-timeout '%s' lacks '%s'", line, fields);
    CHECKF(strstr(line, "\"join_timeout_ms\":1500"), "%s", line);
    s_event_line(events, "final", line, sizeof line);
    CHECKF(strstr(line, "\"ok\":false") && strstr(line, "join timeout"), "%s", line);
    CHECKF(bus_count(events, "\"event\":\"join-wait\"") >= 1, "no join-wait before the timeout");
    CHECK(!strstr(events, "\"event\":\"federation-start\""));
    CHECK(!strstr(events, "\"event\":\"round-start\""));
    printf("server: %s\n", reason);
    free(events);
    hafl_topology_destroy(&t);
}

//  Server and clients-0 (and, late, clients-1): the run must complete, with the clients a round
//  needs (and no more than had come) at its start, every started client joined, and no join
//  timeout.
static void s_expect_run(const char *min_reports, const char *join_timeout_ms, bool late)
{
    hafl_topology_t *t = s_load(min_reports, join_timeout_ms);
    hafl_node_t *server = bus_node(t, "server", NULL);
    hafl_node_t *first = bus_node(t, "clients-0", server);
    hafl_node_t *second = NULL;
    if (late) {
        //  Wait until the server says it is waiting for more clients, then start them.
        zsock_t *sub = zsock_new_sub(hafl_node_endpoints(server)->pub, "join-wait ");
        CHECK(sub != NULL);
        zpoller_t *poller = zpoller_new(sub, NULL);
        CHECK(poller != NULL);
        CHECKF(zpoller_wait(poller, S_DEADLINE_MS) == sub, "no join-wait event");
        zpoller_destroy(&poller);
        zsock_destroy(&sub);
        second = bus_node(t, "clients-1", server);
    }
    char hex[65], reason[512];
    CHECKF(hafl_node_wait(server, hex, reason, sizeof reason) == 0, "the run failed: %s", reason);
    CHECKF(hafl_node_wait(first, hex, reason, sizeof reason) == 0, "clients-0: %s", reason);
    if (second)
        CHECKF(hafl_node_wait(second, hex, reason, sizeof reason) == 0, "clients-1: %s", reason);
    char run_dir[4096];
    snprintf(run_dir, sizeof run_dir, "%s", hafl_node_run_dir(server));
    hafl_node_destroy(&second);
    hafl_node_destroy(&first);
    hafl_node_destroy(&server);
    char *events = bus_events(run_dir);
    char line[4096];
    s_event_line(events, "federation-start", line, sizeof line);
    const char *field = strstr(line, "\"clients\":");
    CHECK(field != NULL);
    long at_start = strtol(field + strlen("\"clients\":"), NULL, 10);
    CHECKF(at_start >= (long)t->server.min_reports && at_start <= (late ? 8 : 4), "%s", line);
    size_t joined = bus_count(events, "\"event\":\"client-joined\"");
    CHECKF(joined == (late ? 8u : 4u), "%zu clients joined", joined);
    CHECK(!strstr(events, "\"event\":\"join-timeout\""));
    CHECKF(bus_count(events, "\"event\":\"round-end\"") == t->server.rounds, "%s", events);
    s_event_line(events, "final", line, sizeof line);
    CHECKF(strstr(line, "\"ok\":true"), "%s", line);
    //  Rounds that started before all 8 had joined: who took part depended on timing, and the
    //  final event says so rather than offer its digest as the topology's.
    if (at_start < 8)
        CHECKF(strstr(line, "\"reproducible\":false") &&
                   strstr(line, "round 1 started with ") && strstr(line, " of 8 clients joined"),
               "%s", line);
    else
        CHECKF(strstr(line, "\"reproducible\":true"), "%s", line);
    printf("joined: %ld clients at the start, %zu in all%s\n", at_start, joined,
           late ? " (4 of them late)" : "");
    free(events);
    hafl_topology_destroy(&t);
}

//  `hafl node` for the server alone: status 1, and exactly one stderr line with the reason.
static void s_expect_cli_timeout(void)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary != NULL, "HAFL_BINARY is not set (run through ctest)");
    char topology[4096], command[8192], err_path[256];
    bus_source_path(topology, sizeof topology, "topologies/smoke.zpl");
    snprintf(err_path, sizeof err_path, "%s/cli.err", bus_tmpdir());
    snprintf(command, sizeof command,
             "'%s' node '%s' --host server --set placement/mode=processes "
             "--set evaluator/enabled=false --set server/deadline_ms=300 "
             "--set server/join_timeout_ms=1000 --set logger/run_dir=%s/cli 2>'%s'",
             binary, topology, bus_tmpdir(), err_path);
    int status = -1;
    char *out = bus_capture(command, &status);
    char *err = bus_read_file(err_path);
    CHECK(err != NULL);
    CHECKF(status == 1, "%s exited %d:\n%s%s", command, status, out, err);
    const char *want = "hafl node server: join timeout: 0 of the 4 clients needed joined within "
                       "1000 ms (8 expected; missing: 0-7)\n";
    CHECKF(streq(err, want), "stderr:\n%s\nwanted:\n%s", err, want);
    CHECKF(strstr(out, "final adapter sha256 "), "no final summary:\n%s", out);
    char run_dir[4096];
    CHECKF(bus_run_folder_of(out, run_dir, sizeof run_dir), "no run folder:\n%s", out);
    char *events = bus_events(run_dir);
    char line[4096];
    s_event_line(events, "join-timeout", line, sizeof line);
    CHECKF(strstr(line, "\"joined\":0,\"needed\":4,\"expected\":8,\"missing\":\"0-7\""), "%s",
           line);
    printf("hafl node: status 1, %s", err);
    free(events);
    free(err);
    free(out);
}

int main(void)
{
    s_expect_timeout("4", false,
                     "join timeout: 0 of the 4 clients needed joined within 1500 ms (8 expected; "
                     "missing: 0-7)",
                     "\"joined\":0,\"needed\":4,\"expected\":8,\"missing\":\"0-7\"");
    s_expect_timeout("5", true,
                     "join timeout: 4 of the 5 clients needed joined within 1500 ms (8 expected; "
                     "missing: 4-7)",
                     "\"joined\":4,\"needed\":5,\"expected\":8,\"missing\":\"4-7\"");
    s_expect_run("4", "30000", false);
    s_expect_run("5", "30000", true);
    s_expect_cli_timeout();
    printf("bus join: ok\n");
    bus_cleanup();
    return 0;
}
