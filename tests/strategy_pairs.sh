#!/bin/sh
# Every distribution scheme x aggregation strategy pair runs end to end through `hafl run` on
# the synthetic federation (topologies/smoke.zpl, two rounds), plus fedavg with equal ranks.
# Each run must exit 0, print its final digest, and log an evaluated accuracy for every round.
# With an argument "llama", the pairs docs/METHOD.md section 6 uses run on stories260K instead
# (one round, few steps, small data subsets).
set -u
hafl=${HAFL_BINARY:?HAFL_BINARY must name the hafl binary}
src=${HAFL_SOURCE_DIR:?HAFL_SOURCE_DIR must name the source folder}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

run_pair() {
    topology=$1 scheme=$2 strategy=$3
    shift 3
    out="$work/out-$scheme-$strategy"
    if ! "$hafl" run "$topology" --set server/scheme="$scheme" --set server/aggregator="$strategy" \
        --set logger/run_dir="$work/runs" "$@" >"$out" 2>&1; then
        echo "FAIL $scheme x $strategy: exit status $?"; sed 's/^/    /' "$out"
        failures=$((failures + 1))
        return
    fi
    if ! grep -Eq '^final adapter sha256 [0-9a-f]{64}$' "$out"; then
        echo "FAIL $scheme x $strategy: no final digest"; sed 's/^/    /' "$out"
        failures=$((failures + 1))
        return
    fi
    rounds=$(grep -Ec '^round [0-9]+/[0-9]+ accuracy [0-9.]+' "$out")
    if [ "$rounds" -lt "$expected_rounds" ]; then
        echo "FAIL $scheme x $strategy: $rounds evaluated rounds, expected $expected_rounds"
        sed 's/^/    /' "$out"
        failures=$((failures + 1))
        return
    fi
    echo "ok   $scheme x $strategy: $(grep '^round' "$out" | tail -n 1)"
}

if [ "${1:-}" = llama ]; then
    topology="$src/topologies/tiny.zpl"
    if ! "$hafl" check "$topology" >"$work/check" 2>&1; then
        echo "skipped: the stories260K topology does not load here: $(cat "$work/check")"
        exit 77
    fi
    expected_rounds=1
    small="--set server/rounds=1 --set clients/local_steps=2 --set data/train_limit=400 \
--set data/test_limit=64 --set data/max_tokens=32"
    # shellcheck disable=SC2086
    {
        run_pair "$topology" freeze adaptive $small
        run_pair "$topology" truncate adaptive $small
        run_pair "$topology" freeze zeropad $small
        run_pair "$topology" truncate-prefix zeropad $small
        run_pair "$topology" truncate-prefix zeropad-norm $small
        run_pair "$topology" truncate-prefix flexlora $small
        run_pair "$topology" truncate-prefix flora $small
        run_pair "$topology" freeze-random adaptive $small
        run_pair "$topology" freeze fedavg $small --set clients/ranks=8,8,8,8,8,8,8,8,8,8
        run_pair "$topology" freeze fedavg $small --set clients/ranks=2,2,2,2,2,2,2,2,2,2
    }
else
    topology="$src/topologies/smoke.zpl"
    expected_rounds=2
    for scheme in truncate truncate-prefix freeze freeze-random; do
        for strategy in adaptive zeropad zeropad-norm flexlora flora median trimmed-mean; do
            run_pair "$topology" "$scheme" "$strategy" --set server/rounds=2
        done
        run_pair "$topology" "$scheme" fedavg --set server/rounds=2 --set clients/ranks=4,4,4,4,4,4,4,4
    done
fi
[ "$failures" -eq 0 ] || { echo "$failures pair(s) failed"; exit 1; }
