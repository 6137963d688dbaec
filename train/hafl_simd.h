/*  hafl_simd: run-time selection of a wider vector unit for the elementwise loops.

    The build targets baseline x86-64 (SSE2), where the softmax, SwiGLU and RMSNorm loops run
    four floats at a time. HAFL_SIMD_CLONES on such a function makes the compiler emit a second
    copy for x86-64-v3 (AVX2, FMA) and pick one when the program loads, as OpenBLAS does for its
    kernels. Results are bit-identical run to run on one machine (the same copy always runs);
    the build uses ISO C floating-point contraction rules, so the wide copy rounds like the
    baseline one. On other compilers or architectures the macro is empty.
*/
#ifndef HAFL_SIMD_H
#define HAFL_SIMD_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
#define HAFL_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HAFL_SIMD_CLONES
#endif

#endif
