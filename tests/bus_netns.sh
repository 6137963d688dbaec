#!/bin/sh
# bus_netns: topologies/three-hosts.zpl across three network namespaces (alpha 10.77.0.1 runs
# the server, aggregator, logger and evaluator; beta and gamma four clients each), joined by
# veth pairs on a bridge in a fourth namespace, each host running `hafl node FILE --host NAME`.
# Its final adapter digest must equal the one `hafl run` gives for the same file on this
# machine. Before anything else it probes, in a namespace of its own, everything the run needs
# from the machine (adding a namespace, `ip netns exec` and `ip -n`, which both enter a mount
# namespace and remount /sys, a bridge, a veth pair moved into a namespace) and exits 77 (ctest
# SKIP_RETURN_CODE) naming the step that is not permitted: a plain user, a chroot, a container
# without CAP_SYS_ADMIN. Every exit removes its namespaces, links, node processes and temp folder.
set -u
: "${HAFL_BINARY:?run through ctest}" "${HAFL_SOURCE_DIR:?run through ctest}"
topology="$HAFL_SOURCE_DIR/topologies/three-hosts.zpl"
tag="hb$$"
work=$(mktemp -d) || { echo "FAIL: cannot create a temp folder"; exit 1; }
pids=""

cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null; done
    for ns in probe alpha beta gamma br; do ip netns del "$tag-$ns" 2>/dev/null; done
    # A veth end still outside any namespace (a step failed before moving it) is not removed with
    # them; the peer of a deleted end goes with it.
    for link in "${tag}p" "${tag}1" "${tag}2" "${tag}3"; do ip link del "$link" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "FAIL: $*"; exit 1; }
skip() {
    echo "SKIP: $1: $(tr '\n' ' ' <"$work/probe.err")(three hosts in network namespaces need" \
        "root with CAP_SYS_ADMIN and CAP_NET_ADMIN and a mountable /sys: not a plain chroot or an" \
        "unprivileged container)"
    exit 77
}

# The probe: each kind of step the run below takes, once, in a namespace deleted before the run.
probe="$tag-probe"
: >"$work/probe.err"
command -v ip >/dev/null 2>&1 || skip "no 'ip' command (Debian package iproute2)"
ip netns add "$probe" 2>"$work/probe.err" || skip "'ip netns add' failed"
ip netns exec "$probe" true 2>"$work/probe.err" || skip "'ip netns exec' failed"
ip -n "$probe" link set lo up 2>"$work/probe.err" || skip "'ip -n' failed"
ip -n "$probe" link add br0 type bridge 2>"$work/probe.err" || skip "adding a bridge failed"
ip link add "${tag}p" type veth peer name "${tag}q" 2>"$work/probe.err" \
    || skip "adding a veth pair failed"
ip link set "${tag}q" netns "$probe" 2>"$work/probe.err" \
    || skip "moving a veth into a namespace failed"
ip netns exec "$probe" ip link set "${tag}q" up 2>"$work/probe.err" \
    || skip "'ip' inside 'ip netns exec' failed"
ip netns del "$probe"
ip link del "${tag}p" 2>/dev/null

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
    pids="$pids $!"
done
status=0
for host in alpha beta gamma; do
    eval "pid=\$pid_$host"
    wait "$pid" || { status=1; echo "node $host failed:"; cat "$work/$host.err"; }
done
pids=""
[ $status -eq 0 ] || fail "a node failed"
hosts=$(sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$work/alpha.out")
[ -n "$hosts" ] || fail "alpha printed no digest: $(cat "$work/alpha.out")"

"$HAFL_BINARY" run "$topology" --set "logger/run_dir=$runs" >"$work/local.out" 2>&1 \
    || fail "hafl run failed: $(cat "$work/local.out")"
local=$(sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$work/local.out")
[ "$hosts" = "$local" ] || fail "three hosts gave $hosts, one machine $local"
grep -q '"event":"round-end"' "$runs"/three-hosts-*/events.jsonl || fail "no round-end events"
echo "bus netns: ok, three hosts and one machine both give $hosts"
