/*  test_bus_control: a running in-process federation answers `hafl ctl`: status (JSON with the
    round, clients alive, strategy and bytes), fault drop and fault straggle (logged, applied to
    the next round), swap-aggregator (applied at the next round boundary, logged with its
    round, no upload lost or counted twice), then stop (the run ends at once, cleanly, with its
    final adapter and log written).
*/
#include "test_bus_util.h"

#include "hafl_adapter.h"

//  The federation runs in this actor's thread; it reports its control endpoint and run folder
//  when started, and "DONE" rc digest when over.
static void s_runner(zsock_t *pipe, void *args)
{
    const hafl_topology_t *t = (const hafl_topology_t *)args;
    char err[512], hex[65], reason[256];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    zsock_signal(pipe, 0);
    if (!node) {
        zsock_send(pipe, "sss", "FAILED", err, "");
        return;
    }
    zsock_send(pipe, "sss", "STARTED", hafl_node_endpoints(node)->control, hafl_node_run_dir(node));
    int rc = hafl_node_wait(node, hex, reason, sizeof reason);
    zsock_send(pipe, "sss", "DONE", rc == 0 ? "0" : "1", hex);
    hafl_node_destroy(&node);
    char *term = zstr_recv(pipe);
    zstr_free(&term);
}

static char *s_ctl(const char *endpoint, const char *command, int *status)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary != NULL, "HAFL_BINARY is not set (run through ctest)");
    char line[2048];
    snprintf(line, sizeof line, "'%s' ctl '%s' %s", binary, endpoint, command);
    return bus_capture(line, status);
}

//  The integer after "\"key\":" in a JSON text, or -1.
static long s_json_int(const char *json, const char *key)
{
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(json, pattern);
    return p ? strtol(p + strlen(pattern), NULL, 10) : -1;
}

//  Poll status until `round` >= at_least (each poll is one request with its own timeout).
static void s_wait_round(const char *endpoint, long at_least, const char *strategy)
{
    for (int attempt = 0; attempt < 2000; attempt++) {
        int status;
        char *reply = s_ctl(endpoint, "status", &status);
        CHECKF(status == 0, "status failed: %s", reply);
        bool reached =
            s_json_int(reply, "round") >= at_least && (!strategy || strstr(reply, strategy));
        free(reply);
        if (reached)
            return;
    }
    CHECKF(false, "round %ld never reached", at_least);
}

int main(void)
{
    //  Many short rounds, so the commands land mid-run.
    hafl_topology_t *t = bus_load("topologies/smoke.zpl", "server/rounds=400", NULL);
    zactor_t *runner = zactor_new(s_runner, t);
    char *what = NULL, *endpoint = NULL, *run_dir = NULL;
    CHECK(zsock_recv(runner, "sss", &what, &endpoint, &run_dir) == 0);
    CHECKF(streq(what, "STARTED"), "%s", endpoint);

    int status;
    s_wait_round(endpoint, 2, NULL);
    char *reply = s_ctl(endpoint, "status", &status);
    CHECKF(status == 0 && strstr(reply, "\"alive\":8") &&
               strstr(reply, "\"strategy\":\"adaptive\"") && s_json_int(reply, "bytes_up") > 0,
           "%s", reply);
    free(reply);
    reply = s_ctl(endpoint, "fault drop 3", &status);
    CHECKF(status == 0 && strstr(reply, "\"fault\":\"drop\""), "%s", reply);
    free(reply);
    reply = s_ctl(endpoint, "fault straggle 5 20", &status);
    CHECKF(status == 0 && strstr(reply, "\"fault\":\"straggle\""), "%s", reply);
    free(reply);
    reply = s_ctl(endpoint, "swap-aggregator nosuch", &status);
    CHECKF(status != 0 && strstr(reply, "unknown strategy"), "%s", reply);
    free(reply);
    //  Refused at runtime exactly as the loader refuses it: these clients' ranks differ.
    reply = s_ctl(endpoint, "swap-aggregator fedavg", &status);
    CHECKF(status != 0 && strstr(reply, "fedavg needs equal rank budgets"), "%s", reply);
    free(reply);
    reply = s_ctl(endpoint, "swap-aggregator zeropad", &status);
    CHECKF(status == 0 && strstr(reply, "\"swap\":\"zeropad\""), "%s", reply);
    long first = s_json_int(reply, "first_round");
    CHECK(first >= 3);
    free(reply);
    s_wait_round(endpoint, first, "\"strategy\":\"zeropad\"");
    reply = s_ctl(endpoint, "stop", &status);
    CHECKF(status == 0 && strstr(reply, "\"stopping\":true"), "%s", reply);
    free(reply);

    char *rc = NULL, *hex = NULL;
    zstr_free(&what);
    CHECK(zsock_recv(runner, "sss", &what, &rc, &hex) == 0);
    CHECK(streq(what, "DONE"));
    //  A stopped run is not a finished one: it ends failed, saying who stopped it and when.
    CHECKF(streq(rc, "1"), "the stopped run ended as if it had finished");
    CHECK(strlen(hex) == 64);

    //  Stopped early, with its final adapter and log.
    double rounds[512], reported[512];
    size_t n = bus_csv_column(run_dir, "round", rounds, 512);
    bus_csv_column(run_dir, "reported", reported, 512);
    //  Stop aborts the round in progress: the last complete round is first - 1 or later.
    CHECKF(n + 1 >= (size_t)first && n < 400, "%zu rounds", n);
    bus_check_adapter_digest(run_dir, "final_adapter.bin", hex);
    char path[4300];

    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    char *events = bus_read_file(path);
    CHECK(events != NULL);
    //  The swap is logged by the aggregator with the first round it applies to.
    char needle[128];
    snprintf(needle, sizeof needle, "\"round\":%ld,\"actor\":\"aggregator\",\"event\":\"swap\"",
             first);
    CHECKF(strstr(events, needle), "no '%s' in the log", needle);
    CHECK(strstr(events, "\"from\":\"adaptive\",\"to\":\"zeropad\""));
    CHECK(bus_count(events, "\"event\":\"fault-injected\"") == 2);
    const char *final = strstr(events, "\"event\":\"final\"");
    CHECK(final != NULL);
    CHECKF(strstr(final, "\"ok\":false") &&
               strstr(final, "stopped by control command after round "),
           "%.300s", final);
    //  The last round recorded was evaluated like every other (not nan).
    double accuracy[512];
    CHECK(bus_csv_column(run_dir, "accuracy", accuracy, 512) == n && n > 0);
    CHECKF(accuracy[n - 1] == accuracy[n - 1], "round %zu has accuracy nan", n);
    //  Every upload that counted was aggregated exactly once: the aggregator's upload counts
    //  sum to the rounds' reports.
    double total_reported = 0;
    for (size_t i = 0; i < n; i++)
        total_reported += reported[i];
    long total_aggregated = 0;
    for (const char *p = events; (p = strstr(p, "\"event\":\"aggregate\"")); p++)
        total_aggregated += s_json_int(p, "uploads");
    CHECKF((double)total_aggregated == total_reported, "aggregated %ld, reported %.0f",
           total_aggregated, total_reported);
    free(events);

    zstr_free(&what);
    zstr_free(&rc);
    zstr_free(&hex);
    zstr_free(&endpoint);
    zstr_free(&run_dir);
    zactor_destroy(&runner);
    hafl_topology_destroy(&t);
    printf("bus control: ok, swap at round %ld, stopped after %zu rounds\n", first, n);
    bus_cleanup();
    return 0;
}
