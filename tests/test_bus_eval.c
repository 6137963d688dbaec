/*  test_bus_eval: the evaluator scores each distinct model once (actors/hafl_evaluator.c keeps
    the last results by SHA-256 of present mask and adapter) and never answers for another one.
    Short in-process federations on the synthetic model (topologies/smoke.zpl without faults:
    six clients of budgets 1,1,2,2,4,4, rank 4, three rounds) with evaluator/client_start, so
    every round sends the evaluator six starting models (tags 1..6, in client order, when the
    ROUND goes out) and then the new global model (tag 0, after aggregation).

    freeze: every client starts from the whole global model, so round 1's six starts are one
    model (scored once, five reused) and round t >= 2's six starts are the global model of round
    t-1 (six reused, and each start-eval equals that round's eval bit for bit).
    truncate: a client of budget r gets the top-r components, so round 1 has three distinct
    starting models (three reused); from round 2 on the budget-4 starts are the previous global
    model (both reused) and budgets 1 and 2 are new (one of each pair reused): four reused, three
    computed. The global model is new every round (never reused).

    The oracle has no cache: the test rebuilds every model the evaluator was asked about (the
    initial global adapter, and the global adapter after round t as final_adapter.bin of a
    t-round run of the same topology, which is deterministic) and scores it itself with
    hafl_task_evaluate; every printed accuracy and loss must equal it bit for bit. (These runs
    cannot tell whether the key needs the present mask and zeroed scores: absent components
    arrive zeroed and equal models carry equal scores here.)
*/
#include "test_bus_util.h"

#include "hafl_scheme.h"
#include "hafl_task.h"

#define S_CLIENTS 6
#define S_ROUNDS  3
#define S_FIELD   48

static const uint32_t s_ranks[S_CLIENTS] = {1, 1, 2, 2, 4, 4};

//  One result as events.jsonl prints it ("%.17g" of the float the evaluator sent).
typedef struct {
    bool seen;
    char accuracy[S_FIELD];
    char loss[S_FIELD];
} s_result_t;

typedef struct {
    char run_dir[4096];
    s_result_t global[S_ROUNDS + 1];           //  [round] event "eval"
    s_result_t start[S_ROUNDS + 1][S_CLIENTS]; //  [round][client] event "start-eval"
    uint32_t reused_start[S_ROUNDS + 1];       //  eval-reused, model "client start"
    uint32_t reused_global[S_ROUNDS + 1];      //  eval-reused, model "global"
    double csv_accuracy[S_ROUNDS];             //  rounds.csv, row t-1 is round t
    double csv_start[S_ROUNDS];
} s_run_t;

//  The raw value of "key": in one JSON line, up to the next ',' or '}' (quotes kept for
//  strings); false when absent.
static bool s_field(const char *line, const char *key, char *out, size_t outlen)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(line, pattern);
    if (!p)
        return false;
    p += strlen(pattern);
    size_t n = strcspn(p, ",}\n");
    CHECKF(n < outlen, "field %s too long in %s", key, line);
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

static long s_int_field(const char *line, const char *key)
{
    char value[S_FIELD];
    CHECKF(s_field(line, key, value, sizeof value), "no %s in %s", key, line);
    char *end;
    long v = strtol(value, &end, 10);
    CHECKF(*end == 0, "%s is not an integer in %s", key, line);
    return v;
}

static void s_take_result(s_result_t *result, const char *line)
{
    CHECKF(!result->seen, "result logged twice: %s", line);
    result->seen = true;
    CHECKF(s_field(line, "accuracy", result->accuracy, sizeof result->accuracy), "%s", line);
    CHECKF(s_field(line, "loss", result->loss, sizeof result->loss), "%s", line);
}

//  Run the federation t and collect its evaluation events and rounds.csv.
static void s_run(const hafl_topology_t *t, s_run_t *run)
{
    memset(run, 0, sizeof *run);
    char hex[65];
    CHECK(bus_run_inproc(t, hex, run->run_dir, sizeof run->run_dir) == 0);
    char path[4300];
    snprintf(path, sizeof path, "%s/events.jsonl", run->run_dir);
    char *events = bus_read_file(path);
    CHECKF(events != NULL, "cannot read %s", path);
    char *save = NULL;
    for (char *line = strtok_r(events, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        bool eval = strstr(line, "\"event\":\"eval\"") != NULL;
        bool start = strstr(line, "\"event\":\"start-eval\"") != NULL;
        bool reused = strstr(line, "\"event\":\"eval-reused\"") != NULL;
        if (!eval && !start && !reused)
            continue;
        long round = s_int_field(line, "round");
        CHECKF(round >= 1 && round <= (long)t->server.rounds, "round %ld: %s", round, line);
        if (eval)
            s_take_result(&run->global[round], line);
        else if (start) {
            long client = s_int_field(line, "client");
            CHECKF(client >= 0 && client < S_CLIENTS, "%s", line);
            s_take_result(&run->start[round][client], line);
        } else if (strstr(line, "\"model\":\"client start\""))
            run->reused_start[round]++;
        else {
            CHECKF(strstr(line, "\"model\":\"global\""), "%s", line);
            run->reused_global[round]++;
        }
    }
    free(events);
    size_t rows = bus_csv_column(run->run_dir, "accuracy", run->csv_accuracy, S_ROUNDS);
    CHECKF(rows == t->server.rounds, "%zu rows for %u rounds", rows, t->server.rounds);
    bus_csv_column(run->run_dir, "start_accuracy", run->csv_start, S_ROUNDS);
    //  Every request was answered (a lost result would leave a round short).
    for (uint32_t r = 1; r <= t->server.rounds; r++) {
        CHECKF(run->global[r].seen, "%s: no eval in round %u", run->run_dir, r);
        for (uint32_t c = 0; c < S_CLIENTS; c++)
            CHECKF(run->start[r][c].seen, "%s: no start-eval of client %u in round %u",
                   run->run_dir, c, r);
    }
}

static hafl_topology_t *s_load(const char *scheme, uint32_t rounds)
{
    char scheme_set[64], rounds_set[64];
    snprintf(scheme_set, sizeof scheme_set, "server/scheme=%s", scheme);
    snprintf(rounds_set, sizeof rounds_set, "server/rounds=%u", rounds);
    //  No faults, and a deadline far beyond a round's milliseconds: every client reports every
    //  round even on a loaded machine or under ASan, so the runs are deterministic (a lost
    //  result still fails within a minute, as a round without its start-evals).
    return bus_load("topologies/smoke.zpl", scheme_set, rounds_set, "model/rank=4",
                    "clients/count=6", "clients/ranks=1,1,2,2,4,4", "server/min_reports=0",
                    "server/participants=0", "server/deadline_ms=20000",
                    "faults/stragglers/share=0", "faults/dropout=0", "faults/crash=0",
                    "evaluator/enabled=true", "evaluator/client_start=true", NULL);
}

//  Score a model the way the evaluator rebuilds it, with no cache: components whose role is
//  below frozen are absent (zero, excluded). roles NULL: every component present.
static void s_score(const hafl_task_t *task, const hafl_topology_t *t, const hafl_adapter_t *model,
                    const uint8_t *roles, s_result_t *out)
{
    const hafl_layout_t *L = &model->layout;
    size_t slots = (size_t)L->n_matrices * L->rank;
    hafl_adapter_t *copy = hafl_adapter_dup(model);
    uint8_t *present = calloc(slots, 1);
    CHECK(copy && present);
    for (uint32_t m = 0; m < L->n_matrices; m++)
        for (uint32_t k = 0; k < L->rank; k++) {
            size_t slot = (size_t)m * L->rank + k;
            present[slot] = !roles || roles[slot] >= HAFL_ROLE_FROZEN;
            if (!present[slot]) {
                memset(hafl_adapter_b(copy, m, k), 0, L->matrices[m].d_out * sizeof(float));
                memset(hafl_adapter_a(copy, m, k), 0, L->matrices[m].d_in * sizeof(float));
            }
        }
    hafl_eval_stats_t stats;
    char err[256];
    CHECKF(hafl_task_evaluate(task, copy, present, t->evaluator.max_examples, &stats, err,
                              sizeof err) == 0,
           "%s", err);
    out->seen = true;
    snprintf(out->accuracy, sizeof out->accuracy, "%.17g", (double)stats.accuracy);
    snprintf(out->loss, sizeof out->loss, "%.17g", (double)stats.loss);
    hafl_adapter_destroy(&copy);
    free(present);
}

//  The starting model client c gets in round from global (the server's s_send_round roles).
static void s_score_start(const hafl_task_t *task, const hafl_topology_t *t,
                          const hafl_adapter_t *global, uint32_t round, uint32_t c, s_result_t *out)
{
    hafl_scheme_t scheme;
    CHECK(hafl_scheme_parse(t->server.scheme, &scheme) == 0);
    const hafl_layout_t *L = &global->layout;
    uint8_t *roles = calloc((size_t)L->n_matrices * L->rank, 1);
    CHECK(roles != NULL);
    hafl_scheme_select(scheme, global, s_ranks[c], t->seed, round, c, roles);
    s_score(task, t, global, roles, out);
    free(roles);
}

//  got must print exactly as want; what names the comparison in the failure.
static void s_check_same(const s_result_t *got, const s_result_t *want, const char *what, ...)
    __attribute__((format(printf, 3, 4)));
static void s_check_same(const s_result_t *got, const s_result_t *want, const char *what, ...)
{
    char text[256];
    va_list args;
    va_start(args, what);
    vsnprintf(text, sizeof text, what, args);
    va_end(args);
    CHECKF(got->seen && want->seen && streq(got->accuracy, want->accuracy) &&
               streq(got->loss, want->loss),
           "%s: accuracy %s loss %s, expected %s %s", text, got->accuracy, got->loss,
           want->accuracy, want->loss);
}

//  The global adapter after `rounds` rounds: the final adapter of a run that long.
static hafl_adapter_t *s_global_after(const char *scheme, uint32_t rounds)
{
    hafl_topology_t *t = s_load(scheme, rounds);
    s_run_t *run = calloc(1, sizeof *run);
    CHECK(run != NULL);
    s_run(t, run);
    char path[4300], err[512];
    snprintf(path, sizeof path, "%s/final_adapter.bin", run->run_dir);
    hafl_adapter_t *global = hafl_adapter_load(path, err, sizeof err);
    CHECKF(global != NULL, "%s", err);
    free(run);
    hafl_topology_destroy(&t);
    return global;
}

//  The global adapter before round 1 (as the server initialises it) and after each round of
//  run (the last one is its final adapter), into globals[0..S_ROUNDS].
static void s_globals(const hafl_task_t *task, const hafl_topology_t *t, const s_run_t *run,
                      hafl_adapter_t **globals)
{
    globals[0] = hafl_adapter_new(hafl_task_layout(task));
    CHECK(globals[0] != NULL);
    hafl_adapter_init(globals[0], t->seed);
    for (uint32_t r = 1; r < S_ROUNDS; r++)
        globals[r] = s_global_after(t->server.scheme, r);
    char path[4300], err[512];
    snprintf(path, sizeof path, "%s/final_adapter.bin", run->run_dir);
    globals[S_ROUNDS] = hafl_adapter_load(path, err, sizeof err);
    CHECKF(globals[S_ROUNDS] != NULL, "%s", err);
}

//  Whole-run checks: every eval and start-eval equals the oracle's score of its model, given
//  globals[0..rounds] (the global adapter before round 1 and after each round).
static void s_check_oracle(const hafl_task_t *task, const hafl_topology_t *t, const s_run_t *run,
                           hafl_adapter_t *const *globals)
{
    for (uint32_t r = 1; r <= S_ROUNDS; r++) {
        s_result_t want = {0};
        s_score(task, t, globals[r], NULL, &want);
        s_check_same(&run->global[r], &want, "%s round %u eval", t->server.scheme, r);
        for (uint32_t c = 0; c < S_CLIENTS; c++) {
            s_score_start(task, t, globals[r - 1], r, c, &want);
            s_check_same(&run->start[r][c], &want, "%s round %u start-eval of client %u (rank %u)",
                         t->server.scheme, r, c, s_ranks[c]);
        }
    }
}

static void s_check_freeze(const hafl_task_t *task)
{
    hafl_topology_t *t = s_load("freeze", S_ROUNDS);
    s_run_t *run = calloc(1, sizeof *run);
    CHECK(run != NULL);
    s_run(t, run);
    for (uint32_t r = 1; r <= S_ROUNDS; r++) {
        //  All six starts are one model: in round 1 the initial adapter (scored once), later
        //  the global model the evaluator scored at the end of round r-1.
        uint32_t want = r == 1 ? S_CLIENTS - 1 : S_CLIENTS;
        CHECKF(run->reused_start[r] == want, "freeze round %u: %u start models reused, expected %u",
               r, run->reused_start[r], want);
        CHECKF(run->reused_global[r] == 0, "freeze round %u: global model reused", r);
        for (uint32_t c = 0; c < S_CLIENTS; c++) {
            if (r == 1)
                s_check_same(&run->start[r][c], &run->start[r][0], "freeze round 1 client %u", c);
            else
                s_check_same(&run->start[r][c], &run->global[r - 1],
                             "freeze round %u start of client %u vs round %u eval", r, c, r - 1);
        }
        if (r >= 2)
            CHECKF(run->csv_start[r - 1] == run->csv_accuracy[r - 2],
                   "rounds.csv: start_accuracy %.6f of round %u, accuracy %.6f of round %u",
                   run->csv_start[r - 1], r, run->csv_accuracy[r - 2], r - 1);
    }
    hafl_adapter_t *globals[S_ROUNDS + 1];
    s_globals(task, t, run, globals);
    s_check_oracle(task, t, run, globals);
    printf("bus eval: freeze ok, round %u start accuracy %s = round %u accuracy\n", S_ROUNDS,
           run->start[S_ROUNDS][0].accuracy, S_ROUNDS - 1);
    for (uint32_t r = 0; r <= S_ROUNDS; r++)
        hafl_adapter_destroy(&globals[r]);
    free(run);
    hafl_topology_destroy(&t);
}

static void s_check_truncate(const hafl_task_t *task)
{
    hafl_topology_t *t = s_load("truncate", S_ROUNDS);
    s_run_t *run = calloc(1, sizeof *run);
    CHECK(run != NULL);
    s_run(t, run);
    uint32_t budgets = 3; //  distinct values in s_ranks
    for (uint32_t r = 1; r <= S_ROUNDS; r++) {
        //  Requests: six starts and the global model. Duplicates: the second client of each
        //  budget; from round 2 also the first budget-4 client (the previous global model).
        uint32_t want = r == 1 ? S_CLIENTS - budgets : S_CLIENTS - budgets + 1;
        uint32_t computed = S_CLIENTS + 1 - run->reused_start[r] - run->reused_global[r];
        CHECKF(run->reused_start[r] == want,
               "truncate round %u: %u start models reused, expected %u", r, run->reused_start[r],
               want);
        CHECKF(run->reused_global[r] == 0, "truncate round %u: global model reused", r);
        CHECKF(computed <= budgets + 1, "truncate round %u: %u evaluations computed", r, computed);
        for (uint32_t c = 0; c < S_CLIENTS; c++)
            for (uint32_t d = 0; d < c; d++)
                if (s_ranks[c] == s_ranks[d])
                    s_check_same(&run->start[r][c], &run->start[r][d],
                                 "truncate round %u client %u vs client %u (rank %u)", r, c, d,
                                 s_ranks[c]);
        if (r >= 2) {
            //  Budget 4 is the whole previous global model.
            s_check_same(&run->start[r][4], &run->global[r - 1], "truncate round %u rank 4", r);
            //  The oracle below can only tell models apart that score differently: from round
            //  2 on, budgets 1, 2 and 4 do (round 1 starts with B = 0, so all score the same).
            CHECKF(!streq(run->start[r][0].loss, run->start[r][2].loss) &&
                       !streq(run->start[r][0].loss, run->start[r][4].loss) &&
                       !streq(run->start[r][2].loss, run->start[r][4].loss),
                   "truncate round %u: budgets 1, 2, 4 start with losses %s %s %s", r,
                   run->start[r][0].loss, run->start[r][2].loss, run->start[r][4].loss);
        }
    }
    hafl_adapter_t *globals[S_ROUNDS + 1];
    s_globals(task, t, run, globals);
    s_check_oracle(task, t, run, globals);
    printf("bus eval: truncate ok, round %u start accuracy by rank 1/2/4: %s %s %s\n", S_ROUNDS,
           run->start[S_ROUNDS][0].accuracy, run->start[S_ROUNDS][2].accuracy,
           run->start[S_ROUNDS][4].accuracy);
    for (uint32_t r = 0; r <= S_ROUNDS; r++)
        hafl_adapter_destroy(&globals[r]);
    free(run);
    hafl_topology_destroy(&t);
}

int main(void)
{
    //  The task the evaluator scores on (same topology but for the scheme, which the task
    //  does not read).
    hafl_topology_t *t = s_load("freeze", S_ROUNDS);
    char err[512];
    hafl_task_t *task = hafl_task_new(t, err, sizeof err);
    CHECKF(task != NULL, "%s", err);
    s_check_freeze(task);
    s_check_truncate(task);
    hafl_task_destroy(&task);
    hafl_topology_destroy(&t);
    bus_cleanup();
    return 0;
}
