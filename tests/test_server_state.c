/*  test_server_state: checkpoint.state (hafl_server_state.h) round-trips every field, and its
    strict reader refuses, with one line naming the file, every truncation, every missing line,
    each malformed field (sign, leading zero, overflow, unknown strategy, bad hex, wrong client
    order or count, a stray byte), the format written before client state existed, and random
    bytes.
*/
#include "hafl_rng.h"
#include "hafl_server_state.h"
#include "hafl_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_path[96];

static void s_write(const char *text, size_t size)
{
    FILE *file = fopen(s_path, "wb");
    CHECK(file && fwrite(text, 1, size, file) == size && fclose(file) == 0);
}

static void s_refused(const char *text, size_t size, const char *needle)
{
    s_write(text, size);
    char err[512];
    hafl_server_state_t *state = hafl_server_state_load(s_path, err, sizeof err);
    CHECKF(state == NULL, "accepted:\n%.*s", (int)size, text);
    CHECKF(strstr(err, s_path) && !strchr(err, '\n'), "%s", err);
    CHECKF(!needle || strstr(err, needle), "expected '%s' in: %s", needle, err);
}

//  The good text with its first occurrence of `from` replaced by `to`, then refused.
static void s_mutated(const char *good, const char *from, const char *to, const char *needle)
{
    const char *at = strstr(good, from);
    CHECKF(at, "'%s' not in the file", from);
    char text[4096];
    int len =
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    s_refused(text, (size_t)len, needle);
}

int main(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/hafl-server-state-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(s_path, sizeof s_path, "%s/checkpoint.state", dir);
    char err[512];

    hafl_server_state_t *state = hafl_server_state_new(3);
    CHECK(state && state->n_clients == 3);
    state->round = 7;
    snprintf(state->strategy, sizeof state->strategy, "zeropad");
    snprintf(state->pending_swap, sizeof state->pending_swap, "flora");
    for (int i = 0; i < 32; i++)
        state->adapter[i] = (uint8_t)(i * 7 + 1);
    state->up = (hafl_traffic_t){1, 2, 3, 4, 5, 6};
    state->down = (hafl_traffic_t){UINT64_MAX, 0, 9, 10, 11, 12};
    state->malformed = 13;
    state->unexpected = 14;
    state->late = 15;
    state->clients[1].down_until = 9;
    state->clients[2].ctl_drop = true;
    state->clients[2].ctl_straggle_ms = 86400000;
    CHECKF(hafl_server_state_save(state, s_path, err, sizeof err) == 0, "%s", err);
    hafl_server_state_t *back = hafl_server_state_load(s_path, err, sizeof err);
    CHECKF(back, "%s", err);
    CHECK(back->round == 7 && strcmp(back->strategy, "zeropad") == 0 &&
          strcmp(back->pending_swap, "flora") == 0 &&
          memcmp(back->adapter, state->adapter, 32) == 0);
    CHECK(memcmp(&back->up, &state->up, sizeof back->up) == 0);
    CHECK(memcmp(&back->down, &state->down, sizeof back->down) == 0);
    CHECK(back->malformed == 13 && back->unexpected == 14 && back->late == 15);
    CHECK(back->n_clients == 3 && back->clients[0].down_until == 0 && !back->clients[0].ctl_drop &&
          back->clients[1].down_until == 9 && back->clients[2].ctl_drop &&
          back->clients[2].ctl_straggle_ms == 86400000);
    hafl_server_state_destroy(&back);
    //  No pending swap is written as "-" and read back as "".
    state->pending_swap[0] = 0;
    CHECKF(hafl_server_state_save(state, s_path, err, sizeof err) == 0, "%s", err);
    back = hafl_server_state_load(s_path, err, sizeof err);
    CHECKF(back && back->pending_swap[0] == 0, "%s", err);
    hafl_server_state_destroy(&back);
    hafl_server_state_destroy(&state);
    CHECK(state == NULL);

    FILE *file = fopen(s_path, "rb");
    CHECK(file);
    char good[4096];
    size_t size = fread(good, 1, sizeof good - 1, file);
    fclose(file);
    good[size] = 0;
    CHECK(strncmp(good, "hafl-checkpoint-state 2\nround 7\nstrategy zeropad\npending_swap -\n",
                  64) == 0);

    //  Every truncation, and every line left out.
    for (size_t cut = 0; cut < size; cut++)
        s_refused(good, cut, NULL);
    for (const char *line = good; *line;) {
        const char *end = strchr(line, '\n') + 1;
        char text[4096];
        int len = snprintf(text, sizeof text, "%.*s%s", (int)(line - good), good, end);
        s_refused(text, (size_t)len, "line");
        line = end;
    }
    //  Malformed fields.
    s_mutated(good, "round 7", "round 0", "round 0 is not a checkpoint");
    s_mutated(good, "round 7", "round -7", "without sign");
    s_mutated(good, "round 7", "round +7", "without sign");
    s_mutated(good, "round 7", "round 07", "leading zero");
    s_mutated(good, "round 7", "round 4294967296", "out of range");
    s_mutated(good, "round 7", "round 7 ", "unexpected text");
    s_mutated(good, "round 7", "round  7", "without sign");
    s_mutated(good, "round 7", "rounds 7", "expected 'round ...'");
    s_mutated(good, "hafl-checkpoint-state 2", "hafl-checkpoint-state 3", "another version");
    s_mutated(good, "strategy zeropad", "strategy nosuch", "not a known strategy");
    s_mutated(good, "pending_swap -", "pending_swap nosuch", "not a known strategy");
    s_mutated(good, "strategy zeropad", "strategy -", "not a known strategy");
    s_mutated(good, "adapter 0108", "adapter 0g08", "64 hex digits");
    s_mutated(good, "adapter 0108", "adapter 108", "64 hex digits");
    s_mutated(good, "up 1 2 3 4 5 6", "up 1 2 3 4 5", "expected one space");
    s_mutated(good, "down 18446744073709551615", "down 18446744073709551616", "out of range");
    s_mutated(good, "clients 3", "clients 4", "expected 'client ...'");
    s_mutated(good, "clients 3", "clients 2", "unexpected text after the last client");
    s_mutated(good, "clients 3", "clients 100001", "out of range");
    s_mutated(good, "client 1 9", "client 2 9", "clients out of order");
    s_mutated(good, "client 2 0 1", "client 2 0 2", "CTL_DROP must be 0 or 1");
    s_mutated(good, "round 7\n", "round 7\r\n", "unexpected text");
    char with_zero[4096];
    memcpy(with_zero, good, size);
    with_zero[10] = 0;
    s_refused(with_zero, size, "zero byte");
    //  The format from before client state, and random bytes.
    s_refused("round 3\nstrategy adaptive\n", 26, "would not be exact");
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 2, 99, 0);
    char noise[512];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = (size_t)(hafl_rng_u64(&rng) % sizeof noise);
        for (size_t i = 0; i < len; i++)
            noise[i] = (char)hafl_rng_u64(&rng);
        if (trial % 2 && len > 30)
            memcpy(noise, good, 30);
        s_refused(noise, len, NULL);
    }
    CHECK(hafl_server_state_load("/nonexistent-folder/checkpoint.state", err, sizeof err) == NULL &&
          strstr(err, "/nonexistent-folder/checkpoint.state: cannot open"));

    unlink(s_path);
    rmdir(dir);
    printf("server state: ok\n");
    return 0;
}
