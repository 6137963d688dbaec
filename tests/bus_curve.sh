#!/bin/sh
# bus_curve: CURVE security end to end. With certificates from `hafl keygen`, the smoke
# federation runs as separate processes over loopback tcp with CURVE on and must give the same
# final adapter digest as the unsecured in-process run. Then clients holding a certificate the
# server's allow-list lacks must be refused: the server's events report `peer-refused` with the
# authenticator's reason, each client reports `handshake-refused` and gives up, and the run
# ends by itself with status 1 and the reason on stderr; the logger refuses their events as
# well and says so. Last, a refused client node started
# before its server waits for it rather than giving up, and the server, whose clients never
# join, ends with status 1 after server/join_timeout_ms.
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
# Ports: a block of 24 per run (six federations of 4), below the kernel's ephemeral range
# (32768 and up) where outgoing connections take their ports, so that parallel test runs on
# one machine do not collide.
base=$((20000 + $$ % 500 * 24))
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

# A client certificate outside the allow-list: every client (and the evaluator) is refused,
# says so and gives up, and the launcher, with nobody left to join, stops the server: the run
# ends by itself with status 1.
# shellcheck disable=SC2086
timeout 60 "$hafl" run "$topology" $secure --set placement/base_port=$((base + 4)) \
    --set logger/run_dir="$work/refused-runs" \
    --set security/client_cert="$work/other/rogue.cert_secret" >"$work/out" 2>"$work/err"
status=$?
[ "$status" -eq 1 ] || fail "refused run exited $status, not 1: $(cat "$work/out" "$work/err")"
grep -q "^hafl node clients-0: client [0-3]: the server at tcp://127.0.0.1:$((base + 4)) refused the CURVE handshake: this client's public key is not in its allow-list (ZAP status 400)$" "$work/err" \
    || fail "no refusal reason from the clients' node: $(cat "$work/err")"
events=$(ls "$work"/refused-runs/*/events.jsonl) || fail "no events file"
grep '"event":"peer-refused"' "$events" | head -n 1 >"$work/refused"
grep -q 'not in the allow-list' "$work/refused" || fail "refusal without its reason: $(cat "$work/refused")"
# Their events cannot reach the log either: the logger admits only the allow-list's keys too,
# and writes down each emitter it refused (hafl_log_auth.h).
grep -q '"actor":"logger","event":"log-refused","reason":".*not in the allow-list' "$events" \
    || fail "the logger did not record the refused emitters: $(grep log-refused "$events" | head -n 2)"
! grep -q '"actor":"client-0"' "$events" || fail "a refused client's event reached the log"
! grep -q '"event":"client-joined"' "$events" \
    || fail "a client with a certificate outside the allow-list joined"
echo "ok: refused with reason: $(sed 's/.*"reason":"\([^"]*\)".*/\1/' "$work/refused")"
echo "ok: the refused run ended by itself: $(grep -m 1 '^hafl node clients-0' "$work/err")"

# The same by hand, the rogue clients' node started before the server's: connecting to a
# server that is not up yet is no refusal, so it waits, then is refused and ends with status
# 1; the server, whose clients never join, gives up after server/join_timeout_ms.
# shellcheck disable=SC2086
timeout 60 "$hafl" node "$topology" --host clients-0 $secure --set placement/base_port=$((base + 8)) \
    --set logger/run_dir="$work/early-runs" \
    --set security/client_cert="$work/other/rogue.cert_secret" >"$work/early.out" 2>"$work/early.err" &
pid=$!
# Its clients connect as the node starts; it prints its folder once they have (deadline 30 s).
deadline=$(($(date +%s) + 30))
until grep -q '^folder ' "$work/early.out" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the early client node did not start within 30 s"
    sleep 0.1
done
# shellcheck disable=SC2086
timeout 60 "$hafl" node "$topology" --host server $secure --set placement/base_port=$((base + 8)) \
    --set logger/run_dir="$work/early-runs" --set evaluator/enabled=false \
    --set server/deadline_ms=500 --set server/join_timeout_ms=3000 \
    --set security/client_cert="$work/keys/fleet.cert_secret" >"$work/server.out" 2>"$work/server.err"
status=$?
wait "$pid"
early=$?
pid=""
[ "$early" -eq 1 ] || fail "the early client node exited $early, not 1: $(cat "$work/early.err")"
[ "$(wc -l <"$work/early.err")" -eq 1 ] && grep -q "refused the CURVE handshake" "$work/early.err" \
    || fail "the early client node's stderr: $(cat "$work/early.err")"
[ "$status" -eq 1 ] || fail "the server node exited $status, not 1: $(cat "$work/server.err")"
[ "$(cat "$work/server.err")" = "hafl node server: join timeout: 0 of the 4 clients needed joined within 3000 ms (8 expected; missing: 0-7)" ] \
    || fail "the server node's stderr: $(cat "$work/server.err")"
echo "ok: $(cat "$work/early.err")"
echo "ok: $(cat "$work/server.err")"

# One certificate per client, each bound to its index, and the evaluator's own (`hafl keygen
# --clients 8`): the same digest again.
"$hafl" keygen "$work/bound" --clients 8 >"$work/bound.zpl" || fail "keygen --clients"
grep -q 'client_cert = ".*/client-{index}.cert_secret"' "$work/bound.zpl" \
    || fail "keygen --clients printed no per-client certificate: $(cat "$work/bound.zpl")"
bound="--set placement/mode=processes --set placement/transport=tcp --set security/curve=true \
--set security/server_cert=$work/bound/server.cert --set security/client_certs=$work/bound/clients \
--set security/evaluator_cert=$work/bound/evaluator.cert_secret"
# shellcheck disable=SC2086
timeout 120 "$hafl" run "$topology" $bound --set placement/base_port=$((base + 12)) \
    --set logger/run_dir="$work/bound-runs" \
    --set "security/client_cert=$work/bound/client-{index}.cert_secret" >"$work/bound.out" 2>&1 \
    || fail "run with per-client certificates: $(cat "$work/bound.out")"
[ "$(digest_of "$work/bound.out")" = "$plain" ] || fail "per-client certificates changed the digest"
echo "ok: one certificate per client, bound to its index: same digest"

# Every client presenting client 0's certificate: the allow-list binds it to client 0, so the
# other seven are refused (REJECT AUTH, logged as binding-refused), client 0 alone cannot make
# the quorum, and the server gives up after its join timeout.
# shellcheck disable=SC2086
timeout 60 "$hafl" run "$topology" $bound --set placement/base_port=$((base + 16)) \
    --set logger/run_dir="$work/stolen-runs" --set server/join_timeout_ms=3000 \
    --set server/deadline_ms=500 \
    --set "security/client_cert=$work/bound/client-0.cert_secret" >"$work/stolen.out" 2>&1
status=$?
[ "$status" -eq 1 ] || fail "the run with one stolen certificate exited $status: $(cat "$work/stolen.out")"
events=$(ls "$work"/stolen-runs/*/events.jsonl) || fail "no events file for the stolen-certificate run"
refused=$(grep -c '"event":"binding-refused"' "$events")
[ "$refused" -ge 7 ] || fail "$refused binding refusals, expected the 7 other clients: $(grep binding "$events")"
grep -q 'is bound to client 0, not client 3' "$events" || fail "refusal without its reason"
[ "$(grep -c '"event":"client-joined"' "$events")" -eq 1 ] || fail "more than client 0 joined"
echo "ok: a certificate bound to client 0 could take no other place ($refused refusals)"

# The control socket under CURVE obeys the operator's certificate only: no key at all gets no
# answer (the handshake fails), a client's key is answered not-ok, the operator's `status`
# and `stop` work, and the stopped run ends with status 1, "stopped by control command".
ctl_port=$((base + 21))
# shellcheck disable=SC2086
"$hafl" run "$topology" $bound --set placement/base_port=$((base + 20)) \
    --set logger/run_dir="$work/ctl-runs" --set server/rounds=100000 \
    --set "security/client_cert=$work/bound/client-{index}.cert_secret" >"$work/ctl.out" 2>&1 &
pid=$!
deadline=$(($(date +%s) + 60))
until grep -q '"event":"round-end"' "$work"/ctl-runs/*/events.jsonl 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the control run reached no round-end within 60 s"
    sleep 0.1
done
endpoint="tcp://127.0.0.1:$ctl_port"
operator="--cert $work/bound/operator.cert_secret --server-cert $work/bound/server.cert"
! "$hafl" ctl "$endpoint" status --timeout-ms 1500 >/dev/null 2>&1 \
    || fail "the control socket answered a peer without CURVE"
"$hafl" ctl "$endpoint" status --cert "$work/bound/client-1.cert_secret" \
    --server-cert "$work/bound/server.cert" >"$work/ctl-client" 2>&1 \
    && fail "a client's certificate controlled the server: $(cat "$work/ctl-client")"
grep -q "only the operator's certificate" "$work/ctl-client" \
    || fail "a client's certificate was not told why: $(cat "$work/ctl-client")"
# shellcheck disable=SC2086
"$hafl" ctl "$endpoint" status $operator >"$work/ctl-status" 2>&1 \
    || fail "the operator's status failed: $(cat "$work/ctl-status")"
# shellcheck disable=SC2086
"$hafl" ctl "$endpoint" stop $operator >/dev/null 2>&1 || fail "the operator's stop failed"
wait "$pid"
status=$?
pid=""
[ "$status" -eq 1 ] && grep -q "stopped by control command" "$work/ctl.out" \
    || fail "the stopped run: status $status, $(tail -3 "$work/ctl.out")"
echo "ok: control under CURVE obeys the operator's certificate only"
