/*  hafl_blas: OpenBLAS kernel choice. See hafl_blas.h. */
#include "hafl_blas.h"

#include <cblas.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Set in the re-executed process, so a choice OpenBLAS ignores cannot loop.
#define S_REEXEC_MARK "HAFL_BLAS_REEXEC"

//  OpenBLAS x86-64 cores without AVX2 + FMA: the ones an unrecognised modern CPU falls back to.
static bool s_is_pre_avx2(const char *core)
{
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                      "Atom", "Sandybridge", "Opteron", "Opteron_SSE3",
                                      "Barcelona", "Bobcat", "Bulldozer", "Piledriver",
                                      "Steamroller", "Nano", "Katmai", "Coppermine",
                                      "Northwood", "Banias"};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcmp(core, old[i]) == 0)
            return true;
    return false;
}

//  OpenBLAS x86-64 cores with AVX-512 kernels.
static bool s_is_avx512(const char *core)
{
    return strcmp(core, "SkylakeX") == 0 || strcmp(core, "Cooperlake") == 0 ||
           strcmp(core, "SapphireRapids") == 0;
}

//  The best OpenBLAS core this CPU runs, or NULL when it has no AVX2 + FMA.
static const char *s_best_core(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

//  True when OpenBLAS's own choice leaves vector width on the table: a pre-AVX2 fallback on a
//  CPU with AVX2, or a 256-bit core (Haswell, Zen) on a CPU with AVX-512, as 0.3.21 does for
//  AMD Zen 4 (sgemm about 1.9 times slower there than with the AVX-512 kernels).
static bool s_below(const char *core, const char *best)
{
    if (s_is_pre_avx2(core))
        return true;
    return s_is_avx512(best) && !s_is_avx512(core);
}

const char *hafl_blas_core(void)
{
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

void hafl_blas_choose_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv(S_REEXEC_MARK))
        return;
    const char *best = s_best_core();
    if (!best || !s_below(hafl_blas_core(), best))
        return;
    if (setenv("OPENBLAS_CORETYPE", best, 1) || setenv(S_REEXEC_MARK, "1", 1))
        return;
    //  The executable's real path rather than /proc/self/exe, so the process keeps its name
    //  ("hafl", not "exe") in ps, top and pkill.
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = '\0';
        execv(self, argv);
    }
    //  Not reached unless exec failed: carry on with the slow kernels rather than fail.
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(S_REEXEC_MARK);
}

const char *hafl_blas_note(void)
{
    static char note[256];
    const char *set = getenv("OPENBLAS_CORETYPE");
    const char *best = s_best_core();
    if (!set || getenv(S_REEXEC_MARK) || !best || !s_below(hafl_blas_core(), best))
        return NULL;
    snprintf(note, sizeof note,
             "OPENBLAS_CORETYPE=%s keeps OpenBLAS on its %s kernels; this CPU runs %s ones "
             "(unset the variable to let hafl choose them: faster, other last bits)",
             set, hafl_blas_core(), best);
    return note;
}
