/*  test_eval: `hafl eval` end to end on stories260K and 20 Newsgroups.

    A small topology written to a scratch folder (16 tokens a document, a 200-document test
    subset) gives the task, built in-process for its layout; an adapter of that layout with a
    non-zero B is saved beside it, so the scores depend on the LoRA path as well as the head.
    Checks: --examples 40 prints one JSON line with examples 40, the adapter's digest and the
    accuracy and loss the task computes in-process; --docs naming 0, 5, 7 scores 3 documents,
    as the task does; the same documents in two orders (with comments and blank lines) score
    identically, bit for bit in-process; every test document listed scores exactly like
    --examples 0 with data/test_limit=0; with data/validation the held-out set is the draw and
    training documents outside it are refused. Bad input exits 2 (a malformed, negative, empty
    or missing list; --docs with --examples) or 1 (a document the task does not hold; an adapter
    of another rank or scale, missing or truncated), with one stderr line naming the file at
    fault, and the line for a malformed entry. Skips (77) without the assets; $HAFL_BINARY (set
    by ctest) is the binary under test.
*/
#include "hafl_adapter.h"
#include "hafl_asset.h"
#include "hafl_task.h"
#include "hafl_test.h"
#include "hafl_topology.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_TEST_DOCS 7532 //  documents in 20news-bydate-test

static char s_tmp[4096]; //  scratch folder
static const char *s_binary;

static int s_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void s_cleanup(void)
{
    if (s_tmp[0])
        nftw(s_tmp, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

//  s_tmp/rel into path.
static void s_path(char *path, size_t len, const char *rel)
{
    snprintf(path, len, "%s/%s", s_tmp, rel);
}

static char *s_read(const char *path, size_t *len)
{
    FILE *file = fopen(path, "rb");
    CHECKF(file, "cannot open %s", path);
    CHECK(fseek(file, 0, SEEK_END) == 0);
    long size = ftell(file);
    CHECK(size >= 0 && fseek(file, 0, SEEK_SET) == 0);
    char *data = malloc((size_t)size + 1);
    CHECK(data);
    CHECK(fread(data, 1, (size_t)size, file) == (size_t)size);
    fclose(file);
    data[size] = '\0';
    if (len)
        *len = (size_t)size;
    return data;
}

static void s_write(const char *path, const void *data, size_t len)
{
    FILE *file = fopen(path, "wb");
    CHECKF(file, "cannot create %s", path);
    CHECK(fwrite(data, 1, len, file) == len);
    CHECK(fclose(file) == 0);
}

static void s_write_text(const char *path, const char *text)
{
    s_write(path, text, strlen(text));
}

typedef struct {
    int status; //  exit status
    char *out;  //  stdout, NUL-terminated
    char *err;  //  stderr, NUL-terminated
} s_run_t;

//  Runs `hafl eval ARGS` (args NULL-terminated) with downloads off; a crash fails the test.
static s_run_t s_eval(const char *const *args)
{
    char out_path[4200], err_path[4200];
    s_path(out_path, sizeof out_path, "stdout.txt");
    s_path(err_path, sizeof err_path, "stderr.txt");
    const char *argv[32] = {"hafl", "eval"};
    int argc = 2;
    for (; args[argc - 2]; argc++) {
        CHECK(argc < 31);
        argv[argc] = args[argc - 2];
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!freopen(out_path, "w", stdout) || !freopen(err_path, "w", stderr) ||
            setenv("HAFL_OFFLINE", "1", 1) != 0)
            _exit(127);
        execv(s_binary, (char *const *)argv);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status), "hafl eval %s %s ... did not exit normally (signal %d)", args[0],
           args[1], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    s_run_t run = {WEXITSTATUS(status), s_read(out_path, NULL), s_read(err_path, NULL)};
    CHECKF(run.status != 127, "could not run %s", s_binary);
    return run;
}

static void s_run_free(s_run_t *run)
{
    free(run->out);
    free(run->err);
}

static void s_one_line(const char *text, const char *what)
{
    const char *eol = strchr(text, '\n');
    CHECKF(eol && eol[1] == '\0', "%s is not exactly one line: '%s'", what, text);
}

//  The number after "KEY": in the JSON line.
static double s_number(const char *json, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(json, pattern);
    CHECKF(at, "no %s in '%s'", key, json);
    at += strlen(pattern);
    char *end;
    double value = strtod(at, &end);
    CHECKF(end != at && (*end == ',' || *end == '}'), "bad %s in '%s'", key, json);
    return value;
}

typedef struct {
    double accuracy, loss, examples;
} s_score_t;

//  Runs a scoring that must succeed: exit 0, nothing on stderr, one JSON line naming the adapter
//  and its digest.
static s_score_t s_score(const char *const *args, const char *adapter_path, const char *hex)
{
    s_run_t run = s_eval(args);
    CHECKF(run.status == 0, "exit %d: %s", run.status, run.err);
    CHECKF(run.err[0] == '\0', "stderr: %s", run.err);
    s_one_line(run.out, "stdout");
    char want[4400];
    snprintf(want, sizeof want, "{\"adapter\": \"%s\", \"sha256\": \"%s\", ", adapter_path, hex);
    CHECKF(strncmp(run.out, want, strlen(want)) == 0, "'%s' does not start '%s'", run.out, want);
    s_score_t score = {s_number(run.out, "accuracy"), s_number(run.out, "loss"),
                       s_number(run.out, "examples")};
    CHECK(s_number(run.out, "wall_ms") >= 0);
    CHECKF(score.accuracy >= 0.0 && score.accuracy <= 1.0, "%s", run.out);
    CHECKF(isfinite(score.loss) && score.loss > 0.0, "%s", run.out);
    s_run_free(&run);
    return score;
}

//  Runs a call that must fail with `status`, printing nothing on stdout and one stderr line that
//  holds every string of `needles` (NULL-terminated).
static void s_refused(const char *const *args, int status, const char *const *needles)
{
    s_run_t run = s_eval(args);
    CHECKF(run.status == status, "exit %d, want %d: %s", run.status, status, run.err);
    CHECKF(run.out[0] == '\0', "stdout: %s", run.out);
    s_one_line(run.err, "stderr");
    for (int i = 0; needles[i]; i++)
        CHECKF(strstr(run.err, needles[i]), "stderr lacks '%s': %s", needles[i], run.err);
    s_run_free(&run);
}

//  The printed figures are the task's, rounded to 6 decimals.
static void s_same_as_task(s_score_t cli, const hafl_eval_stats_t *task)
{
    CHECKF(cli.examples == (double)task->examples, "%g examples, task %llu", cli.examples,
           (unsigned long long)task->examples);
    CHECKF(fabs(cli.accuracy - task->accuracy) < 1e-6, "accuracy %.6f, task %.6f", cli.accuracy,
           (double)task->accuracy);
    CHECKF(fabs(cli.loss - task->loss) < 1e-5, "loss %.6f, task %.6f", cli.loss,
           (double)task->loss);
}

int main(void)
{
    s_binary = getenv("HAFL_BINARY");
    CHECKF(s_binary && *s_binary, "HAFL_BINARY is not set (run through ctest)");
    char err[512];
    const char *assets[] = {"stories260K.bin", "tok512.bin", "20news-bydate.tar.gz"};
    for (int i = 0; i < 3; i++) {
        char *found = hafl_asset_find_local(assets[i], err, sizeof err);
        if (!found) {
            fprintf(stderr, "skipped: %s\n", err);
            return 77;
        }
        free(found);
    }
    const char *base = getenv("TMPDIR");
    snprintf(s_tmp, sizeof s_tmp, "%s/hafl-eval-XXXXXX", base && *base ? base : "/tmp");
    CHECK(mkdtemp(s_tmp));
    atexit(s_cleanup);

    char topology[4200], adapter_path[4200], runs[4200];
    s_path(topology, sizeof topology, "tiny.zpl");
    s_path(adapter_path, sizeof adapter_path, "adapter.bin");
    s_path(runs, sizeof runs, "runs");
    char zpl[8192];
    snprintf(zpl, sizeof zpl,
             "seed = 3\nmodel\n    kind = llama\n    checkpoint = stories260K.bin\n"
             "    tokenizer = tok512.bin\n    targets = wq,wk,wv,wo\n    rank = 8\n"
             "    alpha = 16\ndata\n    dataset = 20news\n    path = 20news-bydate.tar.gz\n"
             "    max_tokens = 16\n    test_limit = 200\nclients\n    count = 2\n"
             "    ranks = 4,8\nlogger\n    run_dir = %s\n",
             runs);
    s_write_text(topology, zpl);

    //  The task as `hafl run` and `hafl eval` build it, for the layout and reference scores.
    hafl_topology_error_t terr;
    hafl_topology_t *topo = hafl_topology_load(topology, NULL, 0, &terr);
    CHECKF(topo, "%s", terr.text);
    hafl_task_t *task = hafl_task_new(topo, err, sizeof err);
    CHECKF(task, "%s", err);
    const hafl_layout_t *layout = hafl_task_layout(task);
    CHECK(layout->rank == 8);
    hafl_adapter_t *adapter = hafl_adapter_new(layout);
    CHECK(adapter);
    hafl_adapter_init(adapter, 5);
    for (uint32_t m = 0; m < layout->n_matrices; m++) //  B = 0 would leave LoRA out of it
        for (size_t i = 0; i < (size_t)layout->rank * layout->matrices[m].d_out; i++)
            adapter->bt[m][i] = 0.02f * (float)((int)(i % 11) - 5);
    CHECKF(hafl_adapter_save(adapter, adapter_path, err, sizeof err) == 0, "%s", err);
    char hex[65];
    hafl_adapter_digest_hex(adapter, hex);

    //  --examples 40: the task's figures for 40 documents spread over the test subset.
    hafl_eval_stats_t want;
    CHECKF(hafl_task_evaluate(task, adapter, NULL, 40, &want, err, sizeof err) == 0, "%s", err);
    s_score_t forty = s_score((const char *[]){topology, adapter_path, "--examples", "40", NULL},
                              adapter_path, hex);
    CHECK(forty.examples == 40);
    s_same_as_task(forty, &want);

    //  --docs: exactly the listed documents, in any order, comments and blank lines ignored.
    char list[4200], list2[4200];
    s_path(list, sizeof list, "docs.txt");
    s_path(list2, sizeof list2, "docs-shuffled.txt");
    s_write_text(list, "0\n5\n7\n");
    s_write_text(list2, "# the same three documents\n\n7\n  0  # first test document\n5\n");
    const uint32_t docs[3] = {0, 5, 7}, shuffled[3] = {7, 0, 5};
    hafl_eval_stats_t three, three_shuffled;
    CHECKF(hafl_task_evaluate_docs(task, adapter, docs, 3, &three, err, sizeof err) == 0, "%s",
           err);
    CHECKF(hafl_task_evaluate_docs(task, adapter, shuffled, 3, &three_shuffled, err, sizeof err) ==
               0,
           "%s", err);
    CHECK(three.examples == 3 && three_shuffled.examples == 3);
    CHECKF(three.loss == three_shuffled.loss && three.accuracy == three_shuffled.accuracy,
           "order changed the score: loss %.9g vs %.9g", (double)three.loss,
           (double)three_shuffled.loss);
    s_score_t by_list =
        s_score((const char *[]){topology, adapter_path, "--docs", list, NULL}, adapter_path, hex);
    CHECK(by_list.examples == 3);
    s_same_as_task(by_list, &three);
    s_score_t by_list2 =
        s_score((const char *[]){topology, adapter_path, "--docs", list2, NULL}, adapter_path, hex);
    CHECK(by_list2.accuracy == by_list.accuracy && by_list2.loss == by_list.loss);

    //  More documents than one evaluation batch, ascending and reversed: batches then hold
    //  different documents, and the score must still not depend on the order.
    uint32_t many[100], reversed[100];
    for (uint32_t i = 0; i < 100; i++)
        many[i] = 75 * i, reversed[99 - i] = 75 * i;
    hafl_eval_stats_t up, down;
    CHECKF(hafl_task_evaluate_docs(task, adapter, many, 100, &up, err, sizeof err) == 0, "%s", err);
    CHECKF(hafl_task_evaluate_docs(task, adapter, reversed, 100, &down, err, sizeof err) == 0, "%s",
           err);
    CHECK(up.examples == 100 && down.examples == 100);
    CHECKF(up.loss == down.loss && up.accuracy == down.accuracy,
           "order changed the score: loss %.9g vs %.9g, accuracy %.9g vs %.9g", (double)up.loss,
           (double)down.loss, (double)up.accuracy, (double)down.accuracy);

    //  Every test document listed scores as --examples 0 over the whole test part.
    char all[4200];
    s_path(all, sizeof all, "all.txt");
    {
        FILE *f = fopen(all, "w");
        CHECK(f);
        for (uint32_t d = 0; d < S_TEST_DOCS; d++)
            CHECK(fprintf(f, "%u\n", d) > 0);
        CHECK(fclose(f) == 0);
    }
    s_score_t whole = s_score((const char *[]){topology, adapter_path, "--set", "data/test_limit=0",
                                               "--examples", "0", NULL},
                              adapter_path, hex);
    s_score_t listed = s_score(
        (const char *[]){topology, adapter_path, "--set", "data/test_limit=0", "--docs", all, NULL},
        adapter_path, hex);
    CHECK(whole.examples == S_TEST_DOCS && listed.examples == S_TEST_DOCS);
    CHECKF(whole.accuracy == listed.accuracy && whole.loss == listed.loss,
           "all documents listed: %.6f / %.6f, --examples 0: %.6f / %.6f", listed.accuracy,
           listed.loss, whole.accuracy, whole.loss);

    //  data/validation: the held-out set is that many training documents; training documents
    //  the clients hold cannot be named as if they were held out.
    s_score_t validation =
        s_score((const char *[]){topology, adapter_path, "--set", "data/validation=50", NULL},
                adapter_path, hex);
    CHECK(validation.examples == 50);
    s_refused((const char *[]){topology, adapter_path, "--set", "data/validation=50", "--docs",
                               list, NULL},
              1, (const char *[]){list, "validation set", NULL});

    //  The list at fault: named with the line of a malformed entry, exit 2 before any scoring.
    char bad[4200], want_at[4400];
    s_path(bad, sizeof bad, "bad.txt");
    s_write_text(bad, "0\n5\nfive\n");
    snprintf(want_at, sizeof want_at, "%s:3: ", bad);
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 2,
              (const char *[]){want_at, NULL});
    s_write_text(bad, "# one document\n-3\n");
    snprintf(want_at, sizeof want_at, "%s:2: ", bad);
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 2,
              (const char *[]){want_at, NULL});
    s_write_text(bad, "12 13\n");
    snprintf(want_at, sizeof want_at, "%s:1: ", bad);
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 2,
              (const char *[]){want_at, NULL});
    s_write_text(bad, "4294967296\n");
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 2,
              (const char *[]){want_at, NULL});
    //  Empty: no file at all, or only comments and blank lines.
    s_write_text(bad, "");
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 2,
              (const char *[]){bad, "no document indices", NULL});
    s_write_text(bad, "# nothing to score\n\n   \n");
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 2,
              (const char *[]){bad, "no document indices", NULL});
    char missing[4200];
    s_path(missing, sizeof missing, "absent.txt");
    s_refused((const char *[]){topology, adapter_path, "--docs", missing, NULL}, 2,
              (const char *[]){missing, NULL});
    //  --docs and --examples exclude each other, --examples 0 included.
    s_refused((const char *[]){topology, adapter_path, "--examples", "40", "--docs", list, NULL}, 2,
              (const char *[]){"--docs", "--examples", NULL});
    s_refused((const char *[]){topology, adapter_path, "--docs", list, "--examples", "0", NULL}, 2,
              (const char *[]){"--docs", "--examples", NULL});
    //  A document past the 7532 test documents: the task's reason, naming it and the list.
    s_write_text(bad, "0\n7532\n");
    s_refused((const char *[]){topology, adapter_path, "--docs", bad, NULL}, 1,
              (const char *[]){bad, "document 7532", "entry 2", NULL});

    //  The adapter at fault, exit 1: another rank, another scale, missing, truncated.
    hafl_layout_t other;
    CHECK(hafl_layout_copy(&other, layout) == 0);
    other.rank = 4;
    other.scale = 16.0f / 4.0f;
    hafl_adapter_t *rank4 = hafl_adapter_new(&other);
    CHECK(rank4);
    hafl_adapter_init(rank4, 5);
    char rank4_path[4200];
    s_path(rank4_path, sizeof rank4_path, "rank4.bin");
    CHECKF(hafl_adapter_save(rank4, rank4_path, err, sizeof err) == 0, "%s", err);
    s_refused((const char *[]){topology, rank4_path, "--examples", "40", NULL}, 1,
              (const char *[]){rank4_path, "rank 4", "rank 8", NULL});
    //  Under --docs too: the adapter is blamed, not the list.
    s_refused((const char *[]){topology, rank4_path, "--docs", list, NULL}, 1,
              (const char *[]){rank4_path, "rank 4", NULL});
    hafl_adapter_destroy(&rank4);
    other.rank = layout->rank;
    other.scale = 1.0f; //  model/alpha 8 instead of 16
    hafl_adapter_t *rescaled = hafl_adapter_new(&other);
    CHECK(rescaled);
    hafl_adapter_init(rescaled, 5);
    char rescaled_path[4200];
    s_path(rescaled_path, sizeof rescaled_path, "alpha8.bin");
    CHECKF(hafl_adapter_save(rescaled, rescaled_path, err, sizeof err) == 0, "%s", err);
    s_refused((const char *[]){topology, rescaled_path, NULL}, 1,
              (const char *[]){rescaled_path, "scale", NULL});
    hafl_adapter_destroy(&rescaled);
    hafl_layout_clear(&other);

    char absent[4200], truncated[4200];
    s_path(absent, sizeof absent, "absent.bin");
    s_refused((const char *[]){topology, absent, NULL}, 1, (const char *[]){absent, NULL});
    size_t size;
    char *bytes = s_read(adapter_path, &size);
    s_path(truncated, sizeof truncated, "truncated.bin");
    s_write(truncated, bytes, size / 2);
    s_refused((const char *[]){topology, truncated, NULL}, 1, (const char *[]){truncated, NULL});
    s_write(truncated, bytes, size - 1);
    s_refused((const char *[]){topology, truncated, NULL}, 1, (const char *[]){truncated, NULL});
    free(bytes);

    hafl_adapter_destroy(&adapter);
    hafl_task_destroy(&task);
    hafl_topology_destroy(&topo);
    printf("eval: ok (40 documents: accuracy %.3f loss %.3f; all %d: accuracy %.3f)\n",
           forty.accuracy, forty.loss, S_TEST_DOCS, whole.accuracy);
    return 0;
}
