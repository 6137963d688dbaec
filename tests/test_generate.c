/*  test_generate: `hafl generate` against the llama2.c runner's recorded output.

    Runs the hafl binary ($HAFL_BINARY) as a child with stdout on a pipe: greedy decoding for 256
    steps must print exactly the bytes the reference runner printed, for stories260K
    (stories260K.greedy256.txt) and for base3M with its 4096-piece tokenizer (base3M.greedy256.txt);
    all are found through the asset lookup, and a missing one fails the test with the lookup's
    reason. Also: a seeded sampled run is reproducible and continues its prompt, and bad flags or
    a missing asset exit with status 2.

    With --gguf (ctest generate_gguf): stories260K.gguf, with the tokenizer from its metadata
    (no --tokenizer), prints stories260K.greedy256.txt byte for byte too, and seeded sampled runs
    from prompts that need byte fallback, multi-byte pieces and runs of spaces print what the
    .bin with tok512.bin prints. Exits 77 (skipped) when stories260K.gguf, stories260K.bin,
    tok512.bin or the reference text is not on this machine.
*/
#include "hafl_asset.h"
#include "hafl_test.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char *out; //  stdout bytes, NUL-terminated
    size_t len;
    int status; //  exit status, -1 if killed
} s_run_t;

//  Run HAFL_BINARY with argv (NULL-terminated, argv[0] = "hafl"); stderr is inherited.
static s_run_t s_run(char *const *argv)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary && *binary, "HAFL_BINARY is not set (run through ctest)");
    int fds[2];
    CHECK(pipe(fds) == 0);
    posix_spawn_file_actions_t actions;
    CHECK(posix_spawn_file_actions_init(&actions) == 0);
    CHECK(posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO) == 0);
    CHECK(posix_spawn_file_actions_addclose(&actions, fds[0]) == 0);
    pid_t pid;
    CHECK(posix_spawn(&pid, binary, &actions, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    s_run_t run = {NULL, 0, -1};
    size_t cap = 0;
    while (1) {
        if (run.len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            run.out = realloc(run.out, cap);
            CHECK(run.out);
        }
        ssize_t got = read(fds[0], run.out + run.len, cap - run.len - 1);
        CHECK(got >= 0);
        if (got == 0)
            break;
        run.len += (size_t)got;
    }
    run.out[run.len] = '\0';
    close(fds[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

static char *s_read_asset(const char *name, size_t *len)
{
    char err[512];
    char *path = hafl_asset_find(name, err, sizeof err);
    CHECKF(path, "%s", err);
    FILE *file = fopen(path, "rb");
    CHECK(file);
    char *data = malloc(1 << 16);
    CHECK(data);
    *len = fread(data, 1, 1 << 16, file);
    CHECK(feof(file));
    fclose(file);
    free(path);
    return data;
}

//  Greedy decoding of `checkpoint` with `tokenizer` (NULL: none given) from BOS for 256 steps
//  prints exactly the asset `reference` (`reference_len` bytes, ending in a newline).
static void s_check_greedy(char *checkpoint, char *tokenizer, const char *reference,
                           size_t reference_len)
{
    size_t expected_len;
    char *expected = s_read_asset(reference, &expected_len);
    CHECKF(expected_len == reference_len && expected[expected_len - 1] == '\n',
           "%s: %zu bytes, expected %zu ending in a newline", reference, expected_len,
           reference_len);

    char *greedy[] = {
        "hafl",          "generate", "--checkpoint", checkpoint, "--tokenizer", tokenizer,
        "--temperature", "0",        "--steps",      "256",      NULL};
    //  No tokenizer: a GGUF checkpoint's own, so drop the flag and shift the rest down.
    if (!tokenizer)
        memmove(greedy + 4, greedy + 6, 5 * sizeof(char *));
    s_run_t run = s_run(greedy);
    CHECKF(run.status == 0, "%s: status %d", checkpoint, run.status);
    size_t first_diff = 0;
    while (first_diff < run.len && first_diff < expected_len &&
           run.out[first_diff] == expected[first_diff])
        first_diff++;
    CHECKF(run.len == expected_len && first_diff == expected_len,
           "%s: greedy output (%zu bytes) differs from %s (%zu bytes) at byte %zu", checkpoint,
           run.len, reference, expected_len, first_diff);
    free(run.out);
    free(expected);
}

//  The --gguf test: 0, or 77 when an asset is missing (the checks exit 1 on failure).
static int s_test_gguf(void)
{
    const char *needed[] = {"stories260K.gguf", "stories260K.bin", "tok512.bin",
                            "stories260K.greedy256.txt"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        char err[1024];
        char *path = hafl_asset_find_local(needed[i], err, sizeof err);
        if (!path) {
            printf("skipped: %s\n", err);
            return 77;
        }
        free(path);
    }
    s_check_greedy("stories260K.gguf", NULL, "stories260K.greedy256.txt", 566);
    s_check_greedy("stories260K.gguf", "tok512.bin", "stories260K.greedy256.txt", 566);
    char *prompts[] = {"Lily likes", "  two  spaces, \xc3\xa9t\xc3\xa9 \xe2\x98\x83 and 12345!",
                       "\x01\x7f\xf0\x9f\x98\x80 bytes"};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        char *gguf[] = {"hafl",
                        "generate",
                        "--checkpoint",
                        "stories260K.gguf",
                        "--prompt",
                        prompts[i],
                        "--seed",
                        "7",
                        "--steps",
                        "60",
                        NULL};
        char *bin[] = {"hafl",     "generate", "--checkpoint", "stories260K.bin",
                       "--prompt", prompts[i], "--seed",       "7",
                       "--steps",  "60",       "--tokenizer",  "tok512.bin",
                       NULL};
        s_run_t a = s_run(gguf), b = s_run(bin);
        CHECKF(a.status == 0 && b.status == 0, "prompt %zu: status %d and %d", i, a.status,
               b.status);
        CHECKF(a.len == b.len && memcmp(a.out, b.out, a.len) == 0,
               "prompt %zu: the .gguf printed '%s', the .bin '%s'", i, a.out, b.out);
        free(a.out);
        free(b.out);
    }
    printf("generate --gguf: ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--gguf") == 0)
        return s_test_gguf();
    CHECKF(argc == 1, "usage: test_generate [--gguf]");
    s_check_greedy("stories260K.bin", "tok512.bin", "stories260K.greedy256.txt", 566);
    //  base3M differs from stories260K where the forward pass and the decoder could go wrong:
    //  4096 pieces with byte fallback, dim 192 over 6 heads with as many kv heads (no grouping),
    //  and seq_len 256, so the 256 steps fill its whole context.
    s_check_greedy("base3M.bin", "tok4096.bin", "base3M.greedy256.txt", 279);

    //  Top-p sampling with a prompt: same seed, same text; it starts with the prompt (the
    //  leading space of the first piece is dropped after BOS) and ends with a newline.
    char *sampled[] = {"hafl",        "generate",   "--checkpoint", "stories260K.bin",
                       "--tokenizer", "tok512.bin", "--prompt",     "Lily likes",
                       "--seed",      "42",         "--steps",      "40",
                       NULL};
    s_run_t a = s_run(sampled), b = s_run(sampled);
    CHECK(a.status == 0 && b.status == 0);
    CHECK(a.len == b.len && memcmp(a.out, b.out, a.len) == 0);
    CHECKF(strncmp(a.out, "Lily likes", 10) == 0 && a.out[a.len - 1] == '\n', "got '%s'", a.out);
    CHECK(a.len > 20);
    free(a.out);
    free(b.out);

    //  Usage errors and missing assets exit 2 with nothing on stdout.
    char *no_tokenizer[] = {"hafl", "generate", "--checkpoint", "stories260K.bin", NULL};
    char *bad_temp[] = {"hafl",        "generate",   "--checkpoint",  "stories260K.bin",
                        "--tokenizer", "tok512.bin", "--temperature", "warm",
                        NULL};
    char *missing[] = {
        "hafl",       "generate", "--checkpoint", "no-such-dir/model.bin", "--tokenizer",
        "tok512.bin", NULL};
    char **bad[] = {no_tokenizer, bad_temp, missing};
    for (int i = 0; i < 3; i++) {
        s_run_t r = s_run(bad[i]);
        CHECKF(r.status == 2 && r.len == 0, "case %d: status %d, %zu bytes out", i, r.status,
               r.len);
        free(r.out);
    }
    char *help[] = {"hafl", "generate", "--help", NULL};
    s_run_t h = s_run(help);
    CHECK(h.status == 0 && strstr(h.out, "--checkpoint"));
    free(h.out);
    printf("generate: ok\n");
    return 0;
}
