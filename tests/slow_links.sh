#!/bin/sh
# slow_links.sh: over slow links a run's last events still reach the log, and client hosts end
# promptly. Two hosts on loopback, started as an operator starts them (`hafl node`): alpha runs
# the server, evaluator and logger; beta runs two clients and reaches alpha's server and logger
# through tests/slow_link_proxy.py, which delays every byte by 400 ms each way (netem is not
# needed). When the run ends, beta's clients are told and answer with their "ended" events,
# which are then still on the slow link; the logger must wait for them (and beta's event
# sockets then deliver everything and close at once). Required: both nodes exit 0, alpha's
# events.jsonl holds the "ended" event of both clients and no "events-incomplete" line.
set -eu
hafl=${HAFL_BINARY:?}
source_dir=${HAFL_SOURCE_DIR:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/hafl-slowlinks-XXXXXX")
proxy=
cleanup() {
    [ -n "$proxy" ] && kill "$proxy" 2>/dev/null
    pkill -KILL -f "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
. "$source_dir/tests/loopback_hosts.sh"
cd "$work"

# Four free ports for alpha's endpoints and four for the proxy (two used).
base=$(free_ports "$source_dir") || fail "no free tcp ports"
slow=$(free_ports "$source_dir") || fail "no free tcp ports"
[ "$slow" != "$base" ] || slow=$(free_ports "$source_dir")

cat > topology.zpl <<EOF
seed = 9
model
    kind = synthetic
    rank = 4
data
    dataset = synthetic
server
    rounds = 3
clients
    count = 2
    ranks = 4,4
    local_steps = 5
    batch = 8
EOF
two_hosts_tail "$work/runs" "$base" >> topology.zpl
"$hafl" check topology.zpl > check.log 2>&1 || fail "topology refused: $(cat check.log)"

/usr/bin/python3 "$source_dir/tests/slow_link_proxy.py" 400 "$slow:$base" "$((slow + 1)):$((base + 2))" \
    > proxy.log 2>&1 &
proxy=$!
wait_for proxy.log "^ready" "$proxy"

mkdir -p runs/alpha runs/beta
"$hafl" node topology.zpl --host alpha --run-dir "$work/runs/alpha" > alpha.log 2>&1 &
alpha=$!
"$hafl" node topology.zpl --host beta --run-dir "$work/runs/beta" \
    --set "server/endpoint=tcp://127.0.0.1:$slow" \
    --set "logger/pull=tcp://127.0.0.1:$((slow + 1))" > beta.log 2>&1 &
beta=$!
set +e
wait $alpha
alpha_rc=$?
wait $beta
beta_rc=$?
set -e
[ $alpha_rc -eq 0 ] || fail "alpha exited $alpha_rc"
[ $beta_rc -eq 0 ] || fail "beta exited $beta_rc"
events=runs/alpha/events.jsonl
[ -f "$events" ] || fail "no $events"
for c in 0 1; do
    grep '"event":"ended"' "$events" | grep -q "\"actor\":\"client-$c\"" ||
        fail "client-$c's last event (ended) is not in the log: lost on the slow link"
done
! grep -q '"event":"events-incomplete"' "$events" || fail "the logger says events are missing"
echo "slow_links: ok (400 ms each way: both clients' ended events logged, both nodes exit 0)"
