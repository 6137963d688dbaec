# Train tests (tests/test_train_*.c): the fast ones also run in the ASan+UBSan tree.
set_tests_properties(train_layers train_model train_optim train_ref PROPERTIES LABELS asan)
# The training math's elementwise loops (softmax, SwiGLU, RMSNorm, AdamW) are written to be
# vectorised, which GCC does at -O3 only, and loops with clamps (hafl_fastexp) only when it may
# assume comparisons raise no floating-point traps (-fno-trapping-math changes no result; the
# project never enables FP traps). The build type's flags stay for everything else.
if(TARGET hafl_train)
  target_compile_options(hafl_train PRIVATE -O3 -fno-trapping-math)
endif()
