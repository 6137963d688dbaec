/*  hafl_f32le: the tensor payloads of the wire protocol, little-endian IEEE-754 float32.

    The codec moves every tensor byte through these two loops, so they set its speed. Copying
    converts between the wire's little-endian bytes and host floats (the same operation both
    ways: a plain copy on little-endian hosts, a byte swap on others) and checks finiteness in
    the same pass. Checking alone serves the zero-copy decoder, which leaves the floats where
    they arrived. Neither pointer needs any alignment.

    A float is infinite or NaN exactly when its bits without the sign are at least 0x7f800000,
    so both loops keep a running unsigned maximum of those bits per lane (no compares, no
    branches inside the loop) and look at it once at the end. On x86-64 an AVX2 version is
    chosen at run time when the CPU has it; elsewhere a portable loop runs.
*/
#ifndef HAFL_F32LE_H
#define HAFL_F32LE_H

#include <stdbool.h>
#include <stddef.h>

//  Copy n float32 from src to dst, converting byte order when the host is big-endian. Returns
//  true when every value was finite (dst is written in full either way). The ranges must not
//  overlap.
bool hafl_f32le_copy_finite (void *restrict dst, const void *restrict src, size_t n);

//  True when all n little-endian float32 at src are finite.
bool hafl_f32le_all_finite (const void *src, size_t n);

//  Index of the first non-finite little-endian float32 at src (n when there is none), and its
//  value as a host float; the slow path that names the culprit after a failed check.
size_t hafl_f32le_first_nonfinite (const void *src, size_t n, float *value);

//  Whether floats in wire order can be used where they lie (a little-endian host).
bool hafl_f32le_host_order (void);

//  The portable loops behind the two functions above, whatever the CPU, so that tests can
//  hold the AVX2 versions to them on one machine. Same contracts.
bool hafl_f32le_copy_finite_portable (void *restrict dst, const void *restrict src, size_t n);
bool hafl_f32le_all_finite_portable (const void *src, size_t n);

#endif
