# Every scheme x strategy pair end to end through `hafl run`: on the synthetic model, and the
# pairs of docs/METHOD.md section 6 on stories260K (skipped without the assets).
add_test(NAME strategy_pairs_synthetic COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/strategy_pairs.sh)
add_test(NAME strategy_pairs_llama COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/strategy_pairs.sh llama)
set_tests_properties(strategy_pairs_synthetic strategy_pairs_llama PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
