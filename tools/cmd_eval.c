/*  hafl eval FILE ADAPTER [--set KEY=VALUE]... [--examples N | --docs LIST]: score a saved
    adapter on the held-out set of the task a topology describes, outside any federation.

    The task is built exactly as `hafl run` builds it (same model, tokenizer, cleaning, token
    window and test subset, so the same overrides apply: `--set data/test_limit=0` scores every
    test document). ADAPTER is a file the server wrote (final_adapter.bin,
    checkpoint/round-R.bin); its layout must be the task's, merged base terms included (FLoRA,
    FlexLoRA). Every component is in the model, as the evaluator scores the global model. --examples N takes N of the held-out
    documents spread evenly over it (0 = all), as evaluator/max_examples does. --docs LIST
    scores exactly the documents a file names, one index per line into the held-out part of the
    corpus in its order (20 Newsgroups: by group, then numeric file id; '#' starts a comment),
    so that hafl and another tool can be scored on the same documents (tools/parity.py).

    Prints one JSON line: adapter digest, accuracy, loss, documents scored, wall time. This is
    how tools/reproduce.py scores each run's final model on the whole test set while its
    per-round curve uses a fixed subset.

    Failures print one line on stderr naming the file at fault: the --docs list (with the line
    for a malformed entry, or the task's reason naming the document for one it does not hold),
    or the adapter (unreadable, or a layout that differs from the task's, first difference named).
*/
#include "hafl_cmd.h"
#include "hafl_adapter.h"
#include "hafl_fold.h"
#include "hafl_task.h"
#include "hafl_topology.h"

#include <czmq.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HAFL_EVAL_MAX_DOCS (1u << 24) //  far above any corpus part (100000 documents)

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl eval FILE ADAPTER [--set KEY=VALUE]... [--examples N | --docs LIST]\n"
            "\n"
            "Score ADAPTER (a final_adapter.bin or checkpoint/round-R.bin of a run) on the\n"
            "held-out set of the task the topology FILE describes, with the overrides applied\n"
            "exactly as `hafl run` would apply them (`--set data/test_limit=0` scores all test documents).\n"
            "Prints one JSON line: adapter sha256, accuracy, loss, examples, wall_ms.\n"
            "\n"
            "options:\n"
            "  --set KEY=VALUE  override a topology key\n"
            "  --examples N     score N held-out documents spread evenly over it (0 = all)\n"
            "  --docs LIST      score the documents LIST names: one 0-based index per line into\n"
            "                   the held-out part in corpus order (by group, then file id)\n"
            "\n"
            "exit codes: 0 scored, 1 the adapter cannot be read or does not fit the task,\n"
            "2 usage or configuration error\n");
}

//  Writes text as the body of a JSON string: the adapter path is the caller's, so a quote, a
//  backslash or a control byte in it must not break the line reproduce.py parses.
static void s_print_json_text(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
}

//  0 when the adapter can be loaded into the task: same matrices, rank, head and scale (what
//  the trainer checks, but named here). Else -1 with the first difference in why.
static int s_check_layout(const hafl_layout_t *have, const hafl_layout_t *want, char *why,
                          size_t whylen)
{
    if (hafl_fold_same_layout(have, want, why, whylen))
        return -1;
    if (have->scale != want->scale) {
        snprintf(why, whylen, "scale %g, expected %g (model/alpha / model/rank)",
                 (double)have->scale, (double)want->scale);
        return -1;
    }
    return 0;
}

//  Reads the --docs list: one decimal index per line, blank lines and '#' comments allowed.
//  Returns the indices ([*n], caller frees) or NULL after printing "PATH:LINE: reason".
static uint32_t *s_read_docs(const char *path, uint32_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "hafl eval: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    uint32_t *docs = NULL, cap = 0;
    char line[256];
    unsigned lineno = 0;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "hafl eval: %s:%u: line longer than %zu bytes\n", path, lineno,
                    sizeof line - 2);
            goto fail;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '\n' || *p == '\r')
            continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*p == '-' || end == p || *end != '\0' || errno || v > UINT32_MAX) {
            fprintf(stderr, "hafl eval: %s:%u: expected one document index (0 .. %u)\n", path,
                    lineno, UINT32_MAX);
            goto fail;
        }
        if (*n == cap) {
            if (cap >= HAFL_EVAL_MAX_DOCS) {
                fprintf(stderr, "hafl eval: %s:%u: more than %u documents\n", path, lineno,
                        HAFL_EVAL_MAX_DOCS);
                goto fail;
            }
            cap = cap ? 2 * cap : 1024;
            uint32_t *grown = realloc(docs, (size_t)cap * sizeof *docs);
            if (!grown) {
                fprintf(stderr, "hafl eval: %s: out of memory\n", path);
                goto fail;
            }
            docs = grown;
        }
        docs[(*n)++] = (uint32_t)v;
    }
    if (ferror(f)) {
        fprintf(stderr, "hafl eval: %s: read error\n", path);
        goto fail;
    }
    fclose(f);
    if (*n == 0) {
        fprintf(stderr, "hafl eval: %s: no document indices\n", path);
        free(docs);
        return NULL;
    }
    return docs;
fail:
    fclose(f);
    free(docs);
    return NULL;
}

int hafl_cmd_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
    const char **overrides = NULL;
    size_t n_overrides = 0;
    hafl_topology_error_t terr;
    if (hafl_topology_take_overrides(&argc, argv, &overrides, &n_overrides, &terr)) {
        fprintf(stderr, "hafl eval: %s\n", terr.text);
        return HAFL_EXIT_USAGE;
    }
    const char *positional[2] = {NULL, NULL};
    int n_positional = 0;
    unsigned examples = 0;
    bool examples_given = false; //  --examples 0 is a request too, so it conflicts with --docs
    const char *docs_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--examples") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hafl eval: --examples needs a value\n");
                free(overrides);
                return HAFL_EXIT_USAGE;
            }
            if (hafl_cmd_parse_count("eval", "--examples", argv[++i], 100000000UL, &examples)) {
                free(overrides);
                return HAFL_EXIT_USAGE;
            }
            examples_given = true;
        }
        else if (strcmp(argv[i], "--docs") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hafl eval: --docs needs a file\n");
                free(overrides);
                return HAFL_EXIT_USAGE;
            }
            docs_path = argv[++i];
        }
        else if (argv[i][0] == '-') {
            fprintf(stderr, "hafl eval: unknown option '%s'\n", argv[i]);
            s_usage(stderr);
            free(overrides);
            return HAFL_EXIT_USAGE;
        }
        else if (n_positional < 2)
            positional[n_positional++] = argv[i];
        else {
            fprintf(stderr, "hafl eval: unexpected argument '%s'\n", argv[i]);
            free(overrides);
            return HAFL_EXIT_USAGE;
        }
    }
    if (docs_path && examples_given) {
        fprintf(stderr, "hafl eval: --docs and --examples exclude each other\n");
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    if (n_positional != 2) {
        s_usage(stderr);
        free(overrides);
        return HAFL_EXIT_USAGE;
    }
    hafl_topology_t *topology = hafl_topology_load(positional[0], overrides, n_overrides, &terr);
    free(overrides);
    if (!topology) {
        fprintf(stderr, "%s\n", terr.text);
        return HAFL_EXIT_USAGE;
    }
    int rc = HAFL_EXIT_FAILURE;
    char err[512];
    hafl_adapter_t *adapter = NULL;
    uint32_t *docs = NULL, n_docs = 0;
    if (docs_path && !(docs = s_read_docs(docs_path, &n_docs))) {
        hafl_topology_destroy(&topology);
        return HAFL_EXIT_USAGE;
    }
    hafl_task_t *task = hafl_task_new(topology, err, sizeof err);
    if (!task) {
        //  The task's reasons name the topology key (model/checkpoint, data/path, ...).
        fprintf(stderr, "hafl eval: %s\n", err);
        rc = HAFL_EXIT_USAGE;
        goto done;
    }
    adapter = hafl_adapter_load(positional[1], err, sizeof err);
    if (!adapter) {
        fprintf(stderr, "hafl eval: %s\n", err);
        goto done;
    }
    //  Checked here so the message says what differs (an adapter of another rank or targets),
    //  and so that a failure of evaluate_docs below is about the list, not the adapter.
    if (s_check_layout(&adapter->layout, hafl_task_layout(task), err, sizeof err)) {
        fprintf(stderr, "hafl eval: %s: adapter does not fit the task: %s\n", positional[1], err);
        goto done;
    }
    int64_t start = zclock_mono();
    hafl_eval_stats_t stats = {0};
    if (docs ? hafl_task_evaluate_docs(task, adapter, docs, n_docs, &stats, err, sizeof err)
             : hafl_task_evaluate(task, adapter, NULL, examples, &stats, err, sizeof err)) {
        fprintf(stderr, "hafl eval: %s: %s\n", docs ? docs_path : positional[1], err);
        goto done;
    }
    char hex[65];
    hafl_adapter_digest_hex(adapter, hex);
    printf("{\"adapter\": \"");
    s_print_json_text(positional[1]);
    printf("\", \"sha256\": \"%s\", \"accuracy\": %.6f, \"loss\": %.6f, \"examples\": %llu, "
           "\"wall_ms\": %lld}\n",
           hex, (double)stats.accuracy, (double)stats.loss, (unsigned long long)stats.examples,
           (long long)(zclock_mono() - start));
    rc = HAFL_EXIT_OK;
done:
    free(docs);
    hafl_adapter_destroy(&adapter);
    hafl_task_destroy(&task);
    hafl_topology_destroy(&topology);
    return rc;
}
