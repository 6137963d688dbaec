# Run-folder state files for resuming (client state, checkpoint/round-R.state): strict readers fed
# damaged and random files, so they also run in the ASan+UBSan tree (label asan).
set_tests_properties(client_state server_state PROPERTIES TIMEOUT 60 LABELS asan)
