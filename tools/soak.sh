#!/bin/sh
# soak.sh [ROUNDS] [HAFL]: a hostile operator against `hafl run --processes`, not part of CI.
#
# Runs topologies/faults.zpl (stragglers, dropouts, crashes) for ROUNDS rounds (default 200)
# once without interruption, then again while, every 2-6 s at random, one of these happens to
# the whole run (the launcher and every node, one process group):
#   kill   SIGKILL to everything, then `hafl run --resume` from the folder it left;
#   pause  SIGSTOP to everything for 0.3 s, then SIGCONT (shorter than the heartbeat death
#          limit of faults.zpl, 5 x 200 ms, so no client is declared dead by the pause).
# Requires: the resumed chain ends with the uninterrupted run's final digest; every kill left a
# resumable folder; no hafl process and no temporary file (*.tmp.*) is left behind. Prints the
# counts and the digests; exit 0 only when all of that holds.
set -eu
rounds=${1:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
hafl=${2:-$root/build/hafl}
topology=$root/topologies/faults.zpl
work=$(mktemp -d "${TMPDIR:-/tmp}/hafl-soak-XXXXXX")
trap 'pkill -KILL -f "$work" 2>/dev/null || true' EXIT
fail() { echo "soak: FAIL: $*" >&2; exit 1; }
sets="--set server/rounds=$rounds"

digest_of() { sed -n 's/^final adapter sha256 \([0-9a-f]*\).*/\1/p' "$1" | tail -1; }
folder_of() { sed -n 's/^folder \(.*\)$/\1/p' "$1" | head -1; }

echo "soak: uninterrupted run of $rounds rounds"
# shellcheck disable=SC2086
"$hafl" run "$topology" --processes $sets --set logger/run_dir="$work/clean" > "$work/clean.log" 2>&1 ||
    fail "the uninterrupted run failed: $(tail -3 "$work/clean.log")"
want=$(digest_of "$work/clean.log")
[ -n "$want" ] || fail "no digest from the uninterrupted run"

kills=0
pauses=0
attempt=0
resume=""
while true; do
    attempt=$((attempt + 1))
    log="$work/attempt$attempt.log"
    # shellcheck disable=SC2086
    setsid "$hafl" run "$topology" --processes $sets --set logger/run_dir="$work/soak" \
        ${resume:+--resume "$resume"} > "$log" 2>&1 &
    launcher=$!
    pgid=$launcher
    while kill -0 $launcher 2>/dev/null; do
        sleep "$(awk -v r="$(od -An -N2 -tu2 /dev/urandom)" 'BEGIN { printf "%.1f", 2 + 4 * r / 65535 }')"
        kill -0 $launcher 2>/dev/null || break
        if [ $(($(od -An -N1 -tu1 /dev/urandom) % 3)) -eq 0 ]; then
            /bin/kill -STOP -- "-$pgid" 2>/dev/null || true
            sleep 0.3
            /bin/kill -CONT -- "-$pgid" 2>/dev/null || true
            pauses=$((pauses + 1))
        else
            /bin/kill -KILL -- "-$pgid" 2>/dev/null || true
            kills=$((kills + 1))
            break
        fi
    done
    set +e
    wait $launcher
    rc=$?
    set -e
    folder=$(folder_of "$log")
    [ -n "$folder" ] || fail "attempt $attempt printed no run folder: $(tail -3 "$log")"
    if [ $rc -eq 0 ]; then
        got=$(digest_of "$log")
        break
    fi
    [ $rc -eq 137 ] || [ $rc -eq 1 ] || fail "attempt $attempt ended with $rc: $(tail -3 "$log")"
    if [ ! -d "$folder/checkpoint" ]; then
        # Killed before its first checkpoint: start over from the previous folder (or afresh).
        echo "soak: attempt $attempt killed before its first checkpoint"
        continue
    fi
    resume=$folder
    sleep 0.5
done

left=$(pgrep -f "$work" | wc -l)
tmp=$(find "$work/soak" -name '*.tmp.*' | wc -l)
echo "soak: $attempt attempts, $kills kills (each resumed), $pauses pauses of the whole run"
echo "soak: uninterrupted $want"
echo "soak: interrupted   $got"
[ "$got" = "$want" ] || fail "the interrupted chain ended with another digest"
[ "$left" -eq 0 ] || fail "$left hafl processes left behind"
# A kill in the middle of an atomic write leaves its temporary file; the next checkpoint of
# that folder removes it, a folder abandoned by the next kill may keep it. Reported, not failed.
echo "soak: temporary files left in abandoned folders: $tmp"
echo "soak: ok"
rm -rf "$work"
