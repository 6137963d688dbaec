/*  test_server_state: a checkpoint generation's state file (hafl_server_state.h, version 3)
    round-trips every field and its settings, and its strict reader refuses, with one line
    naming the file:
    - every single-bit flip of a saved file, anywhere (the final sha256 line covers every byte
      before it, and the line itself must be exact), and every truncation;
    - an edit whose checksum was not recomputed, as a checksum mismatch;
    - with the checksum recomputed (so the parser, not the checksum, is what refuses): every
      missing line, each malformed field (sign, leading zero, overflow, unknown strategy, bad
      hex, wrong client order or count, setting lines miscounted or empty), another version;
    - a zero byte, the formats written before this one (version 2: no checksum, no settings;
      the one before client state), and random bytes.
    Saving refuses settings that are not lines of printable text.
*/
#include "hafl_rng.h"
#include "hafl_server_state.h"
#include "hafl_test.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CHECKSUM_LINE 72 //  "sha256 " + 64 hex digits + newline

static char s_path[96];

//  A new file each time: rewriting one in place (O_TRUNC) makes ext4 flush it on close
//  (auto_da_alloc), thousands of times over.
static void s_write(const char *text, size_t size)
{
    unlink(s_path);
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

//  body (every line but the checksum) followed by its "sha256 HEX" line, as the writer seals
//  it, into out; returns the length.
static size_t s_seal(const char *body, size_t body_len, char *out, size_t outlen)
{
    CHECK(body_len + S_CHECKSUM_LINE + 1 <= outlen);
    uint8_t sum[32];
    char hex[65];
    crypto_hash_sha256(sum, (const unsigned char *)body, body_len);
    sodium_bin2hex(hex, sizeof hex, sum, 32);
    memcpy(out, body, body_len);
    int n = snprintf(out + body_len, outlen - body_len, "sha256 %s\n", hex);
    CHECK(n == S_CHECKSUM_LINE);
    return body_len + S_CHECKSUM_LINE;
}

//  The good file's body with its first occurrence of `from` replaced by `to`, sealed with a
//  correct checksum, then refused with needle: the parser's own checks.
static void s_mutated(const char *body, const char *from, const char *to, const char *needle)
{
    const char *at = strstr(body, from);
    CHECKF(at, "'%s' not in the file", from);
    char text[8192], sealed[8192];
    int len =
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
    CHECK(len > 0 && (size_t)len < sizeof text);
    size_t size = s_seal(text, (size_t)len, sealed, sizeof sealed);
    s_refused(sealed, size, needle);
}

//  Read s_path whole into buffer (NUL-terminated); returns its size.
static size_t s_read_back(char *buffer, size_t cap)
{
    FILE *file = fopen(s_path, "rb");
    CHECK(file);
    size_t size = fread(buffer, 1, cap - 1, file);
    CHECK(size < cap - 1 && fclose(file) == 0);
    buffer[size] = 0;
    return size;
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/hafl-server-state-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(s_path, sizeof s_path, "%s/round-7.state", dir);
    char err[512];

    const char *settings = "seed = 7\n"
                           "model/kind = synthetic\n"
                           "server/aggregator = zeropad\n"
                           "clients/ranks = 1,2,2,4\n"
                           "data/path = /some where/with spaces = and equals\n"
                           "base_digest = 3b076fba22cf6cc2911beee0026006a0cd20e73ffca61c4c\n";
    hafl_server_state_t *state = hafl_server_state_new(3);
    CHECK(state && state->n_clients == 3 && state->settings == NULL);
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
    state->settings = strdup(settings);
    CHECK(state->settings);
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
    //  The settings come back byte for byte, in order.
    CHECKF(back->settings && streq(back->settings, settings), "settings:\n%s",
           back->settings ? back->settings : "(null)");
    hafl_server_state_destroy(&back);
    //  No pending swap is written as "-" and read back as ""; no settings as "settings 0",
    //  read back as none.
    state->pending_swap[0] = 0;
    free(state->settings);
    state->settings = NULL;
    CHECKF(hafl_server_state_save(state, s_path, err, sizeof err) == 0, "%s", err);
    back = hafl_server_state_load(s_path, err, sizeof err);
    CHECKF(back && back->pending_swap[0] == 0, "%s", err);
    CHECK(!back->settings || back->settings[0] == 0);
    hafl_server_state_destroy(&back);
    char text[8192];
    s_read_back(text, sizeof text);
    CHECKF(strstr(text, "\nsettings 0\nsha256 "), "%s", text);
    //  Settings that are not lines of printable text are not written.
    const char *bad_settings[] = {"a = 1",          "a = 1\n\nb = 2\n", "a = \t1\n",
                                  "a = 1\r\nb = 2\n", "\n",             "a = \x7f\n"};
    for (size_t i = 0; i < sizeof bad_settings / sizeof bad_settings[0]; i++) {
        state->settings = strdup(bad_settings[i]);
        CHECK(state->settings);
        CHECKF(hafl_server_state_save(state, s_path, err, sizeof err) == -1,
               "saved settings %zu", i);
        CHECKF(strstr(err, "settings") && strstr(err, s_path), "%s", err);
        free(state->settings);
        state->settings = NULL;
    }
    //  The file the rest refuses variants of: pending swap none, with settings.
    state->settings = strdup(settings);
    CHECK(state->settings);
    CHECKF(hafl_server_state_save(state, s_path, err, sizeof err) == 0, "%s", err);
    hafl_server_state_destroy(&state);
    CHECK(state == NULL);

    char good[8192];
    size_t size = s_read_back(good, sizeof good);
    CHECKF(strncmp(good, "hafl-checkpoint-state 3\nround 7\nstrategy zeropad\npending_swap -\n",
                   64) == 0,
           "%s", good);
    CHECK(strstr(good, "\nsettings 6\nsetting seed = 7\n"));
    size_t body_len = size - S_CHECKSUM_LINE;
    CHECKF(strncmp(good + body_len, "sha256 ", 7) == 0 && good[size - 1] == '\n', "%s", good);
    char body[8192], sealed[8192];
    memcpy(body, good, body_len);
    body[body_len] = 0;
    //  This test seals files exactly as the writer does.
    CHECK(s_seal(body, body_len, sealed, sizeof sealed) == size && memcmp(sealed, good, size) == 0);

    //  Every single-bit flip of every byte, the checksum line included.
    char flipped[8192];
    for (size_t i = 0; i < size; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(flipped, good, size);
            flipped[i] = (char)(flipped[i] ^ (1 << bit));
            s_write(flipped, size);
            hafl_server_state_t *got = hafl_server_state_load(s_path, err, sizeof err);
            CHECKF(got == NULL, "byte %zu of %zu (0x%02x -> 0x%02x) flipped: accepted", i, size,
                   (unsigned char)good[i], (unsigned char)flipped[i]);
            CHECKF(strstr(err, s_path) && !strchr(err, '\n'), "%s", err);
        }
    //  Every truncation.
    for (size_t cut = 0; cut < size; cut++)
        s_refused(good, cut, NULL);
    //  An edit without the checksum recomputed: the checksum refuses it.
    memcpy(flipped, good, size);
    char *round = strstr(flipped, "\nround 7\n");
    CHECK(round);
    round[7] = '8';
    s_refused(flipped, size, "checksum");
    memcpy(flipped, good, size);
    char *setting = strstr(flipped, "server/aggregator = zeropad");
    CHECK(setting);
    memcpy(setting + strlen("server/aggregator = "), "adaptiv", 7);
    s_refused(flipped, size, "checksum");

    //  With the checksum recomputed: every line left out.
    for (const char *line = body; *line;) {
        const char *end = strchr(line, '\n') + 1;
        char text_out[8192];
        int len = snprintf(text_out, sizeof text_out, "%.*s%s", (int)(line - body), body, end);
        size_t n = s_seal(text_out, (size_t)len, sealed, sizeof sealed);
        s_refused(sealed, n, "line");
        line = end;
    }
    //  Malformed fields.
    s_mutated(body, "round 7", "round 0", "round 0 is not a checkpoint");
    s_mutated(body, "round 7", "round -7", "without sign");
    s_mutated(body, "round 7", "round +7", "without sign");
    s_mutated(body, "round 7", "round 07", "leading zero");
    s_mutated(body, "round 7", "round 4294967296", "out of range");
    s_mutated(body, "round 7", "round 7 ", "unexpected text");
    s_mutated(body, "round 7", "round  7", "without sign");
    s_mutated(body, "round 7", "rounds 7", "expected 'round ...'");
    s_mutated(body, "hafl-checkpoint-state 3", "hafl-checkpoint-state 2", "another version");
    s_mutated(body, "hafl-checkpoint-state 3", "hafl-checkpoint-state 4", "another version");
    s_mutated(body, "hafl-checkpoint-state 3", "hafl-checkpoint-stat 3", "line 1");
    s_mutated(body, "strategy zeropad", "strategy nosuch", "not a known strategy");
    s_mutated(body, "pending_swap -", "pending_swap nosuch", "not a known strategy");
    s_mutated(body, "strategy zeropad", "strategy -", "not a known strategy");
    s_mutated(body, "adapter 0108", "adapter 0g08", "64 hex digits");
    s_mutated(body, "adapter 0108", "adapter 108", "64 hex digits");
    s_mutated(body, "up 1 2 3 4 5 6", "up 1 2 3 4 5", "expected one space");
    s_mutated(body, "down 18446744073709551615", "down 18446744073709551616", "out of range");
    s_mutated(body, "clients 3", "clients 4", "expected 'client ...'");
    s_mutated(body, "clients 3", "clients 2", "expected 'settings ...'");
    s_mutated(body, "clients 3", "clients 100001", "out of range");
    s_mutated(body, "client 1 9", "client 2 9", "clients out of order");
    s_mutated(body, "client 2 0 1", "client 2 0 2", "CTL_DROP must be 0 or 1");
    s_mutated(body, "round 7\n", "round 7\r\n", "unexpected text");
    s_mutated(body, "settings 6", "settings 7", "expected 'setting ...'");
    s_mutated(body, "settings 6", "settings 5", "unexpected text after the settings");
    s_mutated(body, "settings 6", "settings 257", "out of range");
    s_mutated(body, "settings 6", "settings 06", "leading zero");
    s_mutated(body, "setting seed = 7", "settingseed = 7", "expected 'setting ...'");
    s_mutated(body, "\nsetting seed = 7\n", "\nsetting seed = 7\n\n", "expected 'setting ...'");
    //  A zero byte, sealed or not.
    memcpy(flipped, good, size);
    flipped[10] = 0;
    s_refused(flipped, size, "zero byte");
    memcpy(text, body, body_len);
    text[10] = 0;
    size_t n = s_seal(text, body_len, sealed, sizeof sealed);
    s_refused(sealed, n, "zero byte");
    //  Version 2 as it was written (no settings, no checksum line), and the format from before
    //  client state: neither is read as state.
    const char *v2 = "hafl-checkpoint-state 2\nround 3\nstrategy adaptive\npending_swap -\n"
                     "adapter 0000000000000000000000000000000000000000000000000000000000000000\n"
                     "up 1 2 3 4 5 6\ndown 1 2 3 4 5 6\ncounters 0 0 0\nclients 2\n"
                     "client 0 0 0 0\nclient 1 0 0 0\n";
    s_refused(v2, strlen(v2), NULL);
    s_refused("round 3\nstrategy adaptive\n", 26, NULL);
    //  Random bytes, some behind a good first line, some sealed.
    hafl_rng_t rng;
    hafl_rng_seed(&rng, 2, 99, 0);
    char noise[512];
    for (int trial = 0; trial < 300; trial++) {
        size_t len = (size_t)(hafl_rng_u64(&rng) % sizeof noise);
        for (size_t i = 0; i < len; i++)
            noise[i] = (char)hafl_rng_u64(&rng);
        if (trial % 2 && len > 30)
            memcpy(noise, good, 30);
        if (trial % 3 == 0) {
            size_t m = s_seal(noise, len, sealed, sizeof sealed);
            s_refused(sealed, m, NULL);
        } else
            s_refused(noise, len, NULL);
    }
    CHECK(hafl_server_state_load("/nonexistent-folder/round-1.state", err, sizeof err) == NULL &&
          strstr(err, "/nonexistent-folder/round-1.state: cannot open"));

    unlink(s_path);
    rmdir(dir);
    printf("server state: ok (%zu bytes, %zu single-bit flips refused)\n", size, size * 8);
    return 0;
}
