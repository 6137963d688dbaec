#!/bin/sh
# scale_inproc.sh: many in-process clients give one digest. 1000 clients in one process, run
# twice: round 1 waits for every client (they are all local), so both runs end with the same
# final adapter and neither says "not reproducible" (before, on a machine where joining took
# longer than deadline_ms, round 1 started with however many had joined, and three runs gave
# three digests; where all join within it, as on a fast machine, this passes either way).
set -eu
hafl=${HAFL_BINARY:?}
topology=${HAFL_SOURCE_DIR:?}/topologies/smoke.zpl
work=$(mktemp -d "${TMPDIR:-/tmp}/hafl-scale-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }
sets="--set clients/count=1000 --set clients/ranks=4 --set data/train_size=8000 --set server/rounds=2 --set logger/run_dir=$work/runs"
for n in 1 2; do
    # shellcheck disable=SC2086
    "$hafl" run "$topology" $sets > "$work/run$n.log" 2>&1 || fail "run $n: $(tail -3 "$work/run$n.log")"
    ! grep -q "^not reproducible" "$work/run$n.log" || fail "run $n: $(grep '^not reproducible' "$work/run$n.log")"
done
a=$(sed -n 's/^final adapter sha256 //p' "$work/run1.log")
b=$(sed -n 's/^final adapter sha256 //p' "$work/run2.log")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "two runs of 1000 in-process clients: '$a' and '$b'"
echo "scale_inproc: ok (1000 in-process clients, twice: $a)"
