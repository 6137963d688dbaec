# The paper's experiments (tools/reproduce.py): every run it would start, each topology of
# topologies/paper/ with its seed and split overrides, must pass `hafl check`.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME paper_topologies
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tools/reproduce.py --check
                   --hafl $<TARGET_FILE:hafl>)
  set_tests_properties(paper_topologies PROPERTIES TIMEOUT 300)
endif()
