/*  test_bus_resume: `hafl run --resume RUNDIR` continues a run exactly, in one process and with
    --processes. The smoke federation with crashes (faults/crash 0.05, rejoin_rounds 2) runs 5
    rounds uninterrupted; a 3-round run of it is then resumed to 5 rounds, and the final adapter
    digest must be the uninterrupted one bit for bit: in-process from an in-process checkpoint,
    with --processes from the same checkpoint, and with --processes from a checkpoint that
    --processes wrote. This needs every piece of cross-round state: the server's (the adapter,
    and the crashed clients kept out until round 4, beyond the checkpoint) and each client's
    importance EMAs (hafl_client_state.h), which shape the scores and so the selections of
    rounds 4 and 5.

    Then what a resume must refuse, each with a one-line reason naming the file: a corrupt and
    a missing client state file (in-process and --processes), a checkpoint.bin that is not the
    one checkpoint.state describes, a checkpoint.state without the client state (older format),
    and a folder without a checkpoint.
*/
#include "test_bus_util.h"

#include "hafl_adapter.h"
#include "hafl_client_state.h"
#include "hafl_server_state.h"

#define S_SMOKE "topologies/smoke.zpl"
#define S_CRASH "faults/crash=0.05", "faults/rejoin_rounds=2"

//  `hafl run` of the smoke topology with the crash settings and `extra`; stdout and stderr
//  in out (caller frees), exit status returned.
static int s_run_binary(const char *extra, char **out)
{
    char topology[4096], command[12288];
    bus_source_path(topology, sizeof topology, S_SMOKE);
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary != NULL, "HAFL_BINARY is not set (run through ctest)");
    snprintf(command, sizeof command,
             "'%s' run '%s' --set logger/run_dir=%s/runs --set faults/crash=0.05 "
             "--set faults/rejoin_rounds=2 %s 2>&1",
             binary, topology, bus_tmpdir(), extra);
    int status = -1;
    *out = bus_capture(command, &status);
    return status;
}

//  A resume through the binary that must succeed; its digest into hex.
static void s_resume_binary(const char *dir, const char *extra, char hex[65])
{
    char args[8192];
    snprintf(args, sizeof args, "--resume '%s' %s", dir, extra);
    char *out = NULL;
    int status = s_run_binary(args, &out);
    CHECKF(status == 0, "hafl run %s exited %d:\n%s", args, status, out);
    CHECKF(bus_digest_of(out, hex), "no digest in:\n%s", out);
    free(out);
}

//  A resume in this process; returns the node or NULL with err.
static hafl_node_t *s_resume_node(const hafl_topology_t *t, const char *dir, char *err,
                                  size_t errlen)
{
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.resume = dir;
    return hafl_node_new(&opts, err, errlen);
}

//  A resume (in this process, and through the binary with --processes) that must be refused
//  with a reason containing both needles.
static void s_refused(const hafl_topology_t *t, const char *dir, const char *needle,
                      const char *needle2)
{
    char err[512];
    hafl_node_t *node = s_resume_node(t, dir, err, sizeof err);
    CHECKF(node == NULL, "resume from %s was not refused", dir);
    CHECKF(strstr(err, needle) && strstr(err, needle2), "in-process: %s", err);
    CHECKF(!strchr(err, '\n'), "not one line: %s", err);
    char args[4400], *out = NULL;
    snprintf(args, sizeof args, "--processes --resume '%s'", dir);
    int status = s_run_binary(args, &out);
    CHECKF(status == 1 && strstr(out, needle) && strstr(out, needle2) &&
               !strstr(out, "final adapter"),
           "--processes exited %d:\n%s", status, out);
    free(out);
}

static void s_copy_folder(const char *from, const char *to)
{
    char command[9000];
    snprintf(command, sizeof command, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    CHECK(system(command) == 0);
}

int main(void)
{
    //  The uninterrupted run.
    hafl_topology_t *t = bus_load(S_SMOKE, S_CRASH, NULL);
    char full[65], full_dir[4096];
    CHECK(bus_run_inproc(t, full, full_dir, sizeof full_dir) == 0);
    hafl_topology_destroy(&t);

    //  Three rounds: the checkpoint is the final adapter, and it needs what the test is about.
    t = bus_load(S_SMOKE, S_CRASH, "server/rounds=3", NULL);
    char hex[65], first[4096];
    CHECK(bus_run_inproc(t, hex, first, sizeof first) == 0);
    hafl_topology_destroy(&t);
    bus_check_adapter_digest(first, "checkpoint.bin", hex);
    char path[4300], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.state", first);
    char *text = bus_read_file(path);
    CHECK(text && strstr(text, "round 3\n") && strstr(text, "strategy adaptive\n"));
    free(text);
    hafl_server_state_t *state = hafl_server_state_load(path, err, sizeof err);
    CHECKF(state != NULL, "%s", err);
    uint32_t kept_out = 0;
    for (uint32_t i = 0; i < state->n_clients; i++)
        kept_out += state->clients[i].down_until > 3;
    CHECKF(kept_out > 0, "no crashed client sits out a round after the checkpoint");
    uint64_t checkpoint_up = hafl_traffic_total(&state->up);
    hafl_server_state_destroy(&state);
    uint32_t with_emas = 0, any_client = 0;
    for (uint32_t i = 0; i < 8; i++) {
        hafl_client_state_t *cs = hafl_client_state_load(first, i, 3, err, sizeof err);
        CHECKF(cs != NULL, "%s", err);
        for (size_t j = 0; j < cs->n; j++)
            if (cs->values[j] > 0.0f) {
                with_emas++;
                any_client = i;
                break;
            }
        hafl_client_state_destroy(&cs);
    }
    CHECKF(with_emas >= 4, "only %u clients have importance state", with_emas);

    //  Resumed in this process: rounds 4 and 5 only, the uninterrupted digest, and the
    //  cumulative traffic going on from the checkpoint's (the joins again are new traffic).
    t = bus_load(S_SMOKE, S_CRASH, NULL);
    hafl_node_t *node = s_resume_node(t, first, err, sizeof err);
    CHECKF(node != NULL, "%s", err);
    char reason[256], second[4096];
    CHECKF(hafl_node_wait(node, hex, reason, sizeof reason) == 0, "%s", reason);
    snprintf(second, sizeof second, "%s", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
    CHECKF(streq(hex, full), "resumed in-process %s, uninterrupted %s", hex, full);
    double rounds[16], cum_up[16], up[16];
    size_t n = bus_csv_column(second, "round", rounds, 16);
    CHECKF(n == 2 && rounds[0] == 4 && rounds[1] == 5, "%zu rows", n);
    CHECK(bus_csv_column(second, "cum_up_bytes", cum_up, 16) == 2);
    CHECK(bus_csv_column(second, "up_bytes", up, 16) == 2);
    CHECKF(cum_up[0] == (double)checkpoint_up + up[0], "cumulative upload %.0f, checkpoint %llu",
           cum_up[0], (unsigned long long)checkpoint_up);
    snprintf(path, sizeof path, "%s/events.jsonl", second);
    char *events = bus_read_file(path);
    CHECK(events && strstr(events, "\"first_round\":4"));
    free(events);

    //  With --processes: from the in-process checkpoint, and from one --processes wrote.
    s_resume_binary(first, "--processes", hex);
    CHECKF(streq(hex, full), "resumed with --processes %s, uninterrupted %s", hex, full);
    char *out = NULL, first_p[4096];
    int status = s_run_binary("--processes --set server/rounds=3", &out);
    CHECKF(status == 0 && bus_run_folder_of(out, first_p, sizeof first_p), "exited %d:\n%s", status,
           out);
    free(out);
    s_resume_binary(first_p, "--processes", hex);
    CHECKF(streq(hex, full), "--processes both ways %s, uninterrupted %s", hex, full);

    //  Refusals, each on a copy of the checkpoint folder. A corrupt client state file: one
    //  flipped bit in the state of a client that has importance values.
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/copy", bus_tmpdir());
    s_copy_folder(first, copy);
    hafl_client_state_t *cs = hafl_client_state_load(copy, any_client, 3, err, sizeof err);
    CHECKF(cs != NULL, "%s", err);
    hafl_client_state_path(copy, any_client, cs->round, path, sizeof path);
    hafl_client_state_destroy(&cs);
    FILE *file = fopen(path, "r+b");
    CHECK(file && fseek(file, 40, SEEK_SET) == 0);
    int byte = fgetc(file);
    CHECK(byte != EOF && fseek(file, 40, SEEK_SET) == 0 && fputc(byte ^ 0x10, file) != EOF);
    CHECK(fclose(file) == 0);
    s_refused(t, copy, path, "checksum mismatch");
    //  A missing one.
    s_copy_folder(first, copy);
    hafl_client_state_forget(copy, 5);
    s_refused(t, copy, "/clients: no state file of client 5 at or before round 3", copy);
    //  checkpoint.bin of another round than checkpoint.state says.
    s_copy_folder(first, copy);
    char command[9000];
    snprintf(command, sizeof command, "cp '%s/final_adapter.bin' '%s/checkpoint.bin'", full_dir,
             copy);
    CHECK(system(command) == 0);
    s_refused(t, copy, "checkpoint.bin", "different rounds");
    //  A checkpoint.state from before client state was saved.
    s_copy_folder(first, copy);
    snprintf(path, sizeof path, "%s/checkpoint.state", copy);
    file = fopen(path, "w");
    CHECK(file && fputs("round 3\nstrategy adaptive\n", file) >= 0 && fclose(file) == 0);
    s_refused(t, copy, "checkpoint.state: line 1", "would not be exact");
    //  No checkpoint at all.
    s_refused(t, "/nonexistent-run-folder", "checkpoint.state", "cannot open");

    hafl_topology_destroy(&t);
    bus_cleanup();
    printf("bus resume: ok, %s\n", full);
    return 0;
}
