/*  test_data_fedset: the one-call federated view (tokenised set, subsets, client split).

    On a generated corpus (3 groups, 90 training and 30 test documents) with the crafted
    tokenizer: client rows partition the training subset, are ascending and match their
    histograms; limits take reproducible subsets; the digest follows every split setting; bad
    settings fail with a reason.
*/
#include "hafl_fedset.h"
#include "test_data_fixture.h"

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
