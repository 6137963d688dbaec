#!/bin/sh
# bus_curve: CURVE security end to end. With certificates from `hafl keygen`, the smoke
# federation runs as separate processes over loopback tcp with CURVE on and must give the same
# final adapter digest as the unsecured in-process run. Then clients holding a certificate the
# server's allow-list lacks must be refused: the server's events report `peer-refused` with the
# authenticator's reason, and the run is stopped through `hafl ctl`.
set -u
: "${HAFL_BINARY:?run through ctest}" "${HAFL_SOURCE_DIR:?run through ctest}"
hafl=$HAFL_BINARY
topology="$HAFL_SOURCE_DIR/topologies/smoke.zpl"
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }
digest_of() { sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$1"; }

"$hafl" keygen "$work/keys" --name fleet >/dev/null || fail "keygen (allowed client)"
"$hafl" keygen "$work/other" --name rogue >/dev/null || fail "keygen (rogue client)"
# Ports: a per-run base so parallel test runs on one machine do not collide.
base=$((20000 + $$ % 20000))
secure="--set placement/mode=processes --set placement/transport=tcp \
--set security/curve=true --set security/server_cert=$work/keys/server.cert \
--set security/client_certs=$work/keys/clients"

timeout 120 "$hafl" run "$topology" --set logger/run_dir="$work/runs" >"$work/plain" 2>&1 \
    || fail "plain run: $(cat "$work/plain")"
# shellcheck disable=SC2086
timeout 120 "$hafl" run "$topology" $secure --set placement/base_port=$base \
    --set logger/run_dir="$work/runs" \
    --set security/client_cert="$work/keys/fleet.cert_secret" >"$work/secure" 2>&1 \
    || fail "CURVE run: $(cat "$work/secure")"
plain=$(digest_of "$work/plain")
secured=$(digest_of "$work/secure")
[ -n "$plain" ] && [ "$plain" = "$secured" ] || fail "digests differ: plain '$plain', CURVE '$secured'"
echo "ok: CURVE over tcp, separate processes, same digest $secured"

# A client certificate outside the allow-list: every client is refused.
mkfifo "$work/out"
# shellcheck disable=SC2086
timeout 120 "$hafl" run "$topology" $secure --set placement/base_port=$((base + 100)) \
    --set logger/run_dir="$work/refused-runs" \
    --set security/client_cert="$work/other/rogue.cert_secret" >"$work/out" 2>&1 &
pid=$!
exec 3<"$work/out"
control="" events=""
while IFS= read -r line <&3; do
    case $line in
    "control "*) control=${line#control } ;;
    "events "*) events=${line#events } ;;
    esac
    [ -n "$control" ] && [ -n "$events" ] && break
done
[ -n "$events" ] || fail "the run printed no endpoints"
# The refused clients try once, as soon as they start, which may be before a subscriber could
# join the PUB stream; the logger's file has every event, so poll it (deadline 30 s).
deadline=$(($(date +%s) + 30))
while ! grep -h '"event":"peer-refused"' "$work"/refused-runs/*/events.jsonl 2>/dev/null \
    | head -n 1 >"$work/refused" || ! [ -s "$work/refused" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "no peer-refused event within 30 s"
    sleep 0.2
done
grep -q 'not in the allow-list' "$work/refused" || fail "refusal without its reason: $(cat "$work/refused")"
timeout 30 "$hafl" ctl "$control" stop >/dev/null || fail "ctl stop"
wait "$pid"
pid=""
cat <&3 >/dev/null
! grep -q '"event":"client-joined"' "$work"/refused-runs/*/events.jsonl \
    || fail "a client with a certificate outside the allow-list joined"
echo "ok: refused with reason: $(sed 's/.*"reason":"\([^"]*\)".*/\1/' "$work/refused")"
