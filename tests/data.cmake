# Data tests (tests/test_data_*.c). Crafted-corpus, cleaning and split tests are quick and also
# run in the ASan+UBSan tree. data_newsgroups reads the real 20news-bydate archive and tok512.bin
# through the asset lookup and skips (exit 77) when they are missing.
set_tests_properties(data_clean data_archive data_split data_tokset data_fedset PROPERTIES LABELS asan)
set_tests_properties(data_newsgroups PROPERTIES SKIP_RETURN_CODE 77)

# data_sklearn: the whole corpus cleaned by hafl and by scikit-learn's own functions must be
# byte-identical. Needs a python3 that imports sklearn (the Debian package python3-sklearn
# provides one for the system interpreter); without one the test reports a skip.
hafl_python_with(hafl_sklearn_python sklearn)
if(hafl_sklearn_python)
  add_test(NAME data_sklearn
           COMMAND "${hafl_sklearn_python}" ${CMAKE_CURRENT_SOURCE_DIR}/test_data_sklearn.py
                   $<TARGET_FILE:test_data_newsgroups>)
  set_tests_properties(data_sklearn PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
      ENVIRONMENT "HAFL_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endif()
