# OpenBLAS kernel choice (runtime/hafl_blas.h): the hafl binary runs the vector kernels the CPU
# has even where OpenBLAS does not recognise the CPU, and keeps a core the user sets.
add_test(NAME blas_kernels COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/blas_kernels.sh $<TARGET_FILE:hafl>)
set_tests_properties(blas_kernels PROPERTIES TIMEOUT 60)
