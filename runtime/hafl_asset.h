/*  hafl_asset: finds models and datasets, which are never part of the project, and checks them.

    A name with a slash is a path and is used as given (relative to the working directory). A
    bare name (e.g. "stories260K.bin" or "model.bin") that is a regular file in the working
    directory is that file, returned as given, before any asset of the same name. Any other bare
    name is looked up, in order, in: $HAFL_ASSETS; ../shared/assets beside the checkout (found by
    walking up from the working directory and from the running executable to the folder holding
    the project's CMakeLists.txt); ~/.cache/hafl. When it is nowhere and the asset is a known one
    with a public address, it is downloaded from that address into ~/.cache/hafl, its size and
    SHA-256 checked, and that copy used. Missing (offline, or not a known asset), the error is one
    line naming the value, the three places with their folders and the working directory; a known
    asset without a public address is never downloaded, and the error says so.

    Every known asset is registered with the exact size and SHA-256 of its file. A lookup does not
    read the file (a model is opened many times per run); hafl_asset_verify checks a found copy
    against the registry on request (`hafl assets --verify`).
*/
#ifndef HAFL_ASSET_H
#define HAFL_ASSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  One registered asset. Strings are static; the table lives as long as the program.
typedef struct {
    const char *name;   //  bare name, e.g. "base3M.bin"
    const char *url;    //  canonical public address, or NULL: none, so never downloaded
    const char *sha256; //  lowercase hex digest of the registered file
    uint64_t bytes;     //  its exact size
    //  True when copies found locally are known to differ from the registered file (a repacked
    //  archive): hafl_asset_verify then checks only that the file exists; downloads are still
    //  checked against size and digest in full.
    bool download_check_only;
} hafl_asset_known_t;

//  Returns a new path string (caller frees) or NULL with a one-line reason in err.
char *hafl_asset_find (const char *name, char *err, size_t errlen);

//  Like hafl_asset_find, but never downloads: a bare name that is neither a file in the working
//  directory nor in any of the three places gives NULL with the same one-line reason, ending "not
//  downloaded by this lookup" for an asset that could be.
char *hafl_asset_find_local (const char *name, char *err, size_t errlen);

//  The index-th known asset (0, 1, ... in registry order), or NULL past the last one.
const hafl_asset_known_t *hafl_asset_known (size_t index);

//  Checks the file at `path` against the registration of the known asset `name`: a regular file
//  of exactly the registered size whose SHA-256 (streamed, never all in memory) is the registered
//  one; for a download_check_only asset only that it is a regular file. Returns 0, or -1 with
//  one line in err naming the file, what was expected and what was found (an unknown name or an
//  unreadable file is also -1).
int hafl_asset_verify (const char *name, const char *path, char *err, size_t errlen);

//  The folder ../shared/assets beside the checkout, if it exists (caller frees), else NULL.
char *hafl_asset_shared_dir (void);

#endif
