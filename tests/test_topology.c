/*  test_topology: the topology loader and the asset lookup.

    Every example topology loads; defaults, overrides (the fixed key paths among them) and tier
    resolution give the documented values; every file in tests/topologies/bad/ is rejected with
    the exact "FILE:LINE: KEY: " prefix its first line announces ("# expect: LINE: KEY");
    overrides report line 0; assets are found through $HAFL_ASSETS and a missing one names every
    place looked in; `hafl check` exits 0 on a good file and 2 with one stderr line on a bad one,
    also when run from outside any checkout with no asset reachable and downloads disabled.
    Needs HAFL_SOURCE_DIR and HAFL_BINARY (set by ctest).
*/
#include "hafl_asset.h"
#include "hafl_rng.h"
#include "hafl_test.h"
#include "hafl_topology.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_source[4096];
static char s_tmp[4096]; //  scratch folder, outside any checkout

static char *s_read(const char *path)
{
    FILE *file = fopen(path, "rb");
    CHECKF(file, "cannot open %s", path);
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    CHECK(buf);
    CHECK(fread(buf, 1, (size_t)size, file) == (size_t)size);
    buf[size] = '\0';
    fclose(file);
    return buf;
}

static void s_write(const char *path, const char *text)
{
    FILE *file = fopen(path, "wb");
    CHECKF(file, "cannot create %s", path);
    CHECK(fputs(text, file) >= 0);
    CHECK(fclose(file) == 0);
}

//  Loads `text` written to a scratch file; returns the topology or NULL with err.
static hafl_topology_t *s_load_text(const char *text, const char *const *overrides, size_t n,
                                    hafl_topology_error_t *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/inline.zpl", s_tmp);
    s_write(path, text);
    return hafl_topology_load(path, overrides, n, err);
}

//  Expects `text` + overrides to fail with "SCRATCH/inline.zpl:PREFIX".
static void s_expect_inline_error(const char *text, const char *const *overrides, size_t n,
                                  const char *prefix)
{
    hafl_topology_error_t err;
    hafl_topology_t *t = s_load_text(text, overrides, n, &err);
    CHECKF(!t, "expected an error %s", prefix);
    char want[4400];
    snprintf(want, sizeof want, "%s/inline.zpl:%s", s_tmp, prefix);
    CHECKF(strncmp(err.text, want, strlen(want)) == 0, "got '%s', want prefix '%s'", err.text,
           want);
    CHECKF(!strchr(err.text, '\n'), "error is not one line: %s", err.text);
}

static const char *S_SYNTH = "model\n    kind = synthetic\ndata\n    dataset = synthetic\n";

//  The shape every 20 Newsgroups federation of topologies/ shares: ten clients with rank
//  budgets 2,2,2,4,4,4,8,8,8,8, HAFL's freeze scheme and adaptive aggregation, on this model.
//  Rounds, steps and evaluation size are tuned to each job's time budget and may change; the
//  loader's handling of them is checked on the other files.
static void s_check_llama_federation(const hafl_topology_t *t, const char *checkpoint,
                                     const char *tokenizer)
{
    CHECK(strcmp(t->model.kind, "llama") == 0);
    CHECK(strstr(t->model.checkpoint, checkpoint));
    CHECK(strstr(t->model.tokenizer, tokenizer));
    CHECK(strstr(t->data.path, "20news-bydate.tar.gz"));
    CHECK(access(t->model.checkpoint, R_OK) == 0);
    CHECK(t->clients.count == 10);
    const uint32_t want[] = {2, 2, 2, 4, 4, 4, 8, 8, 8, 8};
    for (int c = 0; c < 10; c++)
        CHECK(t->clients.ranks[c] == want[c]);
    CHECK(strcmp(t->server.scheme, "freeze") == 0);
    CHECK(strcmp(t->server.aggregator, "adaptive") == 0);
    CHECK(t->server.rounds >= 1);
}

static void s_test_examples(void)
{
    const char *names[] = {"tiny", "smoke", "faults", "three-hosts", "quickstart", "byzantine"};
    for (int i = 0; i < 6; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/topologies/%s.zpl", s_source, names[i]);
        hafl_topology_error_t err;
        hafl_topology_t *t = hafl_topology_load(path, NULL, 0, &err);
        CHECKF(t, "%s: %s", path, err.text);
        CHECK(strcmp(t->name, names[i]) == 0);
        CHECK(strcmp(t->path, path) == 0);
        if (i == 0) //  the fast tests' model
            s_check_llama_federation(t, "stories260K.bin", "tok512.bin");
        if (i == 4) //  the main job
            s_check_llama_federation(t, "base3M.bin", "tok4096.bin");
        if (i == 1) {
            CHECK(strcmp(t->model.kind, "synthetic") == 0);
            CHECK(t->clients.count == 8);
            CHECK(t->faults.straggler_share == 0.25f);
            CHECK(t->faults.delay_dist == HAFL_DELAY_UNIFORM);
            CHECK(t->faults.delay_min_ms == 5 && t->faults.delay_max_ms == 50);
            CHECK(t->faults.dropout == 0.1f);
            CHECK(t->server.min_reports == 4 && t->server.deadline_ms == 5000);
        }
        if (i == 2) {
            CHECK(t->faults.straggler_share == 0.3f && t->faults.dropout == 0.2f);
            CHECK(t->faults.delay_dist == HAFL_DELAY_EXPONENTIAL);
        }
        if (i == 5) { //  smoke with a quarter of its clients byzantine, median aggregation
            CHECK(strcmp(t->model.kind, "synthetic") == 0 && t->clients.count == 8);
            CHECK(strcmp(t->server.aggregator, "median") == 0);
            CHECK(t->faults.byzantine == 0.25f && t->faults.byzantine_scale == 10.0f);
            CHECK(t->faults.byzantine_attack == HAFL_BYZANTINE_SCALE);
        }
        if (i == 3) {
            CHECK(t->placement.mode == HAFL_PLACEMENT_HOSTS);
            CHECK(strcmp(t->placement.transport, "tcp") == 0);
            CHECK(t->placement.n_hosts == 3);
            CHECK(strcmp(t->placement.hosts[0].name, "alpha") == 0);
            CHECK(strcmp(t->placement.hosts[0].address, "10.77.0.1") == 0);
            CHECK(t->placement.hosts[0].server && t->placement.hosts[0].evaluator);
            CHECK(t->placement.hosts[0].client_first > t->placement.hosts[0].client_last);
            CHECK(strcmp(t->placement.hosts[1].name, "beta") == 0);
            CHECK(t->placement.hosts[1].client_first == 0 &&
                  t->placement.hosts[1].client_last == 3);
            CHECK(!t->placement.hosts[1].server);
            CHECK(strcmp(t->placement.hosts[2].address, "10.77.0.3") == 0);
            CHECK(t->placement.hosts[2].client_first == 4 &&
                  t->placement.hosts[2].client_last == 7);
        }
        hafl_topology_destroy(&t);
        CHECK(t == NULL);
        hafl_topology_destroy(&t);
    }
}

//  Secure by default across hosts: three hosts over tcp without CURVE load only with
//  security/insecure said explicitly (three-hosts.zpl says it); without it the loader refuses,
//  naming security/curve.
static void s_test_insecure_hosts(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/topologies/three-hosts.zpl", s_source);
    const char *clear[] = {"security/insecure=false"};
    hafl_topology_error_t err;
    hafl_topology_t *t = hafl_topology_load(path, clear, 1, &err);
    CHECKF(!t && strstr(err.text, "security/curve: actors on 3 hosts over tcp without CURVE") &&
               strstr(err.text, "security/insecure = true"),
           "%s", t ? "loaded" : err.text);
    hafl_topology_destroy(&t);
    //  Several processes on one machine are not several hosts: no refusal.
    const char *local[] = {"placement/mode=processes", "placement/transport=tcp"};
    t = s_load_text(S_SYNTH, local, 2, &err);
    CHECKF(t, "%s", err.text);
    hafl_topology_destroy(&t);
}

static void s_test_defaults(void)
{
    hafl_topology_error_t err;
    //  An empty file is all defaults: a llama federation whose assets must be found.
    hafl_topology_t *t = s_load_text("# nothing\n", NULL, 0, &err);
    CHECKF(t, "%s", err.text);
    CHECK(strcmp(t->name, "inline") == 0);
    CHECK(t->seed == 1);
    CHECK(strcmp(t->model.kind, "llama") == 0);
    CHECK(strcmp(t->model.targets, "wq,wk,wv,wo") == 0);
    CHECK(t->model.rank == 8 && t->model.alpha == 16.0f);
    CHECK(t->model.dim == 32 && t->model.classes == 4);
    CHECK(strcmp(t->model.score, "sensitivity") == 0);
    CHECK(strcmp(t->data.dataset, "20news") == 0 && strcmp(t->data.split, "iid") == 0);
    CHECK(t->data.dirichlet_alpha == 0.5f && t->data.max_tokens == 128);
    CHECK(t->data.train_limit == 0 && t->data.test_limit == 0 && t->data.keep_empty);
    CHECK(t->data.train_size == 4096 && t->data.test_size == 1024);
    CHECK(t->server.rounds == 50 && t->server.participants == 0);
    CHECK(t->server.deadline_ms == 600000 && t->server.min_reports == 0);
    CHECK(t->server.join_timeout_ms == 3600000);
    CHECK(strcmp(t->server.scheme, "freeze") == 0);
    CHECK(strcmp(t->server.aggregator, "adaptive") == 0);
    CHECK(t->server.heartbeat_ms == 1000 && t->server.heartbeat_misses == 5);
    CHECK(*t->server.endpoint == '\0' && *t->server.control == '\0');
    CHECK(t->server.checkpoint_every == 1);
    CHECK(t->clients.count == 10);
    for (int c = 0; c < 10; c++)
        CHECK(t->clients.ranks[c] == 8);
    CHECK(t->clients.local_epochs == 1 && t->clients.local_steps == 0 && t->clients.batch == 8);
    CHECK(t->clients.lr == 0.001f && t->clients.weight_decay == 0.01f);
    CHECK(t->clients.threads == 1 && t->data.validation == 0);
    CHECK(t->faults.straggler_share == 0 && t->faults.delay_dist == HAFL_DELAY_UNIFORM);
    CHECK(t->faults.delay_min_ms == 0 && t->faults.delay_max_ms == 1000);
    CHECK(t->faults.dropout == 0 && t->faults.crash == 0 && t->faults.rejoin_rounds == 1);
    CHECK(t->server.trim == 0.2f && t->server.clip_norm == 0.0f);
    CHECK(t->faults.byzantine == 0.0f && t->faults.byzantine_attack == HAFL_BYZANTINE_SCALE);
    CHECK(t->faults.byzantine_scale == 10.0f);
    CHECK(t->evaluator.enabled && t->evaluator.max_examples == 0 && !t->evaluator.client_start);
    CHECK(strcmp(t->logger.run_dir, "runs") == 0 && !t->logger.echo);
    CHECK(*t->logger.pull == '\0' && *t->logger.pub == '\0');
    CHECK(t->placement.mode == HAFL_PLACEMENT_INPROC);
    CHECK(strcmp(t->placement.transport, "ipc") == 0 && t->placement.base_port == 5670);
    CHECK(t->placement.n_hosts == 0 && t->placement.hosts == NULL);
    CHECK(!t->security.curve && *t->security.server_cert == '\0');
    hafl_topology_destroy(&t);

    //  The printout holds one line per key, every key of README.md among them.
    t = s_load_text(S_SYNTH, NULL, 0, &err);
    CHECKF(t, "%s", err.text);
    char out_path[4200];
    snprintf(out_path, sizeof out_path, "%s/print.txt", s_tmp);
    FILE *out = fopen(out_path, "w");
    CHECK(out);
    hafl_topology_print(t, out);
    fclose(out);
    hafl_topology_destroy(&t);
    char *printed = s_read(out_path);
    const char *lines[] = {"seed = 1\n",
                           "model/kind = synthetic\n",
                           "model/rank = 8\n",
                           "model/alpha = 16\n",
                           "clients/ranks = 8,8,8,8,8,8,8,8,8,8\n",
                           "clients/lr = 0.001\n",
                           "faults/stragglers/delay = uniform\n",
                           "placement/mode = inproc\n",
                           "clients/threads = 1\n",
                           "data/validation = 0\n",
                           "server/max_samples = 0\n",
                           "server/trim = 0.2\n",
                           "server/clip_norm = 0\n",
                           "faults/byzantine = 0\n",
                           "faults/byzantine_attack = scale\n",
                           "faults/byzantine_scale = 10\n",
                           "server/endpoint = \"\"\n",
                           "security/client_cert = \"\"\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        CHECKF(strstr(printed, lines[i]), "printout lacks %s", lines[i]);
    size_t n_lines = 0;
    for (char *c = printed; *c; c++)
        n_lines += *c == '\n';
    CHECKF(n_lines == 71, "%zu lines printed", n_lines);
    free(printed);
}

static void s_test_overrides(void)
{
    hafl_topology_error_t err;
    const char *fixed[] = {"seed=99",         "model/rank=16",          "model/alpha=8",
                           "server/rounds=3", "server/scheme=truncate", "server/aggregator=zeropad",
                           "clients/count=4", "clients/ranks=1,2,3,16"};
    hafl_topology_t *t = s_load_text(S_SYNTH, fixed, 8, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->seed == 99 && t->model.rank == 16 && t->model.alpha == 8.0f);
    CHECK(t->server.rounds == 3);
    CHECK(strcmp(t->server.scheme, "truncate") == 0);
    CHECK(strcmp(t->server.aggregator, "zeropad") == 0);
    CHECK(t->clients.count == 4);
    CHECK(t->clients.ranks[0] == 1 && t->clients.ranks[1] == 2 && t->clients.ranks[2] == 3 &&
          t->clients.ranks[3] == 16);
    hafl_topology_destroy(&t);

    //  Any other key too, also inside sections the file lacks; a later override wins.
    const char *other[] = {"faults/stragglers/share=0.5",
                           "placement/base_port=6000",
                           "logger/echo=true",
                           "server/rounds=7",
                           "server/rounds=9",
                           "server/join_timeout_ms=0"};
    t = s_load_text(S_SYNTH, other, 6, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->faults.straggler_share == 0.5f && t->placement.base_port == 6000);
    CHECK(t->logger.echo && t->server.rounds == 9);
    CHECK(t->server.join_timeout_ms == 0); //  0: wait forever
    hafl_topology_destroy(&t);

    //  A single rank applies to every client; an override of clients/ranks replaces tiers.
    const char *one[] = {"clients/ranks=4"};
    t = s_load_text("model\n    kind = synthetic\ndata\n    dataset = synthetic\nclients\n"
                    "    count = 3\n    tiers\n        a\n            rank = 2\n"
                    "            share = 1\n",
                    one, 1, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->clients.ranks[0] == 4 && t->clients.ranks[1] == 4 && t->clients.ranks[2] == 4);
    hafl_topology_destroy(&t);

    //  Bad overrides report line 0, even for a key the file has on another line.
    const char *bad_rank[] = {"model/rank=0"};
    s_expect_inline_error(
        "model\n    kind = synthetic\n    rank = 8\ndata\n    dataset = synthetic\n", bad_rank, 1,
        "0: model/rank: ");
    const char *bad_key[] = {"server/roundz=3"};
    s_expect_inline_error(S_SYNTH, bad_key, 1, "0: server/roundz: unknown key");
    const char *no_eq[] = {"server/rounds"};
    s_expect_inline_error(S_SYNTH, no_eq, 1, "0: server/rounds: ");
    const char *bad_path[] = {"server//rounds=3"};
    s_expect_inline_error(S_SYNTH, bad_path, 1, "0: server//rounds: ");
    const char *section[] = {"model=big"};
    s_expect_inline_error(S_SYNTH, section, 1, "0: model: ");
    const char *count[] = {"clients/count=5", "clients/ranks=2,2"};
    s_expect_inline_error(S_SYNTH, count, 2, "0: clients/ranks: lists 2 rank budgets");
    const char *agg[] = {"server/aggregator=fedavg", "clients/count=2", "clients/ranks=2,4"};
    s_expect_inline_error(S_SYNTH, agg, 3, "0: server/aggregator: fedavg needs equal");
    //  clients/threads: worker threads per trainer, 1..256, from the file or an override;
    //  0 and 257 are refused naming the key (and the file's line for the file form).
    const char *threads_ok[] = {"clients/threads=256"};
    t = s_load_text(S_SYNTH, threads_ok, 1, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->clients.threads == 256);
    hafl_topology_destroy(&t);
    t = s_load_text("model\n    kind = synthetic\ndata\n    dataset = synthetic\nclients\n"
                    "    threads = 2\n",
                    NULL, 0, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->clients.threads == 2);
    hafl_topology_destroy(&t);
    const char *threads_zero[] = {"clients/threads=0"};
    s_expect_inline_error(S_SYNTH, threads_zero, 1, "0: clients/threads: 0 is out of range 1..256");
    const char *threads_over[] = {"clients/threads=257"};
    s_expect_inline_error(S_SYNTH, threads_over, 1,
                          "0: clients/threads: 257 is out of range 1..256");
    s_expect_inline_error("model\n    kind = synthetic\ndata\n    dataset = synthetic\n"
                          "clients\n    threads = 0\n",
                          NULL, 0, "6: clients/threads: ");
    //  data/validation: a count of training documents, checked against the corpus by the task.
    const char *validation[] = {"data/validation=500"};
    t = s_load_text(S_SYNTH, validation, 1, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->data.validation == 500);
    hafl_topology_destroy(&t);
    const char *validation_neg[] = {"data/validation=-1"};
    s_expect_inline_error(S_SYNTH, validation_neg, 1, "0: data/validation: ");
    const char *fedavg_ok[] = {"server/aggregator=fedavg", "clients/count=2", "clients/ranks=2,2"};
    t = s_load_text(S_SYNTH, fedavg_ok, 3, &err);
    CHECKF(t, "%s", err.text);
    hafl_topology_destroy(&t);

    //  Collecting --set from a command line, in both spellings, leaving the rest in order.
    char a0[] = "run", a1[] = "--set", a2[] = "seed=5", a3[] = "file.zpl",
         a4[] = "--set=server/rounds=2", a5[] = "--processes";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    int argc = 6;
    const char **list = NULL;
    size_t n = 0;
    CHECK(hafl_topology_take_overrides(&argc, argv, &list, &n, &err) == 0);
    CHECK(argc == 3 && strcmp(argv[1], "file.zpl") == 0 && strcmp(argv[2], "--processes") == 0);
    CHECK(argv[3] == NULL);
    CHECK(n == 2 && strcmp(list[0], "seed=5") == 0 && strcmp(list[1], "server/rounds=2") == 0);
    free(list);
    char b0[] = "run", b1[] = "--set";
    char *argv2[] = {b0, b1, NULL};
    argc = 2;
    CHECK(hafl_topology_take_overrides(&argc, argv2, &list, &n, &err) == -1);
    CHECK(strstr(err.text, "--set"));
}

static void s_check_ranks(const char *text, const uint32_t *want, uint32_t n)
{
    hafl_topology_error_t err;
    hafl_topology_t *t = s_load_text(text, NULL, 0, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->clients.count == n);
    for (uint32_t c = 0; c < n; c++)
        CHECKF(t->clients.ranks[c] == want[c], "client %u has %u, want %u", c, t->clients.ranks[c],
               want[c]);
    hafl_topology_destroy(&t);
}

static void s_test_tiers(void)
{
    //  README's example: 10 clients split 4 + 6; with 7, 2.8 and 4.2 round to 3 + 4.
    const char *base = "model\n    kind = synthetic\ndata\n    dataset = synthetic\nclients\n"
                       "    count = %u\n    tiers\n        small\n            rank = 2\n"
                       "            share = 0.4\n        large\n            rank = 8\n"
                       "            share = 0.6\n";
    char text[1024];
    snprintf(text, sizeof text, base, 10u);
    s_check_ranks(text, (const uint32_t[]){8, 8, 8, 8, 8, 8, 2, 2, 2, 2}, 10);
    snprintf(text, sizeof text, base, 7u);
    s_check_ranks(text, (const uint32_t[]){8, 8, 8, 8, 2, 2, 2}, 7);
    //  Equal remainders: the leftover client goes to the tier given first (a, not b); then
    //  ranks order the tiers, largest first.
    s_check_ranks("model\n    kind = synthetic\ndata\n    dataset = synthetic\nclients\n"
                  "    count = 3\n    tiers\n        a\n            rank = 4\n"
                  "            share = 0.5\n        b\n            rank = 8\n"
                  "            share = 0.5\n",
                  (const uint32_t[]){8, 4, 4}, 3);
    //  faults.zpl's tiers (0.4, 0.3, 0.3 of 10).
    char path[4200];
    snprintf(path, sizeof path, "%s/topologies/faults.zpl", s_source);
    hafl_topology_error_t err;
    hafl_topology_t *t = hafl_topology_load(path, NULL, 0, &err);
    CHECKF(t, "%s", err.text);
    const uint32_t want[] = {8, 8, 8, 4, 4, 4, 2, 2, 2, 2};
    for (int c = 0; c < 10; c++)
        CHECK(t->clients.ranks[c] == want[c]);
    hafl_topology_destroy(&t);
    //  A share of 1 with one client per tier rounding to nothing is still a valid federation.
    s_check_ranks("model\n    kind = synthetic\ndata\n    dataset = synthetic\nclients\n"
                  "    count = 1\n    tiers\n        big\n            rank = 8\n"
                  "            share = 0.9\n        tiny\n            rank = 1\n"
                  "            share = 0.1\n",
                  (const uint32_t[]){8}, 1);
}

//  The bounded-influence keys: the robust strategies with heterogeneous budgets, server/trim
//  in [0, 0.5), server/clip_norm >= 0, faults/byzantine a share with one of three attacks and
//  a positive scale; each bad value refused naming its key and line (0 for an override).
static void s_test_robust_keys(void)
{
    hafl_topology_error_t err;
    const char *robust[] = {"server/aggregator=median",
                            "clients/count=4",
                            "clients/ranks=1,2,4,8",
                            "server/trim=0.45",
                            "server/clip_norm=2.5",
                            "faults/byzantine=0.25",
                            "faults/byzantine_attack=sign-flip",
                            "faults/byzantine_scale=3"};
    hafl_topology_t *t = s_load_text(S_SYNTH, robust, 8, &err);
    CHECKF(t, "%s", err.text);
    CHECK(strcmp(t->server.aggregator, "median") == 0);
    CHECK(t->server.trim == 0.45f && t->server.clip_norm == 2.5f);
    CHECK(t->faults.byzantine == 0.25f && t->faults.byzantine_attack == HAFL_BYZANTINE_SIGN_FLIP);
    CHECK(t->faults.byzantine_scale == 3.0f);
    char why[256];
    CHECK(hafl_topology_strategy_fits(t, "median", why, sizeof why) == 0);
    CHECK(hafl_topology_strategy_fits(t, "trimmed-mean", why, sizeof why) == 0);
    CHECK(hafl_topology_strategy_fits(t, "fedavg", why, sizeof why) == -1);
    hafl_topology_destroy(&t);
    const char *trimmed[] = {"server/aggregator=trimmed-mean", "server/trim=0",
                             "faults/byzantine_attack=noise"};
    t = s_load_text(S_SYNTH, trimmed, 3, &err);
    CHECKF(t, "%s", err.text);
    CHECK(strcmp(t->server.aggregator, "trimmed-mean") == 0 && t->server.trim == 0.0f);
    CHECK(t->faults.byzantine_attack == HAFL_BYZANTINE_NOISE);
    hafl_topology_destroy(&t);

    const char *half[] = {"server/trim=0.5"};
    s_expect_inline_error(S_SYNTH, half, 1, "0: server/trim: 0.5 is out of range (must be < 0.5)");
    const char *negative_trim[] = {"server/trim=-0.1"};
    s_expect_inline_error(S_SYNTH, negative_trim, 1, "0: server/trim: -0.1 is out of range");
    const char *word_trim[] = {"server/trim=fifth"};
    s_expect_inline_error(S_SYNTH, word_trim, 1, "0: server/trim: 'fifth' is not a finite number");
    const char *negative_clip[] = {"server/clip_norm=-1"};
    s_expect_inline_error(S_SYNTH, negative_clip, 1, "0: server/clip_norm: -1 is out of range");
    const char *nan_clip[] = {"server/clip_norm=nan"};
    s_expect_inline_error(S_SYNTH, nan_clip, 1, "0: server/clip_norm: 'nan' is not a finite");
    const char *share[] = {"faults/byzantine=1.5"};
    s_expect_inline_error(S_SYNTH, share, 1, "0: faults/byzantine: 1.5 is out of range");
    const char *attack[] = {"faults/byzantine_attack=flip"};
    s_expect_inline_error(S_SYNTH, attack, 1,
                          "0: faults/byzantine_attack: unknown value 'flip' (one of: "
                          "scale|sign-flip|noise)");
    const char *zero_scale[] = {"faults/byzantine_scale=0"};
    s_expect_inline_error(S_SYNTH, zero_scale, 1,
                          "0: faults/byzantine_scale: 0 is out of range (must be > 0)");
    const char *unknown[] = {"server/aggregator=krum"};
    s_expect_inline_error(S_SYNTH, unknown, 1, "0: server/aggregator: unknown value 'krum'");
    //  In the file, the key's own line.
    s_expect_inline_error("model\n    kind = synthetic\ndata\n    dataset = synthetic\n"
                          "server\n    aggregator = trimmed-mean\n    trim = 0.75\n",
                          NULL, 0, "7: server/trim: ");
    s_expect_inline_error("model\n    kind = synthetic\ndata\n    dataset = synthetic\n"
                          "faults\n    byzantine = 0.2\n    byzantine_scale = -2\n",
                          NULL, 0, "7: faults/byzantine_scale: ");
}

//  Each file in tests/topologies/bad/ opens with "# expect: LINE: KEY".
static int s_test_bad_files(void)
{
    char dir_path[4200];
    snprintf(dir_path, sizeof dir_path, "%s/tests/topologies/bad", s_source);
    DIR *dir = opendir(dir_path);
    CHECKF(dir, "cannot open %s", dir_path);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        size_t len = strlen(entry->d_name);
        if (len < 5 || strcmp(entry->d_name + len - 4, ".zpl") != 0)
            continue;
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", dir_path, entry->d_name);
        char *text = s_read(path);
        CHECKF(strncmp(text, "# expect: ", 10) == 0, "%s lacks its # expect: line", path);
        char *eol = strchr(text, '\n');
        CHECK(eol);
        *eol = '\0';
        char want[5000];
        snprintf(want, sizeof want, "%s:%s: ", path, text + 10);
        free(text);
        hafl_topology_error_t err;
        hafl_topology_t *t = hafl_topology_load(path, NULL, 0, &err);
        CHECKF(!t, "%s loaded", path);
        CHECKF(strncmp(err.text, want, strlen(want)) == 0, "got '%s', want prefix '%s'", err.text,
               want);
        CHECKF(!strchr(err.text, '\n'), "error is not one line: %s", err.text);
        count++;
    }
    closedir(dir);
    return count;
}

static void s_test_file_errors(void)
{
    hafl_topology_error_t err;
    char path[4200];
    snprintf(path, sizeof path, "%s/no-such.zpl", s_tmp);
    CHECK(!hafl_topology_load(path, NULL, 0, &err));
    char want[4400];
    snprintf(want, sizeof want, "%s:0: (file): ", path);
    CHECKF(strncmp(err.text, want, strlen(want)) == 0, "%s", err.text);
    CHECK(!hafl_topology_load(NULL, NULL, 0, &err));
    //  NUL bytes and carriage returns are refused with their line.
    snprintf(path, sizeof path, "%s/nul.zpl", s_tmp);
    FILE *file = fopen(path, "wb");
    CHECK(file);
    fwrite("seed = 1\nmodel\0\n", 1, 16, file);
    fclose(file);
    CHECK(!hafl_topology_load(path, NULL, 0, &err));
    snprintf(want, sizeof want, "%s:2: (syntax): ", path);
    CHECKF(strncmp(err.text, want, strlen(want)) == 0, "%s", err.text);
    s_expect_inline_error("seed = 1\r\n", NULL, 0, "1: (syntax): ");
    //  Comments, blank lines and quoted values with '#' are fine.
    hafl_topology_t *t = s_load_text("# c\n\nseed = 4   # c\nmodel\n    kind = 'synthetic'\n"
                                     "    targets = \"wq, wv\"\n\ndata\n    dataset = synthetic\n"
                                     "logger\n    run_dir = \"out#1\"\n",
                                     NULL, 0, &err);
    CHECKF(t, "%s", err.text);
    CHECK(t->seed == 4 && strcmp(t->model.targets, "wq,wv") == 0);
    CHECK(strcmp(t->logger.run_dir, "out#1") == 0);
    hafl_topology_destroy(&t);
}

//  Seeded random mutations of the example files (bytes flipped, inserted, deleted, lines
//  duplicated) never crash the loader; each either loads or fails with one line that starts
//  with the file name, and the line scanner catches every syntax error before zconfig does.
static void s_test_mutations(void)
{
    const char *names[] = {"smoke", "three-hosts", "faults"};
    const char alphabet[] = " \n\t=#\"'-/,.:0123456789abcdez\r\x01\xff";
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 2024, 0x70706f, 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/mutant.zpl", s_tmp);
    for (int f = 0; f < 3; f++) {
        char source[4200];
        snprintf(source, sizeof source, "%s/topologies/%s.zpl", s_source, names[f]);
        char *original = s_read(source);
        size_t len = strlen(original);
        for (int round = 0; round < 700; round++) {
            char *text = malloc(2 * len + 64);
            CHECK(text);
            memcpy(text, original, len + 1);
            size_t n = len;
            int edits = 1 + (int)hafl_rng_below(&rng, 4);
            for (int e = 0; e < edits && n > 0; e++) {
                size_t at = (size_t)hafl_rng_below(&rng, n);
                char c = alphabet[hafl_rng_below(&rng, sizeof alphabet - 1)];
                switch (hafl_rng_below(&rng, 3)) {
                case 0:
                    text[at] = c;
                    break;
                case 1:
                    memmove(text + at + 1, text + at, n - at + 1);
                    text[at] = c;
                    n++;
                    break;
                default:
                    memmove(text + at, text + at + 1, n - at);
                    n--;
                }
            }
            FILE *file = fopen(path, "wb");
            CHECK(file);
            CHECK(fwrite(text, 1, n, file) == n);
            CHECK(fclose(file) == 0);
            hafl_topology_error_t err;
            hafl_topology_t *t = hafl_topology_load(path, NULL, 0, &err);
            if (t)
                hafl_topology_destroy(&t);
            else {
                CHECKF(strncmp(err.text, path, strlen(path)) == 0 && err.text[strlen(path)] == ':',
                       "%s", err.text);
                CHECKF(!strchr(err.text, '\n'), "%s", err.text);
                CHECKF(!strstr(err.text, "zconfig could not parse"), "scanner missed: %s in\n%s",
                       err.text, text);
            }
            free(text);
        }
        free(original);
    }
    //  Control characters in an override value do not break the one-line error.
    const char *weird[] = {"server/rounds=5\n6"};
    s_expect_inline_error(S_SYNTH, weird, 1, "0: server/rounds: '5?6' is not a whole number");
}

static void s_test_assets(void)
{
    char assets[4200], home[4200], file[4400];
    snprintf(assets, sizeof assets, "%s/assets", s_tmp);
    snprintf(home, sizeof home, "%s/home", s_tmp);
    CHECK(mkdir(assets, 0755) == 0 && mkdir(home, 0755) == 0);
    snprintf(file, sizeof file, "%s/my-model.bin", assets);
    s_write(file, "weights");
    setenv("HAFL_ASSETS", assets, 1);
    setenv("HOME", home, 1);
    setenv("HAFL_OFFLINE", "1", 1);
    char err[1024];
    char *found = hafl_asset_find("my-model.bin", err, sizeof err);
    CHECKF(found && strcmp(found, file) == 0, "%s", found ? found : err);
    free(found);
    //  A path is used as given.
    found = hafl_asset_find(file, err, sizeof err);
    CHECK(found && strcmp(found, file) == 0);
    free(found);
    //  ~/.cache/hafl comes after $HAFL_ASSETS.
    char cache[4400], cached[4600];
    snprintf(cache, sizeof cache, "%s/.cache", home);
    CHECK(mkdir(cache, 0755) == 0);
    snprintf(cache, sizeof cache, "%s/.cache/hafl", home);
    CHECK(mkdir(cache, 0755) == 0);
    snprintf(cached, sizeof cached, "%s/cached.bin", cache);
    s_write(cached, "x");
    found = hafl_asset_find("cached.bin", err, sizeof err);
    CHECKF(found && strcmp(found, cached) == 0, "%s", found ? found : err);
    free(found);

    //  Missing: one line naming the file and every place.
    CHECK(!hafl_asset_find("nowhere.bin", err, sizeof err));
    CHECKF(strncmp(err, "nowhere.bin: not found in $HAFL_ASSETS (", 40) == 0, "%s", err);
    CHECKF(strstr(err, assets) && strstr(err, "../shared/assets beside the checkout") &&
               strstr(err, cache) && strstr(err, "not a known asset"),
           "%s", err);
    CHECK(!strchr(err, '\n'));
    snprintf(file, sizeof file, "%s/none/x.bin", s_tmp);
    CHECK(!hafl_asset_find(file, err, sizeof err));
    CHECK(strstr(err, file));
    CHECK(!hafl_asset_find("", err, sizeof err));
    //  The loader reports a missing asset against its key.
    const char *over[] = {"model/tokenizer=nowhere.bin"};
    s_expect_inline_error("model\n    kind = llama\n", over, 1,
                          "0: model/tokenizer: nowhere.bin: not found in");
    //  An empty model/tokenizer is the GGUF checkpoint's own, and refused for a llama2.c file.
    snprintf(file, sizeof file, "%s/own.gguf", assets);
    s_write(file, "GGUF and the rest");
    const char *own[] = {"model/checkpoint=own.gguf", "model/tokenizer=", "data/path=my-model.bin"};
    hafl_topology_error_t terr;
    hafl_topology_t *t = s_load_text("model\n    kind = llama\n    tokenizer = tok512.bin\n", own,
                                     3, &terr);
    CHECKF(t, "%s", terr.text);
    CHECK(strcmp(t->model.tokenizer, file) == 0 && strcmp(t->model.checkpoint, file) == 0);
    hafl_topology_destroy(&t);
    const char *plain[] = {"model/checkpoint=my-model.bin", "model/tokenizer="};
    s_expect_inline_error("model\n    kind = llama\n", plain, 2,
                          "0: model/tokenizer: empty means the checkpoint's own tokenizer, but ");
    unsetenv("HAFL_ASSETS");
}

//  Runs `binary check ARGS` in `cwd` with stdout and stderr to files; returns the exit status.
static int s_run_check(const char *binary, const char *cwd, const char *topology,
                       const char *out_path, const char *err_path)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || errfd < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0 || chdir(cwd) != 0)
            _exit(127);
        execl(binary, binary, "check", topology, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status), "hafl check did not exit normally");
    return WEXITSTATUS(status);
}

static void s_test_command(void)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary, "HAFL_BINARY is not set");
    char topology[4200], out_path[4200], err_path[4200];
    snprintf(out_path, sizeof out_path, "%s/out.txt", s_tmp);
    snprintf(err_path, sizeof err_path, "%s/err.txt", s_tmp);

    snprintf(topology, sizeof topology, "%s/topologies/smoke.zpl", s_source);
    CHECK(s_run_check(binary, s_tmp, topology, out_path, err_path) == 0);
    char *out = s_read(out_path);
    CHECK(strstr(out, "clients/ranks = 1,2,2,4,4,8,8,8\n"));
    free(out);

    snprintf(topology, sizeof topology, "%s/tests/topologies/bad/rank-above-R.zpl", s_source);
    CHECK(s_run_check(binary, s_tmp, topology, out_path, err_path) == 2);
    char *text = s_read(err_path);
    char want[9000];
    snprintf(want, sizeof want, "%s:9: clients/ranks: ", topology);
    CHECKF(strncmp(text, want, strlen(want)) == 0, "%s", text);
    char *eol = strchr(text, '\n');
    CHECKF(eol && eol[1] == '\0', "stderr is not exactly one line: %s", text);
    free(text);

    //  From outside any checkout, with no asset anywhere and downloads off, stories260K fails
    //  with one line that names every place looked in.
    char copy[4200], empty[4200];
    snprintf(copy, sizeof copy, "%s/hafl", s_tmp);
    snprintf(empty, sizeof empty, "%s/empty", s_tmp);
    CHECK(mkdir(empty, 0755) == 0);
    {
        FILE *in = fopen(binary, "rb");
        CHECK(in);
        FILE *dst = fopen(copy, "wb");
        CHECK(dst);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            CHECK(fwrite(buf, 1, n, dst) == n);
        fclose(in);
        CHECK(fclose(dst) == 0);
        CHECK(chmod(copy, 0755) == 0);
    }
    setenv("HAFL_ASSETS", empty, 1);
    setenv("HAFL_OFFLINE", "1", 1);
    snprintf(topology, sizeof topology, "%s/topologies/tiny.zpl", s_source);
    CHECK(s_run_check(copy, s_tmp, topology, out_path, err_path) == 2);
    text = s_read(err_path);
    //  The line of `checkpoint =` in tiny.zpl (its comments may grow).
    int checkpoint_line = 0;
    {
        char *zpl = s_read(topology);
        int line = 1;
        for (char *p = zpl; *p && !checkpoint_line; line++) {
            char *end = strchr(p, '\n');
            if (strncmp(p + strspn(p, " "), "checkpoint", 10) == 0)
                checkpoint_line = line;
            p = end ? end + 1 : p + strlen(p);
        }
        free(zpl);
    }
    CHECK(checkpoint_line > 0);
    snprintf(want, sizeof want,
             "%s:%d: model/checkpoint: stories260K.bin: not found in $HAFL_ASSETS (%s), "
             "../shared/assets beside the checkout (no checkout found), ~/.cache/hafl (",
             topology, checkpoint_line, empty);
    CHECKF(strncmp(text, want, strlen(want)) == 0, "got %s want %s", text, want);
    CHECKF(strstr(text, "downloads disabled by HAFL_OFFLINE\n"), "%s", text);
    eol = strchr(text, '\n');
    CHECK(eol && eol[1] == '\0');
    free(text);
    unsetenv("HAFL_ASSETS");
}

//  rm -r of the scratch folder (it holds only what this test wrote).
static void s_remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
                continue;
            char child[4400];
            snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
            s_remove_tree(child);
        }
        closedir(dir);
        rmdir(path);
    } else
        unlink(path);
}

static void s_cleanup(void)
{
    s_remove_tree(s_tmp);
}

int main(void)
{
    const char *source = getenv("HAFL_SOURCE_DIR");
    CHECKF(source, "HAFL_SOURCE_DIR is not set");
    snprintf(s_source, sizeof s_source, "%s", source);
    const char *tmpdir = getenv("TMPDIR");
    snprintf(s_tmp, sizeof s_tmp, "%s/hafl-topology-XXXXXX", tmpdir && *tmpdir ? tmpdir : P_tmpdir);
    CHECK(mkdtemp(s_tmp));
    atexit(s_cleanup); //  also when a CHECK fails

    s_test_examples();
    s_test_insecure_hosts();
    s_test_defaults();
    s_test_overrides();
    s_test_robust_keys();
    s_test_tiers();
    int bad = s_test_bad_files();
    CHECKF(bad >= 20, "only %d malformed topologies", bad);
    s_test_file_errors();
    s_test_mutations();
    s_test_assets();
    s_test_command();

    printf("topology: ok (%d malformed topologies rejected with file:line:key)\n", bad);
    return 0;
}
