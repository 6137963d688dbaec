# The paper's experiments (tools/reproduce.py): every run it would start, each topology of
# topologies/paper/ with its seed and split overrides, must pass `hafl check`.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME paper_topologies
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/reproduce.py --check
                   --hafl $<TARGET_FILE:hafl>)
  set_tests_properties(paper_topologies PROPERTIES TIMEOUT 300)
endif()

# The script end to end on tiny runs (--quick): two runs on the real corpus, then the CSVs, the
# plots and the report, all written inside the build tree.
if(Python3_Interpreter_FOUND)
  add_test(NAME paper_quick
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/reproduce.py --quick --seeds 1
                   --only freeze-adaptive,truncate-adaptive --splits iid
                   --hafl $<TARGET_FILE:hafl>
                   --scratch ${CMAKE_CURRENT_BINARY_DIR}/paper_quick/runs
                   --out ${CMAKE_CURRENT_BINARY_DIR}/paper_quick/docs)
  set_tests_properties(paper_quick PROPERTIES TIMEOUT 300)
endif()
