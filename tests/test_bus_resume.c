/*  test_bus_resume: `hafl run --resume RUNDIR` continues a run exactly, in one process and with
    --processes. The smoke federation with crashes (faults/crash 0.05, rejoin_rounds 2) runs 5
    rounds uninterrupted; a 3-round run of it is then resumed to 5 rounds, and the final adapter
    digest must be the uninterrupted one bit for bit: in-process from an in-process checkpoint,
    with --processes from the same checkpoint, and with --processes from a checkpoint that
    --processes wrote. This needs every piece of cross-round state: the server's (the adapter,
    and the crashed clients kept out until round 4, beyond the checkpoint) and each client's
    importance EMAs (hafl_client_state.h), which shape the scores and so the selections of
    rounds 4 and 5. The 3-round run leaves two checkpoint generations (hafl_server_checkpoint.h),
    checkpoint/round-2 and round-3, and the client states both need.

    Settings (hafl_server_checkpoint.h): a resume with seed, faults/dropout or
    server/aggregator changed is refused naming the key, and with server/rounds at or below
    the checkpoint's round; server/rounds raised to 7 (with a timing key changed too) is
    accepted and ends with the digest of an uninterrupted 7-round run.

    Generations: a newest generation that a kill left without its state (a lone round-3.bin),
    whose state has one flipped byte, or whose adapter is of another round, is passed over for
    round 2 (with a note on stderr and a resume-fallback event when it was refused) and the
    resumed run still ends with the uninterrupted digest; with no intact older generation the
    resume is refused, naming the newest one's file.

    Refusals, each with a one-line reason naming the file or folder: a corrupt and a missing
    client state file (in-process and --processes), a run folder of an older hafl (a
    checkpoint.state and no checkpoint/ folder), and a folder that does not exist.
*/
#include "test_bus_util.h"

#include "hafl_adapter.h"
#include "hafl_client_state.h"
#include "hafl_server_checkpoint.h"
#include "hafl_server_state.h"

#include <sys/stat.h>

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

//  A resume through the binary that must succeed; its digest into hex, its output returned
//  (caller frees).
static char *s_resume_binary(const char *dir, const char *extra, char hex[65])
{
    char args[8192];
    snprintf(args, sizeof args, "--resume '%s' %s", dir, extra);
    char *out = NULL;
    int status = s_run_binary(args, &out);
    CHECKF(status == 0, "hafl run %s exited %d:\n%s", args, status, out);
    CHECKF(bus_digest_of(out, hex), "no digest in:\n%s", out);
    return out;
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

//  A resume in this process that must succeed: its digest into hex, its run folder into
//  run_dir.
static void s_resume_inproc(const hafl_topology_t *t, const char *dir, char hex[65],
                            char *run_dir, size_t run_dir_len)
{
    char err[512], reason[256];
    hafl_node_t *node = s_resume_node(t, dir, err, sizeof err);
    CHECKF(node != NULL, "resume from %s: %s", dir, err);
    CHECKF(hafl_node_wait(node, hex, reason, sizeof reason) == 0, "%s", reason);
    snprintf(run_dir, run_dir_len, "%s", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
}

//  A resume (in this process, and through the binary with --processes) that must be refused
//  with a reason containing both needles. set: one more "KEY=VALUE" override, or NULL.
static void s_refused(const char *dir, const char *set, const char *needle, const char *needle2)
{
    hafl_topology_t *t = bus_load(S_SMOKE, S_CRASH, set, NULL);
    char err[512];
    hafl_node_t *node = s_resume_node(t, dir, err, sizeof err);
    CHECKF(node == NULL, "resume from %s (%s) was not refused", dir, set ? set : "as it was");
    CHECKF(strstr(err, needle) && strstr(err, needle2), "in-process: %s", err);
    CHECKF(!strchr(err, '\n'), "not one line: %s", err);
    hafl_topology_destroy(&t);
    char args[4400], *out = NULL;
    snprintf(args, sizeof args, "--processes --resume '%s'%s%s", dir, set ? " --set " : "",
             set ? set : "");
    int status = s_run_binary(args, &out);
    CHECKF(status == 1 && strstr(out, needle) && strstr(out, needle2) &&
               !strstr(out, "final adapter") && !strstr(out, "\nrun "),
           "--processes exited %d:\n%s", status, out);
    free(out);
}

static void s_copy_folder(const char *from, const char *to)
{
    char command[9000];
    snprintf(command, sizeof command, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    CHECK(system(command) == 0);
}

//  XOR one byte of a file with mask.
static void s_flip(const char *path, long offset, int mask)
{
    FILE *file = fopen(path, "r+b");
    CHECKF(file && fseek(file, offset, SEEK_SET) == 0, "%s", path);
    int byte = fgetc(file);
    CHECK(byte != EOF && fseek(file, offset, SEEK_SET) == 0 && fputc(byte ^ mask, file) != EOF);
    CHECK(fclose(file) == 0);
}

static bool s_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

//  The rounds of a run folder's rounds.csv are first..last.
static void s_check_rounds(const char *run_dir, double first, double last)
{
    double rounds[16];
    size_t n = bus_csv_column(run_dir, "round", rounds, 16);
    CHECKF(n == (size_t)(last - first + 1) && rounds[0] == first && rounds[n - 1] == last,
           "%s: %zu rows from %.0f, expected %.0f..%.0f", run_dir, n, n ? rounds[0] : -1.0, first,
           last);
}

int main(void)
{
    //  The uninterrupted runs: 5 rounds, and 7 for the resume that raises server/rounds.
    hafl_topology_t *t = bus_load(S_SMOKE, S_CRASH, NULL);
    char full[65], full_dir[4096];
    CHECK(bus_run_inproc(t, full, full_dir, sizeof full_dir) == 0);
    hafl_topology_destroy(&t);
    t = bus_load(S_SMOKE, S_CRASH, "server/rounds=7", NULL);
    char full7[65], full7_dir[4096];
    CHECK(bus_run_inproc(t, full7, full7_dir, sizeof full7_dir) == 0);
    hafl_topology_destroy(&t);
    CHECK(!streq(full, full7));

    //  Three rounds: the newest checkpoint is the final adapter, and it needs what the test is
    //  about. Two generations are kept, rounds 2 and 3; round 1's is gone.
    t = bus_load(S_SMOKE, S_CRASH, "server/rounds=3", NULL);
    char hex[65], first[4096];
    CHECK(bus_run_inproc(t, hex, first, sizeof first) == 0);
    hafl_topology_destroy(&t);
    char three[65]; //  the 3-round run's final adapter
    snprintf(three, sizeof three, "%s", hex);
    char bin3[4300], state3[4300], bin2[4300], state2[4300], bin1[4300], state1[4300];
    hafl_server_checkpoint_paths(first, 3, bin3, state3, sizeof bin3);
    hafl_server_checkpoint_paths(first, 2, bin2, state2, sizeof bin2);
    hafl_server_checkpoint_paths(first, 1, bin1, state1, sizeof bin1);
    bus_check_adapter_digest(first, HAFL_CHECKPOINT_DIR "/round-3.bin", hex);
    CHECKF(s_exists(bin2) && s_exists(state2), "no round-2 generation in %s", first);
    CHECKF(!s_exists(bin1) && !s_exists(state1), "round 1's generation was not deleted");
    char path[4300], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.state", first);
    CHECKF(!s_exists(path), "%s written", path);
    char *text = bus_read_file(state3);
    CHECK(text && strstr(text, "hafl-checkpoint-state 3\nround 3\n") &&
          strstr(text, "strategy adaptive\n") && strstr(text, "setting seed = 7\n") &&
          strstr(text, "setting faults/crash = 0.05\n") && strstr(text, "\nsha256 "));
    free(text);
    hafl_server_state_t *state = hafl_server_state_load(state3, err, sizeof err);
    CHECKF(state != NULL, "%s", err);
    uint32_t kept_out = 0;
    for (uint32_t i = 0; i < state->n_clients; i++)
        kept_out += state->clients[i].down_until > 3;
    CHECKF(kept_out > 0, "no crashed client sits out a round after the checkpoint");
    uint64_t checkpoint_up = hafl_traffic_total(&state->up);
    hafl_server_state_destroy(&state);
    char note[700];
    state = hafl_server_checkpoint_load(first, NULL, note, sizeof note, err, sizeof err);
    CHECKF(state && state->round == 3 && !note[0], "%s", state ? note : err);
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
        //  The older generation finds its client states too.
        cs = hafl_client_state_load(first, i, 2, err, sizeof err);
        CHECKF(cs != NULL, "%s", err);
        hafl_client_state_destroy(&cs);
    }
    CHECKF(with_emas >= 4, "only %u clients have importance state", with_emas);

    //  Resumed in this process: rounds 4 and 5 only, the uninterrupted digest, and the
    //  cumulative traffic going on from the checkpoint's (the joins again are new traffic).
    t = bus_load(S_SMOKE, S_CRASH, NULL);
    char second[4096];
    s_resume_inproc(t, first, hex, second, sizeof second);
    CHECKF(streq(hex, full), "resumed in-process %s, uninterrupted %s", hex, full);
    double cum_up[16], up[16];
    s_check_rounds(second, 4, 5);
    CHECK(bus_csv_column(second, "cum_up_bytes", cum_up, 16) == 2);
    CHECK(bus_csv_column(second, "up_bytes", up, 16) == 2);
    CHECKF(cum_up[0] == (double)checkpoint_up + up[0], "cumulative upload %.0f, checkpoint %llu",
           cum_up[0], (unsigned long long)checkpoint_up);
    snprintf(path, sizeof path, "%s/events.jsonl", second);
    char *events = bus_read_file(path);
    CHECK(events && strstr(events, "\"first_round\":4") && !strstr(events, "resume-fallback"));
    free(events);

    //  With --processes: from the in-process checkpoint, and from one --processes wrote.
    free(s_resume_binary(first, "--processes", hex));
    CHECKF(streq(hex, full), "resumed with --processes %s, uninterrupted %s", hex, full);
    char *out = NULL, first_p[4096];
    int status = s_run_binary("--processes --set server/rounds=3", &out);
    CHECKF(status == 0 && bus_run_folder_of(out, first_p, sizeof first_p), "exited %d:\n%s", status,
           out);
    free(out);
    free(s_resume_binary(first_p, "--processes", hex));
    CHECKF(streq(hex, full), "--processes both ways %s, uninterrupted %s", hex, full);

    //  Settings: only server/rounds may grow (and timing keys change); the rest is refused,
    //  naming the key.
    s_refused(first, "seed=8", "seed is '8' here but '7' in the checkpoint", first);
    s_refused(first, "faults/dropout=0.5", "faults/dropout is '0.5' here", first);
    s_refused(first, "server/aggregator=zeropad",
              "server/aggregator is 'zeropad' here but 'adaptive' in the checkpoint", first);
    s_refused(first, "server/rounds=2", "server/rounds is 2 but the checkpoint is of round 3",
              first);
    //  As many rounds as the checkpoint holds: a run killed after its last checkpoint but before
    //  it ended finishes, with the final adapter of that checkpoint.
    out = s_resume_binary(first, "--set server/rounds=3", hex);
    CHECKF(streq(hex, three), "resumed at its last round %s, the 3-round run %s", hex, three);
    free(out);
    out = s_resume_binary(first, "--set server/rounds=7 --set server/deadline_ms=4000", hex);
    CHECKF(streq(hex, full7), "resumed to 7 rounds %s, uninterrupted %s", hex, full7);
    free(out);

    //  Generations. A kill between the two writes of round 3: a lone round-3.bin, ignored.
    char copy[4200], c_bin3[4300], c_state3[4300], c_bin2[4300], c_state2[4300];
    snprintf(copy, sizeof copy, "%s/copy", bus_tmpdir());
    hafl_server_checkpoint_paths(copy, 3, c_bin3, c_state3, sizeof c_bin3);
    hafl_server_checkpoint_paths(copy, 2, c_bin2, c_state2, sizeof c_bin2);
    s_copy_folder(first, copy);
    CHECK(unlink(c_state3) == 0);
    state = hafl_server_checkpoint_load(copy, NULL, note, sizeof note, err, sizeof err);
    CHECKF(state && state->round == 2, "%s", state ? note : err);
    hafl_server_state_destroy(&state);
    s_resume_inproc(t, copy, hex, second, sizeof second);
    CHECKF(streq(hex, full), "resumed past a lone round-3.bin %s, uninterrupted %s", hex, full);
    s_check_rounds(second, 3, 5);
    out = s_resume_binary(copy, "--processes", hex);
    CHECKF(streq(hex, full), "--processes past a lone round-3.bin %s, uninterrupted %s", hex,
           full);
    free(out);
    //  One flipped byte in round-3.state: passed over with a note, the same digest.
    s_copy_folder(first, copy);
    s_flip(c_state3, 30, 0x01);
    s_resume_inproc(t, copy, hex, second, sizeof second);
    CHECKF(streq(hex, full), "resumed past a damaged round-3.state %s, uninterrupted %s", hex,
           full);
    s_check_rounds(second, 3, 5);
    snprintf(path, sizeof path, "%s/events.jsonl", second);
    events = bus_read_file(path);
    CHECKF(events && strstr(events, "\"event\":\"resume-fallback\"") &&
               strstr(events, "resuming from round 2"),
           "no resume-fallback event in %s", path);
    free(events);
    out = s_resume_binary(copy, "", hex);
    CHECKF(streq(hex, full), "hafl run past a damaged round-3.state %s", hex);
    CHECKF(strstr(out, "hafl run: checkpoint of round 3 refused (") && strstr(out, c_state3) &&
               strstr(out, "checksum") && strstr(out, "resuming from round 2\n"),
           "no fallback note:\n%s", out);
    free(out);
    //  The adapter of another round in the newest generation: passed over, the same digest.
    s_copy_folder(first, copy);
    char command[9000];
    snprintf(command, sizeof command, "cp '%s/final_adapter.bin' '%s'", full_dir, c_bin3);
    CHECK(system(command) == 0);
    out = s_resume_binary(copy, "--processes", hex);
    CHECKF(streq(hex, full), "resumed past another round's adapter %s, uninterrupted %s", hex,
           full);
    CHECKF(strstr(out, c_bin3) && strstr(out, "not the adapter its state describes") &&
               strstr(out, "resuming from round 2"),
           "no fallback note:\n%s", out);
    free(out);
    //  ... and with no older generation left, refused naming the newest one's adapter.
    CHECK(unlink(c_bin2) == 0 && unlink(c_state2) == 0);
    s_refused(copy, NULL, c_bin3, "not the adapter its state describes");
    //  Both generations damaged: refused, naming the newest one's state.
    s_copy_folder(first, copy);
    s_flip(c_state3, 30, 0x01);
    s_flip(c_bin2, 100, 0x40);
    s_refused(copy, NULL, c_state3, "every older checkpoint generation was refused too");

    //  Client state. A corrupt file: one flipped bit in the state of a client that has
    //  importance values.
    s_copy_folder(first, copy);
    hafl_client_state_t *cs = hafl_client_state_load(copy, any_client, 3, err, sizeof err);
    CHECKF(cs != NULL, "%s", err);
    hafl_client_state_path(copy, any_client, cs->round, path, sizeof path);
    hafl_client_state_destroy(&cs);
    s_flip(path, 40, 0x10);
    s_refused(copy, NULL, path, "checksum mismatch");
    //  A missing one.
    s_copy_folder(first, copy);
    hafl_client_state_forget(copy, 5);
    s_refused(copy, NULL, "/clients: no state file of client 5 at or before round 3", copy);
    //  A run folder of an older hafl: checkpoint.bin and checkpoint.state beside rounds.csv,
    //  no checkpoint/ folder.
    s_copy_folder(first, copy);
    snprintf(command, sizeof command,
             "cd '%s' && mv checkpoint/round-3.bin checkpoint.bin && rm -r checkpoint && "
             "printf 'round 3\\nstrategy adaptive\\n' > checkpoint.state",
             copy);
    CHECK(system(command) == 0);
    s_refused(copy, NULL, "older hafl", copy);
    //  No run folder at all.
    s_refused("/nonexistent-run-folder", NULL, "/nonexistent-run-folder: not a run folder",
              "No such file");

    hafl_topology_destroy(&t);
    bus_cleanup();
    printf("bus resume: ok, %s\n", full);
    return 0;
}
