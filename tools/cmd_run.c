/*  hafl run: run a whole federation from a topology file.

    In-process (the default): every actor is a thread of this process over inproc:// (control
    and event endpoints on ipc:// so `hafl ctl` and `hafl tail` can reach them). With
    --processes, or placement/mode processes or hosts, it starts one `hafl node` child per
    placement group (hafl_placement.h) over ipc:// or loopback tcp://, passing each the run
    folder, the run id and the resolved endpoints, and waits for them: when the server's node
    fails the others are terminated, and when every node running clients has ended and one of
    them failed (e.g. refused by the server's authenticator) the server's node is stopped, as an
    interrupt would, since nobody is left to join. Either way it ends by printing
    `final adapter sha256 <hex>`, the digest the server also logs, and exits 1 if any node
    failed.

    --resume RUNDIR continues a run from the checkpoint in RUNDIR (hafl_server_state.h) with
    every client's saved state (hafl_client_state.h), into a new run folder, in either mode;
    with --processes the launcher checks the checkpoint and every client's state file first,
    so a missing or corrupt one is refused before any node starts, and hands RUNDIR to each
    node.
*/
#include "hafl_cmd.h"
#include "hafl_adapter.h"
#include "hafl_blas.h"
#include "hafl_client_state.h"
#include "hafl_log_auth.h"
#include "hafl_node.h"
#include "hafl_placement.h"
#include "hafl_server_checkpoint.h"
#include "hafl_server_state.h"
#include "hafl_signals.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl run FILE [--set KEY=VALUE]... [--processes] [--resume RUNDIR]\n"
            "                [--slots N]\n"
            "\n"
            "Run the federation a topology file describes and print its final adapter digest.\n"
            "\n"
            "options:\n"
            "  --set KEY=VALUE  override a topology key (e.g. server/aggregator=zeropad)\n"
            "  --processes      one `hafl node` process per actor group (ipc or loopback tcp)\n"
            "  --resume RUNDIR  continue from the checkpoint in an earlier run folder\n"
            "  --slots N        compute slots per process (default: number of cores)\n"
            "  --help           this text\n"
            "\n"
            "Progress goes to stdout (one rewritten line on a terminal, a line per round\n"
            "otherwise); the run folder (logger/run_dir/NAME-UTCSTAMP) holds events.jsonl,\n"
            "rounds.csv and final_adapter.bin.\n"
            "\n"
            "exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error\n");
}

//  Speed, not results, is at stake: said once on stderr, the run goes on.
static void s_blas_note(void)
{
    const char *note = hafl_blas_note();
    if (note)
        fprintf(stderr, "hafl run: note: %s\n", note);
}

//  The digest line: "final adapter sha256" only for a run that ended well; a failed or stopped
//  run's adapter is labelled unfinished, so it is never taken for a result.
static void s_print_digest(const char *hex, bool finished)
{
    if (finished)
        printf("final adapter sha256 %s\n", hex);
    else
        printf("unfinished adapter sha256 %s (the run did not complete; see the reason above)\n",
               hex);
}

//  After the digest: a run whose participants timing chose cannot be replayed from its
//  topology and seed, so its digest is not one to compare.
static void s_print_timing(const char *unreproducible)
{
    if (unreproducible && unreproducible[0])
        printf("not reproducible: %s\n", unreproducible);
}

//  The "unreproducible" text of run_dir's final event (--processes: the server's node wrote
//  it), "" when there is none.
static void s_unreproducible_of(const char *run_dir, char *out, size_t outlen)
{
    char path[4200], line[8192];
    out[0] = 0;
    snprintf(path, sizeof path, "%s/events.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    const char *key = "\"unreproducible\":\"";
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, "\"event\":\"final\"") ? strstr(line, key) : NULL;
        if (!at)
            continue;
        at += strlen(key);
        size_t n = 0;
        while (at[n] && at[n] != '"' && n + 1 < outlen)
            n++;
        snprintf(out, outlen, "%.*s", (int)n, at);
    }
    fclose(f);
}

//  The digest of run_dir's final_adapter.bin, for --processes (the nodes wrote it). A failed
//  run without one says nothing more (its reason was printed). 0, or -1.
static int s_print_digest_of(const char *run_dir, bool finished)
{
    char path[4200], err[256], hex[65];
    snprintf(path, sizeof path, "%s/final_adapter.bin", run_dir);
    if (!finished && access(path, F_OK) != 0)
        return -1;
    hafl_adapter_t *adapter = hafl_adapter_load(path, err, sizeof err);
    if (!adapter) {
        fprintf(stderr, "hafl run: %s\n", err);
        return -1;
    }
    hafl_adapter_digest_hex(adapter, hex);
    hafl_adapter_destroy(&adapter);
    s_print_digest(hex, finished);
    return 0;
}

//  Index of column `name` in a CSV header line, or -1.
static int s_csv_column(const char *header, const char *name)
{
    size_t len = strlen(name);
    int column = 0;
    for (const char *p = header; *p; column++) {
        const char *end = strpbrk(p, ",\n");
        size_t field = end ? (size_t)(end - p) : strlen(p);
        if (field == len && strncmp(p, name, len) == 0)
            return column;
        if (!end || *end == '\n')
            break;
        p = end + 1;
    }
    return -1;
}

//  Field `column` of a CSV line as a double (NAN when absent).
static double s_csv_number(const char *line, int column)
{
    const char *p = line;
    for (int i = 0; i < column && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return p && column >= 0 ? strtod(p, NULL) : NAN;
}

//  One closing line from the run's rounds.csv, whichever mode ran it: the last round's test
//  accuracy and loss, and the bytes moved in all.
static void s_print_summary(const char *run_dir)
{
    char path[4200], header[2048] = "", line[2048] = "", last[2048] = "";
    snprintf(path, sizeof path, "%s/rounds.csv", run_dir);
    FILE *csv = fopen(path, "r");
    if (!csv)
        return;
    if (fgets(header, sizeof header, csv))
        while (fgets(line, sizeof line, csv))
            snprintf(last, sizeof last, "%s", line);
    fclose(csv);
    if (!last[0]) {
        printf("no round completed in this run folder\n");
        return;
    }
    double round = s_csv_number(last, s_csv_column(header, "round"));
    double accuracy = s_csv_number(last, s_csv_column(header, "accuracy"));
    double loss = s_csv_number(last, s_csv_column(header, "loss"));
    double up = s_csv_number(last, s_csv_column(header, "cum_up_bytes"));
    double down = s_csv_number(last, s_csv_column(header, "cum_down_bytes"));
    printf("after round %.0f: test accuracy %.4f, loss %.4f; bytes moved: %.0f up, %.0f down\n",
           round, accuracy, loss, up, down);
}

typedef struct {
    pid_t pid;
    char name[64];
    bool server;
    bool clients; //  runs clients
    int status;
    bool done;
    bool failed;
} s_child_t;

//  The server's node, while it runs, when every node running clients (the server's own
//  included, on a host that runs both) has ended and one of them failed (a refused handshake,
//  a start that failed): no client is left to join or to train, so waiting on would last until
//  server/join_timeout_ms or forever. NULL otherwise.
static s_child_t *s_orphaned_server(s_child_t *children, uint32_t n)
{
    s_child_t *server = NULL;
    bool failed = false;
    for (uint32_t i = 0; i < n; i++) {
        if (children[i].clients && !children[i].done)
            return NULL;
        if (children[i].server && !children[i].done)
            server = &children[i];
        failed |= children[i].clients && children[i].failed;
    }
    return failed ? server : NULL;
}

//  Before any node starts: the checkpoint the server will resume from (the newest intact
//  generation), its settings against this topology, and every client's state file at or
//  before its round must be readable and intact. 0, or -1 with the first problem in err.
static int s_check_resume(const hafl_topology_t *t, const char *dir, char *err, size_t errlen)
{
    char note[700], why[600];
    hafl_server_state_t *state = hafl_server_checkpoint_load(dir, NULL, note, sizeof note, err,
                                                             errlen);
    if (!state)
        return -1;
    if (note[0])
        fprintf(stderr, "hafl run: %s\n", note);
    int rc = 0;
    if (state->n_clients != t->clients.count) {
        snprintf(err, errlen, "%.200s: the checkpoint has %u clients, the topology clients/count %u",
                 dir, state->n_clients, t->clients.count);
        rc = -1;
    } else if (hafl_server_checkpoint_compare(state, t, NULL, why, sizeof why)) {
        snprintf(err, errlen, "%.200s: %.600s", dir, why);
        rc = -1;
    }
    for (uint32_t i = 0; rc == 0 && i < t->clients.count; i++) {
        hafl_client_state_t *client = hafl_client_state_load(dir, i, state->round, err, errlen);
        rc = client ? 0 : -1;
        hafl_client_state_destroy(&client);
    }
    hafl_server_state_destroy(&state);
    return rc;
}

//  The launcher of --processes: one `hafl node` per placement group.
static int s_run_processes(const hafl_topology_t *t, const char *file, const char *const *overrides,
                           size_t n_overrides, uint32_t slots, const char *resume)
{
    char run_dir[4096], err[1024];
    if (resume && s_check_resume(t, resume, err, sizeof err)) {
        fprintf(stderr, "hafl run: %s\n", err);
        return HAFL_EXIT_FAILURE;
    }
    if (hafl_node_make_run_dir(t, run_dir, sizeof run_dir, err, sizeof err)) {
        fprintf(stderr, "hafl run: %s\n", err);
        return HAFL_EXIT_FAILURE;
    }
    const char *slash = strrchr(run_dir, '/');
    const char *run_id = slash ? slash + 1 : run_dir;
    hafl_placement_t placement;
    hafl_placement_groups(t, &placement);
    hafl_endpoints_t e;
    hafl_placement_endpoints(t, false, run_id, &e);
    if (t->placement.mode == HAFL_PLACEMENT_HOSTS && !t->server.endpoint[0]) {
        //  Every host of a hosts topology on this one machine: loopback, not the hosts' addresses.
        hafl_topology_t local = *t;
        local.placement.mode = HAFL_PLACEMENT_PROCESSES;
        hafl_placement_endpoints(&local, false, run_id, &e);
    }
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "hafl run: cannot find its own executable: %s\n", strerror(errno));
        return HAFL_EXIT_FAILURE;
    }
    exe[len] = 0;
    //  The nodes' log token (hafl_log_auth.h): a fresh secret of this run, which the nodes
    //  inherit, unless the caller chose one.
    if (!getenv(HAFL_LOG_AUTH_ENV)) {
        uint8_t secret[32];
        char token[65];
        if (sodium_init() < 0) {
            fprintf(stderr, "hafl run: libsodium failed to initialise\n");
            return HAFL_EXIT_FAILURE;
        }
        randombytes_buf(secret, sizeof secret);
        sodium_bin2hex(token, sizeof token, secret, sizeof secret);
        setenv(HAFL_LOG_AUTH_ENV, token, 1);
        sodium_memzero(secret, sizeof secret);
    }
    char sets[5][HAFL_ENDPOINT_MAX + 32];
    snprintf(sets[0], sizeof sets[0], "server/endpoint=%s", e.server);
    snprintf(sets[1], sizeof sets[1], "server/control=%s", e.control);
    snprintf(sets[2], sizeof sets[2], "logger/pull=%s", e.log);
    snprintf(sets[3], sizeof sets[3], "logger/pub=%s", e.pub);
    snprintf(sets[4], sizeof sets[4], "placement/mode=%s",
             t->placement.mode == HAFL_PLACEMENT_HOSTS ? "hosts" : "processes");
    char slots_text[16];
    snprintf(slots_text, sizeof slots_text, "%u", slots);
    s_blas_note();
    printf("run %s\nfolder %s\ncontrol %s\nevents %s\n", run_id, run_dir, e.control, e.pub);
    fflush(stdout);

    s_child_t children[HAFL_TOPOLOGY_MAX_HOSTS + 4];
    uint32_t n_children = 0;
    for (uint32_t g = 0; g < placement.n_groups; g++) {
        const hafl_group_t *group = &placement.groups[g];
        bool empty =
            !group->server && !group->evaluator && group->client_first > group->client_last;
        if (empty)
            continue;
        size_t argc = 0, cap = 16 + 2 * (n_overrides + 5);
        char **argv = calloc(cap, sizeof(char *));
        if (!argv)
            return HAFL_EXIT_FAILURE;
        argv[argc++] = exe;
        argv[argc++] = "node";
        argv[argc++] = (char *)file;
        argv[argc++] = "--host";
        argv[argc++] = (char *)group->name;
        argv[argc++] = "--run-dir";
        argv[argc++] = run_dir;
        argv[argc++] = "--run-id";
        argv[argc++] = (char *)run_id;
        argv[argc++] = "--slots";
        argv[argc++] = slots_text;
        argv[argc++] = "--child";
        if (resume) {
            argv[argc++] = "--resume";
            argv[argc++] = (char *)resume;
        }
        for (size_t i = 0; i < n_overrides; i++) {
            argv[argc++] = "--set";
            argv[argc++] = (char *)overrides[i];
        }
        for (int i = 0; i < 5; i++) {
            argv[argc++] = "--set";
            argv[argc++] = sets[i];
        }
        argv[argc] = NULL;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execv(exe, argv);
            fprintf(stderr, "hafl run: cannot start %s: %s\n", exe, strerror(errno));
            _exit(127);
        }
        free(argv);
        if (pid < 0) {
            fprintf(stderr, "hafl run: fork: %s\n", strerror(errno));
            break;
        }
        s_child_t *c = &children[n_children++];
        c->pid = pid;
        snprintf(c->name, sizeof c->name, "%s", group->name);
        c->server = group->server;
        c->clients = group->client_first <= group->client_last;
        c->done = false;
        c->failed = false;
    }
    //  Children handle a terminal's Ctrl-C themselves (it reaches the whole process group: the
    //  server node stops the run cleanly); a SIGTERM meant for the launcher alone is passed on
    //  to the server node, which stops the run the same way.
    unsigned signals_seen = hafl_signals_count();
    int failures = 0;
    uint32_t running = n_children;
    int64_t server_ended = -1;
    bool server_stopped = false;
    //  Wait for children on SIGCHLD (blocked, so it stays pending until sigtimedwait takes it);
    //  a child that ended before the block is still reaped by the WNOHANG call below.
    sigset_t chld, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old_mask);
    while (running > 0) {
        if (hafl_signals_count() != signals_seen) {
            signals_seen = hafl_signals_count();
            for (uint32_t i = 0; hafl_signals_last() == SIGTERM && i < n_children; i++)
                if (children[i].server && !children[i].done)
                    kill(children[i].pid, SIGTERM);
        }
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0) {
            //  Nodes without the server end once told the run is over; give them 30 s.
            if (server_ended >= 0 && zclock_mono() - server_ended > 30000) {
                for (uint32_t i = 0; i < n_children; i++)
                    if (!children[i].done)
                        kill(children[i].pid, SIGTERM);
                server_ended = zclock_mono();
            }
            struct timespec tick = {1, 0};
            sigtimedwait(&chld, NULL, &tick);
            continue;
        }
        if (pid < 0)
            break;
        for (uint32_t i = 0; i < n_children; i++) {
            s_child_t *c = &children[i];
            if (c->pid != pid || c->done)
                continue;
            c->done = true;
            running--;
            bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            c->failed = !ok;
            if (!ok) {
                failures++;
                fprintf(stderr, "hafl run: node %s ended with %s %d\n", c->name,
                        WIFEXITED(status) ? "status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            }
            if (c->server) {
                server_ended = zclock_mono();
                //  A node that never reached the server (still starting when it was stopped)
                //  would never hear that the run is over.
                if (!ok || server_stopped)
                    for (uint32_t j = 0; j < n_children; j++)
                        if (!children[j].done)
                            kill(children[j].pid, SIGTERM);
            }
        }
        s_child_t *orphaned = s_orphaned_server(children, n_children);
        if (orphaned && !server_stopped) {
            //  As an interrupt would: the server ends the run cleanly (final adapter, summary).
            fprintf(stderr, "hafl run: every node running clients has ended, not all well: "
                            "stopping the server\n");
            kill(orphaned->pid, SIGTERM);
            server_stopped = true;
        }
    }
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    s_print_summary(run_dir);
    int rc = s_print_digest_of(run_dir, failures == 0);
    char timing[256];
    s_unreproducible_of(run_dir, timing, sizeof timing);
    s_print_timing(timing);
    printf("run folder %s\n", run_dir);
    return rc == 0 && failures == 0 ? HAFL_EXIT_OK : HAFL_EXIT_FAILURE;
}

int hafl_cmd_run(int argc, char **argv)
{
    hafl_signals_catch();
    const char **overrides = NULL;
    size_t n_overrides = 0;
    hafl_topology_error_t terr;
    if (hafl_topology_take_overrides(&argc, argv, &overrides, &n_overrides, &terr)) {
        fprintf(stderr, "hafl run: %s\n", terr.text);
        return HAFL_EXIT_USAGE;
    }
    const char *file = NULL, *resume = NULL;
    bool processes = false;
    unsigned slots = 0;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
            s_usage(stdout);
            free(overrides);
            return HAFL_EXIT_OK;
        } else if (streq(argv[i], "--processes"))
            processes = true;
        else if (streq(argv[i], "--resume") && i + 1 < argc)
            resume = argv[++i];
        else if (streq(argv[i], "--slots") && i + 1 < argc) {
            if (hafl_cmd_parse_count("run", "--slots", argv[++i], 1024, &slots)) {
                free(overrides);
                return HAFL_EXIT_USAGE;
            }
        } else if (streq(argv[i], "--resume") || streq(argv[i], "--slots")) {
            fprintf(stderr, "hafl run: %s needs a value (%s)\n", argv[i],
                    streq(argv[i], "--resume") ? "the run folder to continue" : "a count");
            free(overrides);
            return HAFL_EXIT_USAGE;
        } else if (argv[i][0] == '-' || file) {
            fprintf(stderr, "hafl run: unexpected argument '%s'\n", argv[i]);
            s_usage(stderr);
            free(overrides);
            return HAFL_EXIT_USAGE;
        } else
            file = argv[i];
    }
    if (!file) {
        s_usage(stderr);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    hafl_topology_t *t = hafl_topology_load(file, overrides, n_overrides, &terr);
    if (!t) {
        fprintf(stderr, "%s\n", terr.text);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    char why[512];
    bool in_process = !processes && t->placement.mode == HAFL_PLACEMENT_INPROC;
    if (hafl_placement_check_limits(t, in_process, why, sizeof why)) {
        fprintf(stderr, "%s\n", why);
        hafl_topology_destroy(&t);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    int rc;
    if (processes || t->placement.mode != HAFL_PLACEMENT_INPROC)
        rc = s_run_processes(t, file, overrides, n_overrides, slots, resume);
    else {
        char err[1024], hex[65], reason[512];
        hafl_node_opts_t opts = {0};
        opts.topology = t;
        opts.resume = resume;
        opts.progress = stdout;
        opts.slots = slots;
        hafl_node_t *node = NULL;
        //  The checkpoint and every client's state are checked before anything starts.
        if (!resume || s_check_resume(t, resume, err, sizeof err) == 0)
            node = hafl_node_new(&opts, err, sizeof err);
        if (!node) {
            fprintf(stderr, "hafl run: %s\n", err);
            rc = HAFL_EXIT_FAILURE;
        } else {
            const hafl_endpoints_t *e = hafl_node_endpoints(node);
            s_blas_note();
            printf("run %s\nfolder %s\ncontrol %s\nevents %s\n", hafl_node_run_id(node),
                   hafl_node_run_dir(node), e->control, e->pub);
            fflush(stdout);
            int wrc = hafl_node_wait(node, hex, reason, sizeof reason);
            s_print_summary(hafl_node_run_dir(node));
            if (wrc)
                fprintf(stderr, "hafl run: %s\n", reason);
            if (hex[0])
                s_print_digest(hex, wrc == 0);
            s_print_timing(hafl_node_unreproducible(node));
            printf("run folder %s\n", hafl_node_run_dir(node));
            hafl_node_destroy(&node);
            rc = wrc ? HAFL_EXIT_FAILURE : HAFL_EXIT_OK;
        }
    }
    hafl_topology_destroy(&t);
    free(overrides);
    return rc;
}
