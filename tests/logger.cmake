# Logger, tail/ctl and synthetic-task tests: fast, so they also run in the ASan+UBSan tree.
# test_logger drives `hafl tail` and `hafl ctl` through HAFL_BINARY, so it needs the binary.
if(TARGET test_logger AND TARGET hafl)
  add_dependencies(test_logger hafl)
endif()
set_tests_properties(logger log_auth synth_task PROPERTIES LABELS asan)
