/*  hafl bench codec [--dim D] [--components K] [--iters N]: the rank-1 frame codec against
    memcpy.

    K distinct rank-1 components with d_out = d_in = D (defaults 4096 and 8: 256 KiB of floats,
    the size of a few layers' worth of a message, so neither side runs from a buffer that
    happens to fit the L1 cache) are taken in turn, N times per round. The codec side encodes
    each into its frame and decodes the frame back the way the bus does (zero-copy, checking
    every float), then frees it. The memcpy side copies the same payload bytes, from the same
    source arrays, into one destination buffer. Rounds alternate between the two, so a noisy
    neighbour hurts both alike, and the destination moves between several 64-byte aligned
    offsets from round to round: memcpy is held to its fastest placement.

    Bandwidth is payload bytes per second. Prints one JSON line: the codec's and memcpy's best
    rounds and their ratio (the target is at least 0.5), the median over rounds of the ratio
    of each codec round to the memcpy round beside it, encode alone and decode alone (of one
    frame, decoded again and again) for context, and the bytes each frame adds to its payload.
    Every component's round trip is checked bit for bit before timing.
*/
#include "hafl_cmd.h"
#include "hafl_msg.h"

#include <alloca.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_ROUNDS 32          //  alternating rounds; a multiple of the 4 memcpy offsets
#define S_MAX_COMPONENTS 256 //  --components cap

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl bench codec [--dim D] [--components K] [--iters N]\n"
            "  encode + zero-copy decode of rank-1 frames with d_out = d_in = D (default 4096),\n"
            "  cycling through K components (default 8), against memcpy of the same payload\n"
            "  bytes; N frames per round (default 40000)\n");
}

//  One encode + decode round trip, compared with the source bit for bit. 0 when equal.
static int s_check_round_trip(const hafl_rank1_t *src)
{
    hafl_msg_error_t err;
    zframe_t *frame = hafl_msg_rank1_encode(src, &err);
    if (!frame) {
        fprintf(stderr, "hafl bench codec: encode: %s\n", err.text);
        return -1;
    }
    hafl_rank1_t dst;
    if (hafl_msg_rank1_view(frame, &dst, &err)) {
        fprintf(stderr, "hafl bench codec: decode: %s\n", err.text);
        zframe_destroy(&frame);
        return -1;
    }
    size_t bytes_b = 4 * (size_t)src->d_out, bytes_a = 4 * (size_t)src->d_in;
    int same = dst.matrix == src->matrix && dst.k == src->k && dst.score == src->score &&
               dst.d_out == src->d_out && dst.d_in == src->d_in &&
               memcmp(dst.b, src->b, bytes_b) == 0 && memcmp(dst.a, src->a, bytes_a) == 0;
    hafl_msg_rank1_clear(&dst);
    zframe_destroy(&frame);
    if (!same)
        fprintf(stderr, "hafl bench codec: round trip changed the component\n");
    return same ? 0 : -1;
}

//  N round trips over the K components in turn. 0, or -1 if one failed.
static int s_codec_round(const hafl_rank1_t *src, long k_count, long iters)
{
    for (long i = 0; i < iters; i++) {
        zframe_t *frame = hafl_msg_rank1_encode(&src[i % k_count], NULL);
        hafl_rank1_t dst;
        if (!frame || hafl_msg_rank1_view(frame, &dst, NULL)) {
            zframe_destroy(&frame);
            fprintf(stderr, "hafl bench codec: round trip failed\n");
            return -1;
        }
        hafl_msg_rank1_clear(&dst);
        zframe_destroy(&frame);
    }
    return 0;
}

//  What every timed round needs, and what the rounds found.
typedef struct {
    const hafl_rank1_t *src;
    long k_count, iters;
    size_t n;
    zframe_t *frame;            //  one encoded frame, for decode alone
    unsigned char *dest;        //  memcpy's destination buffer
    double best[4];             //  fastest round trip, memcpy, encode, decode (seconds)
    double paired[S_ROUNDS];    //  per round: memcpy time / round-trip time
} s_bench_t;

//  One round of each loop. 0, or -1 if the codec failed.
static __attribute__((noinline)) int s_round(s_bench_t *self, int round)
{
    //  memcpy is timed into several 64-byte aligned offsets of one buffer, one per round:
    //  some relative placements of source and destination copy far slower than others, and
    //  the codec is held to memcpy's fastest round.
    static const size_t offsets[] = {0, 1024, 2112, 4096 + 576};
    size_t n = self->n;
    double t[5];
    t[0] = s_now();
    if (s_codec_round(self->src, self->k_count, self->iters))
        return -1;
    t[1] = s_now();
    unsigned char *to = self->dest + offsets[round % 4];
    for (long i = 0; i < self->iters; i++) {
        const hafl_rank1_t *c = &self->src[i % self->k_count];
        memcpy(to, c->b, 4 * n);
        memcpy(to + 4 * n, c->a, 4 * n);
        //  Keep the copy: the compiler may not drop a store the asm could read.
        __asm__ volatile("" : : "r"(to) : "memory");
    }
    t[2] = s_now();
    for (long i = 0; i < self->iters; i++) {
        zframe_t *f = hafl_msg_rank1_encode(&self->src[i % self->k_count], NULL);
        if (!f)
            return -1;
        zframe_destroy(&f);
    }
    t[3] = s_now();
    for (long i = 0; i < self->iters; i++) {
        hafl_rank1_t dst;
        if (hafl_msg_rank1_view(self->frame, &dst, NULL)) {
            fprintf(stderr, "hafl bench codec: decode failed\n");
            return -1;
        }
        hafl_msg_rank1_clear(&dst);
    }
    t[4] = s_now();
    for (int k = 0; k < 4; k++)
        if (t[k + 1] - t[k] < self->best[k])
            self->best[k] = t[k + 1] - t[k];
    self->paired[round] = (t[2] - t[1]) / (t[1] - t[0]);
    return 0;
}

//  Run a round with its stack frame `depth` bytes lower. On this kind of CPU the speed of both
//  the codec and memcpy swings by up to 1.5x with where the stack sits within a page (seen on
//  AMD Zen 3: same binary, same heap, only the environment's size changed), so each round
//  runs at another depth and both sides of a round share it; one lucky or unlucky placement
//  then decides nothing on its own.
static __attribute__((noinline)) int s_round_at_depth(s_bench_t *self, int round, size_t depth)
{
    volatile char *pad = alloca(depth + 16);
    pad[0] = 0;
    int rc = s_round(self, round);
    pad[depth] = 0; //  keeps the allocation alive across the call
    return rc;
}

int hafl_bench_codec(int argc, char **argv)
{
    long dim = 4096, k_count = 8, iters = 40000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return HAFL_EXIT_OK;
        }
        char *end = NULL;
        if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc)
            dim = strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--components") == 0 && i + 1 < argc)
            k_count = strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = strtol(argv[++i], &end, 10);
        if (!end || *end) {
            fprintf(stderr, "hafl bench codec: bad argument '%s'\n", argv[i]);
            s_usage(stderr);
            return HAFL_EXIT_USAGE;
        }
    }
    if (dim < 1 || dim > (long)HAFL_MSG_MAX_DIM || k_count < 1 || k_count > S_MAX_COMPONENTS ||
        iters < 1 || iters > 100000000) {
        fprintf(stderr,
                "hafl bench codec: --dim must be 1..%u, --components 1..%d and --iters 1..1e8\n",
                HAFL_MSG_MAX_DIM, S_MAX_COMPONENTS);
        return HAFL_EXIT_USAGE;
    }

    size_t n = (size_t)dim, payload = 4 * 2 * n;
    int rc = HAFL_EXIT_FAILURE;
    zframe_t *frame = NULL;
    unsigned char *dest = aligned_alloc(64, (payload + 8192 + 63) / 64 * 64);
    hafl_rank1_t *src = calloc((size_t)k_count, sizeof *src);
    if (!dest || !src) {
        fprintf(stderr, "hafl bench codec: out of memory\n");
        goto done;
    }
    uint32_t x = 12345;
    for (long k = 0; k < k_count; k++) {
        //  malloc'd like the arrays the actors export from their adapters.
        src[k] = (hafl_rank1_t){.matrix = (uint32_t)k, .k = 3, .score = 0.125f,
                                .d_out = (uint32_t)n, .d_in = (uint32_t)n};
        src[k].b = malloc(4 * n);
        src[k].a = malloc(4 * n);
        if (!src[k].b || !src[k].a) {
            fprintf(stderr, "hafl bench codec: out of memory\n");
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            src[k].b[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
            src[k].a[i] = -src[k].b[i] * 0.5f;
        }
        if (s_check_round_trip(&src[k]))
            goto done;
    }

    //  Alternating rounds: codec round trips, memcpy, then encode alone and decode alone.
    frame = hafl_msg_rank1_encode(&src[0], NULL);
    if (!frame)
        goto done;
    s_bench_t bench = {src, k_count, iters, n, frame, dest, {1e30, 1e30, 1e30, 1e30}, {0}};
    for (int round = 0; round < S_ROUNDS; round++)
        if (s_round_at_depth(&bench, round, (size_t)round * 1040 % 4096))
            goto done;
    double *best = bench.best, *paired = bench.paired;
    qsort(paired, S_ROUNDS, sizeof paired[0], hafl_cmd_cmp_double);
    double median = (paired[S_ROUNDS / 2 - 1] + paired[S_ROUNDS / 2]) / 2;
    double gbs[4];
    for (int k = 0; k < 4; k++)
        gbs[k] = (double)payload * iters / best[k] / 1e9;
    printf("{\"bench\":\"codec\",\"dim\":%ld,\"components\":%ld,\"iters\":%ld,\"rounds\":%d,"
           "\"payload_bytes\":%zu,\"frame_bytes\":%zu,\"overhead_bytes\":%u,"
           "\"codec_gbps\":%.3f,\"memcpy_gbps\":%.3f,\"ratio\":%.3f,\"ratio_median\":%.3f,"
           "\"ratio_min\":%.3f,\"ratio_max\":%.3f,\"target_ratio\":0.5,\"encode_gbps\":%.3f,"
           "\"decode_gbps\":%.3f,\"encode_ratio\":%.3f,\"decode_ratio\":%.3f,"
           "\"codec_us_per_frame\":%.3f}\n",
           dim, k_count, iters, S_ROUNDS, payload, payload + HAFL_MSG_RANK1_OVERHEAD,
           HAFL_MSG_RANK1_OVERHEAD, gbs[0], gbs[1], gbs[0] / gbs[1], median, paired[0],
           paired[S_ROUNDS - 1], gbs[2], gbs[3], gbs[2] / gbs[1], gbs[3] / gbs[1],
           best[0] / iters * 1e6);
    rc = HAFL_EXIT_OK;
done:
    zframe_destroy(&frame);
    for (long k = 0; src && k < k_count; k++)
        free(src[k].b), free(src[k].a);
    free(src);
    free(dest);
    return rc;
}
