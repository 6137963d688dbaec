/*  tokenizer_oracle: hafl's side of the tokenizer oracle test (tests/tokenizer_oracle.sh).

    Usage: tokenizer_oracle TOKENIZER.gguf CORPUS
    Loads the GGUF through hafl_tokenizer_load (the real loader; the vocabulary size is the
    length of its tokenizer.ggml.tokens) and encodes every string of CORPUS without BOS or EOS.
    CORPUS is little-endian: u32 count, then count records of u32 byte length and that many
    bytes of UTF-8 (no NUL inside). stdout gets one line per string: its ids separated by single
    spaces (an empty line for no ids). Each string must also decode back to its own bytes;
    otherwise, or on any load or read failure, one line goes to stderr and the exit status is 1.
    A last line on stderr gives the count and the encoding time.
*/
#include "hafl_gguf.h"
#include "hafl_tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_STRING (1 << 24)

static int s_u32(FILE *f, uint32_t *out)
{
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4)
        return -1;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int s_vocab_size(const char *path, int *out)
{
    char err[512];
    hafl_gguf_t *g = hafl_gguf_open(path, err, sizeof err);
    const hafl_gguf_kv_t *kv = g ? hafl_gguf_find(g, "tokenizer.ggml.tokens") : NULL;
    if (!kv || kv->value.type != HAFL_GGUF_ARRAY || kv->value.array.count > (1 << 20)) {
        fprintf(stderr, "tokenizer_oracle: %s\n",
                g ? "no array tokenizer.ggml.tokens of at most 2^20 entries" : err);
        hafl_gguf_destroy(&g);
        return -1;
    }
    *out = (int)kv->value.array.count;
    hafl_gguf_destroy(&g);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tokenizer_oracle TOKENIZER.gguf CORPUS\n");
        return 2;
    }
    int vocab;
    char err[512];
    if (s_vocab_size(argv[1], &vocab) != 0)
        return 1;
    hafl_tokenizer_t *tok = hafl_tokenizer_load(argv[1], vocab, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "tokenizer_oracle: %s\n", err);
        return 1;
    }
    FILE *corpus = fopen(argv[2], "rb");
    uint32_t count = 0;
    if (!corpus || s_u32(corpus, &count) != 0) {
        fprintf(stderr, "tokenizer_oracle: cannot read %s\n", argv[2]);
        if (corpus)
            fclose(corpus);
        hafl_tokenizer_destroy(&tok);
        return 1;
    }
    int rc = 0;
    double seconds = 0;
    size_t total_ids = 0;
    for (uint32_t k = 0; k < count && rc == 0; k++) {
        uint32_t len;
        char *text = NULL;
        int32_t *ids = NULL;
        size_t cap = 0, n = 0;
        if (s_u32(corpus, &len) != 0 || len > S_MAX_STRING || !(text = malloc(len + 1)) ||
            fread(text, 1, len, corpus) != len || memchr(text, 0, len)) {
            fprintf(stderr, "tokenizer_oracle: %s: string %u is truncated or holds a NUL\n",
                    argv[2], k);
            rc = 1;
        } else {
            text[len] = '\0';
            cap = hafl_tokenizer_encode_capacity(len);
            ids = malloc(cap * sizeof(int32_t));
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            if (!ids || hafl_tokenizer_encode(tok, text, false, false, ids, cap, &n)) {
                fprintf(stderr, "tokenizer_oracle: string %u: encoding failed\n", k);
                rc = 1;
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            seconds += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        }
        //  Decoding must give the text back (the ids are plain tokens, no specials).
        size_t at = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const char *piece = hafl_tokenizer_decode(tok, i ? ids[i - 1] : -1, ids[i]);
            size_t plen = piece ? strlen(piece) : 0;
            if (!piece || at + plen > len || memcmp(text + at, piece, plen) != 0) {
                fprintf(stderr,
                        "tokenizer_oracle: string %u: id %d (position %zu) does not "
                        "decode to the text's next bytes\n",
                        k, ids[i], i);
                rc = 1;
            }
            at += plen;
        }
        if (rc == 0 && at != len) {
            fprintf(stderr, "tokenizer_oracle: string %u: decodes to %zu of its %u bytes\n", k, at,
                    len);
            rc = 1;
        }
        for (size_t i = 0; rc == 0 && i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        if (rc == 0)
            putchar('\n');
        total_ids += n;
        free(text);
        free(ids);
    }
    fclose(corpus);
    hafl_tokenizer_destroy(&tok);
    if (rc == 0)
        fprintf(stderr, "tokenizer_oracle: %u strings, %zu ids, encoded in %.3f s\n", count,
                total_ids, seconds);
    return fflush(stdout) == 0 && !ferror(stdout) ? rc : 1;
}
