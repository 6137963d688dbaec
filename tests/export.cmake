# `hafl export` tests (tools/cmd_export.c).
#
# export: tests/test_export.c with no arguments: synthetic runs (no assets) on a llama2.c base and
# a qwen2 GGUF base exported to GGUF and read back through model/hafl_gguf.c, value by value,
# general.architecture included; then usage errors, missing and corrupt adapters and unwritable
# outputs. Pure C, so it also runs in the ASan+UBSan tree.
# export_synthetic / export_federation: tests/test_export.sh, which exports synthetic runs (llama
# and qwen2 bases) and two short stories260K federations (adaptive, flora) both ways and reads
# them back independently (test_export --check-gguf, tests/test_export_peft.py with python's
# standard library only: q_proj / k_proj rows permuted for llama, as they are for qwen2, and
# each order must fail on the other's export; the synthetic one also requires `hafl info` to
# count a lora_a without its lora_b apart and the export to refuse a NaN in the adapter with
# exit 2); the federation one skips (77) when an asset is missing.
set_tests_properties(export PROPERTIES TIMEOUT 300 LABELS asan)
hafl_python_with(HAFL_EXPORT_PYTHON json)
foreach(mode synthetic federation)
  add_test(NAME export_${mode} COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test_export.sh ${mode})
  set_tests_properties(export_${mode} PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
      ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>;HAFL_TEST_EXPORT=$<TARGET_FILE:test_export>;HAFL_PYTHON=${HAFL_EXPORT_PYTHON}")
endforeach()
