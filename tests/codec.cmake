# Wire codec tests (messages/). test_msg_codec and test_f32le also run in the ASan+UBSan tree.
#
# fuzz_msg_brief: the libFuzzer target tests/fuzz_msg_decode.c, built by clang with
# -fsanitize=fuzzer,address,undefined straight from the codec sources (so it needs none of the
# gcc-built libraries), plus a seed writer built from the same file. The test writes one seed
# per message type into a fresh corpus folder and fuzzes for 30 seconds; any crash, leak or
# sanitizer report fails it. A longer run is documented in messages/PROTOCOL.md.
set_tests_properties(msg_codec f32le PROPERTIES LABELS asan)

if(NOT HAFL_SANITIZE)
  find_program(HAFL_CLANG NAMES clang clang-14)
  if(NOT HAFL_CLANG)
    message(FATAL_ERROR "clang not found: install the Debian packages 'clang' and 'libclang-rt-14-dev' (or run tools/bootstrap.sh)")
  endif()
  set(hafl_fuzz_dir ${CMAKE_CURRENT_BINARY_DIR}/fuzz_msg)
  file(GLOB hafl_fuzz_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/messages/*.c)
  file(GLOB hafl_fuzz_headers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/messages/*.h
       ${CMAKE_SOURCE_DIR}/model/hafl_adapter.h ${CMAKE_CURRENT_SOURCE_DIR}/hafl_msg_samples.h
       ${CMAKE_CURRENT_SOURCE_DIR}/hafl_test.h)
  set(hafl_fuzz_flags -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
      -I${CMAKE_SOURCE_DIR}/messages -I${CMAKE_SOURCE_DIR}/model -I${CMAKE_CURRENT_SOURCE_DIR}
      ${CZMQ_CFLAGS} ${ZMQ_CFLAGS} ${MSGPACK_CFLAGS})
  set(hafl_fuzz_libs ${CZMQ_LDFLAGS} ${ZMQ_LDFLAGS} ${MSGPACK_LDFLAGS} -lm)
  add_custom_command(
    OUTPUT ${hafl_fuzz_dir}/fuzz_msg_decode ${hafl_fuzz_dir}/fuzz_msg_seeds
    COMMAND ${CMAKE_COMMAND} -E make_directory ${hafl_fuzz_dir}
    COMMAND ${HAFL_CLANG} ${hafl_fuzz_flags} -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_msg_decode.c
            ${hafl_fuzz_srcs} -o ${hafl_fuzz_dir}/fuzz_msg_decode ${hafl_fuzz_libs}
    COMMAND ${HAFL_CLANG} ${hafl_fuzz_flags} -DHAFL_FUZZ_SEEDS -fsanitize=address,undefined
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_msg_decode.c ${hafl_fuzz_srcs}
            -o ${hafl_fuzz_dir}/fuzz_msg_seeds ${hafl_fuzz_libs}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_msg_decode.c ${hafl_fuzz_srcs} ${hafl_fuzz_headers}
    COMMENT "Building the libFuzzer target fuzz_msg_decode with clang"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_custom_target(fuzz_msg_decode ALL DEPENDS ${hafl_fuzz_dir}/fuzz_msg_decode
                    ${hafl_fuzz_dir}/fuzz_msg_seeds)

  # A fresh corpus each run, so the 30 s always start from the seeds.
  add_test(NAME fuzz_msg_brief
           COMMAND sh -c "rm -rf corpus && mkdir corpus && ./fuzz_msg_seeds corpus && ./fuzz_msg_decode -max_total_time=30 -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 corpus"
           WORKING_DIRECTORY ${hafl_fuzz_dir})
  set_tests_properties(fuzz_msg_brief PROPERTIES TIMEOUT 120 LABELS fuzz)
endif()
