#!/bin/sh
# blas_kernels.sh HAFL: the hafl binary runs OpenBLAS's vector kernels where the CPU has them
# (runtime/hafl_blas.h). On a CPU with AVX2 and FMA, with OPENBLAS_CORETYPE unset, the core
# `hafl bench train` reports must not be one of OpenBLAS's pre-AVX2 fallbacks (nor short of
# AVX-512 on an AVX-512 CPU); a core the user sets is kept as given; and the re-exec passes the
# arguments through.
set -eu
hafl=$1
shape="--shape 64,172,2,4,4,64,32 --batch 2 --seq 8 --steps 1 --warmup 0 --threads 1"
core_of() { sed -n 's/.*"blas_core": "\([A-Za-z0-9_]*\)".*/\1/p'; }
fail() { echo "FAIL: $*"; exit 1; }

# shellcheck disable=SC2086
chosen=$(env -u OPENBLAS_CORETYPE -u HAFL_BLAS_REEXEC "$hafl" bench train $shape | core_of)
[ -n "$chosen" ] || fail "bench train printed no blas_core"
if grep -q ' avx2 ' /proc/cpuinfo && grep -q ' fma ' /proc/cpuinfo; then
    case "$chosen" in
    Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Sandybridge|Opteron*|Barcelona|Bobcat|Bulldozer|Piledriver|Steamroller|Nano)
        fail "the CPU has AVX2 and FMA but OpenBLAS runs its $chosen kernels" ;;
    esac
    if grep -q ' avx512f ' /proc/cpuinfo && grep -q ' avx512bw ' /proc/cpuinfo; then
        case "$chosen" in
        SkylakeX|Cooperlake|SapphireRapids) ;;
        *) fail "the CPU has AVX-512 but OpenBLAS runs its $chosen kernels" ;;
        esac
    fi
fi
# shellcheck disable=SC2086
kept=$(OPENBLAS_CORETYPE=Prescott "$hafl" bench train $shape | core_of)
[ "$kept" = Prescott ] || fail "OPENBLAS_CORETYPE=Prescott was not kept (got $kept)"
# Arguments survive the re-exec: an unknown option is still refused with exit 2.
set +e
env -u OPENBLAS_CORETYPE -u HAFL_BLAS_REEXEC "$hafl" check --no-such-option >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "hafl check --no-such-option exited $rc after the re-exec, expected 2"
echo "ok: OpenBLAS core $chosen (user choice kept: $kept)"
