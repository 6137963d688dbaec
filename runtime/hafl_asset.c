/*  hafl_asset: the asset lookup and the registry of known assets of hafl_asset.h.

    A bare name that is a file in the working directory is that file; any other bare name is
    looked for in three places, in order: $HAFL_ASSETS, ../shared/assets beside the checkout,
    ~/.cache/hafl. A known asset with a public address that is nowhere is downloaded with libcurl
    into ~/.cache/hafl: written to a temporary file in that folder while its SHA-256 is computed,
    refused as soon as it grows past the registered size, checked against the registered size and
    digest, synced and renamed into place, so a half-written or corrupt download is never seen
    under the asset's name. HAFL_OFFLINE=1 disables downloads. Every failure is one line naming
    the value and each place looked in, the working directory included. hafl_asset_verify streams
    a found file through the same digest; the lookup itself never reads the file.
*/
#include "hafl_asset.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Assets the project knows: name, canonical address (NULL: none), SHA-256 and exact size of the
//  registered file. The sizes also cap downloads, so a wrong or hostile server cannot fill the
//  disk. base3M and its tokenizer were made for this project (../shared/tools/base-model) and
//  exist only in ../shared/assets, so they have no address.
static const hafl_asset_known_t s_known[] = {
    {"stories260K.bin",
     "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin",
     "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696", 1056540, false},
    {"tok512.bin", "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin",
     "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312", 6227, false},
    //  The published archive (scikit-learn's address and digest). The copy in ../shared/assets is
    //  repacked: the same documents in another gzip stream, so its size and digest differ (its
    //  contents are checked by document counts in test_data_newsgroups). Verifying a local copy
    //  against these would fail a good archive, and a second registered digest would pin one
    //  particular repack; so a local copy only has to exist, and the full check is the
    //  download's.
    {"20news-bydate.tar.gz", "https://ndownloader.figshare.com/files/5975967",
     "8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610", 14464277, true},
    {"base3M.bin", NULL, "3a6424b8627d5124b0c73832bd8692265cb8274989c770909e34d3cd23917312",
     13805340, false},
    {"tok4096.bin", NULL, "4761d31105cdf468a739743aa4a7ef5412f11f42f1688c0c20e9650ac63b0ad9", 47062,
     false},
    {"tok4096.model", NULL, "0bf401a1c1d5164d102f18fff128a5c59cfad33449b34ab8153de91f94857c31",
     53550, false},
    //  What llama2.c's runner prints greedily from BOS in 256 steps of base3M (test_generate).
    {"base3M.greedy256.txt", NULL,
     "bb1eb19a5f140914da2fb13b5a9e0b78a75d4b4d3565132aff31537ce155f761", 279, false},
};
#define S_KNOWN_COUNT (sizeof s_known / sizeof s_known[0])

//  Seconds before giving up on connecting, and the slowest transfer tolerated (bytes/s over
//  the window), so an offline or stalled machine fails in seconds rather than hanging.
#define S_CONNECT_TIMEOUT_S 10L
#define S_LOW_SPEED_BYTES   1024L
#define S_LOW_SPEED_WINDOW  30L

static bool s_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool s_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

//  dir/name as a new string, or NULL when out of memory.
static char *s_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s/%s", dir, name);
    return path;
}

//  Walks up from `start` to the first folder holding CMakeLists.txt and actors/ (the checkout)
//  and returns its ../shared/assets when that is a folder; NULL otherwise.
static char *s_shared_from(const char *start)
{
    char *dir = realpath(start, NULL);
    while (dir) {
        char *cmake = s_join(dir, "CMakeLists.txt");
        char *actors = s_join(dir, "actors");
        bool checkout = cmake && actors && s_is_file(cmake) && s_is_dir(actors);
        free(cmake);
        free(actors);
        if (checkout) {
            char *candidate = s_join(dir, "../shared/assets");
            free(dir);
            char *shared = candidate && s_is_dir(candidate) ? realpath(candidate, NULL) : NULL;
            free(candidate);
            return shared;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
            free(dir);
            return NULL;
        }
        *slash = '\0';
    }
    return NULL;
}

char *hafl_asset_shared_dir(void)
{
    char *shared = s_shared_from(".");
    if (shared)
        return shared;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return NULL;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return s_shared_from(slash == exe ? "/" : exe);
}

static const hafl_asset_known_t *s_known_find(const char *name)
{
    for (size_t i = 0; i < S_KNOWN_COUNT; i++)
        if (strcmp(s_known[i].name, name) == 0)
            return &s_known[i];
    return NULL;
}

const hafl_asset_known_t *hafl_asset_known(size_t index)
{
    return index < S_KNOWN_COUNT ? &s_known[index] : NULL;
}

//  State of one download: the open temporary file, the running digest, bytes so far.
typedef struct {
    FILE *file;
    crypto_hash_sha256_state sha;
    curl_off_t bytes;
    curl_off_t max_bytes; //  the registered size: one byte more and the transfer stops
    bool too_big;
    bool write_failed;
} s_download_t;

static size_t s_on_data(char *data, size_t size, size_t count, void *arg)
{
    s_download_t *dl = arg;
    size_t n = size * count;
    if (dl->bytes + (curl_off_t)n > dl->max_bytes) {
        dl->too_big = true;
        return 0;
    }
    if (fwrite(data, 1, n, dl->file) != n) {
        dl->write_failed = true;
        return 0;
    }
    crypto_hash_sha256_update(&dl->sha, (const unsigned char *)data, n);
    dl->bytes += (curl_off_t)n;
    return n;
}

//  mkdir -p for ~/.cache/hafl (two levels at most below HOME).
static int s_make_cache(const char *home, const char *cache)
{
    char *parent = s_join(home, ".cache");
    if (!parent)
        return -1;
    int rc = (mkdir(parent, 0755) == 0 || errno == EEXIST) ? 0 : -1;
    free(parent);
    if (rc == 0 && mkdir(cache, 0755) != 0 && errno != EEXIST)
        rc = -1;
    return rc;
}

//  Downloads `known` to cache/name through a temporary file. Returns the final path, or NULL
//  with a short reason (no asset name, no places) in why.
static char *s_download(const hafl_asset_known_t *known, const char *home, const char *cache,
                        char *why, size_t whylen)
{
    if (s_make_cache(home, cache) != 0) {
        snprintf(why, whylen, "cannot create %s: %s", cache, strerror(errno));
        return NULL;
    }
    char *final_path = s_join(cache, known->name);
    size_t tmplen = strlen(cache) + strlen(known->name) + 32;
    char *tmp_path = malloc(tmplen);
    if (!final_path || !tmp_path) {
        free(final_path);
        free(tmp_path);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    snprintf(tmp_path, tmplen, "%s/.%s.XXXXXX", cache, known->name);
    int fd = mkstemp(tmp_path);
    s_download_t dl = {.file = fd >= 0 ? fdopen(fd, "wb") : NULL,
                       .max_bytes = (curl_off_t)known->bytes};
    if (!dl.file) {
        snprintf(why, whylen, "cannot create a temporary file in %s: %s", cache, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp_path);
        }
        free(final_path);
        free(tmp_path);
        return NULL;
    }
    crypto_hash_sha256_init(&dl.sha);

    bool ok = false;
    CURL *curl = curl_easy_init();
    if (!curl)
        snprintf(why, whylen, "libcurl could not start");
    else {
        char curl_err[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(curl, CURLOPT_URL, known->url);
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, S_CONNECT_TIMEOUT_S);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, S_LOW_SPEED_BYTES);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, S_LOW_SPEED_WINDOW);
        curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_on_data);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &dl);
        CURLcode rc = curl_easy_perform(curl);
        if (dl.too_big)
            snprintf(why, whylen, "download from %s exceeds the expected %" PRIu64 " bytes",
                     known->url, known->bytes);
        else if (dl.write_failed)
            snprintf(why, whylen, "writing %s failed: %s", tmp_path, strerror(errno));
        else if (rc != CURLE_OK)
            snprintf(why, whylen, "download from %s failed: %s", known->url,
                     curl_err[0] ? curl_err : curl_easy_strerror(rc));
        else if ((uint64_t)dl.bytes != known->bytes)
            snprintf(why, whylen, "download from %s has %lld bytes, expected %" PRIu64, known->url,
                     (long long)dl.bytes, known->bytes);
        else
            ok = true;
        curl_easy_cleanup(curl);
    }
    if (ok) {
        unsigned char digest[crypto_hash_sha256_BYTES];
        char hex[2 * crypto_hash_sha256_BYTES + 1];
        crypto_hash_sha256_final(&dl.sha, digest);
        sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
        if (strcmp(hex, known->sha256) != 0) {
            snprintf(why, whylen, "download from %s has sha256 %s, expected %s", known->url, hex,
                     known->sha256);
            ok = false;
        }
    }
    if (ok && (fflush(dl.file) != 0 || fsync(fileno(dl.file)) != 0)) {
        snprintf(why, whylen, "writing %s failed: %s", tmp_path, strerror(errno));
        ok = false;
    }
    if (fclose(dl.file) != 0 && ok) {
        snprintf(why, whylen, "writing %s failed: %s", tmp_path, strerror(errno));
        ok = false;
    }
    if (ok && rename(tmp_path, final_path) != 0) {
        snprintf(why, whylen, "cannot rename into %s: %s", final_path, strerror(errno));
        ok = false;
    }
    if (!ok) {
        unlink(tmp_path);
        free(final_path);
        final_path = NULL;
    }
    free(tmp_path);
    return final_path;
}

//  The lookup of hafl_asset_find; downloads a missing known asset only when `download` is set.
static char *s_find(const char *name, bool download, char *err, size_t errlen)
{
    if (!name || !*name) {
        snprintf(err, errlen, "empty asset name");
        return NULL;
    }
    //  A path is used as given; only its existence is checked, so the error is early and clear.
    if (strchr(name, '/')) {
        struct stat st;
        if (stat(name, &st) != 0) {
            snprintf(err, errlen, "%s: %s", name, strerror(errno));
            return NULL;
        }
        if (!S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "%s: not a regular file", name);
            return NULL;
        }
        return strdup(name);
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(err, errlen, "'%s' is not an asset name", name);
        return NULL;
    }
    //  A bare name that is a file in the working directory is that file, as if written ./name:
    //  `checkpoint = model.bin` beside the caller means that file, even where an asset has the
    //  same name.
    if (s_is_file(name)) {
        char *path = strdup(name);
        if (!path)
            snprintf(err, errlen, "%s: out of memory", name);
        return path;
    }

    //  The places, in lookup order; `looked` collects them for the error line.
    char looked[1024] = "";
    size_t used = 0;
    const char *env = getenv("HAFL_ASSETS");
    char *shared = hafl_asset_shared_dir();
    const char *home = getenv("HOME");
    char *cache = home && *home ? s_join(home, ".cache/hafl") : NULL;
    const char *dirs[3] = {env && *env ? env : NULL, shared, cache};
    const char *labels[3] = {"$HAFL_ASSETS", "../shared/assets beside the checkout",
                             "~/.cache/hafl"};
    const char *absent[3] = {"unset", "no checkout found", "HOME unset"};
    for (int i = 0; i < 3; i++) {
        if (dirs[i]) {
            char *path = s_join(dirs[i], name);
            if (path && s_is_file(path)) {
                free(shared);
                free(cache);
                return path;
            }
            free(path);
        }
        int n = snprintf(looked + used, sizeof looked - used, "%s%s (%s)", i ? ", " : "", labels[i],
                         dirs[i] ? dirs[i] : absent[i]);
        if (n > 0 && (size_t)n < sizeof looked - used)
            used += (size_t)n;
    }

    const hafl_asset_known_t *known = s_known_find(name);
    const char *offline = getenv("HAFL_OFFLINE");
    char why[512];
    char *path = NULL;
    if (!known)
        snprintf(why, sizeof why, "not a known asset, so not downloaded");
    else if (!known->url)
        snprintf(why, sizeof why, "a known asset with no public address, so never downloaded");
    else if (!download)
        snprintf(why, sizeof why, "not downloaded by this lookup");
    else if (offline && *offline && strcmp(offline, "0") != 0)
        snprintf(why, sizeof why, "downloads disabled by HAFL_OFFLINE");
    else if (!cache)
        snprintf(why, sizeof why, "no ~/.cache/hafl to download into (HOME unset)");
    else
        path = s_download(known, home, cache, why, sizeof why);
    if (!path) {
        char cwd[PATH_MAX];
        snprintf(err, errlen, "%s: not found in %s, nor in the working directory (%s); %s", name,
                 looked, getcwd(cwd, sizeof cwd) ? cwd : "unknown", why);
    }
    free(shared);
    free(cache);
    return path;
}

char *hafl_asset_find(const char *name, char *err, size_t errlen)
{
    return s_find(name, true, err, errlen);
}

char *hafl_asset_find_local(const char *name, char *err, size_t errlen)
{
    return s_find(name, false, err, errlen);
}

//  Size of the digest buffer: large enough that reading costs little next to hashing.
#define S_VERIFY_CHUNK (64 * 1024)

int hafl_asset_verify(const char *name, const char *path, char *err, size_t errlen)
{
    const hafl_asset_known_t *known = name ? s_known_find(name) : NULL;
    if (!known) {
        snprintf(err, errlen, "%s: '%s' is not a known asset, so there is nothing to check against",
                 path ? path : "(no path)", name ? name : "");
        return -1;
    }
    if (!path) {
        snprintf(err, errlen, "%s: no path to check", name);
        return -1;
    }
    //  Size and digest come from the one open file, so a file replaced between the two checks
    //  cannot pass with the old one's size.
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open as %s: %s", path, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: expected %s as a regular file, found %s", path, name,
                 S_ISDIR(st.st_mode) ? "a folder" : "another kind of file");
        close(fd);
        return -1;
    }
    if (known->download_check_only) {
        close(fd);
        return 0;
    }
    if ((uint64_t)st.st_size != known->bytes) {
        snprintf(err, errlen, "%s: expected %s of %" PRIu64 " bytes, found %lld bytes", path, name,
                 known->bytes, (long long)st.st_size);
        close(fd);
        return -1;
    }
    unsigned char *chunk = malloc(S_VERIFY_CHUNK);
    if (!chunk || sodium_init() < 0) {
        snprintf(err, errlen, "%s: %s", path,
                 chunk ? "libsodium failed to initialise" : "out of memory");
        free(chunk);
        close(fd);
        return -1;
    }
    crypto_hash_sha256_state sha;
    crypto_hash_sha256_init(&sha);
    uint64_t total = 0;
    ssize_t got;
    while ((got = read(fd, chunk, S_VERIFY_CHUNK)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        crypto_hash_sha256_update(&sha, chunk, (size_t)got);
        total += (uint64_t)got;
    }
    int read_errno = got < 0 ? errno : 0;
    free(chunk);
    close(fd);
    if (read_errno) {
        snprintf(err, errlen, "%s: reading %s failed: %s", path, name, strerror(read_errno));
        return -1;
    }
    if (total != known->bytes) {
        snprintf(err, errlen,
                 "%s: expected %s of %" PRIu64 " bytes, read %" PRIu64
                 " bytes (the file changed while being checked)",
                 path, name, known->bytes, total);
        return -1;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256_final(&sha, digest);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    if (strcmp(hex, known->sha256) != 0) {
        snprintf(err, errlen, "%s: expected %s with sha256 %s, found sha256 %s", path, name,
                 known->sha256, hex);
        return -1;
    }
    return 0;
}
