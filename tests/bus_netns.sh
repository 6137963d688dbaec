#!/bin/sh
# bus_netns: topologies/three-hosts.zpl across three network namespaces (alpha 10.77.0.1 runs
# the server, aggregator, logger and evaluator; beta and gamma four clients each), joined by
# veth pairs on a bridge in a fourth namespace, each host running `hafl node FILE --host NAME`.
# Its final adapter digest must equal the one `hafl run` gives for the same file on this
# machine. Exits 77 (ctest SKIP_RETURN_CODE) when network namespaces are not permitted.
set -u
: "${HAFL_BINARY:?run through ctest}" "${HAFL_SOURCE_DIR:?run through ctest}"
topology="$HAFL_SOURCE_DIR/topologies/three-hosts.zpl"
tag="hb$$"
work=$(mktemp -d)

if ! command -v ip >/dev/null 2>&1 || ! ip netns add "$tag-probe" 2>/dev/null; then
    echo "SKIP: 'ip netns' is not available or not permitted here (needs root and iproute2)"
    exit 77
fi
ip netns del "$tag-probe"

cleanup() {
    for ns in alpha beta gamma br; do ip netns del "$tag-$ns" 2>/dev/null; done
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*"; exit 1; }

ip netns add "$tag-br" || fail "cannot add the bridge namespace"
ip -n "$tag-br" link add br0 type bridge || fail "cannot add a bridge"
ip -n "$tag-br" link set br0 up
n=1
for host in alpha beta gamma; do
    ns="$tag-$host"
    ip netns add "$ns" || fail "cannot add namespace $ns"
    ip link add "$tag$n" type veth peer name "$tag${n}b" || fail "cannot add a veth pair"
    ip link set "$tag$n" netns "$ns"
    ip link set "$tag${n}b" netns "$tag-br"
    ip -n "$tag-br" link set "$tag${n}b" master br0 up
    ip -n "$ns" addr add "10.77.0.$n/24" dev "$tag$n"
    ip -n "$ns" link set "$tag$n" up
    ip -n "$ns" link set lo up
    n=$((n + 1))
done

runs="$work/runs"
for host in alpha beta gamma; do
    ip netns exec "$tag-$host" "$HAFL_BINARY" node "$topology" --host "$host" \
        --set "logger/run_dir=$runs" >"$work/$host.out" 2>"$work/$host.err" &
    eval "pid_$host=\$!"
done
status=0
for host in alpha beta gamma; do
    eval "pid=\$pid_$host"
    wait "$pid" || { status=1; echo "node $host failed:"; cat "$work/$host.err"; }
done
[ $status -eq 0 ] || fail "a node failed"
hosts=$(sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$work/alpha.out")
[ -n "$hosts" ] || fail "alpha printed no digest: $(cat "$work/alpha.out")"

"$HAFL_BINARY" run "$topology" --set "logger/run_dir=$runs" >"$work/local.out" 2>&1 \
    || fail "hafl run failed: $(cat "$work/local.out")"
local=$(sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$work/local.out")
[ "$hosts" = "$local" ] || fail "three hosts gave $hosts, one machine $local"
grep -q '"event":"round-end"' "$runs"/three-hosts-*/events.jsonl || fail "no round-end events"
echo "bus netns: ok, three hosts and one machine both give $hosts"
rm -rf "$work"
