# Actor-bus tests: properties beyond the defaults of tests/CMakeLists.txt.
set_tests_properties(bus_inproc bus_modes PROPERTIES TIMEOUT 120 LABELS bus)
set_tests_properties(bus_faults bus_control PROPERTIES TIMEOUT 120 LABELS bus)
set_tests_properties(bus_rogue PROPERTIES TIMEOUT 120 LABELS "bus;asan")
