# Topology loader tests: the C test runs in the sanitizer tree too; `hafl check` must exit 0 on
# the main job's topology and the fast tests' tiny one (stories260K), and 2 on a malformed one.
set_tests_properties(topology PROPERTIES LABELS asan)

add_test(NAME check_tiny
         COMMAND $<TARGET_FILE:hafl> check ${CMAKE_SOURCE_DIR}/topologies/tiny.zpl)
add_test(NAME check_quickstart
         COMMAND $<TARGET_FILE:hafl> check ${CMAKE_SOURCE_DIR}/topologies/quickstart.zpl)
add_test(NAME check_bad
         COMMAND sh -c "\"$0\" check \"$1\"; test $? -eq 2"
                 $<TARGET_FILE:hafl> ${CMAKE_CURRENT_SOURCE_DIR}/topologies/bad/rank-above-R.zpl)
set_tests_properties(check_tiny check_quickstart check_bad PROPERTIES TIMEOUT 60)
# `hafl check` and `hafl run` agree on how many in-process clients the file limit allows.
add_test(NAME check_limits COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/limits.sh)
set_tests_properties(check_limits PROPERTIES TIMEOUT 180
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
