/*  hafl assets [--verify] [--require NAME]...: lists every known asset (hafl_asset.h's registry)
    with where the lookup finds it, or "missing", and the size of the copy found; with --verify
    each found copy is also checked against its registered size and SHA-256.

    It never downloads: it reports what a run would find now, without side effects, and a
    missing asset with a public address is fetched by the first run that needs it. Missing assets
    are listed but are not failures unless named by --require, so the same command serves a
    machine with only the public assets and a check that a job's own assets are in place.
    Exit: 0 when every found asset verifies (and every required one is found), 1 when a found
    copy fails its check or a required asset is missing (one line each on stderr, naming the
    file, what was expected and what was found), 2 on bad usage.
*/
#include "hafl_asset.h"
#include "hafl_cmd.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: hafl assets [--verify] [--require NAME]...\n\n"
            "Lists every asset the project knows, where the asset lookup finds it ($HAFL_ASSETS,\n"
            "../shared/assets beside the checkout, ~/.cache/hafl) or `missing`, and the size of\n"
            "the copy found. Never downloads.\n"
            "  --verify        also check each found copy's size and SHA-256 against the registry\n"
            "                  (20news-bydate.tar.gz: existence only, the local copy is repacked)\n"
            "  --require NAME  fail when the known asset NAME is missing (repeatable)\n\n"
            "exit codes: 0 every found asset verifies and every required one is found,\n"
            "1 a found asset fails its check or a required one is missing, 2 bad usage\n");
}

//  Whether `name` is a registered asset (so --require cannot silently name a typo).
static bool s_is_known(const char *name)
{
    const hafl_asset_known_t *known;
    for (size_t i = 0; (known = hafl_asset_known(i)); i++)
        if (strcmp(known->name, name) == 0)
            return true;
    return false;
}

static bool s_is_required(const char *name, char **required, size_t n_required)
{
    for (size_t i = 0; i < n_required; i++)
        if (strcmp(required[i], name) == 0)
            return true;
    return false;
}

int hafl_cmd_assets(int argc, char **argv)
{
    static const struct option options[] = {{"verify", no_argument, NULL, 'v'},
                                            {"require", required_argument, NULL, 'r'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    bool verify = false;
    //  At most one --require per argument, so argc bounds the list.
    char **required = calloc((size_t)argc, sizeof(char *));
    size_t n_required = 0;
    if (!required) {
        fprintf(stderr, "hafl assets: out of memory\n");
        return HAFL_EXIT_FAILURE;
    }
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'v':
            verify = true;
            break;
        case 'r':
            if (!s_is_known(optarg)) {
                fprintf(stderr, "hafl assets: --require %s: not a known asset\n", optarg);
                free(required);
                return HAFL_EXIT_USAGE;
            }
            required[n_required++] = optarg;
            break;
        case 'h':
            s_usage(stdout);
            free(required);
            return HAFL_EXIT_OK;
        default:
            s_usage(stderr);
            free(required);
            return HAFL_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hafl assets: unexpected argument '%s'\n", argv[optind]);
        s_usage(stderr);
        free(required);
        return HAFL_EXIT_USAGE;
    }

    //  One line per asset: name, bytes of the copy found, the check's verdict (with --verify),
    //  then where it is. The path goes last because it is the only long column.
    int rc = HAFL_EXIT_OK;
    if (verify)
        printf("%-22s %10s  %-7s %s\n", "asset", "bytes", "check", "found at");
    else
        printf("%-22s %10s  %s\n", "asset", "bytes", "found at");
    const hafl_asset_known_t *known;
    for (size_t i = 0; (known = hafl_asset_known(i)); i++) {
        char err[2048];
        char *path = hafl_asset_find_local(known->name, err, sizeof err);
        if (!path) {
            bool needed = s_is_required(known->name, required, n_required);
            const char *why = known->url ? "missing (downloadable)" : "missing (no public address)";
            if (verify)
                printf("%-22s %10s  %-7s %s\n", known->name, "-", needed ? "FAILED" : "-", why);
            else
                printf("%-22s %10s  %s\n", known->name, "-", why);
            if (needed) {
                fflush(stdout); //  the table line first, then its reason
                fprintf(stderr, "hafl assets: required asset %s\n", err);
                rc = HAFL_EXIT_FAILURE;
            }
            continue;
        }
        struct stat st;
        char bytes[32] = "?";
        if (stat(path, &st) == 0)
            snprintf(bytes, sizeof bytes, "%lld", (long long)st.st_size);
        if (!verify) {
            printf("%-22s %10s  %s\n", known->name, bytes, path);
            free(path);
            continue;
        }
        const char *verdict = "ok";
        if (hafl_asset_verify(known->name, path, err, sizeof err) != 0) {
            verdict = "FAILED";
            rc = HAFL_EXIT_FAILURE;
        } else if (known->download_check_only)
            verdict = "exists";
        printf("%-22s %10s  %-7s %s\n", known->name, bytes, verdict, path);
        if (strcmp(verdict, "FAILED") == 0) {
            fflush(stdout); //  the table line first, then its reason
            fprintf(stderr, "hafl assets: %s\n", err);
        }
        free(path);
    }
    free(required);
    return rc;
}
