#!/bin/sh
# limits.sh: `hafl check` and `hafl run` agree on the file-descriptor limit of in-process
# clients (hafl_placement_check_limits). Under a hard limit of 4096 open files: 1000 in-process
# clients (about 5256 files) are refused by both with exit 2 and the same line naming
# clients/count and the limit; 700 (about 3756) are accepted by check and really run. Then the
# thread limit (one thread per in-process client): as a user without root (root drops to
# nobody with setpriv) under ulimit -u 500, 300 clients are refused by both alike (before, check
# accepted them and run hung starting the actors).
set -eu
hafl=${HAFL_BINARY:?}
topology=${HAFL_SOURCE_DIR:?}/topologies/smoke.zpl
work=$(mktemp -d "${TMPDIR:-/tmp}/hafl-limits-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }
sets="--set clients/ranks=4 --set data/train_size=8000 --set server/rounds=1 --set logger/run_dir=$work/runs"

ulimit -n 4096
ulimit -Hn 4096
set +e
# shellcheck disable=SC2086
"$hafl" check "$topology" --set clients/count=1000 $sets > /dev/null 2> "$work/check.err"
check_rc=$?
# shellcheck disable=SC2086
"$hafl" run "$topology" --set clients/count=1000 $sets > /dev/null 2> "$work/run.err"
run_rc=$?
set -e
[ $check_rc -eq 2 ] || fail "check of 1000 clients under 4096 files: exit $check_rc, expected 2"
[ $run_rc -eq 2 ] || fail "run of 1000 clients under 4096 files: exit $run_rc, expected 2"
grep -q "clients/count: 1000 clients in one process need about 5256 open files, and this system allows 4096" "$work/check.err" ||
    fail "check's reason: $(cat "$work/check.err")"
grep -v "note:" "$work/run.err" | cmp -s - "$work/check.err" || fail "run and check disagree: $(cat "$work/run.err")"
# shellcheck disable=SC2086
"$hafl" check "$topology" --set clients/count=700 $sets > /dev/null || fail "check refused 700 clients"
# shellcheck disable=SC2086
"$hafl" run "$topology" --set clients/count=700 $sets > "$work/run700.log" 2>&1 ||
    fail "check accepted 700 clients but run failed: $(tail -3 "$work/run700.log")"
# The thread limit, as a user without root (RLIMIT_NPROC binds only them).
threads="--set clients/count=300 $sets"
if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv > /dev/null || { echo "limits: FAIL: setpriv (util-linux) not found"; exit 1; }
    as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"
    chmod 755 "$work"
else
    as_user=""
fi
for cmd in check run; do
    set +e
    # shellcheck disable=SC2086
    $as_user bash -c "ulimit -u 500 && exec \"\$@\"" limits "$hafl" $cmd "$topology" $threads \
        > /dev/null 2> "$work/threads-$cmd.err"
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "$cmd of 300 clients under ulimit -u 500: exit $rc, expected 2: $(cat "$work/threads-$cmd.err")"
    grep -q "clients/count: 300 clients in one process need 300 threads (one each)" "$work/threads-$cmd.err" ||
        fail "$cmd's reason: $(cat "$work/threads-$cmd.err")"
done
grep -v "note:" "$work/threads-run.err" | cmp -s - "$work/threads-check.err" ||
    fail "run and check disagree on threads: $(cat "$work/threads-run.err")"
echo "limits: ok (1000 clients refused by check and run alike under 4096 files, 700 run; 300 refused alike under ulimit -u 500)"
