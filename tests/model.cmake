# Model loading and reference forward tests (checkpoint, tokenizer, reference forward, generate).
# All are quick, so all also run in the AddressSanitizer + UBSan tree.
set_tests_properties(checkpoint tokenizer llama_ref generate PROPERTIES LABELS asan)
