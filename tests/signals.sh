#!/bin/sh
# signals.sh: Ctrl-C and SIGTERM as an operator gives them, mid-round, never crash hafl
# (runtime/hafl_signals.h). Each case runs a real federation (stories260K) and signals it while
# clients train:
#   1. in one process, SIGINT twice 10 ms apart: the run stops cleanly, exit 1, "stopped by
#      SIGINT", the adapter printed as unfinished, never a crash (exit >= 128);
#   2. --processes in a process group of its own, SIGINT to the group twice 10 ms apart (what a
#      terminal's double Ctrl-C does): the launcher exits 1 and no node ends by a signal;
#   3. --processes, SIGINT then SIGTERM 10 ms apart to one client node, then SIGTERM to the
#      launcher: no node ends by a signal;
#   4. in one process, three signals: the third ends it at once with 130 and says so.
# Under ASan (the asan-labelled tree) a use-after-free on any of these paths fails the node.
set -eu
hafl=${HAFL_BINARY:?}
source_dir=${HAFL_SOURCE_DIR:?}
topology="$source_dir/topologies/tiny.zpl"
work=$(mktemp -d "${TMPDIR:-/tmp}/hafl-signals-XXXXXX")
cleanup() {
    pkill -KILL -f "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
cd "$work"

# Wait until file $1 holds a line matching $2 (up to 120 s).
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 1200 ] || fail "no '$2' in $1 after 120 s"
        sleep 0.1
    done
}

# rc = the exit status of background job $1 (a function, not $(...): a subshell cannot wait
# for this shell's jobs), without set -e ending the script on a failure.
status_of() {
    set +e
    wait "$1"
    rc=$?
    set -e
}

# Wait until no process matches $1 (up to 30 s); 0 when none is left.
gone() {
    i=0
    while pgrep -f "$1" > /dev/null; do
        i=$((i + 1))
        [ $i -le 300 ] || return 1
        sleep 0.1
    done
}

run_args="--set server/rounds=200 --set logger/run_dir=$work/runs"

# 1. In-process double Ctrl-C, three times.
for n in 1 2 3; do
    # shellcheck disable=SC2086
    "$hafl" run "$topology" $run_args > "inproc$n.log" 2>&1 &
    pid=$!
    wait_for "inproc$n.log" "^round $n/"
    kill -INT $pid
    sleep 0.01
    kill -INT $pid
    status_of $pid
    [ "$rc" -eq 1 ] || fail "in-process double SIGINT ($n): exit $rc, expected 1"
    grep -q "stopped by SIGINT after round" "inproc$n.log" || fail "no 'stopped by SIGINT' ($n)"
    grep -q "^unfinished adapter sha256 " "inproc$n.log" || fail "adapter not labelled unfinished"
    ! grep -q "^final adapter sha256" "inproc$n.log" || fail "a stopped run printed a final adapter"
done

# 2. --processes, double SIGINT to the process group.
setsid "$hafl" run "$topology" --processes $run_args > group.log 2>&1 &
launcher=$!
wait_for group.log "^round 2/"
pgid=$(ps -o pgid= -p $launcher | tr -d ' ')
/bin/kill -INT -- "-$pgid"
sleep 0.01
/bin/kill -INT -- "-$pgid"
status_of $launcher
[ "$rc" -eq 1 ] || fail "--processes double SIGINT: launcher exit $rc, expected 1"
! grep -q "ended with signal" group.log || fail "a node ended by a signal: $(grep 'ended with signal' group.log)"

# 3. --processes, SIGINT then SIGTERM to one client node, then SIGTERM to the launcher.
setsid "$hafl" run "$topology" --processes $run_args > client.log 2>&1 &
launcher=$!
wait_for client.log "^round 2/"
node=$(pgrep -f "host clients-0 .*$work/runs" | head -1)
[ -n "$node" ] || fail "no clients-0 node found"
kill -INT "$node"
sleep 0.01
kill -TERM "$node"
# The node ends by itself (cleanly, not by the signals); then the launcher is stopped.
gone "host clients-0 .*$work/runs" || fail "the signalled client node did not end"
kill -TERM $launcher
status_of $launcher
[ "$rc" -eq 1 ] || fail "client node signalled: launcher exit $rc, expected 1"
! grep -q "ended with signal" client.log || fail "a node ended by a signal: $(grep 'ended with signal' client.log)"

# 4. Three signals: out at once.
# shellcheck disable=SC2086
"$hafl" run "$topology" $run_args > third.log 2>&1 &
pid=$!
wait_for third.log "^round 1/"
kill -INT $pid
kill -INT $pid
kill -INT $pid
status_of $pid
# Two signals may already have ended it cleanly before the third arrives; never a crash.
[ "$rc" -eq 130 ] || [ "$rc" -eq 1 ] || fail "three SIGINTs: exit $rc, expected 130 (or 1)"
[ "$rc" -eq 1 ] || grep -q "third signal: ending at once" third.log || fail "exit 130 without saying why"

gone "$work/runs" || fail "$(pgrep -f "$work/runs" | wc -l) hafl processes left behind"
echo "signals: ok (double SIGINT in-process and to a process group, SIGINT+SIGTERM to a node, three SIGINTs: exit $rc)"
