# Model loading and reference forward tests (checkpoint, tokenizer, reference forward, generate).
# All are quick, so all also run in the AddressSanitizer + UBSan tree.
set_tests_properties(checkpoint tokenizer tokenizer_spm llama_ref generate PROPERTIES LABELS asan)

# generate_gguf: `hafl generate` on stories260K.gguf with its own tokenizer prints the reference
# greedy text and what the .bin prints for sampled prompts (test_generate --gguf); it skips (77)
# when stories260K.gguf or another asset it compares with is missing.
add_test(NAME generate_gguf COMMAND test_generate --gguf)
set_tests_properties(generate_gguf PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS asan
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")

# tokenizer_spm_oracle: hafl's ids with collapse_spaces against SentencePiece's own encode with
# tok4096.model, on a hard set and the first 300 cleaned 20 Newsgroups training documents
# (test_tokenizer_spm --encode gives hafl's side). Needs a python3 that imports sentencepiece
# (the Debian package python3-sentencepiece), tok4096.bin, tok4096.model and the corpus; without
# any of them the test reports a skip.
hafl_python_with(hafl_spm_python sentencepiece)
if(hafl_spm_python)
  add_test(NAME tokenizer_spm_oracle
           COMMAND "${hafl_spm_python}" ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_spm_oracle.py
                   $<TARGET_FILE:test_tokenizer_spm> 300)
  set_tests_properties(tokenizer_spm_oracle PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
      ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endif()
