# GGUF tests (model/hafl_gguf.c, hafl_quant.c, hafl_gguf_writer.c and `hafl info`).
#
# gguf: tests/test_gguf.c on files it builds itself (quantised blocks, writer/reader round trips,
# malformed files, `hafl info`); quick and pure C, so it also runs in the ASan+UBSan tree.
# gguf_asset: the same executable with --asset checks stories260K.gguf against stories260K.bin
# and `hafl info` on it; it skips (77) when either asset is missing.
#
# fuzz_gguf_brief: the libFuzzer target tests/fuzz_gguf.c, built by clang with
# -fsanitize=fuzzer,address,undefined straight from the reader, dequantiser and writer sources
# (plus runtime/hafl_file.c, which the writer saves with), and a seed writer built from the same
# file. The test writes a few valid small GGUFs (every value type, every tensor type, alignments
# 32 and 64, version 2) into a fresh corpus folder and fuzzes for 20 seconds; any crash, leak or
# sanitizer report fails it.
set_tests_properties(gguf PROPERTIES TIMEOUT 300 LABELS asan)
# gguf_models: tests/test_gguf_models.c writes tiny llama (GQA, RoPE base 500000) and qwen2
# (biases, NeoX RoPE, separate output) GGUFs in each tensor type, loads them and runs the
# trainer against the naive reference (1e-5); pure C, so it runs in the ASan+UBSan tree too.
set_tests_properties(gguf_models PROPERTIES TIMEOUT 300 LABELS asan)
add_test(NAME gguf_asset COMMAND test_gguf --asset)
set_tests_properties(gguf_asset PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS asan
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")

if(NOT HAFL_SANITIZE)
  find_program(HAFL_CLANG NAMES clang clang-14)
  if(NOT HAFL_CLANG)
    message(FATAL_ERROR "clang not found: install the Debian packages 'clang' and 'libclang-rt-14-dev' (or run tools/bootstrap.sh)")
  endif()
  set(hafl_gguf_fuzz_dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz_gguf)
  set(hafl_gguf_fuzz_srcs ${CMAKE_SOURCE_DIR}/model/hafl_gguf.c ${CMAKE_SOURCE_DIR}/model/hafl_quant.c
      ${CMAKE_SOURCE_DIR}/model/hafl_gguf_writer.c ${CMAKE_SOURCE_DIR}/runtime/hafl_file.c)
  set(hafl_gguf_fuzz_headers ${CMAKE_SOURCE_DIR}/model/hafl_gguf.h
      ${CMAKE_SOURCE_DIR}/model/hafl_quant.h ${CMAKE_SOURCE_DIR}/model/hafl_gguf_writer.h
      ${CMAKE_SOURCE_DIR}/runtime/hafl_file.h ${CMAKE_CURRENT_SOURCE_DIR}/hafl_test.h)
  set(hafl_gguf_fuzz_flags -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
      -I${CMAKE_SOURCE_DIR}/model -I${CMAKE_SOURCE_DIR}/runtime -I${CMAKE_CURRENT_SOURCE_DIR})
  add_custom_command(
    OUTPUT ${hafl_gguf_fuzz_dir}/fuzz_gguf ${hafl_gguf_fuzz_dir}/fuzz_gguf_seeds
    COMMAND ${CMAKE_COMMAND} -E make_directory ${hafl_gguf_fuzz_dir}
    COMMAND ${HAFL_CLANG} ${hafl_gguf_fuzz_flags} -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_gguf.c
            ${hafl_gguf_fuzz_srcs} -o ${hafl_gguf_fuzz_dir}/fuzz_gguf -lm
    COMMAND ${HAFL_CLANG} ${hafl_gguf_fuzz_flags} -DHAFL_FUZZ_SEEDS -fsanitize=address,undefined
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_gguf.c ${hafl_gguf_fuzz_srcs}
            -o ${hafl_gguf_fuzz_dir}/fuzz_gguf_seeds -lm
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_gguf.c ${hafl_gguf_fuzz_srcs} ${hafl_gguf_fuzz_headers}
    COMMENT "Building the libFuzzer target fuzz_gguf with clang"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_custom_target(fuzz_gguf ALL DEPENDS ${hafl_gguf_fuzz_dir}/fuzz_gguf
                    ${hafl_gguf_fuzz_dir}/fuzz_gguf_seeds)

  # A fresh corpus each run, so the 20 s always start from the seeds.
  add_test(NAME fuzz_gguf_brief
           COMMAND sh -c "rm -rf corpus && mkdir corpus && ./fuzz_gguf_seeds corpus && ./fuzz_gguf -max_total_time=20 -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 corpus"
           WORKING_DIRECTORY ${hafl_gguf_fuzz_dir})
  set_tests_properties(fuzz_gguf_brief PROPERTIES TIMEOUT 120 LABELS fuzz)
endif()

# gguf_federation: tests/gguf_federation.sh runs a short federation (topologies/tiny.zpl shrunk
# by overrides) on stories260K.bin and on stories260K.gguf with the tokenizer from its metadata,
# and requires the same final adapter digest; it skips (77) when an asset is missing.
add_test(NAME gguf_federation COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/gguf_federation.sh)
set_tests_properties(gguf_federation PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR};HAFL_BINARY=$<TARGET_FILE:hafl>")
