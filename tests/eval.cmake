# `hafl eval` end to end (tests/test_eval.c): it runs the binary through HAFL_BINARY, so it needs
# it built. Real assets (stories260K, tok512, 20 Newsgroups): skips (77) without them. It feeds
# the command malformed lists and damaged adapters, so it also runs in the ASan+UBSan tree
# (about 35 s there, most of it scoring all 7532 test documents twice).
if(TARGET test_eval AND TARGET hafl)
  add_dependencies(test_eval hafl)
endif()
set_tests_properties(eval PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS asan)
