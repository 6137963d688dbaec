/*  test_client_state: the client state files of a run folder (hafl_client_state.h) and the
    atomic file helpers under them (hafl_file.h).

    Round trips (fresh and with values), the choice of the newest file at or before a round,
    pruning and forgetting, file names that only look like state files, and every way a file
    can be damaged: each truncation, each single flipped byte, a trailing byte, another
    version, a header that lies about its size, a file renamed to another round, random bytes.
    Each refusal is one line naming the file.
*/
#include "hafl_client_state.h"
#include "hafl_file.h"
#include "hafl_rng.h"
#include "hafl_test.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_dir[64];

static void s_write(const char *path, const void *data, size_t size)
{
    FILE *file = fopen(path, "wb");
    CHECK(file && fwrite(data, 1, size, file) == size && fclose(file) == 0);
}

static void s_touch(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/clients/%s", s_dir, name);
    s_write(path, "x", 1);
}

//  The file at path must be refused with a reason naming it (and containing needle if given).
static void s_refused(const char *path, const char *needle)
{
    char err[512];
    hafl_client_state_t *state = hafl_client_state_read(path, err, sizeof err);
    CHECKF(state == NULL, "%s was accepted", path);
    CHECKF(strstr(err, path) && !strchr(err, '\n'), "%s", err);
    CHECKF(!needle || strstr(err, needle), "expected '%s' in: %s", needle, err);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    snprintf(s_dir, sizeof s_dir, "/tmp/hafl-client-state-XXXXXX");
    CHECK(mkdtemp(s_dir) != NULL);
    char err[512], path[4300];

    //  Fresh at round 0, then values after round 2.
    CHECKF(hafl_client_state_save(s_dir, 3, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
    float values[10];
    for (int i = 0; i < 10; i++)
        values[i] = 0.25f * (float)i;
    CHECKF(hafl_client_state_save(s_dir, 3, 2, values, 10, err, sizeof err) == 0, "%s", err);
    hafl_client_state_t *state = hafl_client_state_load(s_dir, 3, 5, err, sizeof err);
    CHECKF(state, "%s", err);
    CHECK(state->client == 3 && state->round == 2 && state->n == 10);
    CHECK(memcmp(state->values, values, sizeof values) == 0);
    hafl_client_state_destroy(&state);
    CHECK(state == NULL);
    hafl_client_state_destroy(&state);
    state = hafl_client_state_load(s_dir, 3, 1, err, sizeof err);
    CHECKF(state && state->round == 0 && state->n == 0 && state->values == NULL, "%s", err);
    hafl_client_state_destroy(&state);

    //  Names that are not this client's state files are ignored, whatever they hold.
    s_touch("client-3-round-07.state");
    s_touch("client-3-round-+9.state");
    s_touch("client-3-round-9.state.tmp.12");
    s_touch("client-03-round-9.state");
    s_touch("client-30-round-4.state");
    state = hafl_client_state_load(s_dir, 3, 100, err, sizeof err);
    CHECKF(state && state->round == 2, "%s", err);
    hafl_client_state_destroy(&state);

    //  Prune after round 4 with the last checkpoint at 3: keeps 4 and 2 (the newest <= 3).
    CHECKF(hafl_client_state_save(s_dir, 3, 4, values, 10, err, sizeof err) == 0, "%s", err);
    hafl_client_state_prune(s_dir, 3, 4, 3);
    state = hafl_client_state_load(s_dir, 3, 1, err, sizeof err);
    CHECKF(!state && strstr(err, "no state file of client 3 at or before round 1"), "%s", err);
    state = hafl_client_state_load(s_dir, 3, 3, err, sizeof err);
    CHECKF(state && state->round == 2, "%s", err);
    hafl_client_state_destroy(&state);
    state = hafl_client_state_load(s_dir, 3, 4, err, sizeof err);
    CHECKF(state && state->round == 4, "%s", err);
    hafl_client_state_destroy(&state);
    snprintf(path, sizeof path, "%s/clients/client-30-round-4.state", s_dir);
    CHECK(access(path, F_OK) == 0); //  another client's file is not touched

    //  A file renamed to another round is refused by _load.
    char renamed[4300];
    hafl_client_state_path(s_dir, 3, 2, path, sizeof path);
    hafl_client_state_path(s_dir, 3, 3, renamed, sizeof renamed);
    CHECK(link(path, renamed) == 0);
    state = hafl_client_state_load(s_dir, 3, 3, err, sizeof err);
    CHECKF(!state && strstr(err, renamed) && strstr(err, "not what its name says"), "%s", err);
    CHECK(unlink(renamed) == 0);

    //  Damage: every truncation, every flipped byte, one byte more.
    size_t size = 0;
    uint8_t *good = hafl_file_read(path, 1 << 20, &size, err, sizeof err);
    CHECKF(good && size == 32 + 40 + 32, "%s", err);
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/bad.state", s_dir);
    for (size_t cut = 0; cut < size; cut++) {
        s_write(bad, good, cut);
        s_refused(bad, NULL);
    }
    uint8_t *copy = malloc(size + 1);
    CHECK(copy);
    for (size_t at = 0; at < size; at++) {
        memcpy(copy, good, size);
        copy[at] ^= 0x01;
        s_write(bad, copy, size);
        s_refused(bad, NULL);
    }
    memcpy(copy, good, size);
    copy[size] = 0;
    s_write(bad, copy, size + 1);
    s_refused(bad, "header declares 10 floats");
    //  Another version, and a header claiming more floats, each with a valid checksum.
    memcpy(copy, good, size);
    copy[8] = 2;
    crypto_hash_sha256(copy + size - 32, copy, size - 32);
    s_write(bad, copy, size);
    s_refused(bad, "version 2, this hafl reads version 1");
    memcpy(copy, good, size);
    copy[24] = 11;
    crypto_hash_sha256(copy + size - 32, copy, size - 32);
    s_write(bad, copy, size);
    s_refused(bad, "header declares 11 floats");
    memcpy(copy, good, size);
    memset(copy + 24, 0xff, 8);
    crypto_hash_sha256(copy + size - 32, copy, size - 32);
    s_write(bad, copy, size);
    s_refused(bad, "header declares");
    free(copy);
    //  Random bytes, at random lengths, sometimes behind the right magic.
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 1, 99, 0);
    uint8_t noise[256];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = (size_t)(hafl_rng_u64(&rng) % sizeof noise);
        for (size_t i = 0; i < len; i++)
            noise[i] = (uint8_t)hafl_rng_u64(&rng);
        if (trial % 2 && len >= 8)
            memcpy(noise, good, 8);
        s_write(bad, noise, len);
        s_refused(bad, NULL);
    }
    free(good);
    s_refused("/nonexistent-folder/client-0-round-0.state", "cannot open");

    //  Forget removes every file of the client, so nothing older can stand in.
    hafl_client_state_forget(s_dir, 3);
    state = hafl_client_state_load(s_dir, 3, 100, err, sizeof err);
    CHECKF(!state && strstr(err, s_dir) && strstr(err, "client-3-round-R.state"), "%s", err);

    //  hafl_file: a cap below the size is refused before reading; a write into a missing
    //  folder fails naming the file and leaves nothing behind.
    snprintf(path, sizeof path, "%s/clients/client-30-round-4.state", s_dir);
    CHECK(hafl_file_read(path, 0, &size, err, sizeof err) == NULL && strstr(err, "more than"));
    snprintf(path, sizeof path, "%s/missing/file", s_dir);
    CHECK(hafl_file_write_atomic(path, "x", 1, err, sizeof err) == -1 && strstr(err, "missing"));
    snprintf(path, sizeof path, "%s/whole", s_dir);
    CHECKF(hafl_file_write_atomic(path, "abc", 3, err, sizeof err) == 0, "%s", err);
    char *text = hafl_file_read(path, 3, &size, err, sizeof err);
    CHECKF(text && size == 3 && strcmp(text, "abc") == 0, "%s", err);
    free(text);

    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", s_dir);
    CHECK(system(command) == 0);
    printf("client state: ok\n");
    return 0;
}
