/*  test_data_split: IID and Dirichlet label-skew partitions.

    Checked on a 20-class label set shaped like 20 Newsgroups' training part: every example goes
    to exactly one client, each list is ascending, histograms match the lists, the same seed
    gives the same split and another seed another one, IID shards differ in size by at most one
    and look like the whole, Dirichlet(0.5) shards are visibly skewed (far from the whole in
    total variation), and the at-least-one-example rule holds even when alpha is tiny.
*/
#include "hafl_split.h"
#include "hafl_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define S_N       11314
#define S_CLASSES 20
#define S_CLIENTS 10

//  Labels with uneven class sizes, interleaved.
static void s_make_labels(uint32_t *labels, uint32_t n, uint32_t classes)
{
    for (uint32_t i = 0; i < n; i++)
        labels[i] = (uint32_t)((i * 7u + i / 3u) % classes);
}

//  Structural invariants; returns the mean total-variation distance between each client's class
//  distribution and the whole set's.
static double s_check_split(const hafl_split_t *split, const uint32_t *labels, uint32_t n,
                            uint32_t classes, uint32_t clients)
{
    CHECK(hafl_split_clients(split) == clients && hafl_split_classes(split) == classes);
    uint8_t *seen = calloc(n, 1);
    double global[256] = {0};
    CHECK(seen && classes <= 256);
    for (uint32_t i = 0; i < n; i++)
        global[labels[i]] += 1.0 / n;
    uint64_t total = 0;
    double tv_sum = 0.0;
    for (uint32_t k = 0; k < clients; k++) {
        uint32_t count = hafl_split_count(split, k);
        const uint32_t *idx = hafl_split_indices(split, k);
        const uint32_t *hist = hafl_split_histogram(split, k);
        CHECKF(count >= 1, "client %u has no examples", k);
        uint32_t recount[256] = {0};
        for (uint32_t j = 0; j < count; j++) {
            CHECK(idx[j] < n && !seen[idx[j]]);
            CHECK(j == 0 || idx[j] > idx[j - 1]);
            seen[idx[j]] = 1;
            recount[labels[idx[j]]]++;
        }
        double tv = 0.0;
        for (uint32_t c = 0; c < classes; c++) {
            CHECK(recount[c] == hist[c]);
            tv += fabs((double)hist[c] / count - global[c]);
        }
        tv_sum += tv / 2.0;
        total += count;
    }
    CHECK(total == n);
    CHECK(hafl_split_count(split, clients) == 0 && hafl_split_indices(split, clients) == NULL);
    free(seen);
    return tv_sum / clients;
}

static bool s_same(const hafl_split_t *a, const hafl_split_t *b)
{
    for (uint32_t k = 0; k < hafl_split_clients(a); k++) {
        uint32_t n = hafl_split_count(a, k);
        if (n != hafl_split_count(b, k) ||
            memcmp(hafl_split_indices(a, k), hafl_split_indices(b, k), n * sizeof(uint32_t)))
            return false;
    }
    return true;
}

static void s_check_iid(const uint32_t *labels)
{
    char err[256];
    hafl_split_t *a = hafl_split_iid(labels, S_N, S_CLASSES, S_CLIENTS, 42, err, sizeof err);
    CHECKF(a, "%s", err);
    double tv = s_check_split(a, labels, S_N, S_CLASSES, S_CLIENTS);
    for (uint32_t k = 0; k < S_CLIENTS; k++)
        CHECK(hafl_split_count(a, k) == S_N / S_CLIENTS + (k < S_N % S_CLIENTS));
    CHECKF(tv < 0.06, "iid mean total variation %.3f", tv);
    hafl_split_t *b = hafl_split_iid(labels, S_N, S_CLASSES, S_CLIENTS, 42, err, sizeof err);
    hafl_split_t *c = hafl_split_iid(labels, S_N, S_CLASSES, S_CLIENTS, 43, err, sizeof err);
    CHECK(b && c && s_same(a, b) && !s_same(a, c));
    printf("iid: mean total variation from the whole %.3f\n", tv);
    char line[512];
    hafl_split_describe(a, 0, line, sizeof line);
    CHECKF(strncmp(line, "client 0: 1132 examples, classes [", 34) == 0 &&
               line[strlen(line) - 1] == ']',
           "%s", line);
    printf("%s\n", line);
    hafl_split_describe(a, 0, line, 20); //  truncation stays terminated
    CHECK(strlen(line) == 19);
    hafl_split_destroy(&a);
    hafl_split_destroy(&b);
    hafl_split_destroy(&c);
    CHECK(a == NULL);
}

static void s_check_dirichlet(const uint32_t *labels)
{
    char err[256];
    hafl_split_t *iid = hafl_split_iid(labels, S_N, S_CLASSES, S_CLIENTS, 7, err, sizeof err);
    hafl_split_t *a =
        hafl_split_dirichlet(labels, S_N, S_CLASSES, S_CLIENTS, 0.5, 7, err, sizeof err);
    CHECKF(iid && a, "%s", err);
    double tv_iid = s_check_split(iid, labels, S_N, S_CLASSES, S_CLIENTS);
    double tv = s_check_split(a, labels, S_N, S_CLASSES, S_CLIENTS);
    CHECKF(tv > 0.3 && tv > 5 * tv_iid, "Dirichlet(0.5) mean total variation %.3f (iid %.3f)", tv,
           tv_iid);
    printf("dirichlet(0.5): mean total variation from the whole %.3f\n", tv);
    for (uint32_t k = 0; k < S_CLIENTS; k++) {
        char line[512];
        hafl_split_describe(a, k, line, sizeof line);
        printf("  %s\n", line);
    }
    hafl_split_t *b =
        hafl_split_dirichlet(labels, S_N, S_CLASSES, S_CLIENTS, 0.5, 7, err, sizeof err);
    hafl_split_t *c =
        hafl_split_dirichlet(labels, S_N, S_CLASSES, S_CLIENTS, 0.5, 8, err, sizeof err);
    CHECK(b && c && s_same(a, b) && !s_same(a, c));
    //  A large alpha is close to IID; a tiny one is extreme but still gives everyone one.
    hafl_split_t *flat =
        hafl_split_dirichlet(labels, S_N, S_CLASSES, S_CLIENTS, 1000.0, 7, err, sizeof err);
    CHECK(flat);
    double tv_flat = s_check_split(flat, labels, S_N, S_CLASSES, S_CLIENTS);
    CHECKF(tv_flat < 0.1, "Dirichlet(1000) mean total variation %.3f", tv_flat);
    uint32_t few[30];
    s_make_labels(few, 30, 3);
    for (uint64_t seed = 0; seed < 50; seed++) {
        hafl_split_t *tiny = hafl_split_dirichlet(few, 30, 3, 25, 1e-3, seed, err, sizeof err);
        CHECKF(tiny, "%s", err);
        s_check_split(tiny, few, 30, 3, 25);
        hafl_split_destroy(&tiny);
    }
    hafl_split_t *exact = hafl_split_dirichlet(few, 25, 3, 25, 0.1, 3, err, sizeof err);
    CHECKF(exact, "%s", err);
    s_check_split(exact, few, 25, 3, 25);
    for (uint32_t k = 0; k < 25; k++)
        CHECK(hafl_split_count(exact, k) == 1);
    hafl_split_destroy(&exact);
    hafl_split_destroy(&flat);
    hafl_split_destroy(&iid);
    hafl_split_destroy(&a);
    hafl_split_destroy(&b);
    hafl_split_destroy(&c);
}

static void s_check_errors(const uint32_t *labels)
{
    char err[256];
    CHECK(!hafl_split_iid(labels, 5, S_CLASSES, 6, 1, err, sizeof err));
    CHECKF(strstr(err, "5 examples"), "%s", err);
    CHECK(!hafl_split_dirichlet(labels, 5, S_CLASSES, 6, 0.5, 1, err, sizeof err));
    CHECK(!hafl_split_iid(labels, 100, S_CLASSES, 0, 1, err, sizeof err));
    CHECK(!hafl_split_iid(labels, 100, 0, 2, 1, err, sizeof err));
    CHECK(!hafl_split_iid(labels, 100, 3, 2, 1, err, sizeof err));
    CHECKF(strstr(err, "label"), "%s", err);
    CHECK(!hafl_split_dirichlet(labels, 100, S_CLASSES, 2, 0.0, 1, err, sizeof err));
    CHECKF(strstr(err, "alpha"), "%s", err);
    CHECK(!hafl_split_dirichlet(labels, 100, S_CLASSES, 2, NAN, 1, err, sizeof err));
    CHECK(!hafl_split_dirichlet(labels, 100, S_CLASSES, 2, INFINITY, 1, err, sizeof err));
}

static void s_check_subset(void)
{
    uint32_t count;
    uint32_t *all = hafl_split_subset(100, 0, 5, 0, &count);
    CHECK(all && count == 100);
    for (uint32_t i = 0; i < count; i++)
        CHECK(all[i] == i);
    free(all);
    all = hafl_split_subset(100, 500, 5, 0, &count);
    CHECK(all && count == 100);
    free(all);
    uint32_t *a = hafl_split_subset(1000, 50, 5, 0, &count);
    CHECK(a && count == 50);
    for (uint32_t i = 1; i < count; i++)
        CHECK(a[i] > a[i - 1] && a[i] < 1000);
    uint32_t *b = hafl_split_subset(1000, 50, 5, 0, &count);
    uint32_t *c = hafl_split_subset(1000, 50, 5, 1, &count);
    uint32_t *d = hafl_split_subset(1000, 50, 6, 0, &count);
    CHECK(b && c && d);
    CHECK(memcmp(a, b, 50 * sizeof *a) == 0);
    CHECK(memcmp(a, c, 50 * sizeof *a) != 0 && memcmp(a, d, 50 * sizeof *a) != 0);
    free(a);
    free(b);
    free(c);
    free(d);
    uint32_t *none = hafl_split_subset(0, 0, 5, 0, &count);
    CHECK(none && count == 0);
    free(none);
}

int main(void)
{
    uint32_t *labels = malloc(S_N * sizeof *labels);
    CHECK(labels);
    s_make_labels(labels, S_N, S_CLASSES);
    s_check_iid(labels);
    s_check_dirichlet(labels);
    s_check_errors(labels);
    s_check_subset();
    free(labels);
    printf("data_split: ok\n");
    return 0;
}
