# Train tests (tests/test_train_*.c): the fast ones also run in the ASan+UBSan tree.
set_tests_properties(train_layers train_model train_optim train_ref PROPERTIES LABELS asan)
