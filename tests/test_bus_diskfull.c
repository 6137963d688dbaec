/*  test_bus_diskfull: a checkpoint that cannot be written ends the run failed at once, the
    previous generation intact (hafl_server.h, hafl_server_checkpoint.h). A full disk cannot be
    made without root tricks, and as root a read-only folder does not stop writes, so the
    failures here are ones that stop root too, set up in the run folder before the run starts:
    - checkpoint/round-3.bin is a folder (the rename onto it fails): the run ends failed after
      round 3 with a reason naming the file and the kept checkpoint of round 2; the
      generations of rounds 1 and 2 are intact and nothing else was left in checkpoint/;
      resuming from the folder ends with the uninterrupted digest;
    - checkpoint/round-3.state is a folder (the adapter was written, the state cannot be): the
      same, with round 3's adapter removed again; a resume passes the folder named like a state
      over, with a note, for round 2 and reaches the uninterrupted digest;
    - checkpoint is a regular file: the first checkpoint fails, the run ends failed saying no
      checkpoint was saved, and a resume from it is refused.
*/
#include "test_bus_util.h"

#include "hafl_server_checkpoint.h"
#include "hafl_server_state.h"

#include <dirent.h>
#include <sys/stat.h>

#define S_SMOKE "topologies/smoke.zpl"

//  A fresh run folder, TMP/name, with checkpoint/ prepared by `setup` (a shell command run in
//  the run folder).
static void s_prepare(const char *name, const char *setup, char *run_dir, size_t run_dir_len)
{
    snprintf(run_dir, run_dir_len, "%s/%s", bus_tmpdir(), name);
    char command[8192];
    snprintf(command, sizeof command, "mkdir '%s' && cd '%s' && %s", run_dir, run_dir, setup);
    CHECKF(system(command) == 0, "%s", command);
}

//  The smoke federation in this process into run_dir; must fail. Its reason into reason.
static void s_run_failing(const char *run_dir, char *reason, size_t reasonlen)
{
    hafl_topology_t *t = bus_load(S_SMOKE, NULL);
    char err[512], hex[65];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.run_dir = run_dir;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    CHECKF(node != NULL, "%s", err);
    CHECKF(hafl_node_wait(node, hex, reason, reasonlen) == -1, "the run ended well: %s", reason);
    CHECKF(!strchr(reason, '\n'), "not one line: %s", reason);
    hafl_node_destroy(&node);
    hafl_topology_destroy(&t);
}

//  A resume from dir in this process: its digest, and its run folder's events (caller frees).
static char *s_resume(const char *dir, char hex[65])
{
    hafl_topology_t *t = bus_load(S_SMOKE, NULL);
    char err[512], reason[512], path[4300];
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.resume = dir;
    hafl_node_t *node = hafl_node_new(&opts, err, sizeof err);
    CHECKF(node != NULL, "resume from %s: %s", dir, err);
    CHECKF(hafl_node_wait(node, hex, reason, sizeof reason) == 0, "%s", reason);
    snprintf(path, sizeof path, "%s/events.jsonl", hafl_node_run_dir(node));
    hafl_node_destroy(&node);
    hafl_topology_destroy(&t);
    char *events = bus_read_file(path);
    CHECKF(events != NULL, "cannot read %s", path);
    return events;
}

//  The names in run_dir/checkpoint, sorted, comma-separated, into out.
static void s_listing(const char *run_dir, char *out, size_t outlen)
{
    char folder[4200];
    snprintf(folder, sizeof folder, "%s/%s", run_dir, HAFL_CHECKPOINT_DIR);
    struct dirent **names = NULL;
    int n = scandir(folder, &names, NULL, alphasort);
    CHECKF(n >= 0, "cannot list %s", folder);
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' && used < outlen)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? "," : "",
                                     names[i]->d_name);
        free(names[i]);
    }
    free(names);
    CHECKF(used < outlen, "%s: too many names", folder);
}

//  The run folder's events hold a checkpoint-failed event of `round` and a final event that
//  is not ok.
static void s_check_events(const char *run_dir, int round)
{
    char path[4300], needle[128];
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    char *events = bus_read_file(path);
    CHECKF(events != NULL, "cannot read %s", path);
    snprintf(needle, sizeof needle, "\"round\":%d,\"actor\":\"server\",\"event\":\"checkpoint-failed\"",
             round);
    CHECKF(strstr(events, needle), "no '%s' in %s", needle, path);
    const char *final = strstr(events, "\"event\":\"final\"");
    CHECKF(final && strstr(final, "\"ok\":false") && strstr(final, "could not be written"), "%s",
           final ? final : "no final event");
    free(events);
}

//  The newest intact generation of run_dir is round's, with no note.
static void s_check_newest(const char *run_dir, uint32_t round, const char *note_needle)
{
    char note[700], err[700];
    hafl_server_state_t *state =
        hafl_server_checkpoint_load(run_dir, NULL, note, sizeof note, err, sizeof err);
    CHECKF(state != NULL, "%s", err);
    CHECKF(state->round == round, "newest intact generation %u, expected %u", state->round, round);
    CHECKF(note_needle ? strstr(note, note_needle) != NULL : note[0] == 0, "note: '%s'", note);
    hafl_server_state_destroy(&state);
}

int main(void)
{
    hafl_topology_t *t = bus_load(S_SMOKE, NULL);
    char full[65], full_dir[4096];
    CHECK(bus_run_inproc(t, full, full_dir, sizeof full_dir) == 0);
    hafl_topology_destroy(&t);

    //  Round 3's adapter cannot be written.
    char run_dir[4096], reason[1024], want[4400], listing[4096], hex[65];
    s_prepare("adapter", "mkdir -p checkpoint/round-3.bin", run_dir, sizeof run_dir);
    s_run_failing(run_dir, reason, sizeof reason);
    snprintf(want, sizeof want,
             "the checkpoint of round 3 could not be written (%s/checkpoint/round-3.bin: ", run_dir);
    CHECKF(strncmp(reason, want, strlen(want)) == 0, "reason '%s' does not start '%s'", reason,
           want);
    CHECKF(strstr(reason, "): stopped; the run folder keeps the checkpoint of round 2, resume "
                          "from it"),
           "%s", reason);
    s_check_events(run_dir, 3);
    s_check_newest(run_dir, 2, NULL);
    s_listing(run_dir, listing, sizeof listing);
    CHECKF(streq(listing, "round-1.bin,round-1.state,round-2.bin,round-2.state,round-3.bin"),
           "checkpoint/ holds %s", listing);
    double rounds[16];
    size_t n = bus_csv_column(run_dir, "round", rounds, 16);
    CHECKF(n <= 3 && (n == 0 || rounds[n - 1] <= 3), "%zu rounds.csv rows", n);
    char *events = s_resume(run_dir, hex);
    CHECKF(streq(hex, full), "resumed %s, uninterrupted %s", hex, full);
    CHECK(strstr(events, "\"first_round\":3") && !strstr(events, "resume-fallback"));
    free(events);
    printf("round-3.bin unwritable: %s\n", reason);

    //  Round 3's state cannot be written: its adapter is removed again.
    s_prepare("state", "mkdir -p checkpoint/round-3.state", run_dir, sizeof run_dir);
    s_run_failing(run_dir, reason, sizeof reason);
    snprintf(want, sizeof want,
             "the checkpoint of round 3 could not be written (%s/checkpoint/round-3.state: ",
             run_dir);
    CHECKF(strncmp(reason, want, strlen(want)) == 0, "reason '%s' does not start '%s'", reason,
           want);
    CHECK(strstr(reason, "keeps the checkpoint of round 2"));
    s_check_events(run_dir, 3);
    s_listing(run_dir, listing, sizeof listing);
    CHECKF(streq(listing, "round-1.bin,round-1.state,round-2.bin,round-2.state,round-3.state"),
           "checkpoint/ holds %s", listing);
    s_check_newest(run_dir, 2, "checkpoint of round 3 refused");
    events = s_resume(run_dir, hex);
    CHECKF(streq(hex, full), "resumed %s, uninterrupted %s", hex, full);
    CHECK(strstr(events, "\"first_round\":3"));
    free(events);
    printf("round-3.state unwritable: %s\n", reason);

    //  No checkpoint folder can be made: the first checkpoint fails.
    s_prepare("nofolder", "echo not a folder > checkpoint", run_dir, sizeof run_dir);
    s_run_failing(run_dir, reason, sizeof reason);
    CHECKF(strstr(reason, "the checkpoint of round 1 could not be written (") &&
               strstr(reason, "): stopped before any checkpoint was saved"),
           "%s", reason);
    s_check_events(run_dir, 1);
    char note[700], err[700];
    CHECK(hafl_server_checkpoint_load(run_dir, NULL, note, sizeof note, err, sizeof err) == NULL);
    CHECKF(strstr(err, run_dir) && strstr(err, "no checkpoint"), "%s", err);
    t = bus_load(S_SMOKE, NULL);
    hafl_node_opts_t opts = {0};
    opts.topology = t;
    opts.resume = run_dir;
    CHECK(hafl_node_new(&opts, err, sizeof err) == NULL && strstr(err, "no checkpoint"));
    hafl_topology_destroy(&t);
    printf("checkpoint/ a file: %s\n", reason);

    bus_cleanup();
    printf("bus diskfull: ok\n");
    return 0;
}
