#!/bin/sh
# client_send_timeout.sh: a client host whose server is gone never hangs (issue: a client
# blocked in a send to a dead server kept its node from ending). Two hosts on loopback, started
# as an operator starts them (`hafl node`): alpha runs the server, beta two clients that send a
# heartbeat every 50 ms (stories260K, so it skips with 77 when the asset is missing). alpha is
# killed with SIGKILL as a round starts. beta's clients keep queueing heartbeats toward the
# dead server until the queue is full; then heartbeats are dropped (they never wait) and the
# client says so on stderr, and the round's upload waits at most the send timeout. beta is then
# stopped with SIGTERM and must end by itself, cleanly: without the send timeout a client stays
# blocked in the send and the node in destroying it, until a third signal ends it with 130.
set -eu
hafl=${HAFL_BINARY:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/hafl-sendtimeout-XXXXXX")
cleanup() {
    pkill -KILL -f "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
. "${HAFL_SOURCE_DIR:?}/tests/loopback_hosts.sh"
cd "$work"

# Four free ports of its own (tests/loopback_hosts.sh).
port=$(free_ports "${HAFL_SOURCE_DIR:?}") || fail "no free tcp ports"
cat > topology.zpl <<EOF
seed = 5
model
    kind = llama
    checkpoint = stories260K.bin
    tokenizer = tok512.bin
    targets = wq,wk,wv,wo
    rank = 4
data
    dataset = 20news
    path = 20news-bydate.tar.gz
    max_tokens = 32
    test_limit = 64
server
    rounds = 1000
    heartbeat_ms = 50
    heartbeat_misses = 1000
clients
    count = 2
    ranks = 4,4
    local_steps = 600
    batch = 8
EOF
two_hosts_tail "$work/runs" "$port" >> topology.zpl
if ! "$hafl" check topology.zpl > check.log 2>&1; then
    grep -q "not found" check.log && { echo "skipped: $(grep 'not found' check.log | head -1)"; exit 77; }
    fail "topology refused: $(cat check.log)"
fi

mkdir -p runs/alpha runs/beta
"$hafl" node topology.zpl --host alpha --run-dir "$work/runs/alpha" > alpha.log 2>&1 &
alpha=$!
"$hafl" node topology.zpl --host beta --run-dir "$work/runs/beta" > beta.log 2>&1 &
beta=$!
# Round 2 is done: the clients have just started round 3's 600 steps (seconds of work), so
# their uploads meet a full queue toward the dead server.
wait_for alpha.log "^round 2/" $alpha
kill -KILL $alpha
wait $alpha 2>/dev/null || true

# The heartbeats fill the queue toward the dead server; a send then times out and says so.
wait_for beta.log "the server is not reading" $beta
# The upload: sent when training ends, it finds the queue full and gives up after 10 s.
wait_for beta.log "the upload of round 3 was not sent" $beta

kill -TERM $beta
i=0
while kill -0 $beta 2>/dev/null; do
    i=$((i + 1))
    # A node that handles SIGTERM ends within the send timeout; 60 s means it is stuck.
    [ $i -le 600 ] || fail "beta did not end within 60 s of SIGTERM: a client is stuck in a send"
    sleep 0.1
done
set +e
wait $beta
rc=$?
set -e
[ $rc -lt 128 ] || fail "beta ended by a signal or a third-signal exit ($rc)"
! grep -q "third signal" beta.log || fail "beta needed a third signal"
echo "client_send_timeout: ok (server killed; beta's clients gave up their sends and beta ended on SIGTERM with $rc)"
