# decent-bench-kernels: the combining kernels per instruction-set variant (Google Benchmark).
find_package(benchmark QUIET)
if(benchmark_FOUND)
  add_executable(decent-bench-kernels ${CMAKE_CURRENT_LIST_DIR}/kernels.cpp)
  target_include_directories(decent-bench-kernels PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(decent-bench-kernels PRIVATE decent_comm benchmark::benchmark)
  target_compile_options(decent-bench-kernels PRIVATE ${DECENT_WARNINGS})
endif()
