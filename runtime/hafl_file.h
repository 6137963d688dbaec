/*  hafl_file: whole-file writes that are atomic and whole-file reads that are bounded.

    State files (the server's checkpoint state, each client's state file, the tokenised corpus
    cache) must never be seen half-written, even after a crash or with a full disk:
    hafl_file_write_atomic writes a temporary file beside the target (PATH.tmp.XXXXXX, a name
    of its own even when several threads or processes write the same file), fsyncs it, renames
    it over PATH and fsyncs the folder; on any failure it removes the temporary file and leaves
    PATH as it was. hafl_file_read refuses a file larger than the caller's cap before
    allocating.

    Both return errors as one line naming the file. The buffer hafl_file_read returns is owned
    by the caller (free), with a terminating zero byte after its `size` bytes so text files can
    be parsed in place.
*/
#ifndef HAFL_FILE_H
#define HAFL_FILE_H

#include <stddef.h>

//  Write size bytes as the whole content of path. 0, or -1 with a reason in err.
int hafl_file_write_atomic(const char *path, const void *data, size_t size, char *err,
                           size_t errlen);
//  The whole content of path when it holds at most cap bytes; *size gets its length. NULL with
//  a reason in err (missing, unreadable, larger than cap).
void *hafl_file_read(const char *path, size_t cap, size_t *size, char *err, size_t errlen);

#endif
