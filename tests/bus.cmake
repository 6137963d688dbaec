# Actor-bus tests: properties beyond the defaults of tests/CMakeLists.txt. The in-process ones
# also run in the ASan+UBSan tree (label asan).
set_tests_properties(bus_inproc bus_faults bus_control bus_resume bus_rogue bus_eval
    PROPERTIES TIMEOUT 120 LABELS "bus;asan")
# Takeover attempts on a live client's place (wrong or missing session) and a legitimate rejoin
# that replaces the holder.
set_tests_properties(bus_takeover PROPERTIES TIMEOUT 120 LABELS "bus;asan")
# A frame above the server's size cap: the silent disconnect is logged with the peer's address.
set_tests_properties(bus_oversize PROPERTIES TIMEOUT 120 LABELS "bus;asan")
# Join timeouts of 1.5 s: a few seconds even under ASan; a server that never gives up hangs it.
set_tests_properties(bus_join PROPERTIES TIMEOUT 60 LABELS "bus;asan")
# Quorum: client nodes (`hafl node` children) killed or paused mid-run, heartbeat deaths of 2 s,
# a join timeout of 5 s and three failed attempts of 2 s; about 25 s, more under ASan.
set_tests_properties(bus_quorum PROPERTIES TIMEOUT 180 LABELS "bus;asan")
# Checkpoint writes that fail (a folder where a generation's file goes, checkpoint/ a file).
set_tests_properties(bus_diskfull PROPERTIES TIMEOUT 120 LABELS "bus;asan")
set_tests_properties(bus_modes PROPERTIES TIMEOUT 120 LABELS bus)

# Three hosts in network namespaces (skips with exit code 77 where `ip netns` is not allowed).
add_test(NAME bus_netns COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/bus_netns.sh)
set_tests_properties(bus_netns PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77 LABELS bus
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
# CURVE end to end: same digest over tcp with CURVE; a certificate outside the allow-list refused.
add_test(NAME bus_curve COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/bus_curve.sh)
set_tests_properties(bus_curve PROPERTIES TIMEOUT 300 LABELS bus
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
# Runs killed (SIGKILL) at five instants resume to the uninterrupted digest.
add_test(NAME checkpoint_kill COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint_kill.sh)
set_tests_properties(checkpoint_kill PROPERTIES TIMEOUT 300 LABELS bus
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
set_tests_properties(wire PROPERTIES LABELS "bus;asan")
# Ctrl-C and SIGTERM mid-round, twice in 10 ms, in one process, to a process group and to one
# client node: clean stops, never a crash (also under ASan, where a use-after-free fails it).
add_test(NAME signals COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/signals.sh)
set_tests_properties(signals PROPERTIES TIMEOUT 600 LABELS "bus;asan"
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
# 1000 in-process clients, twice: the same digest, never "not reproducible".
add_test(NAME scale_inproc COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/scale_inproc.sh)
set_tests_properties(scale_inproc PROPERTIES TIMEOUT 300 LABELS bus
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
# A client host whose server is killed mid-round: its heartbeats never wait, its upload gives up
# after the send timeout (both said on stderr), and it ends cleanly on SIGTERM (no hang).
add_test(NAME client_send_timeout COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/client_send_timeout.sh)
set_tests_properties(client_send_timeout PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS bus
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
# Over a slow link (tests/slow_link_proxy.py: 400 ms each way, no netem needed) a client host's
# last events still reach the log: the logger reads until other processes' emitters fall silent.
add_test(NAME slow_links COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/slow_links.sh)
set_tests_properties(slow_links PROPERTIES TIMEOUT 300 LABELS bus
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
