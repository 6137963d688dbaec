# qwen2 GGUF with a byte-level BPE tokenizer, end to end.
#
# gguf_qwen2_model: tests/test_gguf_qwen2_model.c with no arguments writes its tiny qwen2 GGUF
# (biases, NeoX RoPE, separate output, a gpt2 tokenizer with Qwen2's pre-tokenizer and merges a
# small BPE trainer learns) to a temporary file and checks that hafl_checkpoint_open and
# hafl_tokenizer_load read back what it wrote; pure C and quick, so it also runs in the
# ASan+UBSan tree.
set_tests_properties(gguf_qwen2_model PROPERTIES TIMEOUT 300 LABELS asan)

# gguf_qwen2_federation: tests/gguf_qwen2_federation.sh writes that model with the same
# executable (--write), runs a short federation on it twice (topologies/tiny.zpl shrunk by
# overrides, the tokenizer from the GGUF's metadata), requires the same final adapter digest,
# then exports the adapter for llama.cpp and requires it to say qwen2 and to hold the run's
# values (test_export --check-gguf); it skips (77) when the 20news asset is missing.
add_test(NAME gguf_qwen2_federation COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/gguf_qwen2_federation.sh)
set_tests_properties(gguf_qwen2_federation PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>;HAFL_QWEN2_MODEL=$<TARGET_FILE:test_gguf_qwen2_model>;HAFL_TEST_EXPORT=$<TARGET_FILE:test_export>")
