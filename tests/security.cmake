# Security tests: CURVE roles, allow-list, refusals and hafl keygen; quick enough for ASan.
set_tests_properties(security PROPERTIES TIMEOUT 120 LABELS asan)
