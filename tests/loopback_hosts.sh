# loopback_hosts.sh: shell helpers for bus tests that start two hosts on loopback with
# `hafl node`, as an operator starts them. Sourced (`. tests/loopback_hosts.sh`), not run.
#
#   fail MESSAGE                 prints FAIL and the tail of every $work/*.log, exits 1
#   wait_for FILE PATTERN PID    polls (every 0.1 s, up to 60 s) until FILE holds a line matching
#                                PATTERN; fails at once if process PID has ended meanwhile
#   free_ports SOURCE_DIR        prints the first of four free tcp ports, below the block the
#                                other bus tests draw from (python_client_harness binds them
#                                to make sure)
#   two_hosts_tail RUN_DIR PORT  prints the topology's tail: logger/run_dir RUN_DIR, and
#                                placement hosts alpha (server, evaluator) and beta (clients
#                                0-1), both 127.0.0.1, base port PORT, no CURVE

fail() {
    echo "FAIL: $*"
    for f in "$work"/*.log; do
        echo "--- $f"
        tail -20 "$f"
    done
    exit 1
}

wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        kill -0 "$3" 2>/dev/null || fail "no '$2' in $1 and process $3 has ended"
        [ $i -le 600 ] || fail "no '$2' in $1 after 60 s"
        sleep 0.1
    done
}

free_ports() {
    (cd "$1/tests" && /usr/bin/python3 -c \
        'from python_client_harness import free_base_port; print(free_base_port())')
}

two_hosts_tail() {
    cat <<EOF2
logger
    run_dir = $1
placement
    mode = hosts
    transport = tcp
    base_port = $2
    hosts
        alpha
            address = 127.0.0.1
            server = true
            evaluator = true
        beta
            address = 127.0.0.1
            clients = 0-1
security
    insecure = true
EOF2
}
