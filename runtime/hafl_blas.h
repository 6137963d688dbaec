/*  hafl_blas: which OpenBLAS kernels the process runs.

    OpenBLAS (Debian's build has every kernel and picks one from CPUID when the library loads)
    does not know CPUs newer than its release: Debian 12's 0.3.21 takes a Sapphire Rapids
    machine for an unknown Intel and falls back to "Prescott", its SSE3 kernels (sgemm three to
    five times slower), and gives AMD Zen 4 its 256-bit "Haswell" kernels although the CPU has
    AVX-512 (sgemm about half the speed). The choice is made before main() and read from
    OPENBLAS_CORETYPE only then, so it cannot be changed in-process: hafl_blas_choose_kernels
    re-executes the program once with OPENBLAS_CORETYPE set to the best core the CPU supports,
    when (and only when) the user has not set OPENBLAS_CORETYPE and OpenBLAS chose a narrower
    core than the CPU runs: a pre-AVX2 one where the CPU has AVX2 and FMA (Haswell kernels), or
    one without AVX-512 where the CPU has it (SkylakeX, or Cooperlake with BF16). Child
    processes inherit the variable, so every process of a run uses the same kernels (results
    depend on them in the last bits).
*/
#ifndef HAFL_BLAS_H
#define HAFL_BLAS_H

//  Called first in main with main's argv. Returns when nothing is to change (or the re-exec
//  failed, which only costs speed); otherwise does not return.
void hafl_blas_choose_kernels (char **argv);

//  The OpenBLAS core in use ("Cooperlake", "Haswell", "Prescott", ...).
const char *hafl_blas_core (void);

//  A one-line note when the user's OPENBLAS_CORETYPE holds OpenBLAS below what the CPU runs (a
//  choice hafl keeps, but says costs speed), else NULL. Static storage.
const char *hafl_blas_note (void);

#endif
