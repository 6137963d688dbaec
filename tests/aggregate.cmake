# Aggregation strategies and distribution schemes: pure functions, also run under ASan+UBSan.
set_tests_properties(strategy scheme PROPERTIES LABELS asan)
