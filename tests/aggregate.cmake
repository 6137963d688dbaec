# Aggregation strategies and distribution schemes: pure functions, also run under ASan+UBSan.
set_tests_properties(strategy scheme PROPERTIES LABELS asan)
# Bounded influence: robust strategies and clip_norm against references, the byzantine fault
# kind, and smoke.zpl under attack in one process (a few seconds; more under ASan).
set_tests_properties(robust robust_byzantine PROPERTIES LABELS asan)
set_tests_properties(robust_bus PROPERTIES TIMEOUT 120 LABELS "bus;asan")
