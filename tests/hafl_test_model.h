/*  hafl_test_model: opening model assets in tests. Each helper finds the asset through the
    asset lookup and fails the test (exit 1) with the lookup's or loader's reason when it cannot.
*/
#ifndef HAFL_TEST_MODEL_H
#define HAFL_TEST_MODEL_H

#include "hafl_asset.h"
#include "hafl_checkpoint.h"
#include "hafl_test.h"

#include <stdlib.h>

//  The named checkpoint asset, opened; the caller destroys it.
static inline hafl_checkpoint_t *hafl_test_checkpoint(const char *name)
{
    char err[512];
    char *path = hafl_asset_find(name, err, sizeof err);
    CHECKF(path, "%s", err);
    hafl_checkpoint_t *c = hafl_checkpoint_open(path, err, sizeof err);
    CHECKF(c, "%s", err);
    free(path);
    return c;
}

#endif
