/*  test_assets: the registry checks of hafl_asset_verify and the `hafl assets` command.

    On the real assets (found through the lookup; a required one that is missing fails the test
    with the lookup's reason): every registered asset that is present verifies, and `hafl assets
    --verify --require base3M.bin --require tok4096.bin --require tok4096.model` exits 0 and
    lists each as ok. In a scratch folder: an exact copy of tok4096.bin verifies (so the copies
    are made right), one with one byte flipped and one short by a byte are refused with one line
    naming the copy, the expected and the found digest or size, and `hafl assets --verify` exits
    1 when the lookup finds either ($HAFL_ASSETS). A copy of the hafl binary run outside the
    checkout, with an empty $HAFL_ASSETS and HOME, finds nothing: missing assets exit 0 unless
    --require names one, which exits 1 with the lookup's reason ("no public address").
    $HAFL_BINARY (set by ctest) is the binary under test.
*/
#include "hafl_asset.h"
#include "hafl_test.h"

#include <ftw.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char s_tmp[4096]; //  scratch folder, outside any checkout

static int s_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    return remove(path);
}

static void s_cleanup(void)
{
    if (s_tmp[0])
        nftw(s_tmp, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

//  The whole file as a NUL-terminated buffer (caller frees); its length in *len when asked.
static char *s_read(const char *path, size_t *len)
{
    FILE *file = fopen(path, "rb");
    CHECKF(file, "cannot open %s", path);
    CHECK(fseek(file, 0, SEEK_END) == 0);
    long size = ftell(file);
    CHECK(size >= 0 && fseek(file, 0, SEEK_SET) == 0);
    char *data = malloc((size_t)size + 1);
    CHECK(data);
    CHECK(fread(data, 1, (size_t)size, file) == (size_t)size);
    fclose(file);
    data[size] = '\0';
    if (len)
        *len = (size_t)size;
    return data;
}

static void s_write(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *file = fopen(path, "wb");
    CHECKF(file, "cannot create %s", path);
    CHECK(fwrite(data, 1, len, file) == len);
    CHECK(fclose(file) == 0);
    CHECK(chmod(path, mode) == 0);
}

//  s_tmp/rel as a new string.
static char *s_scratch(const char *rel)
{
    size_t len = strlen(s_tmp) + 1 + strlen(rel) + 1;
    char *path = malloc(len);
    CHECK(path);
    snprintf(path, len, "%s/%s", s_tmp, rel);
    return path;
}

static char *s_hex_sha256(const void *data, size_t len)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, data, len);
    char *hex = malloc(2 * crypto_hash_sha256_BYTES + 1);
    CHECK(hex);
    sodium_bin2hex(hex, 2 * crypto_hash_sha256_BYTES + 1, digest, sizeof digest);
    return hex;
}

typedef struct {
    int status; //  exit status
    char *out;  //  stdout, NUL-terminated
    char *err;  //  stderr, NUL-terminated
} s_run_t;

//  Runs `binary` with argv (NULL-terminated; argv[0] is "hafl") and HAFL_OFFLINE=1. A non-NULL
//  cwd, assets or home replaces the working directory, $HAFL_ASSETS or $HOME for the child.
static s_run_t s_run(const char *binary, char *const *argv, const char *cwd, const char *assets,
                     const char *home)
{
    char *out_path = s_scratch("stdout.txt"), *err_path = s_scratch("stderr.txt");
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        FILE *out = freopen(out_path, "w", stdout);
        FILE *err = freopen(err_path, "w", stderr);
        if (!out || !err || (cwd && chdir(cwd) != 0) ||
            (assets && setenv("HAFL_ASSETS", assets, 1) != 0) ||
            (home && setenv("HOME", home, 1) != 0) || setenv("HAFL_OFFLINE", "1", 1) != 0)
            _exit(127);
        execv(binary, argv);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status), "%s %s did not exit normally", binary, argv[1]);
    s_run_t run = {WEXITSTATUS(status), s_read(out_path, NULL), s_read(err_path, NULL)};
    CHECKF(run.status != 127, "could not run %s", binary);
    free(out_path);
    free(err_path);
    return run;
}

static void s_run_free(s_run_t *run)
{
    free(run->out);
    free(run->err);
}

//  The table line of asset `name` in `hafl assets` output (a new string), or fails the test.
static char *s_line_of(const char *out, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = out; line && *line;) {
        const char *end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return strndup(line, (size_t)(end - line));
        line = *end ? end + 1 : NULL;
    }
    CHECKF(false, "no line for %s in:\n%s", name, out);
    return NULL;
}

//  `hafl assets` line of `name` has `verdict` as a whole column.
static void s_expect_verdict(const char *out, const char *name, const char *verdict)
{
    char *line = s_line_of(out, name);
    char column[64];
    snprintf(column, sizeof column, "  %s ", verdict);
    CHECKF(strstr(line, column), "%s: expected '%s' in: %s", name, verdict, line);
    free(line);
}

static const char *s_required[] = {"base3M.bin", "tok4096.bin", "tok4096.model"};
#define S_N_REQUIRED (sizeof s_required / sizeof s_required[0])

//  Every registered asset that is present verifies; the required ones must be present.
static void s_test_real_assets(void)
{
    for (size_t i = 0; i < S_N_REQUIRED; i++) {
        char err[2048];
        char *path = hafl_asset_find(s_required[i], err, sizeof err);
        CHECKF(path, "%s", err);
        free(path);
    }
    const hafl_asset_known_t *known;
    size_t checked = 0;
    for (size_t i = 0; (known = hafl_asset_known(i)); i++) {
        char err[2048];
        char *path = hafl_asset_find_local(known->name, err, sizeof err);
        if (!path)
            continue;
        CHECKF(hafl_asset_verify(known->name, path, err, sizeof err) == 0, "%s", err);
        free(path);
        checked++;
    }
    CHECK(checked >= S_N_REQUIRED);
}

static void s_test_damaged_copies(const char *tok_path)
{
    size_t len;
    char *data = s_read(tok_path, &len);
    CHECK(len > 2);
    char err[2048];

    //  An exact copy passes, so what fails below fails for the damage alone.
    char *exact = s_scratch("exact/tok4096.bin");
    s_write(exact, data, len, 0644);
    CHECKF(hafl_asset_verify("tok4096.bin", exact, err, sizeof err) == 0, "%s", err);

    //  One byte flipped: same size, other digest; the line names the copy and both digests.
    char *flipped = s_scratch("flipped/tok4096.bin");
    data[len / 2] ^= 0x01;
    s_write(flipped, data, len, 0644);
    char *found = s_hex_sha256(data, len);
    data[len / 2] ^= 0x01;
    char *expected = s_hex_sha256(data, len);
    CHECK(strcmp(found, expected) != 0);
    err[0] = '\0';
    CHECK(hafl_asset_verify("tok4096.bin", flipped, err, sizeof err) == -1);
    char want[4096];
    snprintf(want, sizeof want, "%s: expected tok4096.bin with sha256 %s, found sha256 %s", flipped,
             expected, found);
    CHECKF(strcmp(err, want) == 0, "got  %s\nwant %s", err, want);

    //  One byte short: the size is what differs, and it is reported before any hashing.
    char *truncated = s_scratch("truncated/tok4096.bin");
    s_write(truncated, data, len - 1, 0644);
    err[0] = '\0';
    CHECK(hafl_asset_verify("tok4096.bin", truncated, err, sizeof err) == -1);
    snprintf(want, sizeof want, "%s: expected tok4096.bin of %zu bytes, found %zu bytes", truncated,
             len, len - 1);
    CHECKF(strcmp(err, want) == 0, "got  %s\nwant %s", err, want);

    //  The right bytes under another registered name, a missing file, a folder, an unknown name.
    CHECK(hafl_asset_verify("base3M.bin", exact, err, sizeof err) == -1);
    CHECKF(strstr(err, exact) && strstr(err, "expected base3M.bin of 13805340 bytes"), "%s", err);
    char *nowhere = s_scratch("exact/no-such.bin");
    CHECK(hafl_asset_verify("tok4096.bin", nowhere, err, sizeof err) == -1);
    CHECKF(strstr(err, nowhere) && strstr(err, "No such file"), "%s", err);
    CHECK(hafl_asset_verify("tok4096.bin", s_tmp, err, sizeof err) == -1);
    CHECKF(strstr(err, s_tmp) && strstr(err, "found a folder"), "%s", err);
    CHECK(hafl_asset_verify("tok4096.bin.bak", exact, err, sizeof err) == -1);
    CHECKF(strstr(err, "'tok4096.bin.bak' is not a known asset"), "%s", err);
    CHECK(!strchr(err, '\n'));

    //  The repacked archive: a local copy only has to exist (hafl_asset.c says why).
    CHECKF(hafl_asset_verify("20news-bydate.tar.gz", exact, err, sizeof err) == 0, "%s", err);
    CHECK(hafl_asset_verify("20news-bydate.tar.gz", nowhere, err, sizeof err) == -1);

    //  The command fails on either damaged copy when the lookup finds it first, names the copy
    //  on its table line and says why on stderr; the other assets still verify.
    const char *binary = getenv("HAFL_BINARY");
    char *flipped_dir = s_scratch("flipped"), *truncated_dir = s_scratch("truncated");
    char *verify[] = {"hafl", "assets", "--verify", NULL};
    const char *dirs[] = {flipped_dir, truncated_dir};
    const char *copies[] = {flipped, truncated};
    for (int i = 0; i < 2; i++) {
        s_run_t run = s_run(binary, verify, NULL, dirs[i], NULL);
        CHECKF(run.status == 1, "status %d, stdout:\n%s", run.status, run.out);
        s_expect_verdict(run.out, "tok4096.bin", "FAILED");
        char *line = s_line_of(run.out, "tok4096.bin");
        CHECKF(strstr(line, copies[i]), "%s", line);
        free(line);
        s_expect_verdict(run.out, "base3M.bin", "ok");
        snprintf(want, sizeof want, "hafl assets: %s: expected tok4096.bin ", copies[i]);
        CHECKF(strstr(run.err, want), "stderr:\n%s", run.err);
        s_run_free(&run);
    }
    free(flipped_dir);
    free(truncated_dir);
    free(exact);
    free(flipped);
    free(truncated);
    free(nowhere);
    free(found);
    free(expected);
    free(data);
}

static void s_test_command_real(const char *binary)
{
    char *argv[] = {"hafl",      "assets",      "--verify",  "--require",     "base3M.bin",
                    "--require", "tok4096.bin", "--require", "tok4096.model", NULL};
    s_run_t run = s_run(binary, argv, NULL, NULL, NULL);
    CHECKF(run.status == 0, "status %d\nstdout:\n%s\nstderr:\n%s", run.status, run.out, run.err);
    for (size_t i = 0; i < S_N_REQUIRED; i++)
        s_expect_verdict(run.out, s_required[i], "ok");
    CHECKF(run.err[0] == '\0', "stderr:\n%s", run.err);
    s_run_free(&run);

    //  Usage: an unknown --require name and a stray argument are refused with status 2.
    char *unknown[] = {"hafl", "assets", "--require", "base3M", NULL};
    char *stray[] = {"hafl", "assets", "base3M.bin", NULL};
    char **bad[] = {unknown, stray};
    for (int i = 0; i < 2; i++) {
        run = s_run(binary, bad[i], NULL, NULL, NULL);
        CHECKF(run.status == 2 && run.out[0] == '\0', "case %d: status %d", i, run.status);
        s_run_free(&run);
    }
}

//  A copy of the binary outside the checkout sees no ../shared/assets, so with an empty
//  $HAFL_ASSETS and HOME every asset is missing, and it never downloads.
static void s_test_command_missing(const char *binary)
{
    char *copy = s_scratch("bin/hafl"), *empty = s_scratch("empty"), *home = s_scratch("home");
    CHECK(mkdir(empty, 0755) == 0 && mkdir(home, 0755) == 0);
    size_t len;
    char *image = s_read(binary, &len);
    s_write(copy, image, len, 0755);
    free(image);

    char *listing[] = {"hafl", "assets", "--verify", NULL};
    s_run_t run = s_run(copy, listing, s_tmp, empty, home);
    CHECKF(run.status == 0, "status %d, stderr:\n%s", run.status, run.err);
    char *line = s_line_of(run.out, "base3M.bin");
    CHECKF(strstr(line, "missing (no public address)"), "%s", line);
    free(line);
    line = s_line_of(run.out, "stories260K.bin");
    CHECKF(strstr(line, "missing (downloadable)"), "%s", line);
    free(line);
    CHECKF(run.err[0] == '\0', "stderr:\n%s", run.err);
    s_run_free(&run);

    char *require[] = {"hafl",      "assets",     "--require", "tok512.bin",
                       "--require", "base3M.bin", NULL};
    run = s_run(copy, require, s_tmp, empty, home);
    CHECKF(run.status == 1, "status %d", run.status);
    CHECKF(strstr(run.err, "hafl assets: required asset base3M.bin: not found in $HAFL_ASSETS (") &&
               strstr(run.err, "a known asset with no public address, so never downloaded\n"),
           "stderr:\n%s", run.err);
    CHECKF(strstr(run.err, "hafl assets: required asset tok512.bin: not found in ") &&
               strstr(run.err, "not downloaded by this lookup\n"),
           "stderr:\n%s", run.err);
    s_run_free(&run);
    free(copy);
    free(empty);
    free(home);
}

int main(void)
{
    const char *binary = getenv("HAFL_BINARY");
    CHECKF(binary && *binary, "HAFL_BINARY is not set (run through ctest)");
    CHECK(sodium_init() >= 0);
    const char *tmpdir = getenv("TMPDIR");
    snprintf(s_tmp, sizeof s_tmp, "%s/hafl-assets-XXXXXX", tmpdir && *tmpdir ? tmpdir : P_tmpdir);
    CHECK(mkdtemp(s_tmp));
    atexit(s_cleanup); //  also when a CHECK fails
    const char *dirs[] = {"exact", "flipped", "truncated", "bin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char *dir = s_scratch(dirs[i]);
        CHECK(mkdir(dir, 0755) == 0);
        free(dir);
    }

    s_test_real_assets();
    char err[2048];
    char *tok = hafl_asset_find("tok4096.bin", err, sizeof err);
    CHECKF(tok, "%s", err);
    s_test_damaged_copies(tok);
    free(tok);
    s_test_command_real(binary);
    s_test_command_missing(binary);
    printf("assets: ok\n");
    return 0;
}
