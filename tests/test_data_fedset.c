/*  test_data_fedset: the one-call federated view (tokenised set, subsets, client split).

    On a generated corpus (3 groups, 90 training and 30 test documents) with the crafted
    tokenizer: client rows partition the training subset, are ascending and match their
    histograms; limits take reproducible subsets; the digest follows every split setting; bad
    settings fail with a reason. With data/validation = N the held-out set is a seeded draw of
    N training rows that no client holds, clients and held-out rows together cover the training
    part once, and the digest of N = 0 is still the one computed before the setting existed.
*/
#include "hafl_fedset.h"
#include "test_data_fixture.h"

#include <sodium.h>

#define S_TRAIN 90
#define S_TEST  30

typedef struct {
    char path[4096];
    char tokenizer[4096];
    char cache[4096];
    hafl_tokenizer_t *tok;
} s_env_t;

static void s_make_corpus(const char *archive)
{
    static char paths[S_TRAIN + S_TEST][64];
    static char texts[S_TRAIN + S_TEST][96];
    fixture_file_t files[S_TRAIN + S_TEST];
    const char *groups[3] = {"g.one", "g.two", "g.three"};
    for (int i = 0; i < S_TRAIN + S_TEST; i++) {
        snprintf(paths[i], sizeof paths[i], "20news-bydate-%s/%s/%d",
                 i < S_TRAIN ? "train" : "test", groups[i % 3], 1000 + i);
        snprintf(texts[i], sizeof texts[i], "From: %d\n\nthe message number %d of %s\n", i, i,
                 groups[i % 3]);
        files[i] = (fixture_file_t){paths[i], texts[i], 0};
    }
    fixture_write_archive(archive, files, S_TRAIN + S_TEST, "");
}

static hafl_fedset_opts_t s_opts(const s_env_t *env)
{
    return (hafl_fedset_opts_t){.path = env->path,
                                .max_tokens = 16,
                                .keep_empty = true,
                                .split = "iid",
                                .dirichlet_alpha = 0.5,
                                .clients = 4,
                                .seed = 11,
                                .cache_dir = env->cache};
}

static hafl_fedset_t *s_new(const s_env_t *env, const hafl_fedset_opts_t *opts)
{
    char err[512];
    hafl_fedset_t *set = hafl_fedset_new(opts, env->tok, err, sizeof err);
    CHECKF(set, "%s", err);
    return set;
}

//  Client rows partition `expect` training rows; returns a digest of the assignment.
static void s_check_partition(const hafl_fedset_t *set, uint32_t expect)
{
    hafl_tokset_part_t train = hafl_tokset_part(hafl_fedset_tokset(set), HAFL_NEWSGROUPS_TRAIN);
    uint8_t seen[S_TRAIN] = {0};
    uint32_t total = 0;
    for (uint32_t k = 0; k < hafl_fedset_clients(set); k++) {
        uint32_t count;
        const uint32_t *rows = hafl_fedset_client_rows(set, k, &count);
        const uint32_t *hist = hafl_fedset_client_histogram(set, k);
        uint32_t recount[3] = {0};
        CHECK(rows && count >= 1);
        for (uint32_t j = 0; j < count; j++) {
            CHECK(rows[j] < train.n && !seen[rows[j]]);
            CHECK(j == 0 || rows[j] > rows[j - 1]);
            seen[rows[j]] = 1;
            recount[train.labels[rows[j]]]++;
        }
        CHECK(recount[0] == hist[0] && recount[1] == hist[1] && recount[2] == hist[2]);
        total += count;
    }
    CHECK(total == expect);
    uint32_t none;
    CHECK(hafl_fedset_client_rows(set, hafl_fedset_clients(set), &none) == NULL && none == 0);
}

//  The fedset digest as it was computed before data/validation existed (five split fields),
//  recomputed here from its definition so that a change to what N = 0 hashes is caught: run
//  folders, caches and adapters of earlier topologies are keyed by this value.
static void s_digest_before_validation(const hafl_fedset_t *set, const hafl_fedset_opts_t *opts,
                                       uint8_t digest[32])
{
    uint8_t tokset[32], le[8];
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"hafl-fedset", 11);
    hafl_tokset_digest(hafl_fedset_tokset(set), tokset);
    crypto_hash_sha256_update(&h, tokset, 32);
    crypto_hash_sha256_update(&h, (const uint8_t *)opts->split, strlen(opts->split) + 1);
    uint64_t alpha_bits;
    double alpha = strcmp(opts->split, "dirichlet") == 0 ? opts->dirichlet_alpha : 0.0;
    memcpy(&alpha_bits, &alpha, 8);
    uint64_t fields[5] = {opts->train_limit, opts->test_limit, opts->clients, opts->seed,
                          alpha_bits};
    for (int f = 0; f < 5; f++) {
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(fields[f] >> (8 * i));
        crypto_hash_sha256_update(&h, le, 8);
    }
    crypto_hash_sha256_final(&h, digest);
}

//  The held-out rows of a set built with validation = n: n ascending TRAIN-part rows (copied
//  into held[], which has room for S_TRAIN) that no client holds. Returns how many rows the
//  clients hold; clients plus held-out rows never count a training row twice.
static uint32_t s_check_validation(const hafl_fedset_t *set, uint32_t n, uint32_t *held)
{
    CHECK(hafl_fedset_holdout_part(set) == HAFL_NEWSGROUPS_TRAIN);
    hafl_tokset_part_t train = hafl_tokset_part(hafl_fedset_tokset(set), HAFL_NEWSGROUPS_TRAIN);
    CHECK(train.n == S_TRAIN);
    uint32_t n_held;
    const uint32_t *rows = hafl_fedset_test_rows(set, &n_held);
    CHECKF(n_held == n, "%u held-out rows, want %u", n_held, n);
    uint8_t seen[S_TRAIN] = {0};
    for (uint32_t j = 0; j < n_held; j++) {
        CHECKF(rows[j] < S_TRAIN, "held-out row %u is %u", j, rows[j]);
        CHECKF(j == 0 || rows[j] > rows[j - 1], "held-out rows not ascending at %u", j);
        seen[rows[j]] = 1;
        held[j] = rows[j];
    }
    uint32_t in_clients = 0;
    for (uint32_t k = 0; k < hafl_fedset_clients(set); k++) {
        uint32_t count;
        const uint32_t *client = hafl_fedset_client_rows(set, k, &count);
        for (uint32_t j = 0; j < count; j++) {
            CHECKF(client[j] < S_TRAIN && seen[client[j]] == 0,
                   "client %u holds row %u, held out or held twice", k, client[j]);
            seen[client[j]] = 2;
        }
        in_clients += count;
    }
    return in_clients;
}

static void s_test_validation(const s_env_t *env, const hafl_fedset_opts_t *opts)
{
    enum { N = 20 };
    char err[512];
    uint32_t held[S_TRAIN], again[S_TRAIN];

    //  Without the setting the held-out set is the TEST part, and the digest is the one the
    //  five-field formula gives, whether the field is left out or set to 0 explicitly.
    hafl_fedset_opts_t unset = *opts;
    hafl_fedset_opts_t zero = *opts;
    zero.validation = 0;
    hafl_fedset_t *plain = s_new(env, &unset), *plain0 = s_new(env, &zero);
    CHECK(hafl_fedset_holdout_part(plain) == HAFL_NEWSGROUPS_TEST);
    uint8_t d_plain[32], d_plain0[32], d_before[32], d_val[32], d_other[32];
    hafl_fedset_digest(plain, d_plain);
    hafl_fedset_digest(plain0, d_plain0);
    s_digest_before_validation(plain, &unset, d_before);
    CHECK(memcmp(d_plain, d_plain0, 32) == 0);
    CHECKF(memcmp(d_plain, d_before, 32) == 0, "validation = 0 changed the fedset digest");
    hafl_fedset_destroy(&plain0);

    //  validation = N: N ascending training rows held out, none of them on a client, and the
    //  clients share every other training row (train_limit 0), so each row is used once.
    hafl_fedset_opts_t val = *opts;
    val.validation = N;
    hafl_fedset_t *set = s_new(env, &val);
    uint32_t in_clients = s_check_validation(set, N, held);
    CHECKF(in_clients + N == S_TRAIN, "%u client rows + %u held out != %u training rows",
           in_clients, N, S_TRAIN);
    s_check_partition(set, S_TRAIN - N);
    //  Not simply the first or the last rows: a draw that spans the part.
    CHECK(held[N - 1] - held[0] >= S_TRAIN / 2);
    //  test_limit has nothing to cut: the held-out set stays N training rows.
    hafl_fedset_opts_t val_tl = val;
    val_tl.test_limit = 5;
    hafl_fedset_t *tl = s_new(env, &val_tl);
    s_check_validation(tl, N, again);
    CHECK(memcmp(held, again, N * sizeof *held) == 0);
    hafl_fedset_destroy(&tl);

    //  The digest tells validation 0 from N, and N from N + 1.
    hafl_fedset_digest(set, d_val);
    CHECK(memcmp(d_val, d_plain, 32) != 0);
    hafl_fedset_opts_t val1 = val;
    val1.validation = N + 1;
    hafl_fedset_t *set1 = s_new(env, &val1);
    s_check_validation(set1, N + 1, again);
    hafl_fedset_digest(set1, d_other);
    CHECK(memcmp(d_val, d_other, 32) != 0);
    hafl_fedset_destroy(&set1);

    //  Same seed, same draw and same client rows; another seed, another draw.
    hafl_fedset_t *same = s_new(env, &val);
    s_check_validation(same, N, again);
    CHECK(memcmp(held, again, N * sizeof *held) == 0);
    hafl_fedset_digest(same, d_other);
    CHECK(memcmp(d_val, d_other, 32) == 0);
    for (uint32_t k = 0; k < hafl_fedset_clients(set); k++) {
        uint32_t na, nb;
        const uint32_t *ra = hafl_fedset_client_rows(set, k, &na);
        const uint32_t *rb = hafl_fedset_client_rows(same, k, &nb);
        CHECK(na == nb && memcmp(ra, rb, na * sizeof *ra) == 0);
    }
    hafl_fedset_destroy(&same);
    hafl_fedset_opts_t reseeded = val;
    reseeded.seed = opts->seed + 1;
    hafl_fedset_t *other = s_new(env, &reseeded);
    s_check_validation(other, N, again);
    CHECK(memcmp(held, again, N * sizeof *held) != 0);
    hafl_fedset_destroy(&other);

    //  The draw depends on the seed alone: changing the clients, the split or train_limit
    //  leaves the validation set where it was, so runs that tune those are scored alike.
    hafl_fedset_opts_t moved[3] = {val, val, val};
    moved[0].clients = 5;
    moved[1].split = "dirichlet";
    moved[2].train_limit = 30;
    for (int v = 0; v < 3; v++) {
        hafl_fedset_t *m = s_new(env, &moved[v]);
        uint32_t used = s_check_validation(m, N, again);
        CHECKF(memcmp(held, again, N * sizeof *held) == 0, "variant %d moved the draw", v);
        //  train_limit applies to what the validation set leaves.
        CHECKF(used == (v == 2 ? 30u : S_TRAIN - N), "variant %d: %u client rows", v, used);
        hafl_fedset_destroy(&m);
    }
    //  A train_limit at or above what remains takes all of it.
    hafl_fedset_opts_t big = val;
    big.train_limit = S_TRAIN - N;
    hafl_fedset_t *all = s_new(env, &big);
    CHECK(s_check_validation(all, N, again) == S_TRAIN - N);
    hafl_fedset_destroy(&all);
    big.train_limit = S_TRAIN;
    all = s_new(env, &big);
    CHECK(s_check_validation(all, N, again) == S_TRAIN - N);
    hafl_fedset_destroy(&all);

    //  The largest validation set that leaves one row per client still builds.
    hafl_fedset_opts_t most = val;
    most.validation = S_TRAIN - most.clients;
    hafl_fedset_t *tight = s_new(env, &most);
    CHECK(s_check_validation(tight, S_TRAIN - most.clients, held) == most.clients);
    hafl_fedset_destroy(&tight);

    //  A validation set that leaves no training document is refused with a reason; so is one
    //  that leaves fewer documents than clients.
    const uint32_t refused[] = {S_TRAIN, S_TRAIN + 1, 100000000};
    for (int i = 0; i < 3; i++) {
        hafl_fedset_opts_t bad = val;
        bad.validation = refused[i];
        err[0] = '\0';
        CHECK(!hafl_fedset_new(&bad, env->tok, err, sizeof err));
        CHECKF(strstr(err, "validation") && strstr(err, "90 training documents"), "%s", err);
    }
    hafl_fedset_opts_t few = val;
    few.validation = S_TRAIN - few.clients + 1;
    err[0] = '\0';
    CHECK(!hafl_fedset_new(&few, env->tok, err, sizeof err));
    CHECKF(strstr(err, "clients"), "%s", err);

    hafl_fedset_destroy(&set);
    hafl_fedset_destroy(&plain);
}

static int s_lines;

static void s_log(void *arg, const char *line)
{
    (void)arg;
    s_lines++;
    printf("  log: %s\n", line);
}

int main(void)
{
    s_env_t env = {0};
    char *dir = fixture_tmpdir();
    snprintf(env.path, sizeof env.path, "%s/corpus.tar.gz", dir);
    snprintf(env.tokenizer, sizeof env.tokenizer, "%s/tok.bin", dir);
    snprintf(env.cache, sizeof env.cache, "%s/cache", dir);
    s_make_corpus(env.path);
    int vocab = fixture_write_tokenizer(env.tokenizer, 0.0f);
    char err[512];
    env.tok = hafl_tokenizer_load(env.tokenizer, vocab, err, sizeof err);
    CHECKF(env.tok, "%s", err);

    hafl_fedset_opts_t opts = s_opts(&env);
    opts.log = s_log;
    hafl_fedset_t *iid = s_new(&env, &opts);
    CHECK(s_lines == 1 + 4); //  the cache note, then one line per client
    CHECK(hafl_fedset_clients(iid) == 4);
    s_check_partition(iid, S_TRAIN);
    uint32_t n_test;
    const uint32_t *test = hafl_fedset_test_rows(iid, &n_test);
    CHECK(n_test == S_TEST && test[0] == 0 && test[S_TEST - 1] == S_TEST - 1);
    for (uint32_t k = 0; k < 4; k++) {
        uint32_t count;
        hafl_fedset_client_rows(iid, k, &count);
        CHECK(count == S_TRAIN / 4 + (k < S_TRAIN % 4));
    }
    char line[256];
    hafl_fedset_describe_client(iid, 1, line, sizeof line);
    CHECKF(strncmp(line, "client 1: 23 examples, classes [", 32) == 0, "%s", line);

    //  Same settings, same digest; each setting moves it.
    opts.log = NULL;
    uint8_t base[32], other[32];
    hafl_fedset_digest(iid, base);
    hafl_fedset_t *same = s_new(&env, &opts);
    hafl_fedset_digest(same, other);
    CHECK(memcmp(base, other, 32) == 0);
    hafl_fedset_destroy(&same);
    hafl_fedset_opts_t variants[5];
    for (int v = 0; v < 5; v++)
        variants[v] = opts;
    variants[0].seed = 12;
    variants[1].clients = 5;
    variants[2].split = "dirichlet";
    variants[3].train_limit = 40;
    variants[4].test_limit = 10;
    for (int v = 0; v < 5; v++) {
        hafl_fedset_t *set = s_new(&env, &variants[v]);
        hafl_fedset_digest(set, other);
        CHECKF(memcmp(base, other, 32) != 0, "variant %d keeps the digest", v);
        s_check_partition(set, v == 3 ? 40 : S_TRAIN);
        hafl_fedset_test_rows(set, &n_test);
        CHECK(n_test == (v == 4 ? 10 : S_TEST));
        hafl_fedset_destroy(&set);
    }
    //  Dirichlet digests also follow alpha; limits pick the same rows each time.
    hafl_fedset_opts_t dir_a = variants[2], dir_b = variants[2];
    dir_b.dirichlet_alpha = 5.0;
    hafl_fedset_t *a = s_new(&env, &dir_a), *b = s_new(&env, &dir_b);
    hafl_fedset_digest(a, base);
    hafl_fedset_digest(b, other);
    CHECK(memcmp(base, other, 32) != 0);
    hafl_fedset_destroy(&a);
    hafl_fedset_destroy(&b);
    a = s_new(&env, &variants[3]);
    b = s_new(&env, &variants[3]);
    for (uint32_t k = 0; k < 4; k++) {
        uint32_t na, nb;
        const uint32_t *ra = hafl_fedset_client_rows(a, k, &na);
        const uint32_t *rb = hafl_fedset_client_rows(b, k, &nb);
        CHECK(na == nb && memcmp(ra, rb, na * sizeof *ra) == 0);
    }
    hafl_fedset_destroy(&a);
    hafl_fedset_destroy(&b);

    s_test_validation(&env, &opts);

    //  Bad settings.
    hafl_fedset_opts_t bad = opts;
    bad.split = "label-sort";
    CHECK(!hafl_fedset_new(&bad, env.tok, err, sizeof err));
    CHECKF(strstr(err, "label-sort"), "%s", err);
    bad = opts;
    bad.clients = S_TRAIN + 1;
    CHECK(!hafl_fedset_new(&bad, env.tok, err, sizeof err));
    CHECKF(strstr(err, "clients"), "%s", err);
    bad = opts;
    bad.train_limit = 3;
    CHECK(!hafl_fedset_new(&bad, env.tok, err, sizeof err));
    bad = opts;
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/absent.tar.gz", dir);
    bad.path = missing;
    CHECK(!hafl_fedset_new(&bad, env.tok, err, sizeof err));
    CHECKF(strstr(err, "absent.tar.gz"), "%s", err);

    hafl_fedset_destroy(&iid);
    CHECK(iid == NULL);
    hafl_fedset_destroy(&iid);
    hafl_tokenizer_destroy(&env.tok);
    fixture_rmtree(dir);
    free(dir);
    printf("data_fedset: ok\n");
    return 0;
}
