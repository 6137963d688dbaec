/*  hafl_asset: finds models and datasets, which are never part of the project.

    A name with a slash is a path and is used as given. A bare name (e.g. "stories260K.bin") is
    looked up, in order, in: $HAFL_ASSETS; ../shared/assets beside the checkout (found by walking
    up from the working directory and from the running executable to the folder holding the
    project's CMakeLists.txt); ~/.cache/hafl. When it is nowhere and the asset is a known one, it
    is downloaded from its canonical public address into ~/.cache/hafl, its SHA-256 checked, and
    that copy used. Offline and missing, the error names the file and every place looked in.
*/
#ifndef HAFL_ASSET_H
#define HAFL_ASSET_H

#include <stddef.h>

//  Returns a new path string (caller frees) or NULL with a one-line reason in err.
char *hafl_asset_find (const char *name, char *err, size_t errlen);

//  The folder ../shared/assets beside the checkout, if it exists (caller frees), else NULL.
char *hafl_asset_shared_dir (void);

#endif
