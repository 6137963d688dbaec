#!/bin/sh
# checkpoint_kill: a run killed (SIGKILL) at any instant leaves a run folder that resumes to the
# digest of the run never interrupted (hafl_server_checkpoint.h: every file written atomically,
# a generation complete only once its state exists, the previous one kept; hafl_client_state.h:
# the client states both generations need kept). The smoke federation with crashes runs 30
# rounds uninterrupted, timed; then five runs of it are killed at 1/6 .. 5/6 of that time (the
# kill instant is the point, not a wait for something), and each is resumed with `hafl run
# --resume`. A kill that came before the first checkpoint must be refused as having none; one
# after the run ended needs no resume; every other must resume to the uninterrupted digest, and
# at least two kills must have landed mid-run, or the test proves nothing and fails.
set -u
: "${HAFL_BINARY:?run through ctest}" "${HAFL_SOURCE_DIR:?run through ctest}"
hafl=$HAFL_BINARY
topology="$HAFL_SOURCE_DIR/topologies/smoke.zpl"
work=$(mktemp -d) || { echo "FAIL: cannot create a temp folder"; exit 1; }
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; trap - EXIT; exit 1; }
digest_of() { sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
sets="--set faults/crash=0.05 --set faults/rejoin_rounds=2 --set server/rounds=30 \
--set evaluator/enabled=false --set logger/run_dir=$work/runs"

start=$(now_ms)
# shellcheck disable=SC2086
timeout 120 "$hafl" run "$topology" $sets >"$work/full" 2>&1 || fail "uninterrupted run: $(cat "$work/full")"
wall=$(($(now_ms) - start))
full=$(digest_of "$work/full")
[ -n "$full" ] || fail "no digest: $(cat "$work/full")"

resumed=0
for k in 1 2 3 4 5; do
    delay_ms=$((wall * k / 6))
    # shellcheck disable=SC2086
    "$hafl" run "$topology" $sets >"$work/killed-$k" 2>&1 &
    pid=$!
    sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
    pid=""
    dir=$(sed -n 's/^folder //p' "$work/killed-$k")
    [ -n "$dir" ] || { echo "kill $k at $delay_ms ms: before the run folder was printed"; continue; }
    if digest_of "$work/killed-$k" | grep -q .; then
        echo "kill $k at $delay_ms ms: after the run ended"
        continue
    fi
    # shellcheck disable=SC2086
    timeout 120 "$hafl" run "$topology" $sets --resume "$dir" >"$work/resumed-$k" 2>&1
    status=$?
    if [ "$status" -ne 0 ] && grep -q "no checkpoint in checkpoint/" "$work/resumed-$k" \
        && [ ! -e "$dir/checkpoint/round-1.state" ]; then
        echo "kill $k at $delay_ms ms: before the first checkpoint (refused as such)"
        continue
    fi
    [ "$status" -eq 0 ] || fail "resume after kill $k at $delay_ms ms exited $status: $(cat "$work/resumed-$k")
checkpoint/: $(ls "$dir/checkpoint" 2>&1)
clients/: $(ls "$dir/clients" 2>&1)"
    got=$(digest_of "$work/resumed-$k")
    [ "$got" = "$full" ] || fail "resume after kill $k at $delay_ms ms: digest '$got', uninterrupted '$full'"
    rounds=$(($(wc -l <"$dir/rounds.csv") - 1))
    echo "kill $k at $delay_ms ms, after $rounds rounds: resumed ($(ls "$dir/checkpoint" | tr '\n' ' ')) to the same digest"
    resumed=$((resumed + 1))
done
[ "$resumed" -ge 2 ] || fail "only $resumed of 5 kills landed mid-run (uninterrupted run $wall ms)"
echo "ok: $resumed killed runs resumed to $full"
