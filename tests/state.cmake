# Run-folder state files for resuming (checkpoint.state): a strict reader fed damaged and
# random files, so it also runs in the ASan+UBSan tree (label asan).
set_tests_properties(server_state PROPERTIES TIMEOUT 60 LABELS asan)
