/*  test_bus_modes: the smoke federation gives the same final adapter digest in-process and
    with --processes (one `hafl node` per group over ipc://), and with --processes over
    loopback tcp://, all through the `hafl` binary.
*/
#include "test_bus_util.h"

static void s_run(const char *extra, char hex[65])
{
    char topology[4096], command[8192];
    bus_source_path(topology, sizeof topology, "topologies/smoke.zpl");
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary != NULL, "HAFL_BINARY is not set (run through ctest)");
    snprintf(command, sizeof command, "'%s' run '%s' --set logger/run_dir=%s/runs %s", binary,
             topology, bus_tmpdir(), extra);
    int status = -1;
    char *out = bus_capture(command, &status);
    CHECKF(status == 0, "%s exited %d:\n%s", command, status, out);
    CHECKF(bus_digest_of(out, hex), "no digest in:\n%s", out);
    free(out);
}

int main(void)
{
    char inproc[65], ipc[65], tcp[65];
    s_run("", inproc);
    s_run("--processes", ipc);
    CHECKF(streq(inproc, ipc), "in-process %s, processes (ipc) %s", inproc, ipc);
    char extra[128];
    //  A port block unlikely to be in use, distinct per test process.
    snprintf(extra, sizeof extra,
             "--processes --set placement/transport=tcp --set "
             "placement/base_port=%d",
             20000 + (int)(getpid() % 2000) * 4);
    s_run(extra, tcp);
    CHECKF(streq(inproc, tcp), "in-process %s, processes (tcp) %s", inproc, tcp);
    printf("bus modes: ok, %s\n", inproc);
    bus_cleanup();
    return 0;
}
